import math

import pytest
import torch

import diffedu as de
from diffedu.path_integral import (onsager_machlup, path_log_prob, reverse_action, reverse_path_log_prob,
                                   short_time_kernel)

THETA, SIGMA = 1.0, 1.0
DRIFT = lambda x, t: -THETA * x
G = lambda t: SIGMA


def _compose(rule, jacobian, N, T=1.0, x0=1.0):
    x = torch.linspace(-6, 6, 601, dtype=torch.float64)
    h = float(x[1] - x[0])
    p = torch.zeros(601, dtype=torch.float64)
    p[int(torch.argmin((x - x0).abs()))] = 1 / h
    for k in range(N):
        p = (p[:, None] * short_time_kernel(x, k * T / N, T / N, DRIFT, G, rule, jacobian=jacobian)).sum(0) * h
    m = x0 * math.exp(-THETA * T)
    v = SIGMA**2 / (2 * THETA) * (1 - math.exp(-2 * THETA * T))
    exact = torch.exp(-(x - m) ** 2 / (2 * v)) / math.sqrt(2 * math.pi * v)
    return float((p - exact).abs().sum() * h)


@pytest.mark.parametrize("rule", ["ito", "stratonovich", "post"])
def test_every_rule_converges_to_the_exact_ou_transition(rule):
    e8, e32 = _compose(rule, True, 8), _compose(rule, True, 32)
    assert e32 < 0.025 and 3.0 < e8 / e32 < 5.0        # first order in the time step


@pytest.mark.parametrize("rule", ["stratonovich", "post"])
def test_without_the_jacobian_the_limit_is_wrong(rule):
    assert _compose(rule, False, 32) > 0.3


def test_ou_one_step_density_matches_path_log_prob():
    """For N = 1 the Ito path density is the Euler–Maruyama Gaussian transition."""
    x0, x1, eps = 0.7, 0.2, 0.1
    path = torch.tensor([[[x0]], [[x1]]], dtype=torch.float64)
    lp = path_log_prob(path, [0.0, eps], DRIFT, G, "ito")
    mean = x0 - THETA * x0 * eps
    ref = -((x1 - mean) ** 2) / (2 * eps * SIGMA**2) - 0.5 * math.log(2 * math.pi * eps * SIGMA**2)
    assert float(lp) == pytest.approx(ref)


def test_jacobian_term_value():
    path = torch.tensor([[[0.0, 0.0]], [[0.1, -0.1]]], dtype=torch.float64)
    a_ito = onsager_machlup(path, [0.0, 0.2], lambda x, t: -2.0 * x, 1.0, "ito")
    a_post_nojac = onsager_machlup(path, [0.0, 0.2], lambda x, t: -2.0 * x, 1.0, "post", jacobian=False)
    a_post = onsager_machlup(path, [0.0, 0.2], lambda x, t: -2.0 * x, 1.0, "post")
    assert float(a_post - a_post_nojac) == pytest.approx(1.0 * 0.2 * (-4.0))     # a * eps * div f, div f = -2 d


def test_reverse_identity_converges():
    sde = de.VPSDE(de.Linear(1.0, 1.0), T=1.0)
    mix = de.GaussianMixture([0.4, 0.6], [[-1.0], [0.8]], [0.3, 0.25])
    x0 = mix.sample(200, de.make_generator(0), dtype=torch.float64)
    ts = de.time_grid(0, 1, 1024)
    path = de.euler_maruyama(sde, x0, ts, generator=de.make_generator(1), return_path=True)
    errs = []
    for N in (16, 256):
        idx = torch.arange(0, 1025, 1024 // N)
        p, t = path[idx], ts[idx]
        lhs = path_log_prob(p, t, sde.drift, G, "stratonovich", log_p0=mix.log_prob)
        rhs = reverse_path_log_prob(p, t, sde.drift, G, mix.score_fn(sde), "stratonovich",
                                    log_pT=lambda z: mix.log_prob(z, 1.0, sde))
        errs.append(float((lhs - rhs).abs().mean()))
    assert errs[1] < 0.01 and errs[0] / errs[1] > 8


def test_bad_input():
    path = torch.zeros(3, 2, 1)
    with pytest.raises(ValueError, match="one time per path point"):
        onsager_machlup(path, [0.0, 1.0], DRIFT, G)
    with pytest.raises(ValueError, match="strictly increasing"):
        onsager_machlup(path, [0.0, 1.0, 0.5], DRIFT, G)
    with pytest.raises(ValueError, match=r"shape \(N\+1, n, d\)"):
        onsager_machlup(torch.zeros(3, 2), [0.0, 0.5, 1.0], DRIFT, G)
    with pytest.raises(ValueError, match="rule"):
        onsager_machlup(path, [0.0, 0.5, 1.0], DRIFT, G, "midpoint")
    with pytest.raises(ValueError, match=r"g\(t\) must lie in \[1e-100"):
        onsager_machlup(path, [0.0, 0.5, 1.0], DRIFT, lambda t: 0.0)
    with pytest.raises(TypeError, match="drift"):
        onsager_machlup(path, [0.0, 0.5, 1.0], None, G)
    with pytest.raises(ValueError, match="rule"):
        reverse_action(path, [0.0, 0.5, 1.0], DRIFT, G, lambda x, t: x, "ito")
    with pytest.raises(ValueError, match="finite"):
        onsager_machlup(path * float("nan"), [0.0, 0.5, 1.0], DRIFT, G)
    with pytest.raises(ValueError, match="eps"):
        short_time_kernel(torch.zeros(3), 0.0, 0.0, DRIFT, G)
