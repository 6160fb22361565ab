import math

import pytest
import torch

import diffedu as de
from diffedu.stats import energy_distance, var_se

GAUSS = de.GaussianMixture([1.0], [[0.0]], [0.2])


@pytest.mark.parametrize("method, hbar", [("euler_maruyama", 1.0), ("euler_maruyama", 0.0), ("heun", 0.5),
                                          ("ancestral", 1.0), ("reverse_diffusion", 1.0), ("pc", 1.0)])
def test_samplers_recover_gaussian_data_vp(method, hbar):
    sde = de.VPSDE(de.Linear(0.1, 20.0), t_min=1e-3)
    x = de.sample(sde, GAUSS.score_fn(sde), 20000, hbar, 1000, de.make_generator(0), dim=1,
                  method=method, dtype=torch.float64)
    v, se = var_se(x[:, 0])
    target = float(GAUSS.marginal(1e-3, sde)[1][0, 0, 0])
    assert abs(float(v) - target) < 5 * float(se) + 0.03 * target, (method, float(v), target)


@pytest.mark.parametrize("method", ["ancestral", "reverse_diffusion", "euler_maruyama"])
def test_samplers_recover_gaussian_data_ve(method):
    sde = de.VESDE(0.01, 10.0)
    x = de.sample(sde, GAUSS.score_fn(sde), 20000, 1.0, 1000, de.make_generator(1), dim=1,
                  method=method, dtype=torch.float64)
    v, se = var_se(x[:, 0])
    assert abs(float(v) - 0.04) < 5 * float(se) + 0.03 * 0.04, (method, float(v))


def test_energy_distance_detects_difference():
    a = torch.randn(500, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    b = torch.randn(500, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert abs(energy_distance(a, b)) < 0.02
    assert energy_distance(a, b + 1.0) > 0.5
    with pytest.raises(ValueError, match="same dimension"):
        energy_distance(a, b[:, :1])


def test_sample_path_and_reproducibility():
    sde = de.VPSDE(de.Linear())
    score = lambda x, t: -x
    p = de.sample(sde, score, 10, 0.3, 20, de.make_generator(2), return_path=True)
    assert p.shape == (21, 10, 2)
    assert torch.equal(p[-1], de.sample(sde, score, 10, 0.3, 20, de.make_generator(2)))


def test_sample_bad_input():
    sde = de.VPSDE(de.Linear())
    score = lambda x, t: -x
    with pytest.raises(ValueError, match="method"):
        de.sample(sde, score, 10, method="ddim")
    with pytest.raises(ValueError, match="hbar must be 1"):
        de.sample(sde, score, 10, 0.5, method="ancestral")
    with pytest.raises(ValueError, match="hbar"):
        de.sample(sde, score, 10, -1.0)
    with pytest.raises(ValueError, match="return_path"):
        de.sample(sde, score, 10, method="pc", return_path=True)
    with pytest.raises(TypeError, match="score"):
        de.sample(sde, None, 10)
    with pytest.raises(TypeError, match="sde"):
        de.sample("vp", score, 10)
    with pytest.raises(TypeError, match="sde must be a VPSDE or a VESDE"):
        de.sample(de.SubVPSDE(de.Linear()), score, 10, method="ancestral")
    with pytest.raises(ValueError, match="shape"):
        de.sample(sde, lambda x, t: x[:, :1], 10, method="reverse_diffusion")
    with pytest.raises(ValueError, match="t_min"):
        de.sample(sde, score, 10, t_min=1.0)


def test_squared_w2_exact_cases():
    from diffedu.stats import squared_w2

    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    perm = x[[2, 0, 1]]
    assert squared_w2(x, perm) == pytest.approx(0.0)
    assert squared_w2(x, x + torch.tensor([3.0, 4.0], dtype=torch.float64)) == pytest.approx(25.0)
    with pytest.raises(ValueError, match="same shape"):
        squared_w2(x, x[:2])


def test_w2_trial_is_paired_and_reproducible():
    from diffedu.samplers import w2_trial

    m = de.load_pretrained("swiss_roll", "simple")
    a = w2_trial(m, "swiss_roll", 0.1, 0, n=200, steps=50)
    assert a == w2_trial(m, "swiss_roll", 0.1, 0, n=200, steps=50)
    assert a != w2_trial(m, "swiss_roll", 0.1, 1, n=200, steps=50)
    with pytest.raises(ValueError, match="data"):
        w2_trial(m, "mnist", 0.1, 0)


def test_w2_trial_shift_false_recreates_the_stored_draws_under_any_offset(monkeypatch):
    from diffedu.samplers import w2_trial

    m = de.load_pretrained("swiss_roll", "simple")
    monkeypatch.setenv("DIFFEDU_SEED_OFFSET", "0")
    base = w2_trial(m, "swiss_roll", 0.1, 0, n=200, steps=50)
    monkeypatch.setenv("DIFFEDU_SEED_OFFSET", "101")
    assert w2_trial(m, "swiss_roll", 0.1, 0, n=200, steps=50, shift=False) == base
    assert w2_trial(m, "swiss_roll", 0.1, 0, n=200, steps=50) != base
    with pytest.raises(TypeError, match="shift"):
        w2_trial(m, "swiss_roll", 0.1, 0, n=200, steps=50, shift="no")


def test_pc_corrects_first_then_predicts():
    # Chapter 3 states the order: at each t_k a Langevin corrector, then the reverse-diffusion predictor
    from diffedu.samplers import _langevin, _rd_step, langevin_corrector, pc
    vp = de.VPSDE(de.Linear(0.1, 20.0), t_min=1e-3)
    score = de.GaussianMixture([1.0], [[0.0, 0.0]], [0.5]).score_fn(vp)
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ts = [1.0, 0.6, 0.2]
    got = pc(vp, score, x, ts, torch.Generator().manual_seed(1))
    gen, want = torch.Generator().manual_seed(1), x
    for t, t_next in zip(ts, ts[1:]):
        want = _rd_step(vp, score, langevin_corrector(vp, score, want, t, t_next, gen), t, t_next, gen)
    assert torch.equal(got, want)
    gen, other = torch.Generator().manual_seed(1), x
    for t, t_next in zip(ts, ts[1:]):
        other = _langevin(vp, score, _rd_step(vp, score, other, t, t_next, gen), t_next, t_next, gen, 0.16, 1)
    assert not torch.allclose(got, other)


def test_dsm_loss_is_the_coordinate_mean_and_train_dsm_refuses_t_min_zero():
    vp = de.VPSDE(de.Linear(0.1, 20.0), t_min=1e-3)
    gen = torch.Generator().manual_seed(3)
    x0 = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    z = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    t = 0.1 + 0.8 * torch.rand(50, generator=gen, dtype=torch.float64)
    model = lambda x, tt: -x
    alpha, sigma = (v[:, None] for v in vp.marginal(t))
    g2 = vp.diffusion(t)[:, None] ** 2
    full = (g2 * (model(alpha * x0 + sigma * z, t) + z / sigma) ** 2).sum(1)      # Eq. (eq-dsm-loss) without 1/d
    assert torch.allclose(de.train.dsm_loss(model, x0, vp, t, z, reduction="none"), full / 3)
    with pytest.raises(ValueError, match="t_min"):
        de.train_dsm(de.ScoreMLP(dim=3), x0, de.VPSDE(de.Linear(0.1, 20.0), t_min=0.0), steps=1, batch_size=10)
