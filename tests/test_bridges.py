"""Schrödinger bridges (diffedu.bridges): the Gaussian closed form, Sinkhorn on a grid against it, the
eps -> 0 limit (the monotone map) and bad input."""

import math

import pytest
import torch

from diffedu import bridges as br
from diffedu import fokker_planck as fp

M0, V0, M1, V1 = -1.0, 0.25, 1.5, 0.5


def _gaussians(grid, m0=M0, v0=V0, m1=M1, v1=V1):
    return (grid.density(lambda x: -(x[:, 0] - m0) ** 2 / (2 * v0)),
            grid.density(lambda x: -(x[:, 0] - m1) ** 2 / (2 * v1)))


def _bimodal(grid):
    return grid.density(lambda x: torch.logsumexp(torch.stack([
        math.log(0.3) - (x[:, 0] + 1.5) ** 2 / (2 * 0.3**2) - math.log(0.3),
        math.log(0.7) - (x[:, 0] - 1.0) ** 2 / (2 * 0.4**2) - math.log(0.4)]), 0))


@pytest.mark.parametrize("eps", [0.0, 0.1, 1.0, 10.0])
def test_gaussian_coupling_solves_the_schroedinger_equation_for_c(eps):
    b = br.gaussian_bridge(M0, V0, M1, V1, eps)
    assert b.c ** 2 + eps * b.c == pytest.approx(V0 * V1, rel=1e-12)
    assert 0 < b.correlation <= 1
    # the ends are the given Gaussians, the middle carries the Brownian bridge's own eps t (1 - t)
    assert (b.mean(0), b.var(0), b.mean(1), b.var(1)) == pytest.approx((M0, V0, M1, V1), rel=1e-12)
    chord = 0.25 * V0 + 0.25 * V1 + 0.5 * b.c
    assert b.var(0.5) == pytest.approx(chord + eps / 4, rel=1e-12)


def test_gaussian_limits_are_the_monotone_map_and_independence():
    ot = br.gaussian_bridge(M0, V0, M1, V1, 0.0)
    assert ot.correlation == pytest.approx(1.0, abs=1e-12)
    x = torch.tensor([-2.0, -1.0, 0.3], dtype=torch.float64)
    assert torch.allclose(ot.conditional_mean(x), M1 + math.sqrt(V1 / V0) * (x - M0), atol=1e-12)
    # displacement interpolation: the standard deviation is linear in t
    assert math.sqrt(ot.var(0.3)) == pytest.approx(0.7 * math.sqrt(V0) + 0.3 * math.sqrt(V1), rel=1e-12)
    far = br.gaussian_bridge(M0, V0, M1, V1, 1e6)
    assert far.c == pytest.approx(V0 * V1 / 1e6, rel=1e-6)            # ends decouple like 1/eps
    small = [br.gaussian_bridge(M0, V0, M1, V1, e).correlation for e in (1e-3, 1e-2, 1e-1, 1.0)]
    assert small == sorted(small, reverse=True)


@pytest.mark.parametrize("eps", [0.0, 0.3, 2.0])
def test_gaussian_drift_transports_the_marginals_and_is_markov(eps):
    """u_t = m' + k (x - m) must give dV/dt = 2 k V + eps (the Fokker-Planck equation of a Gaussian), and the
    Markov bridge's Cov(X_0, X_t) = v0 exp(int_0^t k) must end at the coupling's c."""
    b = br.gaussian_bridge(M0, V0, M1, V1, eps)
    n = 4000
    ts = [(i + 0.5) / n for i in range(n)]
    ks = [float(b.drift(1.0, t) - b.drift(0.0, t)) for t in ts]
    assert math.isclose(V0 * math.exp(sum(ks) / n), b.c, rel_tol=1e-6)
    for t, k in zip(ts[::500], ks[::500]):
        dv = (b.var(t + 1e-6) - b.var(t - 1e-6)) / 2e-6
        assert dv == pytest.approx(2 * k * b.var(t) + eps, rel=1e-6, abs=1e-9)
        assert float(b.drift(b.mean(t), t)) == pytest.approx(M1 - M0, rel=1e-12)


def test_gaussian_paths_have_the_bridge_statistics():
    b = br.gaussian_bridge(M0, V0, M1, V1, 0.5)
    n = 200_000
    x = b.sample(n, [0.0, 0.3, 0.7, 1.0], torch.Generator().manual_seed(5))
    for k, t in enumerate([0.0, 0.3, 0.7, 1.0]):
        se = math.sqrt(2 / n) * b.var(t)                                 # s.e. of a Gaussian sample variance
        assert abs(float(x[k].var()) - b.var(t)) < 5 * se
        assert abs(float(x[k].mean()) - b.mean(t)) < 5 * math.sqrt(b.var(t) / n)
    cov = float(((x[0] - x[0].mean()) * (x[3] - x[3].mean())).mean())
    se = math.sqrt((V0 * V1 + b.c ** 2) / n)
    assert abs(cov - b.c) < 5 * se
    assert abs(cov - math.sqrt(V0 * V1)) > 5 * se                      # not the OT coupling: eps matters


@pytest.mark.parametrize("eps", [0.05, 0.5, 3.0])
def test_sinkhorn_matches_the_gaussian_closed_form(eps):
    grid = fp.Grid(-6.0, 7.0, 260)
    p0, p1 = _gaussians(grid)
    sb = br.sinkhorn_bridge(p0, p1, grid, eps, tol=1e-12)
    exact = br.gaussian_bridge(M0, V0, M1, V1, eps)
    assert sb.converged and sb.marginal_error < 1e-12
    assert sb.covariance() == pytest.approx(exact.c, abs=1e-9)
    x = grid.axes[0]
    for t in (0.2, 0.5, 0.8):
        pt = sb.marginal(t)
        assert grid.mass(pt) == pytest.approx(1.0, abs=1e-9)
        q = torch.exp(exact.log_prob(x, t))
        assert float((pt - q).abs().max()) < 1e-8 * float(q.max())
    xs = torch.tensor([-1.0, 0.0, 0.8, 2.0])
    for t in (0.0, 0.4, 0.9):
        assert torch.allclose(sb.drift(xs, t), exact.drift(xs, t), atol=1e-7)


def test_sinkhorn_converges_with_the_grid_and_the_tolerance():
    eps = 0.5
    exact = br.gaussian_bridge(M0, V0, M1, V1, eps)
    errs = []
    for cells in (13, 17, 21, 26):                     # h from 1 to 0.5: the midpoint sums converge spectrally
        grid = fp.Grid(-6.0, 7.0, cells)
        sb = br.sinkhorn_bridge(*_gaussians(grid), grid, eps)
        errs.append(abs(sb.covariance() - exact.c))
    assert errs[0] > 1e-4 and errs[-1] < 1e-6 and all(b < a for a, b in zip(errs, errs[1:])), errs
    grid = fp.Grid(-6.0, 7.0, 200)
    loose = br.sinkhorn_bridge(*_gaussians(grid), grid, 0.05, tol=1e-3)
    tight = br.sinkhorn_bridge(*_gaussians(grid), grid, 0.05, tol=1e-11)
    assert loose.iterations < tight.iterations and tight.marginal_error < 1e-11 < 1e-3 < 10 * loose.marginal_error
    assert abs(loose.covariance() - exact.c) > abs(tight.covariance() - br.gaussian_bridge(M0, V0, M1, V1, 0.05).c)


def test_small_eps_tends_to_the_monotone_map():
    """The classical limit: as eps -> 0 the coupling's conditional mean E[X_1 | X_0 = x] tends to F_1^{-1}(F_0(x))
    for non-Gaussian data, and more sweeps are needed."""
    grid = fp.Grid(-4.0, 4.0, 320)
    p0 = _bimodal(grid)
    p1 = grid.density(lambda x: -x[:, 0] ** 2 / (2 * 0.6))
    T = br.monotone_map(p0, p1, grid)
    x = grid.axes[0]
    inside = (x > -2.2) & (x < 2.2)
    errs, sweeps = [], []
    for eps in (0.2, 0.05, 0.0125):
        sb = br.sinkhorn_bridge(p0, p1, grid, eps, tol=1e-9)
        assert sb.converged
        errs.append(float((sb.conditional_mean() - T)[inside].abs().max()))
        sweeps.append(sb.iterations)
    assert errs[2] < 0.05 and errs[0] > 3 * errs[1] > 9 * errs[2], errs
    assert sweeps == sorted(sweeps), sweeps
    # the map pushes p0 to p1: its quantiles are p1's
    mu = p0 / p0.sum()
    q = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    cdf = torch.cumsum(mu, 0)
    pushed = torch.stack([T[int(torch.searchsorted(cdf, v))] for v in q])
    assert torch.allclose(pushed, math.sqrt(0.6) * torch.distributions.Normal(0, 1).icdf(q).double(), atol=0.03)


def test_monotone_map_of_gaussians_is_affine():
    grid = fp.Grid(-6.0, 7.0, 400)
    T = br.monotone_map(*_gaussians(grid), grid)
    x = grid.axes[0]
    inside = (x > -2.0) & (x < 0.0)
    assert torch.allclose(T[inside], M1 + math.sqrt(V1 / V0) * (x[inside] - M0), atol=2e-3)


def test_bad_input_is_refused_naming_the_argument():
    grid = fp.Grid(-4.0, 4.0, 40)
    p0, p1 = _gaussians(grid, 0.0, 0.5, 1.0, 0.5)
    with pytest.raises(ValueError, match="v0"):
        br.gaussian_bridge(0.0, -1.0, 1.0, 1.0, 0.1)
    with pytest.raises(ValueError, match="eps"):
        br.gaussian_bridge(0.0, 1.0, 1.0, 1.0, -0.1)
    with pytest.raises(TypeError, match="m1"):
        br.gaussian_bridge(0.0, 1.0, "1", 1.0, 0.1)
    with pytest.raises(ValueError, match="m1"):
        br.gaussian_bridge(0.0, 1.0, 1e308, 1.0, 0.1)
    b = br.gaussian_bridge(0.0, 1.0, 1.0, 1.0, 0.1)
    with pytest.raises(ValueError, match="t must lie"):
        b.var(1.5)
    with pytest.raises(ValueError, match="t must lie"):
        b.drift(0.0, 1.0)
    with pytest.raises(ValueError, match="ts"):
        b.sample(10, [0.5, 0.2])
    with pytest.raises(ValueError, match="eps"):
        br.sinkhorn_bridge(p0, p1, grid, 0.0)
    with pytest.raises(ValueError, match="p0"):
        br.sinkhorn_bridge(-p0, p1, grid, 0.1)
    with pytest.raises(ValueError, match="p1"):
        br.sinkhorn_bridge(p0, torch.zeros_like(p1), grid, 0.1)
    with pytest.raises(ValueError, match="p1"):
        br.sinkhorn_bridge(p0, p1[:-1], grid, 0.1)
    with pytest.raises(ValueError, match="p0"):
        br.sinkhorn_bridge(p0 * math.nan, p1, grid, 0.1)
    with pytest.raises(ValueError, match="tol"):
        br.sinkhorn_bridge(p0, p1, grid, 0.1, tol=0.0)
    with pytest.raises(ValueError, match="max_iter"):
        br.sinkhorn_bridge(p0, p1, grid, 0.1, max_iter=0)
    with pytest.raises(TypeError, match="grid"):
        br.sinkhorn_bridge(p0, p1, None, 0.1)
    with pytest.raises(ValueError, match="grid must be one-dimensional"):
        br.sinkhorn_bridge(p0, p1, fp.Grid((-1.0, -1.0), (1.0, 1.0), (8, 8)), 0.1)
    sb = br.sinkhorn_bridge(p0, p1, grid, 0.1)
    with pytest.raises(ValueError, match="t must lie"):
        sb.marginal(0.0)
    with pytest.raises(ValueError, match="x must be"):
        sb.marginal(0.5, x=[[0.0, 1.0]])
    with pytest.raises(ValueError, match="p0"):
        br.monotone_map(torch.zeros_like(p0), p1, grid)


def test_a_capped_iteration_says_it_did_not_converge():
    grid = fp.Grid(-4.0, 4.0, 80)
    sb = br.sinkhorn_bridge(*_gaussians(grid, -1.0, 0.3, 1.0, 0.3), grid, 0.01, tol=1e-12, max_iter=3)
    assert sb.iterations == 3 and not sb.converged and sb.marginal_error > 1e-12


def test_brownian_bridge_paths_have_the_bridge_variance():
    n, eps = 100_000, 0.7
    x0, x1 = torch.full((n,), -1.0, dtype=torch.float64), torch.full((n,), 2.0, dtype=torch.float64)
    ts = [0.0, 0.25, 0.5, 0.9, 1.0]
    x = br.brownian_bridge_paths(x0, x1, ts, eps, torch.Generator().manual_seed(9))
    assert torch.equal(x[0], x0) and torch.equal(x[-1], x1)
    for k, t in enumerate(ts[1:-1], start=1):
        v = eps * t * (1 - t)
        assert abs(float(x[k].mean()) - (-1 + 3 * t)) < 5 * math.sqrt(v / n)
        assert abs(float(x[k].var()) - v) < 5 * math.sqrt(2 / n) * v
    # increments of a bridge are correlated so that the end is hit: Cov(X_.25, X_.5) = eps * .25 * .5
    cov = float(((x[1] - x[1].mean()) * (x[2] - x[2].mean())).mean())
    v1, v2, c = eps * 0.1875, eps * 0.25, eps * 0.25 * 0.5
    assert abs(cov - c) < 5 * math.sqrt((v1 * v2 + c**2) / n)          # s.e. of a Gaussian sample covariance


def test_sinkhorn_paths_have_the_bridge_marginals():
    """Paths drawn from the coupling and the reference's bridges have p_t = marginal(t) in the middle."""
    grid = fp.Grid(-4.0, 4.0, 200)
    p0 = _bimodal(grid)
    p1 = grid.density(lambda x: -x[:, 0] ** 2 / (2 * 0.6))
    sb = br.sinkhorn_bridge(p0, p1, grid, 0.3)
    n = 100_000
    x = sb.sample(n, [0.0, 0.5, 1.0], torch.Generator().manual_seed(3))
    xc = grid.axes[0]
    for k, t in ((0, None), (1, 0.5), (2, None)):
        q = (p0, None, p1)[k] if t is None else sb.marginal(t)
        q = q / (q.sum() * grid.h[0])
        mean = float((q * xc).sum() * grid.h[0])
        var = float((q * xc**2).sum() * grid.h[0]) - mean**2
        assert abs(float(x[k].mean()) - mean) < 5 * math.sqrt(var / n), k
        assert abs(float(x[k].var()) - var - (grid.h[0] ** 2 / 12 if t is None else 0)) < 5 * math.sqrt(3 / n) * var, k


def test_path_samplers_refuse_bad_input():
    x0 = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="x0 and x1"):
        br.brownian_bridge_paths(x0, torch.zeros(4), [0.5], 1.0)
    with pytest.raises(ValueError, match="eps"):
        br.brownian_bridge_paths(x0, x0, [0.5], -1.0)
    with pytest.raises(ValueError, match="ts"):
        br.brownian_bridge_paths(x0, x0, [1.5], 1.0)
    with pytest.raises(ValueError, match="n"):
        br.gaussian_bridge(0.0, 1.0, 1.0, 1.0, 0.1).sample(0, [0.5])
