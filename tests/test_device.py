import pytest
import torch

import diffedu as de


def test_default_device_cpu_from_env(monkeypatch):
    monkeypatch.setenv("DIFFEDU_DEVICE", "cpu")
    assert de.default_device() == torch.device("cpu")


def test_default_device_auto():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert de.default_device().type == expected


@pytest.mark.parametrize("name", ["tpu", "gpu", "cuda:x"])
def test_default_device_rejects_unknown(monkeypatch, name):
    monkeypatch.setenv("DIFFEDU_DEVICE", name)
    with pytest.raises(ValueError, match="DIFFEDU_DEVICE"):
        de.default_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_default_device_cuda_missing(monkeypatch):
    monkeypatch.setenv("DIFFEDU_DEVICE", "cuda")
    with pytest.raises(ValueError, match="no CUDA"):
        de.default_device()


def test_randn_reproducible_and_dtype():
    a = de.randn((3, 2), generator=de.make_generator(5))
    b = de.randn((3, 2), generator=de.make_generator(5), dtype=torch.float64)
    assert a.dtype == torch.float32 and b.dtype == torch.float64
    assert torch.allclose(a.double(), b, atol=1e-6)


def test_randn_bad_generator():
    with pytest.raises(TypeError, match="generator"):
        de.randn((2,), generator=5)


@pytest.mark.parametrize("seed, err", [(-1, ValueError), (1.5, TypeError), ("a", TypeError)])
def test_make_generator_bad_seed(seed, err):
    with pytest.raises(err, match="seed"):
        de.make_generator(seed)


# --- DIFFEDU_SEED_OFFSET (make robust) ---------------------------------------------------------
@pytest.mark.parametrize("environ, expected", [({}, 0), ({"DIFFEDU_SEED_OFFSET": ""}, 0),
                                               ({"DIFFEDU_SEED_OFFSET": " 17 "}, 17)])
def test_seed_offset(environ, expected):
    assert de.device.seed_offset(environ) == expected


@pytest.mark.parametrize("raw", ["-3", "x", "2.5"])
def test_seed_offset_rejects(raw):
    with pytest.raises(ValueError, match="DIFFEDU_SEED_OFFSET"):
        de.device.seed_offset({"DIFFEDU_SEED_OFFSET": raw})


def test_offset_shifts_every_seed(monkeypatch):
    """make_generator(s) and manual_seed(s) under offset k draw what seed s + k draws without it."""
    monkeypatch.delenv("DIFFEDU_SEED_OFFSET", raising=False)
    plain = torch.randn(5, generator=de.make_generator(12), dtype=torch.float64)
    de.manual_seed(12)
    plain_global = torch.randn(5, dtype=torch.float64)
    monkeypatch.setenv("DIFFEDU_SEED_OFFSET", "7")
    shifted = torch.randn(5, generator=de.make_generator(5), dtype=torch.float64)
    de.manual_seed(5)
    shifted_global = torch.randn(5, dtype=torch.float64)
    assert torch.equal(plain, shifted) and torch.equal(plain_global, shifted_global)
    assert not torch.equal(shifted, torch.randn(5, generator=torch.Generator().manual_seed(5), dtype=torch.float64))
    stored = torch.randn(5, generator=de.make_generator(12, shift=False), dtype=torch.float64)
    assert torch.equal(stored, plain), "shift=False must re-create the stored data whatever the offset"


def test_make_generator_bad_shift():
    with pytest.raises(TypeError, match="shift"):
        de.make_generator(1, shift="no")


def test_manual_seed_bad_seed():
    with pytest.raises(ValueError, match="seed"):
        de.manual_seed(-1)
