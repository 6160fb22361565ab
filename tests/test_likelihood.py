import math

import pytest
import torch

import diffedu as de
from diffedu.likelihood import log_likelihood
from diffedu.stats import mean_se

MIX2 = de.GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [1.0, -0.3]], [0.3, 0.4])
SDE = de.VPSDE(de.Linear(0.1, 20.0), t_min=1e-3)


def test_matches_exact_log_density_2d():
    x = MIX2.sample(300, de.make_generator(0), dtype=torch.float64)
    r = log_likelihood(SDE, MIX2.score_fn(SDE), x, prior_logp=lambda z: MIX2.log_prob(z, SDE.T, SDE),
                       rtol=1e-6, atol=1e-6)
    assert float((r.logp - MIX2.log_prob(x, SDE.t_min, SDE)).abs().max()) < 1e-4
    assert not bool(r.excluded.any()) and r.nfe > 7


def test_matches_exact_log_density_1d_cosine():
    mix = de.GaussianMixture([0.5, 0.5], [[-1.0], [1.2]], [0.3, 0.2])
    sde = de.paper_sde("cosine")
    x = mix.sample(200, de.make_generator(1), dtype=torch.float64)
    r = log_likelihood(sde, mix.score_fn(sde), x, prior_logp=lambda z: mix.log_prob(z, sde.T, sde),
                       rtol=1e-6, atol=1e-6)
    assert float((r.logp - mix.log_prob(x, sde.t_min, sde)).abs().max()) < 1e-4


def test_gaussian_closed_form_with_standard_prior():
    """N(0, v0) data: the PF-ODE map is linear, x_T = x0 sqrt(v_T / v_tmin), so
    log q(x0) = log pi(x0 sqrt(v_T/v_tmin)) + (d/2) log(v_T / v_tmin)."""
    v0 = 0.25
    g = de.GaussianMixture([1.0], [[0.0, 0.0]], [math.sqrt(v0)])
    x = g.sample(100, de.make_generator(2), dtype=torch.float64)
    r = log_likelihood(SDE, g.score_fn(SDE), x)
    v = lambda t: float(g.marginal(t, SDE)[1][0, 0, 0])
    ratio = v(SDE.T) / v(SDE.t_min)
    expected = SDE.prior_logp(x * math.sqrt(ratio)) + math.log(ratio)
    assert torch.allclose(r.logp, expected, atol=1e-4)


def test_hutchinson_is_unbiased():
    x = torch.tensor([[0.4, -0.2]], dtype=torch.float64).repeat(1000, 1)
    exact = log_likelihood(SDE, MIX2.score_fn(SDE), x[:1]).logp[0]
    r = log_likelihood(SDE, MIX2.score_fn(SDE), x, divergence="hutchinson", generator=de.make_generator(3))
    m, se = mean_se(r.logp)
    assert float(se) > 1e-4                               # the estimator is genuinely random
    assert abs(float(m - exact)) < 5 * float(se)


def test_box_exclusion_is_reported():
    ve = de.VESDE(0.01, 5.0, t_min=1e-3)
    g = de.GaussianMixture([1.0], [[0.0]], [0.2])
    x = torch.tensor([[0.01], [0.9]], dtype=torch.float64)     # the PF map scales x by about 25
    r = log_likelihood(ve, g.score_fn(ve), x, box=1.0)
    assert r.excluded.tolist() == [False, True]
    assert bool(torch.isfinite(r.logp[0]))
    assert bool(torch.isnan(r.logp[r.excluded]).all())
    r2 = log_likelihood(ve, g.score_fn(ve), x, box=None)
    assert not bool(r2.excluded.any()) and bool(torch.isfinite(r2.logp).all())


def test_nll_and_se_properties():
    x = MIX2.sample(50, de.make_generator(4), dtype=torch.float64)
    r = log_likelihood(SDE, MIX2.score_fn(SDE), x)
    assert r.nll == pytest.approx(float(-r.logp.mean()))
    assert r.nll_se == pytest.approx(float(r.logp.std() / math.sqrt(50)))


def test_pretrained_nll_close_to_paper():
    m = de.load_pretrained("swiss_roll", "simple")
    x = de.swiss_roll(1000, de.make_generator(5))
    r = log_likelihood(m.sde, m, x)
    assert abs(r.nll - 1.39) < 0.1                      # the paper's Table 1: 1.39 +- 0.05


def test_bad_input():
    x = torch.zeros(3, 2, dtype=torch.float64)
    s = MIX2.score_fn(SDE)
    with pytest.raises(ValueError, match="outside the box"):
        log_likelihood(SDE, s, x + 6.0)
    with pytest.raises(ValueError, match="divergence"):
        log_likelihood(SDE, s, x, divergence="trace")
    with pytest.raises(ValueError, match="rtol"):
        log_likelihood(SDE, s, x, rtol=0.0)
    with pytest.raises(ValueError, match="t_min must be smaller"):
        log_likelihood(SDE, s, x, t_min=0.5, T=0.4)
    with pytest.raises(TypeError, match="noise g"):
        log_likelihood(de.GeometricBrownianMotion(), s, x)
    with pytest.raises(TypeError, match="score"):
        log_likelihood(SDE, None, x)
    with pytest.raises(ValueError, match="score"):
        log_likelihood(SDE, lambda z, t: z[:, :1], x)
    with pytest.raises(TypeError, match="generator"):
        log_likelihood(SDE, s, x, divergence="hutchinson", generator=3)


def test_dropped_rows_are_frozen_and_stay_finite():
    # dx/dt = x^2 blows up at t = 1/x0: the second row leaves the box |x| <= 2 at t = 0.5 and would
    # overflow before t = 1.5; dropped from the error control, it must keep its value at the drop
    from diffedu.ode import dopri5
    y0 = (torch.tensor([[0.1], [1.0]], dtype=torch.float64),)
    (y,), st = dopri5(lambda t, y: (y[0] ** 2,), 0.0, 1.5, y0, rtol=1e-8, atol=1e-10,
                      on_step=lambda t, y: (y[0].abs() > 2.0).any(1))
    assert st.inactive.tolist() == [False, True]
    assert bool(torch.isfinite(y).all())
    assert 2.0 < float(y[1, 0]) < 3.0                            # frozen just after leaving the box
    assert abs(float(y[0, 0]) - 0.1 / (1 - 0.1 * 1.5)) < 1e-7     # the kept row is unaffected


def test_excluded_trajectory_that_would_overflow_gives_nan_logp_not_an_error():
    # a drift that grows like x^2 outside the box: without freezing, x_T overflows and the prior fails
    ve = de.VESDE(0.01, 5.0, t_min=1e-3)
    score = lambda x, t: -(x**3) * 1e3
    x = torch.tensor([[0.0], [0.9]], dtype=torch.float64)
    r = log_likelihood(ve, score, x, box=1.0)
    assert r.excluded.tolist() == [False, True]
    assert bool(torch.isfinite(r.x_T).all()) and bool(torch.isnan(r.logp[1])) and bool(torch.isfinite(r.logp[0]))


def test_pf_drift_is_the_probability_flow_drift_of_a_gaussian():
    """f - g^2 s / 2 for data N(0, v0) under the VP SDE: -beta x / 2 + beta x / (2 v_t) (it once returned the pair (f, s))."""
    sde = de.VPSDE(de.Linear(0.1, 20.0))
    v0, t = 0.04, 0.3
    alpha, sigma = (float(v) for v in sde.marginal(t))
    v_t = alpha**2 * v0 + sigma**2
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)[:, None]
    drift = de.likelihood.pf_drift(sde, lambda y, s: -y / v_t, x, t)
    beta = float(sde.diffusion(t)) ** 2
    assert isinstance(drift, torch.Tensor) and drift.shape == x.shape
    torch.testing.assert_close(drift, -0.5 * beta * x + 0.5 * beta * x / v_t, rtol=1e-12, atol=1e-12)
