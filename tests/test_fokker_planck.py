import math
import warnings

import pytest
import torch

import diffedu as de
from diffedu.fokker_planck import Grid, solve, _solve_tridiagonal

SDE = de.VPSDE(de.Linear(0.1, 20.0))
MIX1 = de.GaussianMixture([0.3, 0.7], [[-1.5], [1.0]], [0.3, 0.2])
MIX2 = de.GaussianMixture([0.5, 0.3, 0.2], [[-1.0, -0.5], [1.0, 0.8], [0.2, 1.5]],
                          [[0.3, 0.3], [0.25, 0.25], [0.4, 0.15]])


def test_1d_accuracy_and_mass():
    g = Grid(-6.0, 6.0, 1000)
    ts = [0.0, 0.05, 0.2, 0.5, 1.0]
    r = solve(SDE, g.density(MIX1.log_prob), g, ts)
    for k, t in enumerate(ts):
        assert g.l1(r.p[k], g.density(lambda x: MIX1.log_prob(x, t, SDE))) < 1e-3
    assert r.mass_drift < 1e-10
    assert r.min_density >= -1e-12
    assert r.p.shape == (5, 1000)


def test_2d_accuracy_and_mass():
    g = Grid((-5.0, -5.0), (5.0, 5.0), (128, 128))
    ts = [0.0, 0.1, 0.5]
    r = solve(SDE, g.density(MIX2.log_prob), g, ts)
    for k, t in enumerate(ts):
        assert g.l1(r.p[k], g.density(lambda x: MIX2.log_prob(x, t, SDE))) < 5e-3
    assert r.mass_drift < 1e-10


@pytest.mark.parametrize("hbar", [0.25, 1.0])
def test_reverse_sampler_density_is_hbar_invariant_with_exact_score(hbar):
    """Eq. (eq-fp-reversed) with the exact score maps p_T back to p_{t_min} for every hbar."""
    g = Grid(-6.0, 6.0, 600)
    rev = SDE.reverse(MIX1.score_fn(SDE), hbar)
    r = solve(rev, g.density(lambda x: MIX1.log_prob(x, 1.0, SDE)), g, [1.0, 0.05])
    assert g.l1(r.p[-1], g.density(lambda x: MIX1.log_prob(x, 0.05, SDE))) < 2e-3
    assert r.mass_drift < 1e-10


def test_pure_transport_hbar_zero_is_first_order():
    errs = []
    for cells in (400, 800):
        g = Grid(-6.0, 6.0, cells)
        rev = SDE.reverse(MIX1.score_fn(SDE), 0.0)
        r = solve(rev, g.density(lambda x: MIX1.log_prob(x, 1.0, SDE)), g, [1.0, 0.1])
        errs.append(g.l1(r.p[-1], g.density(lambda x: MIX1.log_prob(x, 0.1, SDE))))
    assert errs[1] < 0.02 and 1.6 < errs[0] / errs[1] < 2.5


def test_stationary_density_is_preserved():
    ou = de.VPSDE(de.Linear(1.0, 1.0), T=3.0)
    g = Grid(-8.0, 8.0, 400)
    p = torch.exp(-0.5 * g.axes[0] ** 2) / math.sqrt(2 * math.pi)
    r = solve(ou, p, g, [0.0, 3.0])
    assert g.l1(r.p[-1], p) < 1e-4


def test_tridiagonal_solver_against_dense():
    gen = torch.Generator().manual_seed(0)
    for n in (1, 2, 7, 64, 100):
        a, c = torch.rand(3, n, generator=gen, dtype=torch.float64), torch.rand(3, n, generator=gen, dtype=torch.float64)
        b = 2.5 + torch.rand(3, n, generator=gen, dtype=torch.float64)
        d = torch.randn(3, n, generator=gen, dtype=torch.float64)
        x = _solve_tridiagonal(a, b, c, d)
        for i in range(3):
            A = torch.diag(b[i]) + torch.diag(a[i, 1:], -1) + torch.diag(c[i, :-1], 1)
            assert torch.allclose(A @ x[i], d[i], atol=1e-12)
            one = _solve_tridiagonal(a[i], b[i], c[i], d[i])            # a single system: LAPACK's dgtsv
            assert torch.allclose(A @ one, d[i], atol=1e-12) and torch.allclose(one, x[i], atol=1e-12)


def test_grid_helpers():
    g = Grid((-1, 0), (1, 2), (4, 5))
    assert g.points().shape == (20, 2) and g.dim == 2 and g.shape == (4, 5)
    assert g.mass(torch.ones(4, 5)) == pytest.approx(4.0)
    g1 = Grid.from_centers(torch.linspace(-1, 1, 11))
    assert g1.shape == (11,) and g1.h[0] == pytest.approx(0.2)


# ---- bad input ---------------------------------------------------------------------------
def test_non_uniform_grid_rejected():
    with pytest.raises(ValueError, match="not a uniform"):
        Grid.from_centers(torch.tensor([0.0, 0.1, 0.3, 0.4]))
    with pytest.raises(ValueError, match="hi must exceed lo"):
        Grid(1.0, 0.0, 10)
    with pytest.raises(ValueError, match="cells must be an integer >= 3"):
        Grid(0.0, 1.0, 2)


def test_bad_densities_and_arguments():
    g = Grid(-3.0, 3.0, 50)
    p = torch.ones(50)
    with pytest.raises(ValueError, match=">= 0 everywhere"):
        solve(SDE, p - 2, g, [0.0, 0.1])
    with pytest.raises(ValueError, match="positive mass"):
        solve(SDE, 0 * p, g, [0.0, 0.1])
    with pytest.raises(ValueError, match="grid's shape"):
        solve(SDE, torch.ones(49), g, [0.0, 0.1])
    with pytest.raises(TypeError, match="grid must be"):
        solve(SDE, p, "grid", [0.0, 0.1])
    with pytest.raises(TypeError, match="state-dependent"):
        solve(de.GeometricBrownianMotion(), p, g, [0.0, 0.1])
    with pytest.raises(ValueError, match="strictly increasing"):
        solve(SDE, p, g, [0.0, 0.0])
    with pytest.raises(ValueError, match="max_step"):
        solve(SDE, p, g, [0.0, 0.1], max_step=-1.0)


def test_negative_g2_and_hbar_rejected():
    g = Grid(-3.0, 3.0, 50)
    bad = de.AdditiveSDE(lambda x, t: -x, lambda t: -1.0)
    with pytest.raises(ValueError, match="g\\(t\\) >= 0"):
        solve(bad, torch.ones(50), g, [0.0, 0.1])
    with pytest.raises(ValueError, match="hbar"):
        SDE.reverse(MIX1.score_fn(SDE), -0.1)


def test_negative_density_is_reported():
    """An unresolved spike on a coarse grid with large steps makes CN undershoot: the solver says so."""
    g = Grid(-3.0, 3.0, 30)
    p = torch.zeros(30, dtype=torch.float64)
    p[15] = 1.0 / g.h[0]
    with pytest.warns(RuntimeWarning, match="density became negative"):
        r = solve(de.BrownianMotion(D=5.0, T=1.0), p, g, [0.0, 0.001, 1.0], max_step=0.5)
    assert r.min_density < -0.1
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # the default step size keeps it non-negative
        r = solve(de.BrownianMotion(D=5.0, T=1.0), p, g, [0.0, 0.001, 1.0])
    assert r.min_density >= 0


def test_grid_measures_reject_wrong_shapes():
    g = Grid(-1.0, 1.0, 10)
    with pytest.raises(ValueError, match="grid's shape"):
        g.l1(torch.ones(10), torch.ones(9))
    with pytest.raises(TypeError, match="torch.Tensor"):
        g.mass([1.0] * 10)


def test_bin_mass_is_exact_for_the_piecewise_constant_density():
    """Grid.bin_mass integrates the cell-constant density over each bin, edges on faces or not."""
    g = Grid(-6.0, 6.0, 1000)                       # h = 0.012: 0.1-wide bins cut cells
    p = g.density(MIX1.log_prob)
    edges = torch.linspace(-3.0, 3.0, 61, dtype=torch.float64)
    m = g.bin_mass(p, edges)
    assert m.shape == (60,)
    # bins that tile the whole box give the total mass, split anywhere
    whole = torch.tensor([-6.0, -1.2345, 0.0, 0.5, 6.0], dtype=torch.float64)
    assert abs(float(g.bin_mass(p, whole).sum()) - g.mass(p)) < 1e-12
    # one bin inside one cell: p_i times the bin's width
    i = 500
    a = float(g.lo[0] + i * g.h[0])
    inner = torch.tensor([a + 0.002, a + 0.007], dtype=torch.float64)
    assert abs(float(g.bin_mass(p, inner)[0]) - float(p[i]) * 0.005) < 1e-15
    # against the exact mixture mass in each bin (the old centre-in-bin sum is off by -4 %/+8 %)
    cdf = lambda x: sum(w * 0.5 * (1 + math.erf((x - mu) / (s * math.sqrt(2))))
                        for w, mu, s in [(0.3, -1.5, 0.3), (0.7, 1.0, 0.2)])
    exact = torch.tensor([cdf(float(b)) - cdf(float(a)) for a, b in zip(edges[:-1], edges[1:])],
                         dtype=torch.float64)
    big = exact > 1e-3
    assert float(((m - exact) / exact)[big].abs().max()) < 5e-3
    x = g.axes[0]
    naive = torch.stack([p[(x >= a) & (x < b)].sum() * g.h[0] for a, b in zip(edges[:-1], edges[1:])])
    assert float(((naive - exact) / exact)[big].abs().max()) > 0.03
    # bins partly outside the box lose that part
    assert abs(float(g.bin_mass(torch.ones(1000, dtype=torch.float64), torch.tensor([5.0, 7.0]))[0]) - 1.0) < 1e-12


def test_bin_mass_rejects_bad_input():
    g = Grid(-1.0, 1.0, 10)
    p = torch.ones(10, dtype=torch.float64)
    with pytest.raises(ValueError, match="increasing"):
        g.bin_mass(p, torch.tensor([0.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="edges"):
        g.bin_mass(p, torch.tensor([0.0]))
    with pytest.raises(ValueError, match="shape"):
        g.bin_mass(torch.ones(9, dtype=torch.float64), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="1-D grid"):
        Grid((-1.0, -1.0), (1.0, 1.0), (4, 4)).bin_mass(torch.ones(4, 4, dtype=torch.float64), [0.0, 1.0])
