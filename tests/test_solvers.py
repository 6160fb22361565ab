import math

import pytest
import torch

import diffedu as de
from diffedu.stats import convergence_order, mean_se

SOLVERS = {"euler_maruyama": de.euler_maruyama, "milstein": de.milstein, "heun": de.heun}


@pytest.fixture(scope="module")
def gbm_errors():
    """Strong and weak errors of each scheme on GBM, on shared Brownian paths."""
    mu, sigma, T = 1.5, 1.0, 1.0
    gbm = de.GeometricBrownianMotion(mu, sigma, T=T)
    M, kf, ks = 20000, 9, [3, 4, 5, 6]
    dw = de.brownian_increments(de.time_grid(0, T, 2**kf), M, 1, de.make_generator(21))
    x0 = torch.ones(M, 1, dtype=torch.float64)
    exact = gbm.exact(x0, T, dw.sum(0))
    out = {}
    for name, solver in SOLVERS.items():
        strong, weak = [], []
        for k in ks:
            X = solver(gbm, x0, de.time_grid(0, T, 2**k), dw=de.coarsen(dw, 2 ** (kf - k)))
            strong.append(float((X - exact).abs().mean()))
            weak.append(abs(float((X - exact).mean())))
        hs = [T / 2**k for k in ks]
        out[name] = (convergence_order(hs, strong), convergence_order(hs, weak))
    return out


@pytest.mark.parametrize("name, strong, weak", [
    ("euler_maruyama", 0.5, 1.0), ("milstein", 1.0, None), ("heun", 1.0, None)])
def test_orders_on_gbm(gbm_errors, name, strong, weak):
    so, wo = gbm_errors[name]
    assert abs(so - strong) < 0.15, (name, so)
    if weak is not None:
        assert abs(wo - weak) < 0.15, (name, wo)


def test_heun_is_second_order_for_odes():
    ode = de.ItoSDE(lambda x, t: -x * (1 + t), lambda x, t: 0.0, lambda x, t: 0.0, T=1.0)
    x0 = torch.ones(1, 1, dtype=torch.float64)
    exact = math.exp(-1.5)
    errs = [abs(float(de.heun(ode, x0, de.time_grid(0, 1, n))) - exact) for n in [8, 16, 32, 64]]
    assert abs(convergence_order([1 / 8, 1 / 16, 1 / 32, 1 / 64], errs) - 2.0) < 0.1


def test_additive_noise_milstein_equals_em():
    sde = de.OrnsteinUhlenbeck()
    x0 = torch.zeros(5, 2, dtype=torch.float64)
    ts = de.time_grid(0, 1, 20)
    a = de.euler_maruyama(sde, x0, ts, generator=de.make_generator(0))
    b = de.milstein(sde, x0, ts, generator=de.make_generator(0))
    assert torch.allclose(a, b)


def test_reverse_time_brownian_motion_is_exact():
    """Backward in time with decreasing ts: the increments have variance |dt|."""
    bm = de.BrownianMotion(D=0.5, T=2.0)
    x = de.euler_maruyama(bm, torch.zeros(20000, 1, dtype=torch.float64), de.time_grid(2.0, 0.0, 10),
                          generator=de.make_generator(4))
    v, _ = mean_se(x[:, 0] ** 2)
    se = math.sqrt(2 * 2.0**2 / 20000)
    assert abs(float(v) - 2.0) < 5 * se


def test_deterministic_for_a_seed_and_path_shape():
    sde = de.VPSDE(de.Linear())
    x0 = torch.zeros(4, 3)
    ts = de.time_grid(0, 1, 10)
    a = de.heun(sde, x0, ts, generator=de.make_generator(8), return_path=True)
    b = de.heun(sde, x0, ts, generator=de.make_generator(8), return_path=True)
    assert a.shape == (11, 4, 3) and torch.equal(a, b) and a.dtype == torch.float32


def test_callback_sees_every_step():
    seen = []
    de.euler_maruyama(de.BrownianMotion(), torch.zeros(2, 1), [0.0, 0.5, 1.0],
                      generator=de.make_generator(0), callback=lambda k, t, x: seen.append((k, t)))
    assert seen == [(0, 0.0), (1, 0.5), (2, 1.0)]


def test_time_grid_and_coarsen():
    ts = de.time_grid(1.0, 0.0, 4)
    assert torch.allclose(ts, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0], dtype=torch.float64))
    dw = de.brownian_increments(de.time_grid(0, 1, 8), 3, 2, de.make_generator(0))
    assert dw.shape == (8, 3, 2)
    assert torch.allclose(de.coarsen(dw, 4).sum(0), dw.sum(0))


# ---- bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize("solver", SOLVERS.values())
def test_bad_solver_inputs(solver):
    bm = de.BrownianMotion(T=1.0)
    x0 = torch.zeros(3, 2)
    with pytest.raises(TypeError, match="sde must be a diffedu SDE"):
        solver("bm", x0, [0, 1])
    with pytest.raises(ValueError, match="strictly increasing or strictly decreasing"):
        solver(bm, x0, [0, 0.5, 0.2])
    with pytest.raises(ValueError, match="at least two"):
        solver(bm, x0, [0.0])
    with pytest.raises(ValueError, match=r"\[0, T\]"):
        solver(bm, x0, [0.0, 2.0])
    with pytest.raises(ValueError, match="non-finite"):
        solver(bm, x0, torch.tensor([0.0, float("nan")]))
    with pytest.raises(ValueError, match=r"shape \(n, d\)"):
        solver(bm, torch.zeros(3), [0, 1])
    with pytest.raises(ValueError, match="dw must have shape"):
        solver(bm, x0, [0, 0.5, 1], dw=torch.zeros(3, 3, 2))
    with pytest.raises(TypeError, match="generator"):
        solver(bm, x0, [0, 1], generator=3)
    with pytest.raises(TypeError, match="callback"):
        solver(bm, x0, [0, 1], callback=3)


def test_blow_up_is_reported():
    exploding = de.ItoSDE(lambda x, t: x**3, lambda x, t: 0.0, lambda x, t: 0.0)
    with pytest.raises(FloatingPointError, match="step"):
        de.euler_maruyama(exploding, torch.full((1, 1), 10.0), de.time_grid(0, 1, 10))


def test_reverse_time_needs_state_independent_noise():
    with pytest.raises(ValueError, match="reverse time"):
        de.euler_maruyama(de.GeometricBrownianMotion(), torch.ones(2, 1), [1.0, 0.0])


def test_milstein_needs_diffusion_dx():
    sde = de.ItoSDE(lambda x, t: x, lambda x, t: x)
    with pytest.raises(TypeError, match="diffusion_dx"):
        de.milstein(sde, torch.ones(2, 1), [0.0, 1.0])


def test_bad_grid_helpers():
    with pytest.raises(ValueError, match="differ"):
        de.time_grid(1.0, 1.0, 3)
    with pytest.raises(ValueError, match="steps"):
        de.time_grid(0.0, 1.0, 0)
    with pytest.raises(ValueError, match="factor must divide"):
        de.coarsen(torch.zeros(6, 1, 1), 4)
    with pytest.raises(ValueError, match="dw must be"):
        de.coarsen(torch.zeros(6), 2)


# ---- srk15: the strong order-1.5 stochastic Runge-Kutta scheme (eq-srk15) --------------------
def _srk_errors(sde, x0, T, ks, exact, dw, dz, ts, dz_of=None):
    """Strong errors of srk15 on the grids 2**k (k in ks), fed the fine (dw, dz) coarsened exactly."""
    errors = []
    for k in ks:
        dwc, dzc = de.coarsen_dz(dw, dz, len(dw) // 2**k, ts)
        X = de.srk15(sde, x0, de.time_grid(0, T, 2**k), dw=dwc, dz=dzc if dz_of is None else dz_of(dwc, T / 2**k))
        errors.append(float((X - exact).abs().mean()))
    return errors


def test_srk15_strong_order_on_gbm():
    """Strong order 1.5 against the exact solution on the same paths; Milstein 1 and EM 1/2 (pre-asymptotically
    0.6 at sigma = 0.5) for contrast.  Seeds 0..20: srk15 1.45-1.49, Milstein 0.94-0.95, EM 0.62-0.65."""
    mu, sigma, T, M, ks = 1.0, 0.5, 1.0, 2000, [2, 3, 4, 5, 6, 7]
    gbm = de.GeometricBrownianMotion(mu, sigma, T=T)
    ts = de.time_grid(0, T, 2**ks[-1])
    dw, dz = de.brownian_increments_dz(ts, M, de.make_generator(11))
    x0 = torch.ones(M, 1, dtype=torch.float64)
    exact = gbm.exact(x0, T, dw.sum(0))
    hs = [T / 2**k for k in ks]
    srk = _srk_errors(gbm, x0, T, ks, exact, dw, dz, ts)
    mil = [float((de.milstein(gbm, x0, de.time_grid(0, T, 2**k), dw=de.coarsen(dw, 2 ** (ks[-1] - k))) - exact)
                 .abs().mean()) for k in ks]
    em = [float((de.euler_maruyama(gbm, x0, de.time_grid(0, T, 2**k), dw=de.coarsen(dw, 2 ** (ks[-1] - k))) - exact)
                .abs().mean()) for k in ks]
    orders = {"srk15": convergence_order(hs, srk), "milstein": convergence_order(hs, mil),
              "euler_maruyama": convergence_order(hs, em)}
    assert 1.35 <= orders["srk15"] <= 1.65, orders
    assert 0.85 <= orders["milstein"] <= 1.15 and orders["euler_maruyama"] < 0.8, orders
    assert all(s < m for s, m in zip(srk, mil)), (srk, mil)


def test_srk15_weak_order_two_on_gbm():
    """For GBM each srk15 step multiplies the mean by 1 + mu h + (mu h)^2 / 2 (all other terms have mean 0), so
    E[X_N] - e^{mu T} = O(h^2): the Monte-Carlo bias on shared paths matches that formula within 5 s.e."""
    mu, sigma, T, M = 1.5, 1.0, 1.0, 20000
    gbm = de.GeometricBrownianMotion(mu, sigma, T=T)
    ts = de.time_grid(0, T, 32)
    dw, dz = de.brownian_increments_dz(ts, M, de.make_generator(2))
    x0 = torch.ones(M, 1, dtype=torch.float64)
    exact = gbm.exact(x0, T, dw.sum(0))
    for steps in (4, 8, 16, 32):
        dwc, dzc = de.coarsen_dz(dw, dz, 32 // steps, ts)
        bias, se = mean_se((de.srk15(gbm, x0, de.time_grid(0, T, steps), dw=dwc, dz=dzc) - exact)[:, 0])
        h = T / steps
        assert abs(float(bias) - ((1 + mu * h + 0.5 * (mu * h) ** 2) ** steps - math.exp(mu * T))) < 5 * float(se)


def test_srk15_additive_noise_needs_dz():
    """OU (additive noise, linear drift): srk15 is exact up to terms of order h^2 here (measured 2.06-2.08 over seeds
    0..20).  Fed dz = h dw / 2 (the mean of dz given dw) instead of the true integral, it drops to order 1: the
    drift's response a' b dz to the path between grid points is what order 1.5 needs.  (For GBM that term cancels
    against the one in (dw h - dz), so GBM alone cannot see dz.)"""
    theta, sigma, T, M, kf, ks = 2.0, 1.0, 1.0, 2000, 10, [2, 3, 4, 5, 6]
    ou = de.OrnsteinUhlenbeck(theta=theta, sigma=sigma, T=T)
    ts = de.time_grid(0, T, 2**kf)
    dw, dz = de.brownian_increments_dz(ts, M, de.make_generator(7))
    x0 = torch.ones(M, 1, dtype=torch.float64)
    # x_T = e^{-theta T} x0 + sigma int e^{-theta(T-s)} dw_s; on each fine step e^{theta(s-t_k)} = 1 + theta(s-t_k) + ...
    # and int (s - t_k) dw_s = h dw - dz, so the sum below is exact up to O(h_fine^2) ~ 1e-6
    h, t_k = T / 2**kf, ts[:-1].view(-1, 1, 1)
    exact = math.exp(-theta * T) * x0 + sigma * (torch.exp(-theta * (T - t_k)) * (dw + theta * (h * dw - dz))).sum(0)
    hs = [T / 2**k for k in ks]
    good = convergence_order(hs, _srk_errors(ou, x0, T, ks, exact, dw, dz, ts))
    blind = convergence_order(hs, _srk_errors(ou, x0, T, ks, exact, dw, dz, ts, dz_of=lambda dw_c, hc: 0.5 * hc * dw_c))
    assert 1.8 <= good <= 2.3 and 0.8 <= blind <= 1.2, (good, blind)


#: a non-autonomous SDE with smooth bounded coefficients: f = -x + sin 2t, g = (1 + t)(1 + cos(x) / 2) / 2
NONAUT = de.ItoSDE(lambda x, t: -x + torch.sin(2 * t), lambda x, t: 0.5 * (1 + t) * (1 + 0.5 * torch.cos(x)), T=1.0)


def test_srk15_self_convergence_non_autonomous():
    """Time-dependent f and g: differences between successive grids (on one Brownian path) shrink like h^1.5
    (measured 1.42-1.46 over seeds 0..20)."""
    T, M, ks = 1.0, 2000, [2, 3, 4, 5, 6, 7]
    kf = ks[-1] + 1
    ts = de.time_grid(0, T, 2**kf)
    dw, dz = de.brownian_increments_dz(ts, M, de.make_generator(5))
    x0 = torch.full((M, 1), 0.5, dtype=torch.float64)
    paths = []
    for k in ks + [kf]:
        dwc, dzc = de.coarsen_dz(dw, dz, 2 ** (kf - k), ts)
        paths.append(de.srk15(NONAUT, x0, de.time_grid(0, T, 2**k), dw=dwc, dz=dzc))
    diffs = [float((a - b).abs().mean()) for a, b in zip(paths, paths[1:])]
    order = convergence_order([T / 2**k for k in ks], diffs)
    assert 1.35 <= order <= 1.65, (order, diffs)


def test_srk15_step_is_the_ito_taylor_scheme_to_order_h2():
    """One step from fixed normals xi (dw = sqrt(h) xi1, dz = h^1.5 (xi1 + xi2 / sqrt 3) / 2) differs from the
    order-1.5 Ito-Taylor step written with the exact derivatives (time derivatives included) by O(h^2), from the
    Milstein step by O(h^1.5): the difference quotients stand for the right derivatives at the right times."""
    xi = torch.randn(2, 50, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = torch.linspace(-1.5, 1.5, 50, dtype=torch.float64).view(-1, 1)
    t = 0.3
    a, a_x, a_t = -x + math.sin(2 * t), -1.0, 2 * math.cos(2 * t)
    c = 1 + 0.5 * torch.cos(x)
    b, b_x, b_xx, b_t = 0.5 * (1 + t) * c, -0.25 * (1 + t) * torch.sin(x), -0.25 * (1 + t) * torch.cos(x), 0.5 * c
    gaps, gaps_milstein = [], []
    hs = [2.0**-k for k in range(5, 11)]
    for h in hs:
        dw = h**0.5 * xi[0]
        dz = 0.5 * h**1.5 * (xi[0] + xi[1] / math.sqrt(3))
        srk = de.srk15(NONAUT, x, [t, t + h], dw=dw[None], dz=dz[None])
        taylor = (x + a * h + b * dw + 0.5 * b * b_x * (dw**2 - h) + a_x * b * dz + 0.5 * (a_t + a * a_x) * h**2
                  + (b_t + a * b_x + 0.5 * b**2 * b_xx) * (dw * h - dz) + 0.5 * b * (b * b_xx + b_x**2) * (dw**2 / 3 - h) * dw)
        milstein = x + a * h + b * dw + 0.5 * b * b_x * (dw**2 - h)
        gaps.append(float((srk - taylor).abs().max()))
        gaps_milstein.append(float((srk - milstein).abs().max()))
    assert abs(convergence_order(hs, gaps) - 2.0) < 0.2, gaps         # 2.11 here: local slopes 2.2 -> 2.04
    assert abs(convergence_order(hs, gaps_milstein) - 1.5) < 0.1, gaps_milstein


def test_brownian_increments_dz_law_and_same_path():
    """(dw, dz) per step: variances h and h^3/3, covariance h^2/2 (5 s.e.), steps independent; dw is the path that
    brownian_increments draws from the same seed; given dw, dz - h dw / 2 has variance h^3/12."""
    ts = [0.0, 0.1, 0.4, 1.0]
    n = 40000
    dw, dz = de.brownian_increments_dz(ts, n, de.make_generator(3))
    assert dw.shape == dz.shape == (3, n, 1) and dw.dtype == dz.dtype == torch.float64
    assert torch.equal(dw, de.brownian_increments(ts, n, 1, de.make_generator(3)))
    for k, h in enumerate([0.1, 0.3, 0.6]):
        u, v = dw[k, :, 0] / h**0.5, dz[k, :, 0] / h**1.5            # normalised: E u^2 = 1, E v^2 = 1/3, E uv = 1/2
        for sample, target in ((u * u, 1.0), (v * v, 1 / 3), (u * v, 0.5), (u, 0.0), (v, 0.0)):
            m, se = mean_se(sample)
            assert abs(float(m) - target) < 5 * float(se), (k, target, float(m), float(se))
    m, se = mean_se(dw[0, :, 0] * dz[1, :, 0])
    assert abs(float(m)) < 5 * float(se)
    dw2, dz2 = de.brownian_increments_dz(ts, n, de.make_generator(4), dw=dw, dtype=torch.float32)
    assert torch.equal(dw2, dw.float()) and dz2.dtype == torch.float32
    for k, h in enumerate([0.1, 0.3, 0.6]):
        r = (dz2[k, :, 0].double() - 0.5 * h * dw[k, :, 0]) / h**1.5
        m, se = mean_se(r * r)
        assert abs(float(m) - 1 / 12) < 5 * float(se)


def test_coarsen_dz_is_exact_and_keeps_the_law():
    """coarsen_dz of fine increments: the same joint law on the coarse grid, equal (pathwise) to the integral of
    w over each coarse step by the trapezoidal rule on a 512 times finer grid, and coarsening in stages agrees
    with coarsening at once (also on a non-uniform grid)."""
    # a non-uniform grid: 8 coarse steps of lengths 1/16 .. 1/4 (summing to 1.25), each cut into 512 equal pieces
    coarse = torch.tensor([0.0] + [1 / 16, 1 / 8, 1 / 4, 1 / 8, 1 / 16, 1 / 4, 1 / 8, 1 / 4], dtype=torch.float64).cumsum(0)
    fine = torch.cat([torch.linspace(float(a), float(b), 513, dtype=torch.float64)[:-1] for a, b in zip(coarse, coarse[1:])]
                     + [coarse[-1:]])
    n = 200
    dw, dz = de.brownian_increments_dz(fine, n, de.make_generator(9))
    dw_c, dz_c = de.coarsen_dz(dw, dz, 512, fine)
    assert torch.allclose(dw_c, de.coarsen(dw, 512), atol=1e-13)
    w = torch.cat([torch.zeros(1, n, 1, dtype=torch.float64), dw.cumsum(0)])      # the path on the fine grid
    h = (fine[1:] - fine[:-1]).view(-1, 1, 1)
    trapezoid = (0.5 * h * (w[1:] + w[:-1])).view(8, 512, n, 1).sum(1)           # int_{t_j}^{t_j+1} w_s ds
    exact = trapezoid - (coarse[1:] - coarse[:-1]).view(-1, 1, 1) * w[::512][:-1]   # minus w_{t_j} times the step
    # the trapezoidal rule misses sum (dz_i - h_i dw_i / 2), of standard deviation sqrt(512 h_i^3 / 12) <= 7e-5 here
    # (the largest gap of 1600 is about 2.2e-4); weights t_{j+1} - t_0 instead of t_m - t_{j+1} are off by about 0.2
    gap = float((dz_c - exact).abs().max())
    assert gap < 1e-3, gap
    dw_s, dz_s = de.coarsen_dz(*de.coarsen_dz(dw, dz, 16, fine), 32, fine[::16])  # in two stages
    assert torch.allclose(dw_s, dw_c, atol=1e-12) and torch.allclose(dz_s, dz_c, atol=1e-12)
    # the law on a uniform grid: 2**7 fine steps on [0, 1] -> 4 coarse steps of h = 1/4
    ts = de.time_grid(0, 1, 2**7)
    dw, dz = de.brownian_increments_dz(ts, 20000, de.make_generator(10))
    dw_c, dz_c = de.coarsen_dz(dw, dz, 2**5, ts)
    u, v = dw_c[:, :, 0].flatten() / 0.5, dz_c[:, :, 0].flatten() / 0.25**1.5
    for sample, target in ((u * u, 1.0), (v * v, 1 / 3), (u * v, 0.5)):
        m, se = mean_se(sample)
        assert abs(float(m) - target) < 5 * float(se), (target, float(m), float(se))


def test_srk15_draws_its_own_noise_reproducibly():
    gbm = de.GeometricBrownianMotion(1.0, 0.5)
    x0 = torch.ones(20000, 1, dtype=torch.float64)
    ts = de.time_grid(0, 1, 16)
    a = de.srk15(gbm, x0, ts, generator=de.make_generator(6), return_path=True)
    b = de.srk15(gbm, x0, ts, generator=de.make_generator(6), return_path=True)
    assert a.shape == (17, 20000, 1) and torch.equal(a, b)
    m, se = mean_se(a[-1, :, 0])                       # E X_1 = e (bias (1 + h + h^2/2)^16 - e ~ 1e-3 << 5 s.e.)
    assert abs(float(m) - math.e) < 5 * float(se)
    m, se = mean_se(a[-1, :, 0] ** 2)                  # E X_1^2 = e^{2 mu + sigma^2}
    assert abs(float(m) - math.exp(2.25)) < 5 * float(se)
    assert de.srk15(gbm, x0[:3].float(), ts, generator=de.make_generator(6)).dtype == torch.float32


def test_bad_srk15_inputs():
    gbm = de.GeometricBrownianMotion(1.0, 0.5)
    x0 = torch.ones(4, 1, dtype=torch.float64)
    ts = [0.0, 0.5, 1.0]
    dw, dz = de.brownian_increments_dz(ts, 4, de.make_generator(0))
    with pytest.raises(ValueError, match=r"x0 must have shape \(n, 1\)"):
        de.srk15(gbm, torch.ones(4, 2), ts)
    with pytest.raises(ValueError, match="ts must be strictly increasing"):
        de.srk15(de.OrnsteinUhlenbeck(), x0, [1.0, 0.5, 0.0])
    with pytest.raises(ValueError, match="got dw without dz"):
        de.srk15(gbm, x0, ts, dw=dw)
    with pytest.raises(ValueError, match="got dz without dw"):
        de.srk15(gbm, x0, ts, dz=dz)
    with pytest.raises(ValueError, match="dw must have shape"):
        de.srk15(gbm, x0, ts, dw=dw[:1], dz=dz)
    with pytest.raises(ValueError, match="dz must have shape"):
        de.srk15(gbm, x0, ts, dw=dw, dz=dz[:, :3])
    with pytest.raises(ValueError, match="dz must hold finite"):
        de.srk15(gbm, x0, ts, dw=dw, dz=torch.full_like(dz, float("nan")))
    with pytest.raises(ValueError, match="dw must hold finite"):
        de.srk15(gbm, x0, ts, dw=dw.int(), dz=dz)
    with pytest.raises(ValueError, match="ts must be strictly increasing"):
        de.brownian_increments_dz([0.0, 0.5, 0.2], 3)
    with pytest.raises(ValueError, match="dw must have shape"):
        de.brownian_increments_dz(ts, 3, dw=dw)
    with pytest.raises(ValueError, match="factor must divide"):
        de.coarsen_dz(dw, dz, 3, ts)
    with pytest.raises(ValueError, match="dz must have the shape of dw"):
        de.coarsen_dz(dw, dz[:, :2], 2, ts)
    with pytest.raises(ValueError, match="ts must be the fine grid"):
        de.coarsen_dz(dw, dz, 2, [0.0, 1.0])
    with pytest.raises(ValueError, match="ts must be strictly increasing"):
        de.coarsen_dz(dw, dz, 2, [0.0, 0.6, 0.5])
    with pytest.raises(ValueError, match="dz must hold finite"):
        de.coarsen_dz(dw, torch.full_like(dz, float("inf")), 2, ts)
    with pytest.raises(TypeError, match="dw must be a tensor"):
        de.coarsen_dz([0.0], dz, 2, ts)
