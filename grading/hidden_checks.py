r"""The instructor's hidden checks, one per exercise of the book (run by ``scripts/grade.py``).

This file stays in the instructor's repository: it is not part of the ``diffedu`` package (so not in
a wheel, nor installed in Colab or Binder) and not in the student zip. Its checks are stricter than
the public self-checks of ``diffedu.checks``:

* an answer that is a **function** is called on other inputs than the public check uses — other
  sizes, parameters and random points, drawn from a generator seeded by the grading *salt* (choose
  your own each term: ``make grade SALT=...``) — and compared with a closed form written here;
* an answer that is a **number** is compared with a reference computed here independently, with
  a tighter tolerance than the public check;
* an answer that is a **Monte-Carlo sample** is tested on more of its statistics (mean, variance,
  fourth moment, support) at six standard errors, so that it holds for any seed of a correct
  solution yet rejects the wrong formulas the public check lets through (``rhs`` copied from
  ``lhs``, relative errors without the ``- 1``, Gaussian instead of Rademacher probes, ...).

The grader executes this file inside the submission's kernel, right after the cells of each
exercise, and calls :func:`report`. Each check receives ``get(name)`` (a name of the student's
namespace, or an error saying it is undefined) and ``rng`` (a ``torch.Generator``), returns a
short confirmation, and raises :class:`Wrong` with the reason shown to the student otherwise.
An exception raised by the student's own function is reported with its type and message.

``EXERCISES`` maps every exercise label of the book to ``(points, names, check)``; a test fails
when an exercise of the book has no hidden check here.
"""

from __future__ import annotations

import json
import math
import numbers
import zlib

import torch

MIME = "application/vnd.diffedu.grade+json"
F64 = torch.float64


class Wrong(Exception):
    """A wrong or malformed answer; the message is the reason the student reads."""


# --- helpers -------------------------------------------------------------------------------------
def _tensor(value, name, shape=None):
    if not isinstance(value, torch.Tensor):
        raise Wrong(f"`{name}` must be a torch.Tensor, got {type(value).__name__}")
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise Wrong(f"`{name}` must have shape {tuple(shape)}, got {tuple(value.shape)}")
    if value.is_complex() or not bool(torch.isfinite(value).all()):
        raise Wrong(f"`{name}` must hold finite real numbers")
    return value.detach().to("cpu", F64)


def _number(value, name):
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise Wrong(f"`{name}` must be one finite real number, got {value!r:.60}")
    return float(value)


def _numbers(value, name, n):
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().reshape(-1).tolist()
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise Wrong(f"`{name}` must hold {n} numbers")
    return [_number(v, f"{name}[{i}]") for i, v in enumerate(value)]


def _function(value, name):
    if not callable(value):
        raise Wrong(f"`{name}` must be a function, got {type(value).__name__}")
    return value


def _call(fn, name, *args):
    """The student's function on the grader's inputs; its own exception becomes the reason."""
    try:
        return fn(*args)
    except (KeyboardInterrupt, Wrong):
        raise
    except Exception as err:                      # noqa: BLE001 — any failure of student code
        raise Wrong(f"`{name}` raised {type(err).__name__}: {err} (on the grader's inputs)") from None


def _close(value, want, *, rel, what):
    if not abs(value - want) <= rel * max(1.0, abs(want)):
        raise Wrong(f"{what} = {value:.10g} is not correct (the grader's tolerance is {rel:g}, relative)")


def _uniform(rng, low, high, n=None):
    u = torch.rand(n if n is not None else (), generator=rng, dtype=F64)
    out = low + (high - low) * u
    return out if n is not None else float(out)


def _vp_v(t, v0=0.04):
    """Variance of x_t for data N(0, v0) under the linear VP SDE, beta = 0.1 + 19.9 t (closed form)."""
    B = 0.1 * t + 9.95 * t * t
    return math.exp(-B) * v0 + 1 - math.exp(-B)


def _vp_beta(t):
    return 0.1 + 19.9 * t


# --- Chapter 1 -----------------------------------------------------------------------------------
def ito_w3(get, rng):
    lhs = _tensor(get("lhs"), "lhs", (2000,))
    rhs = _tensor(get("rhs"), "rhs", (2000,))
    M, N, T = 2000, 2**12, 1.0
    # lhs - rhs = -sum w_k (dw_k^2 - dt) - sum dw_k^3 / 3: mean square T^3 / N, relative SE sqrt(6 / M) / 2 for the rms
    rms, want = float(((lhs - rhs) ** 2).mean().sqrt()), T * math.sqrt(T / N)
    if abs(rms / want - 1) > 6 * math.sqrt(6 / M) / 2:
        raise Wrong(f"lhs - rhs has root mean square {rms:.4g}; the left-point sums differ by about "
                    f"{want:.4g} (= T sqrt(T/N)) — rhs must be computed from w_T^3/3 and a Riemann sum, not copied")
    m, se = float(lhs.mean()), float(lhs.std()) / math.sqrt(M)
    if abs(m) > 6 * se:
        raise Wrong(f"the mean of lhs is {m:.4f}: an Ito integral has mean 0")
    # the law of lhs through two fractions (binomial standard errors hold for any seed; E[lhs^2] has too heavy a
    # tail): lhs = a^3/3 - a/2 - b/sqrt(12) with a = w_T, b independent standard normals (T = 1)
    a = torch.linspace(-9.0, 9.0, 36001, dtype=F64)
    P, c = a**3 / 3 - a / 2, 1 / math.sqrt(12)
    cdf = lambda z: 0.5 * torch.special.erfc(-z / math.sqrt(2))
    dens = torch.exp(-a**2 / 2) / math.sqrt(2 * math.pi) * float(a[1] - a[0])
    for q in (0.3, 1.0):
        p = float(((cdf((q - P) / c) - cdf((-q - P) / c)) * dens).sum())
        frac = float((lhs.abs() < q).double().mean())
        if abs(frac - p) > 6 * math.sqrt(p * (1 - p) / M):
            raise Wrong(f"{frac:.3f} of the values of lhs lie within {q} of 0, against {p:.3f} for the Ito integral "
                        "int_0^1 w^2 dw (the Stratonovich w_T^3/3 gives {:.3f})".format(math.erf((3 * q) ** (1 / 3) / math.sqrt(2))))
    return "mean 0, the law of the Ito integral, and the two sums differ by the discretisation only"


def em_stationary(get, rng):
    x = _tensor(get("x_em"), "x_em", (20000,))
    n, V = x.numel(), 1.0 / (1.0 * (2 - 0.5))
    m, v = float(x.mean()), float(x.var())
    if abs(m) > 6 * math.sqrt(V / n):
        raise Wrong(f"the mean of x_em is {m:.4f}, not 0")
    if abs(v - V) > 6 * V * math.sqrt(2 / (n - 1)):
        raise Wrong(f"the variance of x_em is {v:.4f}, not Euler–Maruyama's sigma^2/(theta(2 - theta dt)) = {V:.4f}")
    kurt = float(((x - m) ** 4).mean()) / v**2
    if abs(kurt - 3) > 6 * math.sqrt(24 / n):
        raise Wrong(f"x_em is not Gaussian (kurtosis {kurt:.3f}, not 3): drive the recursion with Gaussian increments")
    return "mean, variance and kurtosis of the stationary Euler–Maruyama chain"


def heun_strat(get, rng):
    fn = _function(get("heun_plain"), "heun_plain")
    M, N = int(torch.randint(500, 1500, (), generator=rng)), 2**10
    T, mu, sigma = _uniform(rng, 0.5, 1.0), _uniform(rng, 0.3, 1.2), _uniform(rng, 0.4, 0.9)
    dt = T / N
    x0 = _uniform(rng, 0.5, 2.0, (M, 1))
    dw = torch.randn(N, M, 1, generator=rng, dtype=F64) * math.sqrt(dt)
    X = _tensor(_call(fn, "heun_plain", x0.clone(), dw.clone(), dt, mu, sigma), "heun_plain(...)", (M, 1))
    w = dw.sum(0)
    strat = x0 * torch.exp(mu * T + sigma * w)
    ito = x0 * torch.exp((mu - 0.5 * sigma**2) * T + sigma * w)
    err_s = float((X - strat).abs().mean() / strat.abs().mean())
    err_i = float((X - ito).abs().mean() / ito.abs().mean())
    if err_s > 0.01:
        raise Wrong(f"on other x0, T, mu, sigma (mu = {mu:.3f}, sigma = {sigma:.3f}, T = {T:.3f}) heun_plain is "
                    f"{err_s:.1%} from x0 exp(mu T + sigma w_T)" + (" and matches the Ito solution" if err_i < 0.01 else ""))
    return f"converges to the Stratonovich solution for mu = {mu:.2f}, sigma = {sigma:.2f}, T = {T:.2f}"


def perrin_budget(get, rng):
    K = _number(get("K_needed"), "K_needed")
    if K != 20000:
        raise Wrong(f"K_needed = {K:g}: a 1 % relative standard error sqrt(2/K) needs K = 2 / 0.01^2")
    r = _tensor(get("rel_errors"), "rel_errors", (400,))
    m, sd = float(r.mean()), float(r.std())
    if abs(m) > 6 * 0.01 / math.sqrt(400):
        raise Wrong(f"the relative errors average {m:.4f}, not 0: subtract 1 from D_hat / D")
    if abs(sd - 0.01) > 6 * 0.01 / math.sqrt(2 * 399):
        raise Wrong(f"the relative errors spread by {sd:.4f}, not 1 %")
    return "K = 20 000; the relative errors have mean 0 and spread 1 %"


def _stein_doubling(B, C):
    """sum_k B^k C (B^T)^k, the solution of S = B S B^T + C for a B of spectral radius below 1: the rounds
    S <- S + Phi S Phi^T, Phi <- Phi^2 from S = C, Phi = B double the number of terms each time."""
    S, phi = C.clone(), B.clone()
    for _ in range(200):
        if float(phi.abs().max()) < 1e-22:
            return 0.5 * (S + S.T)
        S = S + phi @ S @ phi.T
        phi = phi @ phi
    raise RuntimeError("the reference did not converge: B is not stable")


def lyapunov_2d(get, rng):
    fn = _function(get("em_stationary_cov"), "em_stationary_cov")
    cases = []
    for _ in range(3):
        d = int(torch.randint(2, 6, (), generator=rng))
        m = int(torch.randint(1, d + 2, (), generator=rng))
        M = _uniform(rng, 0.5, 1.5) * torch.randn(d, d, generator=rng, dtype=F64)
        shift = float(torch.linalg.eigvals(M).real.max()) + _uniform(rng, 0.3, 1.5)
        A = M - shift * torch.eye(d, dtype=F64)          # every eigenvalue has real part <= -0.3
        lam = torch.linalg.eigvals(A)
        dt_max = float((-2 * lam.real / lam.abs() ** 2).min())    # |1 + dt lambda| < 1 for every lambda iff dt < dt_max
        dt = _uniform(rng, 0.1, 0.8) * dt_max
        G = torch.randn(d, m, generator=rng, dtype=F64)
        cases.append(f"{d} x {m} (dt = {dt:.3g})")
        out = _tensor(_call(fn, "em_stationary_cov", A.clone(), G.clone(), dt), "em_stationary_cov(A, G, dt)", (d, d))
        want = _stein_doubling(torch.eye(d, dtype=F64) + dt * A, dt * G @ G.T)
        gap = float((out - want).abs().max()) / float(want.abs().max())
        if gap > 1e-9:
            raise Wrong(f"for a random stable {d} x {d} A, a {d} x {m} G and dt = {dt:.4g} (I + dt A stable), "
                        f"em_stationary_cov(A, G, dt) differs from sum_k B^k dt G G^T (B^T)^k, B = I + dt A, by {gap:.3g} "
                        "(relative; the grader's tolerance is 1e-9)")
    A = torch.tensor([[-1.0, 2.0], [-1.0, -0.5]], dtype=F64)
    G = torch.tensor([[1.0, 0.0], [0.6, 0.5]], dtype=F64)
    S = _tensor(get("Sigma_dt"), "Sigma_dt", (2, 2))
    want = _stein_doubling(torch.eye(2, dtype=F64) + 0.1 * A, 0.1 * G @ G.T)
    if float((S - want).abs().max()) > 1e-9 * float(want.abs().max()):
        raise Wrong("Sigma_dt is not Euler–Maruyama's stationary covariance for the exercise's A, G and dt = 0.1 "
                    "(relative tolerance 1e-9)")
    return "Sigma_dt, and em_stationary_cov on random stable A, G and dt of sizes " + ", ".join(cases)


def _rotation_em_moments(p, sigma=1.0, dt=0.01, steps=100):
    """E|x_N|^(2p) for Euler–Maruyama on dx = -(1/2) sigma^2 x dt + sigma J x dw, |x_0| = 1. A step multiplies x by
    a I + sigma dw J (a = 1 - sigma^2 dt / 2), and since J^T = -J, J^T J = I it multiplies |x|^2 by a^2 + sigma^2 dw^2,
    independently of the past: E|x_N|^(2p) = (E (a^2 + sigma^2 dt Z^2)^p)^N, expanded with E Z^(2j) = (2j - 1)!!."""
    a2, c = (1 - 0.5 * sigma**2 * dt) ** 2, sigma**2 * dt
    one = sum(math.comb(p, j) * a2 ** (p - j) * c**j * math.prod(range(1, 2 * j, 2)) for j in range(p + 1))
    return one**steps


def strat_to_ito(get, rng):
    fn = _function(get("ito_drift"), "ito_drift")
    for _ in range(2):
        n = int(torch.randint(3, 40, (), generator=rng))
        x = _uniform(rng, -5.0, 5.0, (n, 2))
        out = _tensor(_call(fn, "ito_drift", x.clone()), "ito_drift(x)", (n, 2))
        if not torch.allclose(out, -0.5 * x, rtol=1e-12, atol=1e-12):
            raise Wrong(f"on {n} random points (shape ({n}, 2)) ito_drift differs from the Ito drift "
                        f"(largest difference {float((out - (-0.5 * x)).abs().max()):.3g})")
    xT = _tensor(get("x_T"), "x_T", (20000, 2))
    mT = _tensor(get("mean_T"), "mean_T", (2,))
    n, steps, a = 20000, 100, 1 - 0.5 * 0.01
    m = xT.mean(0)
    if float((mT - m).abs().max()) > 1e-9:
        raise Wrong(f"mean_T = {mT.tolist()} is not the mean of x_T ({m.tolist()})")
    # the exact law of the scheme: E[x_N] = a^N x_0; the second moments from P <- a^2 P + sigma^2 dt J P J^T
    tr, diff = (a * a + 0.01) ** steps, (a * a - 0.01) ** steps
    mean = torch.tensor([a**steps, 0.0], dtype=F64)
    var = torch.tensor([0.5 * (tr + diff), 0.5 * (tr - diff)], dtype=F64) - mean**2
    z = (m - mean).abs() / (var / n).sqrt()
    if float(z.max()) > 6:
        raise Wrong(f"the paths average {[round(v, 4) for v in m.tolist()]}; Euler–Maruyama on the Ito form has "
                    f"E[x_N] = (1 - dt/2)^N x_0 = {[round(v, 4) for v in mean.tolist()]} (six standard errors)")
    r2 = (xT**2).sum(1)
    for p, name in ((1, "|x_T|^2"), (2, "|x_T|^4")):
        want, spread = _rotation_em_moments(p), math.sqrt(_rotation_em_moments(2 * p) - _rotation_em_moments(p) ** 2)
        got = float((r2**p).mean())
        if abs(got - want) > 6 * spread / math.sqrt(n):
            raise Wrong(f"the paths have mean {name} = {got:.4f}; Euler–Maruyama on the Ito form gives {want:.4f} "
                        f"(six standard errors: {6 * spread / math.sqrt(n):.4f}). One step multiplies |x|^2 by "
                        "(1 - dt/2)^2 + dw^2, with ONE scalar increment dw per path and step, and it turns x by J")
    return "ito_drift at random points; the mean, E|x_T|^2 and E|x_T|^4 of x_T against Euler–Maruyama's exact recursions"


# --- Chapter 2 -----------------------------------------------------------------------------------
def fp_ou(get, rng):
    grid = get("grid")
    if not hasattr(grid, "axes") or not hasattr(grid, "h"):
        raise Wrong("`grid` is not the chapter's grid")
    p = _tensor(get("p_final"), "p_final", tuple(grid.shape))
    x, h = grid.axes[0].detach().cpu().to(F64), float(grid.h[0])
    mass = float(p.sum()) * h
    if abs(mass - 1) > 1e-3:
        raise Wrong(f"p_final has mass {mass:.5f}, not 1")
    mean = float((x * p).sum()) * h
    var = float(((x - mean) ** 2 * p).sum()) * h
    if abs(mean - 0.5) > 1e-3 or abs(var - 0.25) > 1e-3:
        raise Wrong(f"p_final has mean {mean:.4f} and variance {var:.4f}; the stationary law is N(0.5, 0.25)")
    target = torch.exp(-(x - 0.5) ** 2 / 0.5) / math.sqrt(0.5 * math.pi)
    if float((p - target).abs().sum()) * h > 1e-3:
        raise Wrong("p_final is not the stationary Gaussian in L1 (grader's tolerance 1e-3)")
    return "mass, mean, variance and shape of N(mu, sigma^2 / (2 theta))"


def _upwind_rhs(p, v, D, h):
    J = v.clamp(min=0) * p[:-1] - (-v).clamp(min=0) * p[1:] - D * (p[1:] - p[:-1]) / h
    J = torch.cat([J.new_zeros(1), J, J.new_zeros(1)])
    return -(J[1:] - J[:-1]) / h


def fv_mass(get, rng):
    fn = _function(get("fv_rhs"), "fv_rhs")
    for _ in range(3):
        n = int(torch.randint(20, 80, (), generator=rng))
        p = torch.rand(n, generator=rng, dtype=F64) + 0.1
        v = 2 * torch.randn(n - 1, generator=rng, dtype=F64)
        D, h = _uniform(rng, 0.1, 1.0), _uniform(rng, 0.05, 0.3)
        out = _tensor(_call(fn, "fv_rhs", p.clone(), v.clone(), D, h), "fv_rhs(...)", (n,))
        want = _upwind_rhs(p, v, D, h)
        if abs(float(out.sum())) > 1e-9 * float(want.abs().sum()):
            raise Wrong(f"on a random p of {n} cells, sum dp/dt = {float(out.sum()):.3g}: mass is not conserved")
        if not torch.allclose(out, want, rtol=1e-9, atol=1e-9 * float(want.abs().max())):
            raise Wrong(f"on a random p ({n} cells, D = {D:.3f}, h = {h:.3f}) fv_rhs differs from the upwind scheme "
                        f"(largest difference {float((out - want).abs().max()):.3g})")
    return "equals the upwind scheme on random densities, velocities, D and h"


def ve_variance(get, rng):
    t = _number(get("t_half"), "t_half")
    want = math.log(math.sqrt(1 + 0.01**2) / 0.01) / math.log(50.0 / 0.01)
    _close(t, want, rel=1e-6, what="t_half")              # forgetting sigma_min^2 is 1e-5 away
    return "sigma(t)^2 - sigma_min^2 = 1 at t_half"


def subvp_gap(get, rng):
    t = _number(get("t_star"), "t_star")
    want = (-0.1 + math.sqrt(0.01 + 4 * 9.95 * math.log(2))) / (2 * 9.95)
    _close(t, want, rel=1e-6, what="t_star")
    return "B(t_star) = log 2"


def _killed_ou_closed(x, T, theta, sigma, c):
    """E[exp(-c int_0^T x_s^2 ds) | x_0 = x] for dx = -theta x dt + sigma dw: with y'' + 2 theta y' - 2 sigma^2 c y = 0,
    y(0) = 1, y'(0) = 0, i.e. y = e^(-theta T) (cosh(gT) + (theta/g) sinh(gT)), g = sqrt(theta^2 + 2 sigma^2 c), the
    answer is y^(-1/2) exp(-y' x^2 / (2 sigma^2 y)); written with tanh so that it cannot overflow."""
    g = math.sqrt(theta**2 + 2 * sigma**2 * c)
    th = math.tanh(g * T)
    log_y = -theta * T + g * T + math.log1p(math.exp(-2 * g * T)) - math.log(2) + math.log1p(theta / g * th)
    slope = c * th / (g + theta * th)                    # y' / (2 sigma^2 y)
    return torch.exp(-slope * x**2 - 0.5 * log_y)


def feynman_kac_ou(get, rng):
    fn = _function(get("fk_quadratic"), "fk_quadratic")
    cases = []
    for _ in range(4):
        theta, sigma = _uniform(rng, 0.1, 3.0), _uniform(rng, 0.3, 2.0)
        c, T = _uniform(rng, 0.1, 3.0), _uniform(rng, 0.05, 3.0)
        x = _uniform(rng, -3.0, 3.0, (4, 3))
        cases.append(f"theta = {theta:.3g}, sigma = {sigma:.3g}, c = {c:.3g}, T = {T:.3g}")
        out = _tensor(_call(fn, "fk_quadratic", x.clone(), T, theta, sigma, c), "fk_quadratic(x, T, theta, sigma, c)",
                      (4, 3))
        want = _killed_ou_closed(x, T, theta, sigma, c)
        gap = float(((out - want).abs() / want).max())
        if gap > 1e-8:
            raise Wrong(f"for {cases[-1]} and 12 random x in [-3, 3], fk_quadratic differs from "
                        f"E[exp(-c int_0^T x_s^2 ds) | x_0 = x] by up to {gap:.3g} (relative; the grader's tolerance "
                        "is 1e-8)")
    _close(_number(get("rate_fk"), "rate_fk"), (math.sqrt(5.0) - 1) / 2, rel=1e-8, what="rate_fk")
    return "fk_quadratic at random theta, sigma, c, T and x (" + "; ".join(cases) + "), and rate_fk"


def _power_law_density(x, nu, s0, s1):
    """The density proportional to (s0^2 + s1^2 x^2)^(-nu), nu > 1/2, normalised with the Beta integral
    int (1 + y^2)^(-nu) dy = sqrt(pi) Gamma(nu - 1/2) / Gamma(nu)."""
    log_z = math.log(s0 / s1) + 0.5 * math.log(math.pi) + math.lgamma(nu - 0.5) - math.lgamma(nu)
    return torch.exp(-nu * torch.log1p((s1 * x / s0) ** 2) - log_z)


def multiplicative_tails(get, rng):
    fn = _function(get("stationary_density"), "stationary_density")
    cases = []
    for lam in (0.0, 0.5, 1.0):
        s0, s1 = _uniform(rng, 0.2, 3.0), _uniform(rng, 0.2, 2.0)
        nu = _uniform(rng, 0.55, 4.0)
        while nu - 1 + lam <= 0.02:                  # theta = s1^2 (nu - 1 + lam) must be positive
            nu = _uniform(rng, 0.55, 4.0)
        theta = s1**2 * (nu - 1 + lam)
        scale = s0 / s1
        near = _uniform(rng, -5.0, 5.0, 6) * scale
        far = torch.exp(_uniform(rng, math.log(10.0), math.log(1e6), 6)) * scale * torch.sign(_uniform(rng, -1.0, 1.0, 6))
        x = torch.cat([near, far]).reshape(3, 4)
        cases.append(f"lam = {lam:g}, theta = {theta:.3g}, s0 = {s0:.3g}, s1 = {s1:.3g}")
        out = _tensor(_call(fn, "stationary_density", x.clone(), theta, s0, s1, lam),
                      "stationary_density(x, theta, s0, s1, lam)", (3, 4))
        want = _power_law_density(x, nu, s0, s1)
        gap = float(((out - want).abs() / want).max())
        if gap > 1e-8:
            raise Wrong(f"for {cases[-1]} (so nu = 1 - lam + theta / s1^2 = {nu:.3g}), at 12 random x out to "
                        f"{float(x.abs().max()):.3g}, stationary_density differs from the normalised stationary density "
                        f"by up to {gap:.3g} (relative; the grader's tolerance is 1e-8)")
    want = 1 - (2 / math.pi) * (math.atan(10.0) + 10.0 / 101.0)
    p_far = _number(get("p_far"), "p_far")
    if not abs(p_far - want) <= 1e-8 * want:                  # relative: p_far is of order 1e-4
        raise Wrong(f"p_far = {p_far:.10g} is not P(|x| > 10) for the Ito reading with theta = s0 = s1 = 1 (the "
                    "grader's tolerance is 1e-8, relative)")
    return ("stationary_density for the three readings at random parameters, out in the tails (" + "; ".join(cases)
            + "), and p_far")


# --- Chapter 3 -----------------------------------------------------------------------------------
def reverse_gaussian(get, rng):
    fn = _function(get("reverse_drift"), "reverse_drift")
    n = int(torch.randint(5, 30, (), generator=rng))
    x = _uniform(rng, -3.0, 3.0, (n, 1))
    for t in _uniform(rng, 0.02, 0.98, 4).tolist():
        out = _tensor(_call(fn, "reverse_drift", x.clone(), t), "reverse_drift(x, t)", (n, 1))
        want = _vp_beta(t) * x * (1 / _vp_v(t) - 0.5)
        if not torch.allclose(out, want, rtol=1e-5, atol=1e-6):          # float32 scalars give ~5e-8 relative
            raise Wrong(f"at t = {t:.4f} on {n} random points the drift differs from f - g^2 grad log p_t "
                        f"(largest difference {float((out - want).abs().max()):.3g})")
    return "f - g^2 grad log p_t at random points and times"


def _posterior_mean(xt, t, weights, means, stds):
    """E[x0 | x_t] for a Gaussian mixture with diagonal components, linear VP SDE (closed form)."""
    B = 0.1 * t + 9.95 * t * t
    a, s2 = math.exp(-B / 2), 1 - math.exp(-B)
    var = a**2 * stds**2 + s2                                    # (K, d)
    logw = torch.log(weights) - 0.5 * (((xt[:, None, :] - a * means) ** 2) / var + torch.log(2 * math.pi * var)).sum(-1)
    r = torch.softmax(logw, 1)                                   # (n, K)
    comp = means + a * stds**2 / var * (xt[:, None, :] - a * means)
    return (r[:, :, None] * comp).sum(1)


def tweedie(get, rng):
    fn = _function(get("denoise"), "denoise")
    weights = torch.tensor([0.45, 0.35, 0.2], dtype=F64)
    means = torch.tensor([[-1.0, -0.6], [1.0, 0.4], [-0.2, 1.3]], dtype=F64)
    stds = torch.tensor([[0.25, 0.25], [0.3, 0.2], [0.2, 0.35]], dtype=F64)
    n = int(torch.randint(3, 12, (), generator=rng))
    for t in _uniform(rng, 0.1, 0.9, 2).tolist():
        xt = 1.2 * torch.randn(n, 2, generator=rng, dtype=F64)
        out = _tensor(_call(fn, "denoise", xt.clone(), t), "denoise(x, t)", (n, 2))
        want = _posterior_mean(xt, t, weights, means, stds)
        if not torch.allclose(out, want, rtol=1e-6, atol=1e-6):
            raise Wrong(f"at t = {t:.3f} on {n} random points denoise is not E[x0 | x_t] "
                        f"(largest difference {float((out - want).abs().max()):.3g})")
    return "the exact posterior mean at random points and times"


def dsm_floor(get, rng):
    f = _number(get("floor"), "floor")
    B = 0.1 * 0.3 + 9.95 * 0.09
    s2 = 1 - math.exp(-B)
    _close(f, 2 * (1 / s2 - 1 / _vp_v(0.3)), rel=1e-9, what="floor")
    return "d (1/sigma^2 - 1/v_t) with d = 2"


def _score_term_full():
    """The score term of the KL bound for c = 0 (the integral of g^2/2 E|grad log p_t|^2), on a finer
    grid than the public check: 1601 times (Simpson) and 6001 points."""
    x = torch.linspace(-7.0, 7.0, 6001, dtype=F64)
    hx = float(x[1] - x[0])
    ts = torch.linspace(0.0, 1.0, 1601, dtype=F64)
    vals = []
    for t in ts.tolist():
        B = 0.1 * t + 9.95 * t * t
        a, s2 = math.exp(-B / 2), 1 - math.exp(-B)
        var = a**2 * 0.0625 + s2
        comps = torch.stack([torch.exp(-(x - a * m) ** 2 / (2 * var)) for m in (-1.0, 1.0)]) / math.sqrt(2 * math.pi * var)
        p = 0.5 * comps.sum(0)
        dp = 0.5 * sum(-(x - a * m) / var * c for m, c in zip((-1.0, 1.0), comps))
        vals.append(0.5 * _vp_beta(t) * float((dp**2 / p.clamp(min=1e-300)).sum()) * hx)
    v, h = torch.tensor(vals, dtype=F64), float(ts[1] - ts[0])
    return float(h / 3 * (v[0] + v[-1] + 4 * v[1:-1:2].sum() + 2 * v[2:-1:2].sum()))


def kl_terms(get, rng):
    a, b = _number(get("term_09"), "term_09"), _number(get("term_06"), "term_06")
    full = _score_term_full()
    for c, val, name in ((0.9, a, "term_09"), (0.6, b, "term_06")):
        want = (1 - c) ** 2 * full
        if abs(val - want) > 0.01 * want:      # the statement's 1 %: 6 standard errors of a 10^6-sample estimate
            raise Wrong(f"{name} = {val:.6g}, the grader's reference is {want:.6g} (tolerance 1 %, as the statement asks)")
    return "both score terms within 1 % of a fine-grid reference"


def _kramers_exact(m):
    """(tau, tau_K) for 1/2 N(-m, 1) + 1/2 N(m, 1) from -x_* to x_*, written independently of diffedu: with U(0) = 0
    the inner integral of Eq. (eq-mfpt) is closed, int_{-inf}^y e^-U = sqrt(2 pi)/2 e^(m^2/2) (Phi(y - m) + Phi(y + m)),
    which leaves one smooth integral over [-x_*, x_*]: Simpson's rule on 400 001 points, in logarithms."""
    x = m
    for _ in range(200):
        x = m * math.tanh(m * x)
    y = torch.linspace(-x, x, 400001, dtype=F64)
    log_cosh = torch.logaddexp(m * y, -m * y) - math.log(2)
    log_f = (y**2 / 2 - log_cosh + m * m / 2 + math.log(math.sqrt(2 * math.pi) / 2)
             + torch.log(torch.special.ndtr(y - m) + torch.special.ndtr(y + m)))
    top = float(log_f.max())
    w = torch.ones_like(y)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    tau = math.exp(top) * float((w * torch.exp(log_f - top)).sum()) * float(y[1] - y[0]) / 3
    dU = m * x + math.log1p(math.exp(-2 * m * x)) - math.log(2) - x * x / 2
    return tau, 2 * math.pi / math.sqrt((1 - m * m + x * x) * (m * m - 1)) * math.exp(dU)


def kramers(get, rng):
    fn = _function(get("hop_times"), "hop_times")
    ms = [_uniform(rng, 1.5, 2.0), _uniform(rng, 2.0, 4.0), _uniform(rng, 4.0, 6.0)]   # x_* differs from m below 2.5
    for m in ms:
        out = _call(fn, "hop_times", m)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise Wrong(f"`hop_times({m:.4f})` must return a pair (tau, tau_kramers) of numbers")
        tau, tau_k = _number(out[0], "hop_times(m)[0]"), _number(out[1], "hop_times(m)[1]")
        want, want_k = _kramers_exact(m)
        _close(tau, want, rel=1e-6, what=f"the exact tau for m = {m:.4f}")            # the statement's accuracy
        _close(tau_k, want_k, rel=1e-8, what=f"Kramers' tau_K for m = {m:.4f}")
    _close(_number(get("kramers_limit"), "kramers_limit"), math.sqrt(math.pi / 2), rel=1e-9, what="kramers_limit")
    return "tau and tau_K at three random separations m in [1.5, 6], and the limit sqrt(pi/2)"


def ism_quartic(get, rng):
    fn = _function(get("ism_fit"), "ism_fit")
    for k in range(4):
        n = int(torch.randint(6, 80, (), generator=rng))
        z = torch.randn(n, generator=rng, dtype=F64)
        if k % 2:                                   # two bumps, like a double well
            signs = 2.0 * torch.randint(0, 2, (n,), generator=rng, dtype=F64) - 1
            x = _uniform(rng, 0.5, 1.5) * signs + _uniform(rng, 0.1, 0.4) * z
        else:
            x = _uniform(rng, 0.3, 2.0) * z + _uniform(rng, -0.5, 0.5)
        out = _tensor(_call(fn, "ism_fit", x.clone()), "ism_fit(x)", (2,))
        m2, m4, m6 = (float((x**j).mean()) for j in (2, 4, 6))
        det = m2 * m6 - m4 * m4
        want = torch.tensor([(m6 - 3 * m2 * m4) / det, (3 * m2 * m2 - m4) / det], dtype=F64)
        if not torch.allclose(out, want, rtol=1e-9, atol=1e-11 * float(want.abs().max())):
            raise Wrong(f"on {n} random data points ism_fit(x) = ({float(out[0]):.6g}, {float(out[1]):.6g}) is not the "
                        "minimiser of the empirical ISM objective of s(x) = -theta_1 x - theta_2 x^3")
    return "the normal equations of implicit score matching on random data sets (one and two bumps)"


def _snr_rho(t):
    r""":math:`\rho(t) = \log(\sigma^2/\alpha^2) = \log(e^{B(t)} - 1)`, :math:`B = 0.1t + 9.95t^2` (the linear VP schedule)."""
    return math.log(math.expm1(0.1 * t + 9.95 * t * t))


def _snr_time(u):
    r"""The inverse distribution function of :math:`\pi\propto g^2/\sigma^2` on :math:`[10^{-3}, 1]`, closed form:
    :math:`\rho` uniform, :math:`B = \log(1 + e^\rho)`, :math:`t = 2B/(0.1 + \sqrt{0.01 + 39.8B})`."""
    r0, r1 = _snr_rho(1e-3), _snr_rho(1.0)
    rho = r0 + u * (r1 - r0)
    B = torch.where(rho > 0, rho + torch.log1p(torch.exp(-rho.abs())), torch.log1p(torch.exp(-rho.abs())))
    return 2 * B / (0.1 + torch.sqrt(0.01 + 39.8 * B))


def importance_t(get, rng):
    fn = _function(get("sample_t"), "sample_t")
    k = int(torch.randint(5, 40, (), generator=rng))
    u = torch.rand(2, k, generator=rng, dtype=F64)
    u[0, 0], u[1, 0] = 0.0, 1.0                                   # the two ends: t_min and T
    out = _tensor(_call(fn, "sample_t", u.clone()), "sample_t(u)", (2, k))
    want = _snr_time(u)
    if not torch.allclose(out, want, rtol=1e-9, atol=0.0):
        raise Wrong(f"on {2 * k} random u (a (2, {k}) tensor, with u = 0 and u = 1) sample_t differs from the inverse "
                    f"distribution function of g^2/sigma^2 (largest relative difference "
                    f"{float(((out - want) / want).abs().max()):.3g}); compute in float64")
    late = (_snr_rho(1.0) - _snr_rho(0.5)) / (_snr_rho(1.0) - _snr_rho(1e-3))
    _close(_number(get("frac_late"), "frac_late"), late, rel=1e-9, what="frac_late")
    return "the inverse distribution function at random u of any shape, and the fraction above t = 0.5"


# --- Chapter 4 -----------------------------------------------------------------------------------
def hbar_gaussian(get, rng):
    u = _numbers(get("u_final"), "u_final", 4)
    want = _vp_v(0.01)
    for h, val in zip((0, 0.5, 1, 2), u):
        _close(val, want, rel=1e-6, what=f"u(t_min) for hbar = {h}")
    return "every hbar returns the data's variance at t_min"


def pf_map(get, rng):
    x = _tensor(get("x_end"), "x_end", (5, 1))
    want = torch.linspace(-2, 2, 5, dtype=F64)[:, None] * math.sqrt(_vp_v(0.01) / _vp_v(1.0))
    if not torch.allclose(x, want, atol=2e-5, rtol=0):
        raise Wrong(f"x_end differs from x_T sqrt(v_tmin / v_T) by {float((x - want).abs().max()):.3g} "
                    "(the grader's tolerance is 2e-5: use enough steps)")
    return "x_T sqrt(v_tmin / v_T)"


def likelihood_gaussian(get, rng):
    fn = _function(get("logq"), "logq")
    n = int(torch.randint(3, 20, (), generator=rng))
    x0 = _uniform(rng, -1.0, 1.0, n)
    out = _tensor(_call(fn, "logq", x0.clone()), "logq(x0)", (n,))
    r = _vp_v(1.0) / _vp_v(0.01)
    want = -0.5 * x0**2 * r - 0.5 * math.log(2 * math.pi) + 0.5 * math.log(r)
    if not torch.allclose(out, want, rtol=0, atol=1e-8):
        raise Wrong(f"on {n} random points logq differs from log pi(x_T) + log|dx_T/dx0| "
                    f"by {float((out - want).abs().max()):.3g}")
    return "the closed-form likelihood at random points"


def hutchinson(get, rng):
    e = _tensor(get("est"), "est", (100000,))
    A = torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 1.0], [0.0, -3.0, 2.0]], dtype=F64)
    signs = torch.tensor([[(k >> i & 1) * 2 - 1 for i in range(3)] for k in range(8)], dtype=F64)
    support = torch.unique(((signs @ A) * signs).sum(1))
    gap = (e[:, None] - support[None, :]).abs().min(1).values
    if float(gap.max()) > 1e-9:
        raise Wrong("est takes values that no Rademacher probe eps^T A eps can take: use random signs +-1")
    m, v = float(e.mean()), float(e.var())
    if abs(m - 2.0) > 6 * math.sqrt(v / e.numel()):
        raise Wrong(f"the probes average {m:.4f}, not tr A = 2")
    target = float(sum((A[i, j] + A[j, i]) ** 2 for i in range(3) for j in range(i + 1, 3)))
    if abs(v - target) > 6 * math.sqrt((float(((e - m) ** 4).mean()) - v**2) / e.numel()):
        raise Wrong(f"the probes have variance {v:.3f}, not sum_(i<j) (A_ij + A_ji)^2 = {target:g}")
    return "Rademacher support, mean tr A and Hutchinson's variance"


def _vp_linear(t, beta_min, beta_max):
    """alpha, sigma of the VP SDE with beta = beta_min + t (beta_max - beta_min), in closed form."""
    B = beta_min * t + 0.5 * (beta_max - beta_min) * t * t
    return math.exp(-0.5 * B), math.sqrt(-math.expm1(-B))


def _mixture_score(weights, means, std, beta_min, beta_max):
    """The exact score of sum_k w_k N(m_k, std_k^2 I) under that VP SDE; t a number or a tensor (n,)."""
    def score(x, t):
        tt = torch.as_tensor(t, dtype=F64).reshape(-1)
        B = beta_min * tt + 0.5 * (beta_max - beta_min) * tt**2
        alpha, var0 = torch.exp(-0.5 * B), -torch.expm1(-B)
        v = alpha[:, None] ** 2 * std[None, :] ** 2 + var0[:, None]                       # (n or 1, K)
        diff = x[:, None, :] - alpha[:, None, None] * means[None]                         # (n, K, d)
        logw = torch.log(weights)[None] - 0.5 * (diff**2).sum(-1) / v - 0.5 * x.shape[1] * torch.log(v)
        r = torch.softmax(logw, dim=1)
        return -(r[:, :, None] * diff / v[:, :, None]).sum(1)
    return score


def ddim_point_mass(get, rng):
    import diffedu as de

    fn = _function(get("ddim_step"), "ddim_step")
    for case in range(6):
        beta_min, beta_max = _uniform(rng, 0.05, 0.5), _uniform(rng, 8.0, 25.0)
        sde = de.VPSDE(de.Linear(beta_min, beta_max))
        n, d, K = (int(torch.randint(lo, hi, (), generator=rng)) for lo, hi in ((3, 12), (1, 4), (1, 4)))
        means = _uniform(rng, -2.0, 2.0, K * d).reshape(K, d)
        std = _uniform(rng, 0.05, 0.6, K) if case else torch.zeros(1, dtype=F64) + 1e-300   # case 0: a single point
        if not case:
            means = means[:1]
        weights = _uniform(rng, 0.2, 1.0, means.shape[0])
        score = _mixture_score(weights / weights.sum(), means, std, beta_min, beta_max)
        t = _uniform(rng, 0.1, 1.0)
        t_next = 0.01 if not case else _uniform(rng, 0.01, t - 0.01)
        eta = 0.0 if case < 3 else _uniform(rng, 0.1, 1.0)
        x = _uniform(rng, -2.5, 2.5, n * d).reshape(n, d)
        xi = torch.randn(n, d, generator=rng, dtype=F64)
        out = _tensor(_call(fn, "ddim_step", sde, score, x.clone(), t, t_next, eta, xi.clone() if eta else None),
                      "ddim_step(...)", (n, d))
        (a, s), (a2, s2) = _vp_linear(t, beta_min, beta_max), _vp_linear(t_next, beta_min, beta_max)
        z_hat = -s * score(x, t)
        var = eta**2 * (s2**2 / s**2) * (1 - a**2 / a2**2)
        want = a2 * (x - s * z_hat) / a + math.sqrt(s2**2 - var) * z_hat + (math.sqrt(var) * xi if eta else 0.0)
        if not torch.allclose(out, want, rtol=1e-9, atol=1e-9):
            what = "for data at a single point (one step must be exact)" if not case else f"with eta = {eta:.3f}"
            raise Wrong(f"ddim_step differs from Eq. (eq-ddim-update) {what} on the grader's schedule "
                        f"(beta from {beta_min:.3f} to {beta_max:.2f}, t = {t:.3f} -> {t_next:.3f}) by "
                        f"{float((out - want).abs().max()):.3g}")
    return "the DDIM step on random schedules, mixtures, times and eta, and exact in one step for a single point"


def cov_linear_flow(get, rng):
    fn = _function(get("logq_linear"), "logq_linear")
    for _ in range(3):
        d = int(torch.randint(2, 6, (), generator=rng))
        n = int(torch.randint(3, 12, (), generator=rng))
        B = 0.5 * torch.randn(d, d, generator=rng, dtype=F64)
        t = _uniform(rng, 0.1, 1.2)
        x = 1.5 * torch.randn(n, d, generator=rng, dtype=F64)
        out = _tensor(_call(fn, "logq_linear", x.clone(), t, B.clone()), "logq_linear(x, t, B)", (n,))
        M = torch.linalg.matrix_exp((t + t * t / 2) * B)        # x_t = M x_0: q_t is N(0, M M^T)
        z = torch.linalg.solve(M, x.T).T
        want = -0.5 * (z**2).sum(1) - 0.5 * d * math.log(2 * math.pi) - torch.linalg.slogdet(M)[1]
        gap = float(((out - want).abs() / want.abs().clamp(min=1.0)).max())
        if not gap <= 1e-8:
            raise Wrong(f"for d = {d}, t = {t:.4f} and the grader's random B, logq_linear differs from the log-density "
                        f"of the push-forward N(0, M M^T), M = exp((t + t^2/2) B), by {gap:.3g} (relative)")
    return "log q_t of the linear flow for random d, B, t and points"


# --- Chapter 5 -----------------------------------------------------------------------------------
def ou_action(get, rng):
    a, b = _number(get("A_ito"), "A_ito"), _number(get("A_strat"), "A_strat")
    if not 0 <= a < 1e-4:
        raise Wrong(f"A_ito = {a:.3g}: the mean path solves x' = f, so its Ito action is 0 up to the step")
    if abs(b + 1.0) > 1e-4:
        raise Wrong(f"A_strat = {b:.6g}: the Stratonovich action of the mean path tends to (1/2) int div f dt = -theta T / 2 = -1")
    return "Ito action 0, Stratonovich action -theta T / 2"


def jacobian_step(get, rng):
    lj = _tensor(get("log_jac"), "log_jac", (21, 21))
    xs = torch.linspace(-1.5, 1.5, 21, dtype=F64)
    xbar = 0.5 * (xs[:, None] + xs[None, :])
    want = torch.log1p(-0.025 * (1 - 3 * xbar**2))
    if not torch.allclose(lj, want, rtol=0, atol=1e-12):
        raise Wrong("log_jac is not log(1 - a eps f'(x_bar)) with rows x_n and columns x_(n+1)")
    return "the exact log-Jacobian of the step"


def classical_gaussian(get, rng):
    m = _tensor(get("mean_path_small"), "mean_path_small", (501,))
    sp = _tensor(get("spread_small"), "spread_small", (501,))
    hbar = 1e-4
    ts = [1.0 - 0.99 * k / 500 for k in range(501)]
    classical = torch.tensor([1.5 * math.sqrt(_vp_v(t) / _vp_v(1.0)) for t in ts], dtype=F64)
    if float((m - classical).abs().max()) > 2e-2:
        raise Wrong("the mean path is not the probability-flow path x_T sqrt(v_t / v_T)")
    if float(sp[0]) != 0.0:
        raise Wrong("spread_small[0] is not 0: every path starts at x_T = 1.5")
    var = [0.0]
    for t, t_next in zip(ts[:-1], ts[1:]):
        dt, beta = t_next - t, _vp_beta(t)
        J = -0.5 * beta + 0.5 * (1 + hbar) * beta / _vp_v(t)
        var.append((1 + J * dt) ** 2 * var[-1] + hbar * beta * abs(dt))
    want = torch.tensor(var, dtype=F64).sqrt()
    mean = [1.5]                                 # the Euler chain is linear: its mean obeys m_(k+1) = (1 + J_k dt) m_k
    for t, t_next in zip(ts[:-1], ts[1:]):
        beta = _vp_beta(t)
        mean.append((1 + (-0.5 * beta + 0.5 * (1 + hbar) * beta / _vp_v(t)) * (t_next - t)) * mean[-1])
    gap = (m - torch.tensor(mean, dtype=F64)).abs()
    if bool((gap > 6 * want / math.sqrt(400) + 1e-9).any()):
        k = int(gap.argmax())
        raise Wrong(f"at step {k} the mean path is {float(gap[k]):.3g} from the mean of the Euler chain, more than six "
                    "standard errors: 400 paths, 500 Euler steps from t = 1 to 0.01, hbar = 1e-4")
    ratio = sp[50::50] / want[50::50]
    if not bool(((ratio - 1).abs() < 6 / math.sqrt(800)).all()):
        raise Wrong("the spread is not the sqrt(hbar) fluctuation at every 50th step (ratios "
                    f"{[round(float(r), 3) for r in ratio]})")
    return "the classical path, and sqrt(hbar) fluctuations at ten times"


def hbar_coefficient(get, rng):
    _close(_number(get("hbar_star"), "hbar_star"), 1.0, rel=1e-3, what="hbar_star")   # LBFGS in float32: 5e-4
    return "hbar = 1 minimises (1 + hbar)^2 / (8 hbar)"


def fluctuation_gauss(get, rng):
    fn = _function(get("fluct_var_gauss"), "fluct_var_gauss")
    B = lambda s: 0.1 * s + 9.95 * s * s                         # int_0^s beta, beta = 0.1 + 19.9 s
    for _ in range(3):
        v0 = _uniform(rng, 0.01, 4.0)
        t = torch.cat([torch.tensor([0.0, 1.0], dtype=F64), _uniform(rng, 0.0, 1.0, 18)]).reshape(4, 5)
        got = _tensor(_call(fn, "fluct_var_gauss", t.clone(), v0), "fluct_var_gauss(t, v0)", (4, 5))
        a2 = torch.exp(-B(t))
        v = a2 * v0 + 1 - a2
        vT = math.exp(-B(1.0)) * v0 + 1 - math.exp(-B(1.0))
        want = v * (-B(t) - torch.log(v) + B(1.0) + math.log(vT))    # v_t log(alpha_t^2 v_T / (alpha_T^2 v_t))
        if not torch.allclose(got, want, rtol=1e-8, atol=1e-12):
            k = int((got - want).abs().argmax())
            raise Wrong(f"fluct_var_gauss(t, {v0:.4f}) = {float(got.reshape(-1)[k]):.8g} at t = {float(t.reshape(-1)[k]):.4f}; "
                        "C_t solves dC/dt = 2 J C - beta with C_1 = 0 and J = beta (1/v_t - 1) / 2 (C vanishes at t = 1 and "
                        "does not depend on x_T)")
    return "the closed-form fluctuation variance, for random v0 and times, any tensor shape"



def _fp_gap_reference(U, D, L, n):
    """The gap of the detailed-balance discretisation (see the module docstring), computed independently here."""
    x = torch.linspace(-L, L, n, dtype=torch.float64)
    h = float(x[1] - x[0])
    u = U(x)
    du = u[1:] - u[:-1]
    diag = torch.zeros(n, dtype=torch.float64)
    diag[:-1] += torch.exp(-du / (2 * D))
    diag[1:] += torch.exp(du / (2 * D))
    S = (D / h**2) * (torch.diag(diag) - torch.diag(torch.ones(n - 1, dtype=torch.float64), 1)
                      - torch.diag(torch.ones(n - 1, dtype=torch.float64), -1))
    lam = torch.linalg.eigvalsh(S)
    return float(lam[1] - lam[0])


def schrodinger_quartic(get, rng):
    fn = _function(get("quartic_vs"), "quartic_vs")
    cases = []
    for _ in range(4):
        D = math.exp(_uniform(rng, math.log(0.05), math.log(5.0)))
        x = _uniform(rng, -3.0, 3.0, (2, 5))
        cases.append(f"D = {D:.3g}")
        out = _tensor(_call(fn, "quartic_vs", x.clone(), D), "quartic_vs(x, D)", (2, 5))
        want = x**6 / (4 * D) - 1.5 * x**2
        gap = float(((out - want).abs() / (1 + want.abs())).max())
        if gap > 1e-10:
            raise Wrong(f"for {cases[-1]} and 10 random x in [-3, 3], quartic_vs differs from U'^2/4D - U''/2 of "
                        f"U = x^4/4 by up to {gap:.3g} (relative; the grader's tolerance is 1e-10)")
    # lambda_1(D) = c sqrt(D) (part c); the reference at D = 1/2 from two grids of the detailed-balance chain
    U = lambda y: y**4 / 4
    ref = (4 * _fp_gap_reference(U, 0.5, 4.0, 1001) - _fp_gap_reference(U, 0.5, 4.0, 501)) / 3
    _close(_number(get("gap_quartic"), "gap_quartic"), ref, rel=1e-5, what="gap_quartic")
    return "quartic_vs at random D and x (" + "; ".join(cases) + "), and gap_quartic to 1e-5"


# --- Chapter 6 -----------------------------------------------------------------------------------
def _gauss_model():
    from diffedu.wkb import GaussianModel1D

    return GaussianModel1D(v0=0.5, eps=0.1, beta=2.0, T=3.0, prior_var=1.0)


def wkb_consistent(get, rng):
    import diffedu as de
    from diffedu.wkb import first_order_correction, mixture_example

    c = _tensor(get("corr_B"), "corr_B", (4,))
    sde, _mixture, _score = mixture_example(eps=0.05)
    mixture_B = de.GaussianMixture([0.7, 0.3], [[-1.0], [1.2]], [0.5, 0.4])
    x = torch.tensor([[-1.5], [-1.0], [0.0], [1.2]], dtype=F64)
    want = first_order_correction(sde, mixture_B.score_fn(sde), x, rtol=1e-9, atol=1e-9).correction.detach().to(F64)
    if float((c - want).abs().max()) > 5e-4:          # method="finite_difference" is 1e-4 off
        raise Wrong(f"corr_B = {[round(v, 5) for v in c.tolist()]} differs from the grader's reference "
                    f"{[round(v, 5) for v in want.tolist()]} by more than 5e-4: use mixture B's exact score "
                    "(weights 0.7, 0.3) at the four points")
    return "the corrections of mixture B's exact score, to 5e-4: only the prior mismatch remains"


def gauss_slope_sign(get, rng):
    from diffedu.wkb import GaussianModel1D

    s = _numbers(get("slopes"), "slopes", 4)
    for eps, val in zip((-0.2, -0.1, 0.1, 0.2), s):
        want = GaussianModel1D(v0=0.5, eps=eps, beta=2.0, T=3.0, prior_var=1.0).nll_slope(steps=16000)
        if abs(val - want) > 1e-5 * (1 + abs(want)) or (val > 0) != (want > 0):
            raise Wrong(f"the slope for eps = {eps} is {val:.8g}; the grader's reference is {want:.8g}")
    return "dNLL/dhbar at 0 for all four eps, to 1e-5"


def score_tmin(get, rng):
    s = _tensor(get("sigma0"), "sigma0", (3,))
    h = _tensor(get("H0"), "H0", (3,))
    u, _ = _gauss_model().variance(0.0, steps=16000)
    xs = torch.tensor([-1.0, 0.5, 2.0], dtype=F64)
    if float((s + xs / u).abs().max()) > 1e-4 or float((h + 1 / u).abs().max()) > 1e-4:
        raise Wrong("sigma0 / H0 are not -x/u and -1/u at the three points (tolerance 1e-4)")
    return "score -x/u and Hessian -1/u at t_min, against a 16 000-step reference"


def gibbs_crossing(get, rng):
    hc, nc = _number(get("hbar_c"), "hbar_c"), _number(get("nll_at_c"), "nll_at_c")
    m = _gauss_model()
    want = (m.entropy() - m.nll(0.0)) / m.nll_slope(steps=16000)
    _close(hc, want, rel=1e-5, what="hbar_c")
    _close(nc, m.nll(hc), rel=1e-6, what="nll_at_c")
    return "the crossing of the first-order line with the entropy, and the exact NLL there"


# --- Chapter 7 -----------------------------------------------------------------------------------
def linear_velocity(get, rng):
    fn = _function(get("linear_velocity"), "linear_velocity")
    for _ in range(4):
        n, d = int(torch.randint(2, 20, (), generator=rng)), int(torch.randint(1, 4, (), generator=rng))
        x = 3 * torch.randn(n, d, generator=rng, dtype=F64)
        s = 3 * torch.randn(n, d, generator=rng, dtype=F64)
        t = _uniform(rng, 0.01, 0.995)
        out = _tensor(_call(fn, "linear_velocity", x.clone(), t, s.clone()), "linear_velocity(x, t, score)", (n, d))
        want = -x / (1 - t) - t / (1 - t) * s
        if not torch.allclose(out, want, rtol=1e-6, atol=1e-6):          # float32 answers are right answers
            raise Wrong(f"at t = {t:.4f} on {n} random points in {d}-D the velocity is not -x/(1-t) - t s/(1-t) "
                        f"(largest difference {float((out - want).abs().max()):.3g})")
    return "the linear path's velocity at random points, dimensions and times"


def bridge_covariance(get, rng):
    fn = _function(get("bridge_cov"), "bridge_cov")
    cases = [(_uniform(rng, 0.01, 5.0), _uniform(rng, 0.01, 5.0), 10 ** _uniform(rng, -6.0, 8.0)) for _ in range(6)]
    cases += [(_uniform(rng, 0.01, 5.0), _uniform(rng, 0.01, 5.0), 0.0)]
    for v0, v1, eps in cases:
        c = _number(_call(fn, "bridge_cov", v0, v1, eps), "bridge_cov(v0, v1, eps)")
        want = 2 * v0 * v1 / (eps + math.sqrt(eps * eps + 4 * v0 * v1))
        if not abs(c - want) <= 1e-12 * want:
            raise Wrong(f"bridge_cov({v0:.4g}, {v1:.4g}, {eps:.4g}) = {c:.15g} does not solve c^2 + eps c = v0 v1 to "
                        "1e-12 relative")
    return "c at random variances and eps from 1e-6 to 1e8 (and 0), to 1e-12"


def _sinkhorn_reference(mu, nu, x, eps, sweeps):
    logk = -(x[None, :] - x[:, None]) ** 2 / (2 * eps)
    log_b = torch.zeros_like(nu)
    for _ in range(sweeps):
        log_a = torch.log(mu) - torch.logsumexp(logk + log_b[None, :], 1)
        log_b = torch.log(nu) - torch.logsumexp(logk + log_a[:, None], 0)
    return torch.exp(log_a[:, None] + logk + log_b[None, :])


def sinkhorn_plain(get, rng):
    fn = _function(get("sinkhorn_plain"), "sinkhorn_plain")
    n = int(torch.randint(40, 90, (), generator=rng))
    x = torch.linspace(-4.0, 4.0, n, dtype=F64)
    mu = torch.rand(n, generator=rng, dtype=F64) + 0.05
    nu = torch.exp(-(x - _uniform(rng, -1.0, 1.0)) ** 2 / _uniform(rng, 0.5, 3.0)) + 1e-3
    mu, nu = mu / mu.sum(), nu / nu.sum()
    eps, sweeps = _uniform(rng, 0.3, 2.0), int(torch.randint(3, 30, (), generator=rng))
    out = _tensor(_call(fn, "sinkhorn_plain", mu.clone(), nu.clone(), x.clone(), eps, sweeps),
                  "sinkhorn_plain(mu, nu, x, eps, sweeps)", (n, n))
    want = _sinkhorn_reference(mu, nu, x, eps, sweeps)
    if not torch.allclose(out, want, rtol=1e-8, atol=1e-12):
        raise Wrong(f"after {sweeps} sweeps on {n} random masses (eps = {eps:.3f}) the coupling differs from "
                    f"Sinkhorn's (largest difference {float((out - want).abs().max()):.3g}); start from b = 1, update a "
                    "then b once per sweep")
    return f"the coupling after {sweeps} sweeps on random masses, sweep by sweep"


def ancestral_step(get, rng):
    fn = _function(get("ancestral_var"), "ancestral_var")
    for _ in range(5):
        a2 = _uniform(rng, 0.3, 1.0)
        a = a2 * _uniform(rng, 0.3, 0.95)                     # alpha falls with t
        s2 = _uniform(rng, 0.05, 1.5)
        s = math.sqrt((a / a2) ** 2 * s2**2 + _uniform(rng, 0.01, 1.0))   # any path with a positive increment
        out = _number(_call(fn, "ancestral_var", a, s, a2, s2), "ancestral_var(...)")
        _close(out, s2**2 * (s**2 - (a / a2) ** 2 * s2**2) / s**2, rel=1e-10, what="ancestral_var")
    _close(_number(get("ratio_linear"), "ratio_linear"), 1.0, rel=1e-4, what="ratio_linear")
    return "the ancestral variance on random (non-VP) paths, and the ratio 1 on the linear path"


# label -> (points, names the exercise asks for, check)
EXERCISES = {
    "ex-ito-w3": (1, ("lhs", "rhs"), ito_w3),
    "ex-em-stationary": (1, ("x_em",), em_stationary),
    "ex-heun-strat": (1, ("heun_plain",), heun_strat),
    "ex-perrin-budget": (1, ("K_needed", "rel_errors"), perrin_budget),
    "ex-lyapunov-2d": (1, ("em_stationary_cov", "Sigma_dt"), lyapunov_2d),
    "ex-strat-to-ito": (1, ("ito_drift", "x_T", "mean_T"), strat_to_ito),
    "ex-fp-ou": (1, ("p_final", "grid"), fp_ou),
    "ex-fv-mass": (1, ("fv_rhs",), fv_mass),
    "ex-ve-variance": (1, ("t_half",), ve_variance),
    "ex-subvp-gap": (1, ("t_star",), subvp_gap),
    "ex-feynman-kac-ou": (1, ("fk_quadratic", "rate_fk"), feynman_kac_ou),
    "ex-multiplicative-tails": (1, ("stationary_density", "p_far"), multiplicative_tails),
    "ex-reverse-gaussian": (1, ("reverse_drift",), reverse_gaussian),
    "ex-tweedie": (1, ("denoise",), tweedie),
    "ex-dsm-floor": (1, ("floor",), dsm_floor),
    "ex-kl-terms": (1, ("term_09", "term_06"), kl_terms),
    "ex-kramers": (1, ("hop_times", "kramers_limit"), kramers),
    "ex-ism-fit": (1, ("ism_fit",), ism_quartic),
    "ex-importance-t": (1, ("sample_t", "frac_late"), importance_t),
    "ex-hbar-gaussian": (1, ("u_final",), hbar_gaussian),
    "ex-pf-map": (1, ("x_end",), pf_map),
    "ex-likelihood-gaussian": (1, ("logq",), likelihood_gaussian),
    "ex-hutchinson-variance": (1, ("est",), hutchinson),
    "ex-ddim-point-mass": (1, ("ddim_step",), ddim_point_mass),
    "ex-cov-linear-flow": (1, ("logq_linear",), cov_linear_flow),
    "ex-ou-action": (1, ("A_ito", "A_strat"), ou_action),
    "ex-jacobian-step": (1, ("log_jac",), jacobian_step),
    "ex-classical-gaussian": (1, ("mean_path_small", "spread_small"), classical_gaussian),
    "ex-hbar-coefficient": (1, ("hbar_star",), hbar_coefficient),
    "ex-fluctuation-gaussian": (1, ("fluct_var_gauss",), fluctuation_gauss),
    "ex-schrodinger-quartic": (1, ("quartic_vs", "gap_quartic"), schrodinger_quartic),
    "ex-wkb-consistent": (1, ("corr_B",), wkb_consistent),
    "ex-gauss-slope-sign": (1, ("slopes",), gauss_slope_sign),
    "ex-score-tmin": (1, ("sigma0", "H0"), score_tmin),
    "ex-gibbs-crossing": (1, ("hbar_c", "nll_at_c"), gibbs_crossing),
    "ex-linear-velocity": (1, ("linear_velocity",), linear_velocity),
    "ex-bridge-covariance": (1, ("bridge_cov",), bridge_covariance),
    "ex-sinkhorn-plain": (1, ("sinkhorn_plain",), sinkhorn_plain),
    "ex-ancestral-step": (1, ("ancestral_var", "ratio_linear"), ancestral_step),
}


def grade(label: str, namespace: dict, salt: int) -> dict:
    """Run the hidden check of one exercise on a namespace: ``{"label", "passed", "reason"}``."""
    points, names, check = EXERCISES[label]
    missing = [n for n in names if n not in namespace]
    if missing:
        return {"label": label, "passed": False,
                "reason": "not defined: " + ", ".join(f"`{n}`" for n in missing) + " (the exercise asks for "
                          + ", ".join(f"`{n}`" for n in names) + ")"}
    rng = torch.Generator().manual_seed(zlib.crc32(f"{label}/{salt}".encode()))
    try:
        message = check(namespace.__getitem__, rng)
    except Wrong as err:
        return {"label": label, "passed": False, "reason": " ".join(str(err).split())}
    return {"label": label, "passed": True, "reason": message}


def report(label: str, namespace: dict, salt: int) -> None:
    """Publish the result of :func:`grade` as a display message of the MIME type ``MIME`` (read back by
    the grader; it does not go through ``sys.stdout``, which a notebook may have replaced)."""
    from IPython.display import publish_display_data

    result = grade(label, namespace, salt)
    publish_display_data({MIME: json.dumps(result), "text/plain": f"hidden check {label}: "
                          + ("passed" if result["passed"] else "failed")})
