"""diffedu.langevin: the unadjusted and annealed Langevin samplers, first-passage times and the exact 1-D mean
first-passage time, against closed forms (book: Chapter 3, "Why the score of the data is not enough")."""

import math

import pytest
import torch

from diffedu import langevin as lg
from diffedu.stats import mean_se, var_se

F64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _ula_variance(v, eps):
    """Stationary variance of x' = (1 - eps/v) x + sqrt(2 eps) z, the ULA chain for the score -x/v."""
    return 2 * eps / (1 - (1 - eps / v) ** 2)


def test_ula_has_the_stationary_variance_of_its_linear_recursion_not_that_of_the_target():
    v, eps, n = 0.5, 0.1, 20000
    x = lg.ula(lambda x: -x / v, torch.zeros(n, 2, dtype=F64), eps, 60, _gen(0))     # (1 - eps/v)^120 ~ 2e-12
    assert x.shape == (n, 2) and x.dtype == F64
    var, se = var_se(x)
    want = _ula_variance(v, eps)                                   # v / (1 - eps / (2 v)) = 0.5556
    assert bool(((var - want).abs() < 5 * se).all()), (var, want, se)
    assert bool(((var - v).abs() > 5 * se).all())                 # the target's own variance is 10 s.e. away
    m, mse = mean_se(x)
    assert bool((m.abs() < 5 * mse).all())


def test_ula_trace_and_dtype():
    x0 = torch.zeros(5, 1, dtype=torch.float32)
    x, trace = lg.ula(lambda x: -x, x0, 0.1, 7, _gen(1), trace_every=3)
    assert x.dtype == torch.float32 and trace.shape == (3, 5, 1)   # initial, after step 3, after step 6
    assert torch.equal(trace[0], x0)
    again = lg.ula(lambda x: -x, x0, 0.1, 6, _gen(1))
    assert torch.equal(trace[-1], again)                          # the same draws in the same order


def test_annealed_langevin_is_ula_level_by_level_with_steps_proportional_to_sigma_squared():
    score = lambda x, sigma: -x / (0.3 + sigma**2)                # noqa: E731
    x0 = torch.linspace(-2, 2, 8, dtype=F64)[:, None]
    out = lg.annealed_langevin(score, x0, [2.0, 1.0, 0.5], 0.01, 5, _gen(3))
    g, x = _gen(3), x0
    for s in (2.0, 1.0, 0.5):
        x = lg.ula(lambda y, s=s: score(y, s), x, 0.01 * (s / 0.5) ** 2, 5, g)
    assert torch.equal(out, x)
    single = lg.annealed_langevin(score, x0, [0.7], 0.02, 4, _gen(4))
    assert torch.equal(single, lg.ula(lambda y: score(y, 0.7), x0, 0.02, 4, _gen(4)))
    _, trace = lg.annealed_langevin(score, x0, [2.0, 1.0, 0.5], 0.01, 5, _gen(3), trace_every=5)
    assert trace.shape == (4, 8, 1) and torch.equal(trace[-1], out)


def test_annealed_langevin_variance_follows_the_exact_recursion():
    """Gaussian data N(0, v): the score of p_sigma is -x / (v + sigma^2), each step is linear, and the variance
    obeys V <- (1 - e_i / (v + s_i^2))^2 V + 2 e_i with e_i = eps s_i^2 / s_L^2, from V = 0. With ten steps per level
    the chains stay far from equilibrium, so the result depends on every level's step: the same recursion with a
    constant step (e_i = eps) or with e_i proportional to s_i is tens of standard errors away."""
    v, sigmas, eps, each, n = 0.1, [2.0, 1.0, 0.5, 0.25], 0.005, 10, 20000
    x = lg.annealed_langevin(lambda x, s: -x / (v + s**2), torch.zeros(n, 1, dtype=F64), sigmas, eps, each, _gen(5))

    def recursion(power):
        V = 0.0
        for s in sigmas:
            e = eps * (s / sigmas[-1]) ** power
            for _ in range(each):
                V = (1 - e / (v + s**2)) ** 2 * V + 2 * e
        return V

    var, se = (float(u) for u in var_se(x[:, 0]))
    assert abs(var - recursion(2)) < 5 * se, (var, recursion(2), se)
    for wrong in (0, 1):                                            # 0.199 and 0.415 against 0.482
        assert abs(var - recursion(wrong)) > 5 * se


def test_first_passage_times_are_exact_for_a_constant_drift_with_the_bridge_test():
    """dx = c dt + sqrt(2) dw from 0 to b: the passage time tau is inverse Gaussian (mean b / c, variance 2 b / c^3).
    With a constant drift the Euler step is exact, the bridge test is exact, and the time is read at the end of
    the step: the recorded time is exactly ceil(tau / eps) eps, whose mean is known. Without the bridge test the level is seen late, by about
    0.5826 sqrt(2 eps) / c (the discrete-monitoring shift), which is about 18 standard errors here."""
    c, b, eps, n = 1.0, 1.0, 0.05, 100000
    score = lambda x: torch.full_like(x, c)                       # noqa: E731
    x0 = torch.zeros(n, 1, dtype=F64)
    times, hit = lg.first_passage_times(score, x0, b, eps, 4000, _gen(6))
    assert bool(hit.all()) and times.dtype == F64 and times.shape == (n,)
    m, se = (float(v) for v in mean_se(times))
    # exactly: E[ceil(tau / eps) eps] = eps (1 + sum_k P(tau > k eps)), tau inverse Gaussian (mu = b/c, lam = b^2/2);
    # a bridge test with the wrong variance, exp(-2 (b - x)(b - x') / eps), is about 16 s.e. late
    lam, mu = b * b / 2, b / c
    ndtr = lambda z: 0.5 * math.erfc(-z / math.sqrt(2))            # noqa: E731
    F = lambda t: ndtr(math.sqrt(lam / t) * (t / mu - 1)) + math.exp(2 * lam / mu) * ndtr(-math.sqrt(lam / t) * (t / mu + 1))  # noqa: E731
    exact = eps * (1 + sum(1 - F(k * eps) for k in range(1, 4000)))
    assert abs(m - exact) < 5 * se, (m, exact, se)
    var, vse = (float(v) for v in var_se(times))
    assert abs(var - 2 * b / c**3) < 5 * vse + 2 * eps, (var, vse)
    late, _ = lg.first_passage_times(score, x0, b, eps, 4000, _gen(6), bridge=False)
    m2, se2 = (float(v) for v in mean_se(late))
    assert m2 - (b / c + eps) > 5 * se2                            # the grid-only test is late by O(sqrt(eps))
    assert abs(m2 - (b / c + 0.5826 * math.sqrt(2 * eps) / c)) < 5 * se2 + eps


def test_first_passage_times_reports_chains_that_did_not_cross():
    x0 = torch.full((50, 1), -3.0, dtype=F64)
    times, hit = lg.first_passage_times(lambda x: -x, x0, 3.0, 0.01, 20, _gen(7))
    assert not bool(hit.any()) and torch.allclose(times, torch.full((50,), 0.2, dtype=F64))
    times, hit = lg.first_passage_times(lambda x: -x, torch.empty(0, 1, dtype=F64), 1.0, 0.01, 5, _gen(7))
    assert times.shape == (0,) and hit.shape == (0,)


@pytest.mark.parametrize("U, a, b, lower, want", [
    (lambda x: -2.0 * x, -1.0, 1.0, None, 1.0),                                     # constant drift c: (b - a) / c
    (lambda x: 0.0 * x, 0.5, 1.5, 0.0, (1.5**2 - 0.5**2) / 2),                     # reflected Brownian motion
    (lambda x: 0.0 * x, 0.0, 1.5, 0.0, 1.5**2 / 2),                                # start at the wall
    (lambda x: -3.0 * x, 0.2, 1.5, 0.0,                                             # drift 3 and a wall at 0
     1.3 / 3 - (math.exp(-0.6) - math.exp(-4.5)) / 9),
    (lambda x: -3.0 * x + 1000.0, 0.2, 1.5, 0.0, 1.3 / 3 - (math.exp(-0.6) - math.exp(-4.5)) / 9),   # U + const
])
def test_mean_first_passage_time_against_closed_forms(U, a, b, lower, want):
    assert lg.mean_first_passage_time(U, a, b, lower=lower) == pytest.approx(want, rel=1e-9)


def test_mean_first_passage_time_of_a_double_well_matches_kramers_for_a_deep_parabolic_barrier():
    """U = h (x^2 - 1)^2: barrier h, U''(+-1) = 8 h, U''(0) = -4 h; tau / tau_Kramers = 1 + O(1/h)."""
    for h, tol in ((10.0, 0.08), (40.0, 0.02)):
        tau = lg.mean_first_passage_time(lambda x: h * (x**2 - 1) ** 2, -1.0, 1.0)
        kramers = 2 * math.pi / math.sqrt(8 * h * 4 * h) * math.exp(h)
        assert abs(tau / kramers - 1) < tol, (h, tau / kramers)


def test_mean_first_passage_time_refuses_what_it_cannot_compute():
    with pytest.raises(ValueError, match="does not grow to the left"):
        lg.mean_first_passage_time(lambda x: x, 0.0, 1.0)                            # e^{-U} = e^{-x} grows leftwards
    with pytest.raises(ValueError, match="overflows float64"):
        lg.mean_first_passage_time(lambda x: 2000 * (x**2 - 1) ** 2, -1.0, 1.0, lower=-2.0)
    with pytest.raises(ValueError, match="points"):
        lg.mean_first_passage_time(lambda x: torch.cos(300 * x), 0.0, 1.0, lower=-1.0, points=11)
    with pytest.raises(ValueError, match="a must be smaller than b"):
        lg.mean_first_passage_time(lambda x: x**2, 1.0, 1.0)
    with pytest.raises(ValueError, match="lower"):
        lg.mean_first_passage_time(lambda x: x**2, 0.0, 1.0, lower=0.5)
    with pytest.raises(ValueError, match="U returned non-finite"):
        lg.mean_first_passage_time(lambda x: torch.log(x), 0.0, 1.0, lower=-1.0)
    with pytest.raises(ValueError, match="U must return a tensor of shape"):
        lg.mean_first_passage_time(lambda x: x[:, None] ** 2, 0.0, 1.0, lower=-1.0)
    with pytest.raises(TypeError, match="U must be a callable"):
        lg.mean_first_passage_time("x**2", 0.0, 1.0)
    with pytest.raises(ValueError, match="points"):
        lg.mean_first_passage_time(lambda x: x**2, 0.0, 1.0, points=5)
    with pytest.raises(TypeError, match="b must be a real number"):
        lg.mean_first_passage_time(lambda x: x**2, 0.0, "1")


X = torch.zeros(4, 1, dtype=F64)
SCORE = lambda x: -x                                              # noqa: E731
SCORE_S = lambda x, s: -x / (1 + s**2)                            # noqa: E731


@pytest.mark.parametrize("call, error, words", [
    (lambda: lg.ula(SCORE, X, 0.0, 3), ValueError, "step must lie in"),
    (lambda: lg.ula(SCORE, X, -0.1, 3), ValueError, "step"),
    (lambda: lg.ula(SCORE, X, float("nan"), 3), ValueError, "step must be finite"),
    (lambda: lg.ula(SCORE, X, 0.1, 0), ValueError, "n_steps must be an integer >= 1"),
    (lambda: lg.ula(SCORE, X, 0.1, 2.5), TypeError, "n_steps must be an integer"),
    (lambda: lg.ula(SCORE, X, 0.1, 10**8), ValueError, "n_steps must be an integer in"),
    (lambda: lg.ula(SCORE, X[:, 0], 0.1, 3), ValueError, "x must have shape (n, d)"),
    (lambda: lg.ula(SCORE, X + float("nan"), 0.1, 3), ValueError, "x contains non-finite"),
    (lambda: lg.ula(SCORE, X.long(), 0.1, 3), TypeError, "x must be a floating-point"),
    (lambda: lg.ula(lambda x: x[:2], X, 0.1, 3), ValueError, "score must return a tensor of shape (4, 1)"),
    (lambda: lg.ula(lambda x: x * float("nan"), X, 0.1, 3), ValueError, "score returned non-finite"),
    (lambda: lg.ula(lambda x, t: x, X, 0.1, 3), TypeError, "score must be a callable score(x)"),
    (lambda: lg.ula(3.0, X, 0.1, 3), TypeError, "score must be a callable"),
    (lambda: lg.ula(SCORE, X, 0.1, 3, generator=0), TypeError, "generator must be a torch.Generator"),
    (lambda: lg.ula(SCORE, X, 0.1, 3, trace_every=0), ValueError, "trace_every must be an integer >= 1"),
    (lambda: lg.ula(lambda x: -1e3 * x, X + 1.0, 1.0, 200), FloatingPointError, "step"),
    (lambda: lg.annealed_langevin(SCORE_S, X, [1.0, 2.0], 0.1, 3), ValueError, "sigmas must be strictly decreasing"),
    (lambda: lg.annealed_langevin(SCORE_S, X, [1.0, 1.0], 0.1, 3), ValueError, "sigmas must be strictly decreasing"),
    (lambda: lg.annealed_langevin(SCORE_S, X, [1.0, 0.0], 0.1, 3), ValueError, "sigmas must be positive"),
    (lambda: lg.annealed_langevin(SCORE_S, X, [1.0, -0.5], 0.1, 3), ValueError, "sigmas must be positive"),
    (lambda: lg.annealed_langevin(SCORE_S, X, [], 0.1, 3), ValueError, "sigmas must hold at least one"),
    (lambda: lg.annealed_langevin(SCORE_S, X, [[1.0, 0.5]], 0.1, 3), ValueError, "sigmas must be one-dimensional"),
    (lambda: lg.annealed_langevin(SCORE_S, X, [1.0, float("inf")], 0.1, 3), ValueError, "sigmas"),
    (lambda: lg.annealed_langevin(SCORE_S, X, "1, 0.5", 0.1, 3), TypeError, "sigmas must be"),
    (lambda: lg.annealed_langevin(SCORE_S, X, [1.0, 0.5], 0.0, 3), ValueError, "step must lie in"),
    (lambda: lg.annealed_langevin(SCORE_S, X, [1.0, 0.5], 0.1, 0), ValueError, "n_steps_each must be an integer >= 1"),
    (lambda: lg.annealed_langevin(SCORE_S, X, [1e90, 1e-90], 1e-10, 3), ValueError, "overflows"),
    (lambda: lg.annealed_langevin(SCORE, X, [1.0, 0.5], 0.1, 3), TypeError, "score must be a callable score(x, sigma)"),
    (lambda: lg.annealed_langevin(lambda x, s: x[:1], X, [1.0], 0.1, 3), ValueError, "score must return"),
    (lambda: lg.first_passage_times(SCORE, X, -1.0, 0.1, 10), ValueError, "below level"),
    (lambda: lg.first_passage_times(SCORE, torch.zeros(4, 2, dtype=F64), 1.0, 0.1, 10), ValueError, "x must have 1 columns"),
    (lambda: lg.first_passage_times(SCORE, X, float("inf"), 0.1, 10), ValueError, "level must be finite"),
    (lambda: lg.first_passage_times(SCORE, X, 1.0, 0.0, 10), ValueError, "step must lie in"),
    (lambda: lg.first_passage_times(SCORE, X, 1.0, 0.1, 0), ValueError, "max_steps must be an integer >= 1"),
    (lambda: lg.first_passage_times(SCORE, X, 1.0, 0.1, 10, bridge="yes"), TypeError, "bridge must be True or False"),
    (lambda: lg.first_passage_times(lambda x: x[:, :0], X, 1.0, 0.1, 10), ValueError, "score must return"),
])
def test_bad_input_is_refused_naming_the_argument(call, error, words):
    with pytest.raises(error, match=None) as info:
        call()
    assert words in str(info.value), str(info.value)
