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
