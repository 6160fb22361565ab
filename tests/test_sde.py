import math

import pytest
import torch

import diffedu as de
from diffedu.stats import mean_se, var_se

from conftest import within

AFFINE = {
    "vp": lambda: de.VPSDE(de.Linear(0.1, 20)),
    "vp_cosine": lambda: de.VPSDE(de.Cosine(), T=0.99),
    "subvp": lambda: de.SubVPSDE(de.Linear(0.1, 20)),
    "ve": lambda: de.VESDE(0.01, 10.0),
    "ou": lambda: de.OrnsteinUhlenbeck(theta=2.0, sigma=0.7, mu=0.3, T=2.0),
    "bm": lambda: de.BrownianMotion(D=0.8, T=1.5),
}


@pytest.mark.parametrize("name", AFFINE)
def test_marginal_solves_moment_odes(name):
    """d mean/dt = f(mean, t) and d Var/dt = 2 a(t) Var + g(t)^2 for a linear drift f = a x + b."""
    sde = AFFINE[name]()
    x0 = torch.tensor([[1.5]], dtype=torch.float64)
    h = 1e-5
    for frac in [0.2, 0.5, 0.9]:
        t = frac * sde.T
        mean = lambda s: sde.marginal_mean(x0, s)
        var = lambda s: sde.marginal(s)[1] ** 2
        dmean = (mean(t + h) - mean(t - h)) / (2 * h)
        assert torch.allclose(dmean, sde.drift(mean(t), t), rtol=1e-5, atol=1e-7)
        a = float(sde.drift(torch.ones(1, 1, dtype=torch.float64), t) - sde.drift(torch.zeros(1, 1, dtype=torch.float64), t))
        dvar = (var(t + h) - var(t - h)) / (2 * h)
        rhs = 2 * a * var(t) + sde.diffusion(t) ** 2
        assert abs(float(dvar) - float(rhs)) < 1e-4 * max(1.0, abs(float(rhs)))


@pytest.mark.parametrize("name", AFFINE)
def test_marginal_against_monte_carlo(name):
    sde = AFFINE[name]()
    n = 20000
    x0 = torch.full((n, 1), 1.5, dtype=torch.float64)
    ts = de.time_grid(0.0, sde.T, 1000)
    path = de.euler_maruyama(sde, x0, ts, generator=de.make_generator(7), return_path=True)
    for k in [300, 1000]:
        t = float(ts[k])
        m, m_se = mean_se(path[k, :, 0])
        v, v_se = var_se(path[k, :, 0])
        _, sigma = sde.marginal(t)
        m_th = float(sde.marginal_mean(x0[:1], t))
        # EM's O(dt) bias is well below 1 % here; allow it on top of 5 standard errors
        assert abs(float(m) - m_th) < 5 * float(m_se) + 0.01 * abs(m_th), (name, t)
        assert abs(float(v) - float(sigma) ** 2) < 5 * float(v_se) + 0.01 * float(sigma) ** 2, (name, t)


def test_ou_stationary_variance():
    ou = de.OrnsteinUhlenbeck(theta=1.5, sigma=0.6, T=20.0)
    assert ou.stationary_variance == pytest.approx(0.6**2 / 3.0)
    x = de.euler_maruyama(ou, torch.zeros(20000, 1, dtype=torch.float64), de.time_grid(0, 20.0, 4000),
                          generator=de.make_generator(3))
    v, se = var_se(x[:, 0])
    em_bias = ou.stationary_variance * (1 / (1 - 1.5 * 0.005 / 2) - 1)
    assert abs(float(v) - ou.stationary_variance) < 5 * float(se) + em_bias
    assert float(ou.marginal(20.0)[1]) ** 2 == pytest.approx(ou.stationary_variance, rel=1e-9)


def test_subvp_variance_below_vp():
    sch = de.Linear(0.1, 20)
    t = torch.linspace(0.01, 1, 30, dtype=torch.float64)
    assert bool((de.SubVPSDE(sch).marginal(t)[1] < de.VPSDE(sch).marginal(t)[1]).all())


def test_prior_logp_and_sample():
    sde = de.VESDE(0.01, 5.0)
    x = torch.randn(10, 3, dtype=torch.float64)
    ref = torch.distributions.Normal(0.0, 5.0).log_prob(x).sum(1)
    assert torch.allclose(sde.prior_logp(x), ref)
    s = de.VPSDE(de.Linear()).prior_sample(20000, 2, de.make_generator(1), dtype=torch.float64)
    assert s.shape == (20000, 2)
    v, se = var_se(s)
    assert within(v, 1.0, se)


def test_prior_sample_reproducible():
    sde = de.VPSDE(de.Linear())
    a = sde.prior_sample(5, 2, de.make_generator(9))
    b = sde.prior_sample(5, 2, de.make_generator(9))
    assert torch.equal(a, b)


@pytest.mark.parametrize("hbar", [0.0, 0.5, 1.0, 2.0])
def test_reverse_drift_formula(hbar):
    sde = de.VPSDE(de.Linear(0.1, 20))
    score = lambda x, t: -x * (1 + t[:, None])
    rev = sde.reverse(score, hbar)
    x = torch.randn(7, 2, dtype=torch.float64)
    t = 0.4
    g2 = sde.diffusion(t) ** 2
    expected = sde.drift(x, t) - 0.5 * (1 + hbar) * g2 * score(x, torch.full((7,), t))
    assert torch.allclose(rev.drift(x, t), expected)
    assert torch.allclose(rev.diffusion(t), math.sqrt(hbar) * sde.diffusion(t))
    assert rev.T == sde.T


def test_reverse_per_sample_times():
    sde = de.VPSDE(de.Linear())
    rev = sde.reverse(lambda x, t: -x * t[:, None], 1.0)
    x = torch.randn(4, 2, dtype=torch.float64)
    t = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    row = torch.stack([rev.drift(x[i:i + 1], float(t[i]))[0] for i in range(4)])
    assert torch.allclose(rev.drift(x, t), row)


@pytest.mark.parametrize("hbar", [0.0, 1.0, 2.0])
def test_hbar_family_recovers_data_with_exact_score(hbar):
    """Gaussian data N(0, v0): every hbar maps p_T back to p_{t_min} (Chapter 4's claim, in 1-D)."""
    v0 = 0.04
    sde = de.VPSDE(de.Linear(0.1, 20))

    def var_t(t):
        a, s = sde.marginal(t)
        return a**2 * v0 + s**2

    score = lambda x, t: -x / var_t(t)[:, None].to(x.dtype)
    n, t_min = 20000, 1e-3
    xT = math.sqrt(float(var_t(1.0))) * de.randn((n, 1), generator=de.make_generator(2), dtype=torch.float64)
    x = de.heun(sde.reverse(score, hbar), xT, de.time_grid(1.0, t_min, 1000), generator=de.make_generator(3))
    v, se = var_se(x[:, 0])
    target = float(var_t(t_min))
    assert abs(float(v) - target) < 5 * float(se) + 0.01 * target, (hbar, float(v), target)


# ---- bad input ---------------------------------------------------------------------------
def test_bad_x():
    sde = de.VPSDE(de.Linear())
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        sde.drift([[1.0]], 0.5)
    with pytest.raises(ValueError, match=r"shape \(n, d\)"):
        sde.drift(torch.ones(3), 0.5)
    with pytest.raises(TypeError, match="floating"):
        sde.drift(torch.ones(3, 2, dtype=torch.int64), 0.5)
    with pytest.raises(ValueError, match="non-finite"):
        sde.drift(torch.tensor([[float("nan")]]), 0.5)


def test_bad_t():
    sde = de.VPSDE(de.Linear())
    x = torch.ones(3, 2)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        sde.drift(x, 1.5)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        sde.drift(x, torch.ones(4))
    with pytest.raises(TypeError, match="t must be a real number"):
        sde.drift(x, "0.5")
    with pytest.raises(ValueError, match="t must lie"):
        sde.diffusion(-0.2)


def test_bad_constructor_arguments():
    with pytest.raises(TypeError, match="schedule"):
        de.VPSDE("linear")
    with pytest.raises(ValueError, match="sigma_max"):
        de.VESDE(1.0, 0.5)
    with pytest.raises(ValueError, match="theta"):
        de.OrnsteinUhlenbeck(theta=0.0)
    with pytest.raises(ValueError, match="D"):
        de.BrownianMotion(D=-1)
    with pytest.raises(ValueError, match="T"):
        de.VPSDE(de.Cosine(), T=1.0)
    with pytest.raises(ValueError, match="t_min"):
        de.VPSDE(de.Linear(), t_min=1.0)
    with pytest.raises(ValueError, match="sigma"):
        de.GeometricBrownianMotion(sigma=0.0)


def test_bad_reverse_arguments():
    sde = de.VPSDE(de.Linear())
    with pytest.raises(ValueError, match="hbar"):
        sde.reverse(lambda x, t: x, -0.5)
    with pytest.raises(TypeError, match="score"):
        sde.reverse("not a function", 1.0)
    with pytest.raises(TypeError, match="state-dependent"):
        de.GeometricBrownianMotion().reverse(lambda x, t: x, 1.0)
    rev = sde.reverse(lambda x, t: x[:, :1], 1.0)
    with pytest.raises(ValueError, match=r"score must return a tensor of shape \(4, 2\)"):
        rev.drift(torch.ones(4, 2), 0.5)
    with pytest.raises(TypeError, match="no closed-form marginal"):
        rev.marginal(0.5)


def test_state_dependent_and_non_affine_errors():
    gbm = de.GeometricBrownianMotion()
    with pytest.raises(TypeError, match="diffusion_x"):
        gbm.diffusion(0.5)
    with pytest.raises(TypeError, match="not an affine SDE"):
        gbm.marginal(0.5)
    with pytest.raises(TypeError, match="no Gaussian prior"):
        gbm.prior_sample(3, 1)
    with pytest.raises(ValueError, match="w must have"):
        gbm.exact(torch.ones(3, 1), 0.5, torch.ones(2, 1))


def test_ito_sde_checks_shapes():
    sde = de.ItoSDE(lambda x, t: torch.ones(5), lambda x, t: 1.0)
    with pytest.raises(ValueError, match="drift"):
        sde.drift(torch.ones(3, 2), 0.1)
    with pytest.raises(TypeError, match="diffusion_dx"):
        sde.diffusion_dx(torch.ones(3, 2), 0.1)
    with pytest.raises(TypeError, match="drift must be a callable"):
        de.ItoSDE(3, lambda x, t: 1.0)


def test_prior_sample_bad_n():
    with pytest.raises(ValueError, match="n must be"):
        de.VPSDE(de.Linear()).prior_sample(0, 2)
    with pytest.raises(TypeError, match="dim must be an integer"):
        de.VPSDE(de.Linear()).prior_sample(3, 2.0)
