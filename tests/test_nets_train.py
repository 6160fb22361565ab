import math

import pytest
import torch

import diffedu as de
from diffedu import nets
from diffedu.stats import mean_se
from diffedu.train import dsm_loss


def test_score_mlp_matches_the_paper():
    m = de.ScoreMLP(2)
    assert sum(p.numel() for p in m.parameters()) == 33794          # "about 33.8k parameters"
    acts = [type(layer).__name__ for layer in m.net]
    assert acts == ["Linear", "SiLU", "Linear", "SiLU", "Linear", "SiLU", "Linear"]
    x = torch.randn(5, 2)
    assert m(x, 0.3).shape == (5, 2)
    assert torch.allclose(m(x, torch.full((5,), 0.3)), m(x, 0.3))
    assert m(x.double(), 0.3).dtype == torch.float64


def test_score_mlp_bad_input():
    m = de.ScoreMLP(2)
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        m(torch.randn(5, 3), 0.1)
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        m(torch.randn(5, 2), torch.ones(4))
    with pytest.raises(ValueError, match="dim"):
        de.ScoreMLP(0)


@pytest.mark.parametrize("data", nets.DATA_NAMES)
@pytest.mark.parametrize("schedule", nets.SCHEDULE_NAMES)
def test_the_four_weight_files_load(data, schedule):
    m = de.load_pretrained(data, schedule)
    assert m.info["steps"] == 80000 and m.info["batch_size"] == 512 and m.info["train_points"] == 3000
    assert m.sde.t_min == 0.01 and m.sde.T == (1.0 if schedule == "simple" else 0.999)
    out = m(torch.zeros(4, 2), 0.5)
    assert out.shape == (4, 2) and bool(torch.isfinite(out).all())
    assert not any(p.requires_grad for p in m.parameters())


def test_pretrained_swiss_roll_learned_the_data():
    """The denoising loss of the shipped model is close to its value on fresh data (no overfitting)
    and far below that of an untrained network."""
    m = de.load_pretrained("swiss_roll", "simple")
    sde = m.sde
    gen = de.make_generator(0)
    x0 = de.swiss_roll(20000, gen)
    t = sde.t_min + (sde.T - sde.t_min) * torch.rand(20000, generator=gen, dtype=torch.float64)
    z = de.randn(x0.shape, generator=gen)
    trained = float(dsm_loss(m, x0, sde, t, z))
    torch.manual_seed(0)
    with torch.no_grad():
        untrained = float(dsm_loss(de.ScoreMLP(2), x0, sde, t, z))
    assert abs(trained - m.info["final_loss"]) < 0.25 * m.info["final_loss"]
    assert trained < 0.8 * untrained


def test_load_pretrained_errors(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="data"):
        de.load_pretrained("mnist", "simple")
    with pytest.raises(ValueError, match="schedule"):
        de.load_pretrained("swiss_roll", "linear")
    monkeypatch.setattr(nets, "WEIGHTS", tmp_path)
    with pytest.raises(FileNotFoundError, match="make weights"):
        de.load_pretrained("swiss_roll", "simple")


def test_paper_sdes():
    s = de.paper_sde("simple")
    assert torch.allclose(s.schedule.alpha(torch.tensor([0.5], dtype=torch.float64)),
                          torch.tensor([math.exp(-5 * 0.25)], dtype=torch.float64))
    c = de.paper_sde("cosine")
    assert abs(float(c.marginal(0.999)[0]) - math.cos(math.pi * 0.999 / 2)) < 1e-12


def test_train_is_deterministic_and_learns():
    data = de.GaussianMixture([1.0], [[0.0, 0.0]], [0.5]).sample(1000, de.make_generator(0))
    sde = de.paper_sde("simple")
    gen = de.make_generator(5)
    x_val = data[:1000]
    t_val = sde.t_min + (sde.T - sde.t_min) * torch.rand(1000, generator=gen, dtype=torch.float64)
    z_val = de.randn(x_val.shape, generator=gen)
    runs, before, after = [], None, None
    for _ in range(2):
        torch.manual_seed(0)
        m = de.ScoreMLP(2)
        with torch.no_grad():
            before = dsm_loss(m, x_val, sde, t_val, z_val, reduction="none").double()
        runs.append(de.train_dsm(m, data, sde, 300, batch_size=250, generator=de.make_generator(1), progress=False))
        with torch.no_grad():
            after = dsm_loss(m, x_val, sde, t_val, z_val, reduction="none").double()
    assert torch.equal(runs[0], runs[1])
    d, se = mean_se(before - after)          # paired: same (x0, t, z) before and after training
    assert float(d) > 5 * float(se)


def test_dsm_loss_of_exact_score_is_the_floor():
    """For N(0, v0) data the g^2-weighted loss of the exact score at fixed t is g^2 (1/sigma^2 - 1/v_t) per coordinate."""
    gauss = de.GaussianMixture([1.0], [[0.0]], [0.2])
    sde = de.paper_sde("simple")
    n, t = 400000, 0.3
    gen = de.make_generator(2)
    x0 = gauss.sample(n, gen, dtype=torch.float64)
    z = de.randn(x0.shape, generator=gen, dtype=torch.float64)
    loss = float(dsm_loss(lambda x, tt: gauss.score(x, tt, sde), x0, sde, torch.full((n,), t, dtype=torch.float64), z))
    a, s = (float(v) for v in sde.marginal(t))
    floor = float(sde.diffusion(t)) ** 2 * (1 / s**2 - 1 / (a**2 * 0.04 + s**2))
    assert abs(loss - floor) < 0.02 * floor


def test_train_bad_input():
    data = torch.randn(100, 2)
    m = de.ScoreMLP(2)
    with pytest.raises(ValueError, match="t_min must be > 0"):
        de.train_dsm(m, data, de.VPSDE(de.Linear()), 10, batch_size=50)
    with pytest.raises(ValueError, match="batch_size"):
        de.train_dsm(m, data, de.paper_sde("simple"), 10, batch_size=500)
    with pytest.raises(TypeError, match="model"):
        de.train_dsm(lambda x, t: x, data, de.paper_sde("simple"), 10, batch_size=50)
    with pytest.raises(ValueError, match="steps"):
        de.train_dsm(m, data, de.paper_sde("simple"), 0, batch_size=50)


def test_dsm_loss_and_mixture_helpers_bad_input():
    from diffedu.data import swiss_roll_mixture

    sde = de.paper_sde("simple")
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="reduction"):
        dsm_loss(de.ScoreMLP(2), x, sde, torch.full((4,), 0.5), x, reduction="sum")
    with pytest.raises(ValueError, match="components"):
        swiss_roll_mixture(components=5)
    with pytest.raises(ValueError, match="noise"):
        swiss_roll_mixture(noise=0.0)
