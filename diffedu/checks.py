r"""Answer checks for the exercises (homework).

Each ``check_*`` function verifies one exercise's answer against a reference that it computes
itself — from :mod:`diffedu` or a closed form — and never prints or returns that reference.
On success it prints a one-line confirmation and returns ``True``; on a wrong answer it raises
``AssertionError`` with a hint; on an answer of the wrong kind or shape it raises
``TypeError``/``ValueError`` saying what was expected.  Tolerances are generous enough for any
correct method and seed (at least five Monte-Carlo standard errors).
"""

from __future__ import annotations

import math

import torch

from . import _checks
from .device import make_generator

_SEED = 97531


def _ok(message: str) -> bool:
    print(f"✔ correct: {message}")
    return True


def _fail(message: str, hint: str):
    raise AssertionError(f"✘ {message}\n  Hint: {hint}")


def _number(value, name: str) -> float:
    try:
        return _checks.real(value, name)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{name} must be a single finite number: {err}") from None


def _tensor(value, name: str, shape=None) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(value.shape)}")
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return value.detach().to("cpu", torch.float64)


def _function(value, name: str, signature: str):
    if not callable(value):
        raise TypeError(f"{name} must be a function {signature}, got {type(value).__name__}")
    return value


def _mean_se(x):
    return float(x.mean()), float(x.std() / math.sqrt(x.numel()))


# --- Chapter 1 ------------------------------------------------------------------------------------
def check_ito_w3(lhs, rhs, *, steps: int = 4096, T: float = 1.0) -> bool:
    r"""Exercise ``ex-ito-w3``: the left-point sums of :math:`\int w^2\,dw` and :math:`w^3/3 - \int w\,dt`."""
    lhs = _tensor(lhs, "lhs")
    rhs = _tensor(rhs, "rhs", lhs.shape)
    if lhs.dim() != 1 or lhs.numel() < 100:
        raise ValueError("lhs and rhs must be 1-D tensors with one value per path (at least 100 paths)")
    rms = float(((lhs - rhs) ** 2).mean().sqrt())
    if rms > 2 * T * math.sqrt(T / steps):
        _fail(f"lhs and rhs differ by {rms:.3g} (root mean square), more than the discretisation allows",
              "use the LEFT point w_k in both sums, and the identity d(w^3) = 3 w^2 dw + 3 w dt.")
    # The law of lhs: int_0^T w^2 dw = w_T^3/3 - int_0^T w dt, and (w_T, int w dt) is Gaussian, so the fraction of
    # paths with |lhs| < 0.3 T^(3/2) is a number computed here by quadrature (0.550; 0.666 for the Stratonovich
    # w_T^3/3). A fraction has a binomial standard error, right for any seed (E[lhs^2] = T^3 has so heavy a tail that
    # its sample standard error fails about one seed in sixty).
    frac = float((lhs.abs() < 0.3 * T**1.5).double().mean())
    p = _ito_w3_fraction(0.3)
    if abs(frac - p) > 5 * math.sqrt(p * (1 - p) / lhs.numel()):
        _fail(f"{frac:.3f} of the values of lhs lie within 0.3 T^(3/2) of 0, "
              "which is not the law of an Ito integral of w^2",
              "lhs should be sum_k w_k^2 (w_{k+1} - w_k) over Brownian paths on [0, T], with the LEFT point w_k.")
    return _ok("the two sides agree path by path, and lhs has the law of the Ito integral")


def _ito_w3_fraction(q: float) -> float:
    r"""P(|L| < q) for :math:`L = \int_0^1 w^2\,dw = a^3/3 - a/2 - b/\sqrt{12}` with independent standard normals
    ``a`` (= :math:`w_1`) and ``b`` (:math:`\int_0^1 w\,dt = a/2 + b/\sqrt{12}`): the Gaussian integral over ``b``
    in closed form, the one over ``a`` by the trapezoidal rule."""
    a = torch.linspace(-9.0, 9.0, 36001, dtype=torch.float64)
    P, c = a**3 / 3 - a / 2, 1 / math.sqrt(12)
    cdf = lambda z: 0.5 * torch.special.erfc(-z / math.sqrt(2))
    dens = torch.exp(-a**2 / 2) / math.sqrt(2 * math.pi)
    return float(((cdf((q - P) / c) - cdf((-q - P) / c)) * dens).sum() * (a[1] - a[0]))


def check_em_stationary_variance(x_em, *, theta: float = 1.0, sigma: float = 1.0, dt: float = 0.5) -> bool:
    """Exercise ``ex-em-stationary``: long Euler–Maruyama runs of the OU process with a coarse step."""
    x = _tensor(x_em, "x_em")
    if x.dim() != 1 or x.numel() < 1000:
        raise ValueError("x_em must be a 1-D tensor of final values (at least 1000 chains)")
    n = x.numel()
    v = float(x.var())
    se = v * math.sqrt(2 / (n - 1))
    if abs(v - sigma**2 / (theta * (2 - theta * dt))) > 5 * se:
        if abs(v - sigma**2 / (2 * theta)) < 5 * se:
            _fail("the variance matches the EXACT OU process, not Euler–Maruyama with this step",
                  "step the recursion x <- (1 - theta dt) x + sigma sqrt(dt) z with dt = 0.5.")
        _fail(f"the sample variance {v:.4f} is not Euler–Maruyama's stationary variance",
              "solve V = (1 - theta dt)^2 V + sigma^2 dt for V, and run the chains long enough to forget x_0.")
    return _ok("the chains have Euler–Maruyama's (inflated) stationary variance")


def check_heun_stratonovich(heun_plain, *, mu: float = 1.5, sigma: float = 1.0) -> bool:
    """Exercise ``ex-heun-strat``: ``heun_plain(x0, dw, dt, mu, sigma)`` converges to the Stratonovich solution."""
    fn = _function(heun_plain, "heun_plain", "heun_plain(x0, dw, dt, mu, sigma) -> X_N")
    from .solvers import brownian_increments, time_grid

    M, N = 2000, 2**9
    dw = brownian_increments(time_grid(0.0, 1.0, N), M, 1, make_generator(_SEED))
    x0 = torch.ones(M, 1, dtype=torch.float64)
    X = fn(x0, dw, 1.0 / N, mu, sigma)
    X = _tensor(X, "heun_plain(...)", (M, 1))
    w = dw.sum(0)
    strat = torch.exp(mu + sigma * w)
    ito = torch.exp(mu - 0.5 * sigma**2 + sigma * w)
    err_s, err_i = float((X - strat).abs().mean()), float((X - ito).abs().mean())
    if err_s > 0.05:
        hint = ("your result matches the Ito solution: did you subtract g g'/2 from the drift? "
                "The plain scheme must not."
                if err_i < 0.05 else "average f and g at x_k and at the predictor x~, as in the trapezoid rule.")
        _fail("the plain Heun scheme should converge to X_0 exp(mu T + sigma w_T)", hint)
    return _ok("plain stochastic Heun converges to the Stratonovich solution")


def check_perrin_budget(K_needed, rel_errors) -> bool:
    """Exercise ``ex-perrin-budget``: the number of squared displacements for a 1 % measurement."""
    K = _number(K_needed, "K_needed")
    if abs(K - 2 / 0.01**2) > 0.5:
        _fail("K_needed is not the number of components for a 1 % standard error",
              "the relative standard error of the mean of K chi-square(1) variables is sqrt(2 / K).")
    r = _tensor(rel_errors, "rel_errors")
    if r.dim() != 1 or r.numel() < 100:
        raise ValueError("rel_errors must be a 1-D tensor of at least 100 repetitions")
    sd = float(r.std())
    if abs(sd - 0.01) > 5 * sd / math.sqrt(2 * (r.numel() - 1)):
        _fail(f"the spread of rel_errors is {sd:.4f}, not 1 %",
              "each repetition must average K_needed squared standard normals and subtract 1.")
    return _ok("K = 20 000 components give a 1 % measurement of N_A")


def _lyapunov_by_eigenvectors(A: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    r"""The solution of :math:`A\Sigma + \Sigma A^\top + Q = 0` for a diagonalisable stable ``A``: in the eigenbasis
    :math:`A = V\Lambda V^{-1}` the equation decouples entry by entry, :math:`\tilde\Sigma_{ij} =
    -\tilde Q_{ij}/(\lambda_i + \bar\lambda_j)` with :math:`\tilde Q = V^{-1} Q V^{-H}`."""
    lam, V = torch.linalg.eig(A.to(torch.complex128))
    V_inv = torch.linalg.inv(V)
    Q_eig = V_inv @ Q.to(torch.complex128) @ V_inv.conj().T
    S = V @ (-Q_eig / (lam[:, None] + lam.conj()[None, :])) @ V.conj().T
    return S.real.contiguous()


def _stein_by_doubling(left: torch.Tensor, right: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    r""":math:`\sum_{k\ge0} L^k C R^k` for ``left`` :math:`L` and ``right`` :math:`R` of spectral radius below 1, the
    solution of :math:`S = LSR + C`. After :math:`n` rounds of :math:`S \leftarrow S + \Phi S \Psi`,
    :math:`\Phi \leftarrow \Phi^2`, :math:`\Psi \leftarrow \Psi^2` (from :math:`S = C`, :math:`\Phi = L`,
    :math:`\Psi = R`), :math:`S` holds the first :math:`2^n` terms."""
    S, phi, psi = C.clone(), left.clone(), right.clone()
    for _ in range(200):
        if max(float(phi.abs().max()), float(psi.abs().max())) < 1e-22:
            return S
        S = S + phi @ S @ psi
        phi, psi = phi @ phi, psi @ psi
    raise RuntimeError("the series did not converge: the spectral radius is not below 1")


def _answer_or_hint(fn, name: str, hint: str, *args):
    try:
        return fn(*args)
    except Exception as err:                       # noqa: BLE001 — the student's function failed
        _fail(f"{name} raised {type(err).__name__}: {err}", hint)


def check_em_stationary_cov(em_stationary_cov, Sigma_dt) -> bool:
    r"""Exercise ``ex-lyapunov-2d``: ``em_stationary_cov(A, G, dt)`` solves the discrete Lyapunov (Stein) equation
    :math:`\Sigma = B\Sigma B^\top + \Delta t\,GG^\top` with :math:`B = I + \Delta t A`, the stationary covariance of
    Euler–Maruyama for :math:`dx = Ax\,dt + G\,dw`; ``Sigma_dt`` is its value for the exercise's 2-D process."""
    fn = _function(em_stationary_cov, "em_stationary_cov", "em_stationary_cov(A, G, dt) -> tensor (d, d)")
    S = _tensor(Sigma_dt, "Sigma_dt", (2, 2))
    f64 = torch.float64
    A = torch.tensor([[-1.0, 2.0], [-1.0, -0.5]], dtype=f64)
    G = torch.tensor([[1.0, 0.0], [0.6, 0.5]], dtype=f64)
    A3 = torch.tensor([[-0.8, 1.5, 0.0], [-1.0, -0.6, 0.7], [0.3, -0.4, -1.2]], dtype=f64)
    G3 = torch.tensor([[0.9, 0.0], [0.4, 0.7], [-0.3, 0.5]], dtype=f64)
    shape_hint = "G has shape (d, m): the noise enters through the d x d matrix G G^T; return a (d, d) tensor."

    def diagnose(out, A, G, dt, where, rel, hint):
        d = A.shape[0]
        B, Q = torch.eye(d, dtype=f64) + dt * A, G @ G.T
        ref = _stein_by_doubling(B, B.T, dt * Q)
        scale = float(ref.abs().max())
        close = lambda X: float((out - X).abs().max()) <= rel * scale
        if close(ref):
            return
        if close(_lyapunov_by_eigenvectors(A, Q)):
            _fail(f"{where} is the stationary covariance of the SDE itself (A S + S A^T + G G^T = 0), not of "
                  "Euler–Maruyama",
                  "one step gives Cov(x_{k+1}) = B Cov(x_k) B^T + dt G G^T with B = I + dt A; the term dt^2 A S A^T "
                  "that the continuous equation drops is what makes the scheme's covariance larger.")
        if close(ref / dt):
            _fail(f"{where} is 1/dt times the answer: the noise term lacks its factor dt",
                  "the increments have covariance dt I, so the step adds dt G G^T.")
        if close(_stein_by_doubling(B.T, B, dt * Q)):
            _fail(f"{where} solves S = B^T S B + dt G G^T, with B and B^T swapped",
                  "Cov(B x) = B Cov(x) B^T. Read row by row, (B S B^T)_ij = sum_kl B_ik B_jl S_kl, which is "
                  "(B kron B) vec S.")
        if close(_stein_by_doubling(B, B, dt * Q)):
            _fail(f"{where} solves S = B S B + dt G G^T: a transpose is missing",
                  "Cov(B x) = B Cov(x) B^T; in the row-major vectorisation vec(B S B^T) = (B kron B) vec S.")
        if G.shape[0] == G.shape[1] and close(_stein_by_doubling(B, B.T, dt * G.T @ G)):
            _fail(f"{where} uses G^T G as the noise covariance", "the noise term is G dw (G dw)^T, with mean dt G G^T.")
        if close(-ref):
            _fail(f"{where} has the wrong sign (it is not positive definite)",
                  "the linear system is (I - B kron B) vec S = dt vec(G G^T).")
        _fail(f"{where} does not solve S = B S B^T + dt G G^T with B = I + dt A", hint)

    for A_, G_, dt, where in ((A, G, 0.1, "em_stationary_cov(A, G, 0.1) for the exercise's A and G"),
                              (A3, G3, 0.25, "em_stationary_cov(A, G, 0.25) for a 3 x 3 A and a 3 x 2 G")):
        d = A_.shape[0]
        out = _answer_or_hint(fn, "em_stationary_cov", shape_hint, A_.clone(), G_.clone(), dt)
        out = _tensor(out, "em_stationary_cov(A, G, dt)")
        if tuple(out.shape) != (d, d):
            _fail(f"{where} has shape {tuple(out.shape)}, not {(d, d)}", shape_hint)
        diagnose(out, A_, G_, dt, where, 1e-8,      # float64 in, so round-off out
                 "vectorise row by row: (I - B kron B) vec S = dt vec(G G^T) with torch.kron, and reshape to (d, d).")
    diagnose(S, A, G, 0.1, "Sigma_dt", 1e-6,
             "Sigma_dt = em_stationary_cov(A, G, 0.1) with the exercise's A = [[-1, 2], [-1, -0.5]] and "
             "G = [[1, 0], [0.6, 0.5]].")
    return _ok("em_stationary_cov solves the Stein equation (2-D and 3-D), and Sigma_dt is Euler–Maruyama's "
               "stationary covariance")


def _rotation_em_law(sigma: float, dt: float, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Mean and variance of each coordinate of :math:`x_N` for Euler–Maruyama on
    :math:`dx = -\tfrac12\sigma^2x\,dt + \sigma Jx\,dw` from :math:`x_0 = (1, 0)`. A step multiplies by
    :math:`aI + \sigma\Delta w\,J` with :math:`a = 1 - \tfrac12\sigma^2\Delta t`, so :math:`E[x]` is multiplied by
    :math:`a`, and the second-moment matrix :math:`P` becomes :math:`a^2P + \sigma^2\Delta t\,JPJ^\top`: its trace
    by :math:`a^2 + \sigma^2\Delta t`, :math:`P_{11} - P_{22}` by :math:`a^2 - \sigma^2\Delta t`, and
    :math:`P_{12} = 0` stays 0."""
    a = 1.0 - 0.5 * sigma**2 * dt
    tr, diff = (a * a + sigma**2 * dt) ** steps, (a * a - sigma**2 * dt) ** steps
    mean = torch.tensor([a**steps, 0.0], dtype=torch.float64)
    second = torch.tensor([0.5 * (tr + diff), 0.5 * (tr - diff)], dtype=torch.float64)
    return mean, second - mean**2


def check_strat_to_ito(ito_drift, mean_T, *, sigma: float = 1.0, dt: float = 0.01, T: float = 1.0,
                       paths: int = 20000) -> bool:
    r"""Exercise ``ex-strat-to-ito``: the Itô drift :math:`-\tfrac12\sigma^2x` of the Stratonovich SDE
    :math:`dx = \sigma Jx\circ dw` in :math:`\mathbb R^2`, and the mean of ``paths`` Euler–Maruyama paths of the Itô
    form from :math:`x_0 = (1, 0)` to ``T``. The mean is compared, at five standard errors and with no allowance
    for a bias, with the scheme's own :math:`E[x_N] = (1 - \tfrac12\sigma^2\Delta t)^N x_0`, which lies a quarter of
    a standard error from the exact :math:`e^{-\sigma^2T/2}x_0`."""
    fn = _function(ito_drift, "ito_drift", "ito_drift(x) -> tensor of shape (n, 2)")
    m = _tensor(mean_T, "mean_T", (2,))
    f64 = torch.float64
    J = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=f64)
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.5, 0.5], [0.3, -2.5], [2.0, 1.0], [-0.7, -1.2]], dtype=f64)
    out = _tensor(_call_answer(fn, "ito_drift", x.clone()), "ito_drift(x) for x of shape (6, 2)", (6, 2))
    half = 0.5 * sigma**2
    close = lambda X: torch.allclose(out, X, rtol=1e-9, atol=1e-12)
    if not close(-half * x):
        if close(torch.zeros_like(x)):
            _fail("ito_drift(x) is 0, the Stratonovich drift",
                  "the Ito form needs the drift (1/2) sum_jk g_kj d_k g_ij of the Stratonovich-to-Ito conversion "
                  "in several dimensions (Chapter 1), with g_i1(x) = sigma (J x)_i.")
        if close(half * x):
            _fail("ito_drift(x) has the wrong sign",
                  "the correction is (1/2) sigma^2 J (J x), and J^2 = -I: two quarter turns reverse a vector.")
        if close(-2 * half * x):
            _fail("ito_drift(x) is twice the Ito drift",
                  "the Stratonovich-to-Ito conversion in several dimensions (Chapter 1) "
                  "has the factor 1/2 in front of the sum.")
        if close(half * x @ J.T) or close(-half * x @ J.T):
            _fail("ito_drift(x) is a multiple of J x, a rotation, not the Ito drift",
                  "d_k g_i1 = sigma J_ik, so the sum is sigma^2 sum_k J_ik (J x)_k = sigma^2 (J^2 x)_i.")
        _fail("ito_drift(x) is not the Ito drift of dx = sigma J x o dw",
              "apply the Stratonovich-to-Ito conversion in several dimensions (Chapter 1) "
              "with g_i1(x) = sigma (J x)_i, one row per point of x.")
    steps = round(T / dt)
    em_mean, var = _rotation_em_law(sigma, dt, steps)
    se = (var / paths).sqrt()
    within = lambda ref: bool(((m - ref).abs() <= 5 * se).all())
    if not within(em_mean):
        x0 = torch.tensor([1.0, 0.0], dtype=f64)
        if within(x0):
            _fail("mean_T is x_0: the paths follow the Ito reading dx = sigma J x dw, whose mean does not move",
                  "simulate with the Ito drift ito_drift(x); the Ito noise term has mean zero, the Stratonovich one "
                  "does not.")
        if within((1 + half * dt) ** steps * x0):
            _fail("mean_T grows: the drift of the paths has the wrong sign", "the Ito drift is -(1/2) sigma^2 x.")
        if within((1 - 2 * half * dt) ** steps * x0):
            _fail("mean_T decays twice as fast as it should", "the drift of the paths is twice -(1/2) sigma^2 x.")
        _fail("mean_T is not the mean of Euler–Maruyama paths of the Ito form",
              f"average x_T over {paths} paths of x <- x + ito_drift(x) dt + sigma (x J^T) dw with dt = {dt}, one "
              f"increment dw per path and step, from x_0 = (1, 0) to T = {T}.")
    return _ok("ito_drift is -(1/2) sigma^2 x, and mean_T agrees with Euler–Maruyama's exact "
               "(1 - sigma^2 dt/2)^N x_0 (no bias allowance)")


# --- Chapter 2 ------------------------------------------------------------------------------------
def check_fp_ou_stationary(p_final, grid, *, theta: float = 2.0, sigma: float = 1.0, mu: float = 0.5) -> bool:
    """Exercise ``ex-fp-ou``: the density after a long OU evolution is the stationary law."""
    from .fokker_planck import Grid

    if not isinstance(grid, Grid) or grid.dim != 1:
        raise TypeError("grid must be the 1-D diffedu.fokker_planck.Grid used in the notebook")
    p = _tensor(p_final, "p_final", grid.shape)
    x = grid.axes[0].cpu()
    var = sigma**2 / (2 * theta)
    target = torch.exp(-(x - mu) ** 2 / (2 * var)) / math.sqrt(2 * math.pi * var)
    err = float((p - target).abs().sum() * grid.h[0])
    if err > 2e-3:
        _fail(f"p_final is {err:.3g} away (in L1) from the stationary law",
              "solve with de.OrnsteinUhlenbeck(theta=2, sigma=1, mu=0.5, T=4) up to t = 4; "
              "J = 0 gives N(mu, sigma^2/(2 theta)).")
    return _ok("the density has relaxed to the stationary Gaussian")


def check_fv_rhs(fv_rhs) -> bool:
    """Exercise ``ex-fv-mass``: a mass-conserving upwind finite-volume right-hand side."""
    fn = _function(fv_rhs, "fv_rhs", "fv_rhs(p, v, D, h) -> dp/dt")
    gen = make_generator(_SEED)
    p, v = torch.rand(40, generator=gen, dtype=torch.float64), torch.randn(39, generator=gen, dtype=torch.float64)
    out = _tensor(fn(p, v, 0.4, 0.1), "fv_rhs(...)", (40,))
    if abs(float(out.sum())) > 1e-10:
        _fail("the total mass changes: sum of dp/dt is not zero",
              "compute one current per interior face and set the two wall currents to zero; "
              "dp_i/dt = -(J_{i+1/2} - J_{i-1/2})/h.")
    res = []
    for n in (200, 400):
        x = -5.0 + (torch.arange(n, dtype=torch.float64) + 0.5) * (10.0 / n)
        faces = (x[1:] + x[:-1]) / 2
        res.append(float(_tensor(fn(torch.exp(-x**2), -faces, 0.5, 10.0 / n), "fv_rhs(...)", (n,)).abs().max()))
    if not (res[0] < 0.1 and 1.5 < res[0] / res[1] < 2.6):
        _fail("the stationary density exp(-x^2) is not (nearly) stationary for your scheme",
              "check the signs: drift flux v+ p_i - v- p_{i+1}, diffusive flux -D (p_{i+1} - p_i)/h.")
    return _ok("mass is conserved exactly and the residual is first order in h")


def check_ve_snr_time(t_half, *, sigma_min: float = 0.01, sigma_max: float = 50.0) -> bool:
    """Exercise ``ex-ve-variance``: the time at which VE's noise variance equals a unit data variance."""
    t = _number(t_half, "t_half")
    from .sde import VESDE

    noise = float(VESDE(sigma_min, sigma_max).marginal(min(max(t, 0.0), 1.0))[1]) ** 2
    if not (0.0 <= t <= 1.0) or abs(noise - 1.0) > 1e-6:
        _fail("at t_half the noise variance sigma(t)^2 - sigma_min^2 is not 1",
              "sigma(t) = sigma_min (sigma_max / sigma_min)^t; solve sigma(t)^2 - sigma_min^2 = 1 for t.")
    return _ok("noise variance equals data variance at t_half")


def check_subvp_gap_time(t_star) -> bool:
    """Exercise ``ex-subvp-gap``: where sub-VP's variance falls furthest below VP's (linear 0.1-20)."""
    t = _number(t_star, "t_star")
    from .schedules import Linear

    B = float(Linear(0.1, 20.0).beta_integral(min(max(t, 0.0), 1.0)))
    if abs(B - math.log(2)) > 1e-6:
        _fail("the integral of beta up to t_star is not where the gap e^{-B} - e^{-2B} is largest",
              "maximise u - u^2 over u = e^{-B}, then solve 0.1 t + 9.95 t^2 = B.")
    return _ok("the gap is largest (= 1/4) at t_star")


def _killed_ou_generator(theta: float, sigma: float, c: float, L: float, n: int) -> torch.Tensor:
    r"""The generator :math:`-\theta x\,\partial_x + \tfrac12\sigma^2\partial_x^2 - c\,x^2` of the killed OU process,
    by centred differences on ``n`` uniform points of :math:`[-L, L]`, with a mirror ghost point at either end."""
    x = torch.linspace(-L, L, n, dtype=torch.float64)
    h, D = 2 * L / (n - 1), 0.5 * sigma**2
    to_left, to_right = D / h**2 + theta * x / (2 * h), D / h**2 - theta * x / (2 * h)    # weights of u_{i-1}, u_{i+1}
    gen = torch.diag(-2 * D / h**2 - c * x**2)
    i = torch.arange(n)
    gen[i[1:], i[:-1]] = to_left[1:]
    gen[i[:-1], i[1:]] = to_right[:-1]
    gen[0, 1] += to_left[0]
    gen[-1, -2] += to_right[-1]
    return gen


def _killed_ou_reference(theta: float, sigma: float, c: float, x: torch.Tensor,
                         L: float = 9.0, n: int = 121) -> tuple[dict, float]:
    r""":math:`u(x) = E[e^{-c\int_0^T x_s^2\,ds}\mid x_0 = x]` at ``T`` = 0.5 and 2 for points ``x`` on the grid
    (multiples of :math:`2L/(n-1)`), and the decay rate of :math:`u` as :math:`T\to\infty`, without the Gaussian
    ansatz: the backward equation in :math:`\tau = T - t` is :math:`\partial_\tau u = \mathcal Gu` with the grid
    generator :math:`\mathcal G` above, so :math:`u = e^{T\mathcal G}1` exactly in time (:math:`e^{2\mathcal G}` is
    :math:`e^{\mathcal G/2}` squared twice), and the rate is :math:`-\max\mathrm{Re}` of its eigenvalues. Both are
    computed with the spacing :math:`h` and :math:`h/2` and extrapolated, :math:`(4Q_{h/2} - Q_h)/3`, which removes
    the :math:`O(h^2)` error: for the parameters used below, less than :math:`10^{-6}` (relative) is left."""
    u, rate = {0.5: [], 2.0: []}, []
    for m in (n, 2 * n - 1):
        gen = _killed_ou_generator(theta, sigma, c, L, m)
        idx = ((x + L) * (m - 1) / (2 * L)).round().long()
        half = torch.linalg.matrix_exp(0.5 * gen)
        two = (half @ half) @ (half @ half)
        u[0.5].append(half.sum(1)[idx])
        u[2.0].append(two.sum(1)[idx])
        rate.append(-float(torch.linalg.eigvals(gen).real.max()))
    return {T: (4 * fine - coarse) / 3 for T, (coarse, fine) in u.items()}, (4 * rate[1] - rate[0]) / 3


def _riccati_exponent(x: torch.Tensor, T: float, theta: float, D: float, c: float) -> torch.Tensor:
    r"""The Gaussian solution :math:`e^{-a(T)x^2 - b(T)}` of :math:`\partial_\tau u = -\theta x\,u' + Du'' - cx^2u`,
    :math:`u(\tau = 0) = 1`, for any real ``theta`` and :math:`D, c > 0`; only used to name a wrong answer (the
    exercise has :math:`D = \sigma^2/2`; a flipped drift, :math:`\sigma^2` for :math:`\sigma^2/2`, and so on)."""
    gam = math.sqrt(theta**2 + 4 * D * c)
    th = math.tanh(gam * T)
    a = c * th / (gam + theta * th)
    log_cosh = gam * T + math.log1p(math.exp(-2 * gam * T)) - math.log(2)
    b = 0.5 * (log_cosh + math.log1p(theta / gam * th)) - 0.5 * theta * T
    return torch.exp(-a * x**2 - b)


def check_fk_quadratic(fk_quadratic, rate_fk) -> bool:
    r"""Exercise ``ex-feynman-kac-ou``: ``fk_quadratic(x, T, theta, sigma, c)`` is
    :math:`u(x) = E[e^{-c\int_0^T x_s^2\,ds}\mid x_0 = x]` for :math:`dx = -\theta x\,dt + \sigma\,dw`, and ``rate_fk``
    the rate :math:`\lambda` of its decay :math:`u\sim e^{-\lambda T}` for :math:`\theta = 1`, :math:`\sigma = 2`,
    :math:`c = \tfrac12`. The reference solves the backward equation {eq}`eq-feynman-kac-pde` on a grid (see
    ``_killed_ou_reference``), independently of the Gaussian ansatz; tolerances :math:`2\times10^{-5}` for ``u`` and
    :math:`10^{-6}` for the rate (relative)."""
    fn = _function(fk_quadratic, "fk_quadratic", "fk_quadratic(x, T, theta, sigma, c) -> tensor like x")
    rate = _number(rate_fk, "rate_fk")
    x = torch.arange(-4, 5, dtype=torch.float64) * 0.75                      # on both grids of the reference
    ode_hint = ("insert u = exp(-a x^2 - b) into the Feynman-Kac equation (Chapter 2) "
                "with f = -theta x, g = sigma, V = c x^2 "
                "and collect the x^2 terms (da/dtau) and the constant terms (db/dtau), with a = b = 0 at tau = 0; "
                "solve in closed form, or numerically to a relative 1e-8.")
    top_rate = None
    for theta, sigma, c in ((1.0, 2.0, 0.5), (0.3, 0.7, 0.2), (2.5, 1.2, 0.3)):
        refs, decay = _killed_ou_reference(theta, sigma, c, x)
        top_rate = decay if top_rate is None else top_rate
        for T, ref in refs.items():
            shape = (3, 3) if T == 2.0 else (9,)
            where = f"fk_quadratic(x, {T:g}, {theta:g}, {sigma:g}, {c:g})"
            out = _tensor(_call_answer(fn, "fk_quadratic", x.reshape(shape).clone(), T, theta, sigma, c), where,
                          shape).reshape(-1)
            if bool(((out - ref).abs() <= 2e-5 * ref).all()):
                continue
            close = lambda X: bool(((out - X).abs() <= 1e-6 * X.abs()).all())
            if float(out.max()) > 1 + 1e-9:
                _fail(f"{where} exceeds 1, but a path that may be killed survives with probability at most 1",
                      "the killing rate enters the Feynman-Kac equation (Chapter 2) as - V u, which lowers u: "
                      + ode_hint)
            if close(torch.exp(-c * x**2 * T)):
                _fail(f"{where} is exp(-c x^2 T): that freezes the path at its starting point",
                      "the path moves, by the drift and the noise, while it is being discounted: " + ode_hint)
            if bool((out > 0).all()):
                gap = (out / ref).log()
                if float(gap.max() - gap.min()) <= 1e-6:
                    _fail(f"{where} / u(x) is the same number at every x: the x^2 coefficient a(T) is right, the "
                          "x-independent part b(T) is not",
                          "the constant terms of the equation fix db/dtau: (1/2) sigma^2 d^2/dx^2 of exp(-a x^2) "
                          "contributes -sigma^2 a to them; b = 0 at tau = 0.")
            D = 0.5 * sigma**2
            for args, what in (((-theta, D, c), "the drift term has the wrong sign"),
                               ((theta, 2 * D, c), "the noise term has sigma^2 where the Feynman-Kac equation "
                                                   "(Chapter 2) has (1/2) sigma^2"),
                               ((theta / 2, D, c), "the drift term is half as large as it should be")):
                if close(_riccati_exponent(x, T, *args)):
                    _fail(f"{where} solves an equation in which {what}",
                          "f du/dx with f = -theta x and u = exp(-a x^2 - b) is 2 theta a x^2 u; "
                          "(1/2) sigma^2 d^2u/dx^2 is sigma^2 (2 a^2 x^2 - a) u.")
            rel = float(((out - ref).abs() / ref).max())
            _fail(f"{where} differs from the solution of the backward equation by up to {rel:.2g} (relative)",
                  ode_hint)
    if abs(rate - top_rate) > 1e-6 * top_rate:
        sigma, c, theta = 2.0, 0.5, 1.0
        if abs(rate - c * sigma**2 / (2 * theta)) <= 1e-6:
            _fail("rate_fk is c s^2, the killing rate averaged over the stationary law",
                  "the killing removes the paths far out first, so the survivors crowd where V is small; "
                  "the rate is the limit of -log(u) / T, which the x-independent part b(T) decides.")
        if abs(rate * sigma**2 - top_rate) <= 1e-6 * top_rate:
            _fail("rate_fk is the limit of a(T), the coefficient of x^2",
                  "for large T, b(T) grows linearly and a(T) settles: "
                  "the rate is lim b(T)/T, i.e. sigma^2 a(infinity).")
        if abs(rate - 2 * top_rate) <= 1e-6 * top_rate:
            _fail("rate_fk is twice the decay rate",
                  "u ~ exp(-b(T)) with db/dtau = sigma^2 a: the rate is sigma^2 a(infinity).")
        _fail("rate_fk is not the decay rate of u for theta = 1, sigma = 2, c = 1/2",
              "-log(u) / T tends to lim db/dtau = sigma^2 a(infinity), "
              "with a(infinity) the positive fixed point of the equation for a.")
    return _ok("fk_quadratic solves the backward equation with the killing rate c x^2 (three parameter sets, two "
               "horizons), and rate_fk is its long-time decay rate")


def _power_law_law(x: torch.Tensor, nu: float, s0: float, s1: float) -> torch.Tensor:
    r"""The normalised density :math:`\propto(s_0^2 + s_1^2x^2)^{-\nu}`, :math:`\nu > \tfrac12`: with
    :math:`y = s_1x/s_0`, :math:`\int(1 + y^2)^{-\nu}dy = \sqrt\pi\,\Gamma(\nu - \tfrac12)/\Gamma(\nu)`."""
    log_z = math.log(s0 / s1) + 0.5 * math.log(math.pi) + math.lgamma(nu - 0.5) - math.lgamma(nu)
    return torch.exp(-nu * torch.log1p((s1 * x / s0) ** 2) - log_z)


def check_multiplicative_tails(stationary_density, p_far) -> bool:
    r"""Exercise ``ex-multiplicative-tails``: ``stationary_density(x, theta, s0, s1, lam)`` is the normalised
    stationary density of :math:`dx = -\theta x\,dt + g(x)\,dw`, :math:`g^2 = s_0^2 + s_1^2x^2`, read with the rule
    ``lam`` (Itô drift :math:`-\theta x + \lambda gg'`), i.e. :math:`\propto(s_0^2 + s_1^2x^2)^{-\nu}` with
    :math:`\nu = 1 - \lambda + \theta/s_1^2`; checked for three readings, out to :math:`|x| = 10^5`, at a relative
    :math:`10^{-6}`. ``p_far`` is :math:`P(|x| > 10)` for the Itô reading with :math:`\theta = s_0 = s_1 = 1`
    (relative :math:`10^{-5}`)."""
    fn = _function(stationary_density, "stationary_density",
                   "stationary_density(x, theta, s0, s1, lam) -> tensor like x")
    pf = _number(p_far, "p_far")
    x = torch.tensor([-1e4, -37.5, -3.0, -1.0, 0.0, 0.4, 2.5, 60.0, 1e5], dtype=torch.float64)
    far = (0, 8)                                                             # |x| = 1e4 and 1e5: the tail
    for theta, s0, s1, lam, shape in ((1.0, 1.0, 1.0, 0.0, (9,)), (0.3, 0.5, 1.0, 0.5, (3, 3)),
                                      (0.5, 2.0, 0.8, 1.0, (9,))):
        nu = 1 - lam + theta / s1**2
        where = f"stationary_density(x, {theta:g}, {s0:g}, {s1:g}, {lam:g})"
        out = _tensor(_call_answer(fn, "stationary_density", x.reshape(shape).clone(), theta, s0, s1, lam), where,
                      shape).reshape(-1)
        ref = _power_law_law(x, nu, s0, s1)
        if bool(((out - ref).abs() <= 1e-6 * ref).all()):
            continue
        if not bool((out > 0).all()):
            bad = float(x[int(torch.nonzero(out <= 0)[0, 0])])
            _fail(f"{where} is not positive at x = {bad:g}",
                  "the stationary density decays like a power of |x|, which float64 holds far beyond |x| = 1e5; a "
                  "Gaussian factor would underflow there.")
        gap = (out / ref).log()
        if float(gap.max() - gap.min()) <= 1e-6:
            _fail(f"{where} has the right shape but is not normalised: "
                  f"it integrates to {math.exp(float(gap.mean())):.6g}",
                  "divide by Z = integral of (s0^2 + s1^2 x^2)^(-nu) over the whole line, "
                  "from the integral in the hint; a quadrature over [-L, L] misses a tail mass of order L^(1 - 2 nu), "
                  "which for nu near 1/2 is not small for any L you can afford.")
        spread = math.log(s0**2 + s1**2 * 1e10) - math.log(s0**2 + s1**2 * 1e8)
        nu_out = -float(out[far[1]].log() - out[far[0]].log()) / spread       # the answer's own tail exponent
        if abs(nu_out - nu) <= 1e-4:
            rel = float(((out - ref).abs() / ref).max())
            _fail(f"{where} has the right power law but differs from the normalised density by up to {rel:.2g} "
                  "(relative)",
                  "work in float64 throughout, with logarithms (log1p) for the power, and normalise with the integral "
                  "in the hint (math.lgamma) rather than by quadrature.")
        for other in (0.0, 0.5, 1.0):
            if other != lam and abs(nu_out - (1 - other + theta / s1**2)) <= 1e-6:
                _fail(f"{where} is the stationary density of the reading lam = {other:g}, not lam = {lam:g}",
                      "reading the noise at x_k + lam (x_{k+1} - x_k) adds the Ito drift lam g g' = lam s1^2 x; "
                      "with it J = (f + lam g g') p - d(g^2 p / 2)/dx, and the derivative also hits g^2.")
        if lam != 0 and abs(nu_out - (1 + lam + theta / s1**2)) <= 1e-6:
            _fail(f"in {where} the rule's drift lam g g' enters with the wrong sign",
                  "the Ito drift of the rule lam is f + lam g g'.")
        _fail(f"{where} falls like |x|^(-{2 * nu_out:.4g}) in the tails, which is not the stationary law's power",
              "J = 0 with J = (f + lam g g') p - d(g^2 p / 2)/dx gives (log p)' = (2 f - 2 (1 - lam) g g') / g^2; "
              "integrate it and normalise with the integral in the hint.")
    X = 10.0
    ref = 1 - (2 / math.pi) * (math.atan(X) + X / (1 + X * X))                # nu = 2: the antiderivative is elementary
    if abs(pf - ref) > 1e-5 * ref:
        if abs(pf - ref / 2) <= 1e-5 * ref:
            _fail("p_far is P(x > 10), one tail", "P(|x| > 10) = P(x > 10) + P(x < -10) = 2 P(x > 10).")
        if 0 <= pf < 1e-15:
            _fail("p_far is as small as a Gaussian tail", "p_ss falls like |x|^(-4) here, not like exp(-x^2 / 2).")
        if abs(pf - (1 - X / math.sqrt(1 + X * X))) <= 1e-5:
            _fail("p_far is the tail of the Stratonovich reading", "(c) asks for the Ito reading, lam = 0.")
        _fail("p_far is not P(|x| > 10) under the stationary law of (c)",
              "integrate stationary_density(x, 1, 1, 1, 0) over |x| > 10: "
              "for nu = 2 an antiderivative of (1 + x^2)^(-2) is (x / (1 + x^2) + arctan x) / 2.")
    return _ok("stationary_density is the normalised power law for the Ito, Stratonovich and isothermal readings, and "
               "p_far is its tail beyond |x| = 10")


# --- Chapter 3 ------------------------------------------------------------------------------------
def _vp():
    from .schedules import Linear
    from .sde import VPSDE

    return VPSDE(Linear(0.1, 20.0), t_min=1e-3)


def check_reverse_drift_gaussian(reverse_drift) -> bool:
    """Exercise ``ex-reverse-gaussian``: the reverse drift of N(0, 0.04) data under the linear VP SDE."""
    fn = _function(reverse_drift, "reverse_drift", "reverse_drift(x, t) -> tensor (n, 1)")
    from .data import GaussianMixture

    vp = _vp()
    gauss = GaussianMixture([1.0], [[0.0]], [0.2])
    x = torch.linspace(-1, 1, 9, dtype=torch.float64)[:, None]
    for t in (0.05, 0.4, 0.9):
        out = _tensor(fn(x, t), "reverse_drift(x, t)", (9, 1))
        if not torch.allclose(out, vp.reverse(gauss.score_fn(vp), 1.0).drift(x, t), atol=1e-8):
            _fail(f"the drift is wrong at t = {t}",
                  "F = f - g^2 grad log p_t with grad log p_t = -x / v_t, v_t = alpha^2 v0 + sigma^2.")
    return _ok("the reverse drift is f - g^2 times the Gaussian score")


def check_tweedie(denoise) -> bool:
    """Exercise ``ex-tweedie``: the posterior mean E[x0 | x_t] for the three-Gaussian mixture."""
    fn = _function(denoise, "denoise", "denoise(x, t) -> tensor (n, 2)")
    from .widgets import SCORE_DATA

    vp = _vp()
    gen = make_generator(_SEED)
    x0 = SCORE_DATA.sample(200000, gen, dtype=torch.float64)
    for t, probe in ((0.2, [0.3, -0.2]), (0.5, [-0.8, 0.9])):
        alpha, sigma = (float(v) for v in vp.marginal(t))
        xt = torch.tensor([probe], dtype=torch.float64)
        w = torch.softmax(-((xt - alpha * x0) ** 2).sum(1) / (2 * sigma**2), 0)
        post = (w[:, None] * x0).sum(0)
        se = ((w[:, None] * (x0 - post) ** 2).sum(0) * float((w**2).sum())).sqrt()
        est = _tensor(fn(xt, t), "denoise(x, t)", (1, 2))[0]
        if bool(((est - post).abs() > 5 * se + 1e-3).any()):
            _fail(f"denoise is not the posterior mean at t = {t}",
                  "Tweedie: E[x0 | x_t] = (x_t + sigma^2 grad log p_t(x_t)) / alpha.")
    return _ok("denoise(x, t) is the posterior mean E[x0 | x_t]")


def check_dsm_floor(floor) -> bool:
    r"""Exercise ``ex-dsm-floor``: the denoising loss :math:`E\|s^\star + z/\sigma\|^2` of the exact score for
    data :math:`N(0, 0.04\,I)` in :math:`d = 2` dimensions at :math:`t = 0.3` (linear VP SDE): :math:`C_t` of
    {eq}`eq-dsm-identity`, :math:`d\,(1/\sigma^2 - 1/v_t)`."""
    f = _number(floor, "floor")
    alpha, sigma = (float(v) for v in _vp().marginal(0.3))
    per_coordinate = 1 / sigma**2 - 1 / (alpha**2 * 0.04 + sigma**2)
    if abs(f - 2 * per_coordinate) > 1e-8 * max(1.0, abs(f)):
        hint = ("that is one coordinate's value: the loss sums over the d = 2 coordinates."
                if abs(f - per_coordinate) < 1e-8 * max(1.0, abs(f)) else
                "expand the square per coordinate using E[z x_t] = sigma and E[x_t^2] = v_t, "
                "then sum over the d coordinates.")
        _fail("floor is not E|s* + z/sigma|^2 for the exact score", hint)
    return _ok("the irreducible part of the denoising loss is d (1/sigma^2 - 1/v_t)")


def _score_term_c0():
    r""":math:`\int_0^1 \tfrac{g^2}{2} E_{p_t}|\nabla\log p_t|^2 dt` for the mixture of ``ex-kl-terms`` under the
    linear VP SDE (Simpson's rule on 401 times, a fine grid in x)."""
    from .data import GaussianMixture
    from .quadrature import simpson
    from .schedules import Linear
    from .sde import VPSDE

    mix = GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [0.25, 0.25])
    vp = VPSDE(Linear(0.1, 20.0))
    x = torch.linspace(-6, 6, 2001, dtype=torch.float64)[:, None]
    h = float(x[1, 0] - x[0, 0])
    tq = torch.linspace(0.0, 1.0, 401, dtype=torch.float64)
    vals = torch.tensor([0.5 * float(vp.diffusion(t)) ** 2
                         * float((mix.score(x, t, vp)[:, 0] ** 2 * mix.log_prob(x, t, vp).exp()).sum() * h)
                         for t in tq.tolist()], dtype=torch.float64)
    return simpson(vals, float(tq[1] - tq[0]))


def check_kl_terms(term_09, term_06) -> bool:
    r"""Exercise ``ex-kl-terms``: the score term of {eq}`eq-kl-bound` for :math:`s = c\nabla\log p_t`,
    :math:`c = 0.9` and 0.6, for the mixture ``GaussianMixture([0.5, 0.5], [[-1], [1]], [0.25, 0.25])`` under the
    linear VP SDE on [0, 1] (within 1 %)."""
    a, b = _number(term_09, "term_09"), _number(term_06, "term_06")
    full = _score_term_c0()
    for c, val, name in ((0.9, a, "term_09"), (0.6, b, "term_06")):
        if abs(val - (1 - c) ** 2 * full) > 0.01 * (1 - c) ** 2 * full:
            _fail(f"{name} is not the score term for c = {c} and the mixture mix_kl",
                  "s - grad log p_t = (c - 1) grad log p_t: integrate (g^2/2) E_{p_t} |grad log p_t|^2 over t "
                  "for mix_kl (not the chapter's mix1) and scale.")
    return _ok("the score term is quadratic in the score error")


def _kramers_parts(m: float) -> tuple[float, float, float, float]:
    """The mixture 1/2 N(-m, 1) + 1/2 N(m, 1): its mode x_* = m tanh(m x_*), the barrier dU = log cosh(m x_*) - x_*^2/2,
    and the curvatures U''(x_*) = 1 - m^2 + x_*^2, U''(0) = 1 - m^2."""
    x = m
    for _ in range(200):
        x = m * math.tanh(m * x)
    log_cosh = m * x + math.log1p(math.exp(-2 * m * x)) - math.log(2)
    return x, log_cosh - x * x / 2, 1 - m * m + x * x, 1 - m * m


def _mixture_potential(m: float, scale: float = 1.0):
    """scale * U with U = x^2/2 - log cosh(m x), Eq. (eq-mixture-double-well)."""
    return lambda y: scale * (y**2 / 2 - (torch.logaddexp(m * y, -m * y) - math.log(2)))


def check_kramers(hop_times, kramers_limit) -> bool:
    r"""Exercise ``ex-kramers``: ``hop_times(m)`` returns the exact mean first-passage time {eq}`eq-mfpt` from
    :math:`-x_*` to :math:`x_*` for the mixture :math:`\tfrac12 N(-m, 1) + \tfrac12 N(m, 1)` and Kramers' formula
    {eq}`eq-kramers`; ``kramers_limit`` is the limit of their ratio as :math:`m\to\infty`, in closed form."""
    fn = _function(hop_times, "hop_times", "hop_times(m) -> (tau, tau_kramers)")
    limit = _number(kramers_limit, "kramers_limit")
    from .langevin import mean_first_passage_time

    for m in (2.0, 3.0, 4.5):
        out = _answer_or_hint(fn, "hop_times", "hop_times(m) takes one float m and returns two floats.", m)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise ValueError(f"hop_times(m) must return a pair (tau, tau_kramers) of numbers, got {type(out).__name__}")
        tau, tau_k = _number(out[0], "hop_times(m)[0]"), _number(out[1], "hop_times(m)[1]")
        xs, dU, u2_min, u2_top = _kramers_parts(m)
        U = _mixture_potential(m)
        kramers = 2 * math.pi / math.sqrt(u2_min * abs(u2_top)) * math.exp(dU)
        near = lambda value, want, rel: abs(value - want) <= rel * abs(want)           # noqa: E731
        if not near(tau, mean_first_passage_time(U, -xs, xs), 1e-5):
            where = f"tau = hop_times({m})[0]"
            if near(tau, kramers, 1e-5):
                _fail(f"{where} is Kramers' approximation, not the exact mean first-passage time",
                      "evaluate the double integral of the mean first-passage time formula (Chapter 3) by quadrature.")
            if near(tau, 2 * mean_first_passage_time(_mixture_potential(m, 2.0), -xs, xs), 1e-3):
                _fail(f"{where} is the passage time for the noise dw, not sqrt(2) dw",
                      "the Langevin sampler dx = -U' dt + sqrt(2) dw has the generator -U' d/dx + d^2/dx^2.")
            if near(tau, mean_first_passage_time(U, -m, m), 1e-4):
                _fail(f"{where} goes from -m to m: the modes are at +-x_*, the root of x = m tanh(m x)",
                      "for m = 2, x_* = 1.99865, not 2.")
            if near(tau, mean_first_passage_time(U, -xs, xs, lower=-xs), 1e-4):
                _fail(f"{where} starts the inner integral at a = -x_*: that puts a reflecting wall behind the start",
                      "the inner integral of the mean first-passage time formula (Chapter 3) runs from -infinity: "
                      "the chain may wander left of the mode.")
            _fail(f"{where} is not the exact mean first-passage time from -x_* to x_* (relative tolerance 1e-5)",
                  "tau = int_a^b e^U(y) int_{-inf}^y e^-U(z) dz dy with U = x^2/2 - log cosh(m x); make the grid fine "
                  "enough, in float64.")
        if not near(tau_k, kramers, 1e-7):
            where = f"tau_kramers = hop_times({m})[1]"
            if near(tau_k, math.exp(dU), 1e-6):
                _fail(f"{where} is e^dU alone",
                      "Kramers' formula has the prefactor 2 pi / sqrt(U''(x_min) |U''(x_max)|).")
            if near(tau_k, 2 * math.pi / math.sqrt(abs(u2_top)) * math.exp(dU), 1e-6):
                _fail(f"{where} takes U''(x_*) = 1", "use the exact curvature U''(x_*) = 1 - m^2 + x_*^2.")
            if near(tau_k, 2 * math.pi / math.sqrt(u2_min * abs(u2_top)) * math.exp(m * m / 2 - math.log(2)), 1e-6):
                _fail(f"{where} uses dU = m^2/2 - log 2", "use the exact barrier dU = log cosh(m x_*) - x_*^2 / 2.")
            if near(tau_k, 2 * math.pi / math.sqrt(u2_min * abs(u2_top)) * math.exp(2 * dU), 1e-6):
                _fail(f"{where} has e^(2 dU): the temperature of sqrt(2) dw is 1",
                      "Kramers' formula (Chapter 3) has e^dU.")
            if near(tau_k, tau, 1e-5):
                _fail(f"{where} equals tau", "the second entry is Kramers' formula (Chapter 3), not the exact time.")
            _fail(f"{where} is not Kramers' formula (relative tolerance 1e-7)",
                  "tau_K = 2 pi / sqrt(U''(x_*) |U''(0)|) e^dU with U''(x_*) = 1 - m^2 + x_*^2, U''(0) = 1 - m^2.")
    if abs(limit - math.sqrt(math.pi / 2)) > 1e-6:
        if abs(limit - 1) < 1e-3:
            _fail("kramers_limit = 1: the ratio does not tend to 1 for this family",
                  "for large m the outer integral is e^U(0) int sech(m y) dy; compare it with Kramers' Gaussian.")
        _fail("kramers_limit is not the limit of tau / tau_K",
              "int sech(u) du = pi; Kramers replaces it by int exp(-u^2/2) du = sqrt(2 pi).")
    return _ok("the exact hopping time, Kramers' formula, and the limit sqrt(pi/2) of their ratio")


def _ism_quartic_fit(x: torch.Tensor) -> torch.Tensor:
    r"""The minimiser of the empirical ISM objective for :math:`s_\theta(x) = -\theta_1x - \theta_2x^3`: the solution
    of :math:`[[m_2, m_4], [m_4, m_6]]\,\theta = (1, 3m_2)`, by Cramer's rule."""
    m2, m4, m6 = (float((x**j).mean()) for j in (2, 4, 6))
    det = m2 * m6 - m4 * m4
    return torch.tensor([(m6 - 3 * m2 * m4) / det, (3 * m2 * m2 - m4) / det], dtype=torch.float64)


def check_ism_fit(ism_fit) -> bool:
    r"""Exercise ``ex-ism-fit``: the implicit-score-matching fit of the unnormalised model
    :math:`\tilde p_\theta\propto e^{-\theta_1x^2/2 - \theta_2x^4/4}` to 1-D data (a tensor of shape ``(2,)``)."""
    fn = _function(ism_fit, "ism_fit", "ism_fit(x) -> tensor of shape (2,)")
    gen = make_generator(_SEED)
    for scale, shift, n in ((0.5, 0.2, 12), (1.3, -0.4, 200)):
        x = scale * torch.randn(n, generator=gen, dtype=torch.float64) + shift
        out = _tensor(_call_answer(fn, "ism_fit", x.clone()), "ism_fit(x)", (2,))
        want = _ism_quartic_fit(x)
        close = lambda y: torch.allclose(out, y, rtol=1e-8, atol=1e-10 * float(y.abs().max()))
        if not close(want):
            if close(-want):
                _fail("ism_fit(x) has the opposite sign of the minimiser",
                      "the objective is E[s^2/2 + s'], with a PLUS sign in front of s' = -theta_1 - 3 theta_2 x^2.")
            if close(want / 2):
                _fail("ism_fit(x) is half the minimiser", "mind the 1/2 in front of s^2 in the objective.")
            _fail(f"ism_fit(x) does not minimise the empirical ISM objective on {n} data points",
                  "the objective is (1/2) theta^T M theta - theta^T b with M = [[m2, m4], [m4, m6]] and b = (1, 3 m2), "
                  "m_j the sample moments (mean of x^j, not centred).")
    return _ok("ism_fit solves the normal equations of implicit score matching")


# ----------------------------------------------------------------------------------------------------------------
# for diffedu/checks.py (Chapter 3 block)
# ----------------------------------------------------------------------------------------------------------------
def _snr_integral(vp, t1: float) -> float:
    r""":math:`\int_{t_{\min}}^{t_1} g^2/\sigma^2\,dt` by Simpson's rule in :math:`\log t` (2000 intervals)."""
    from diffedu.quadrature import simpson          # in diffedu/checks.py: from .quadrature import simpson

    if t1 <= vp.t_min * (1 + 1e-12):          # F(t_min (1 + 1e-12)) < 1e-13: no interval to integrate over
        return 0.0
    s = torch.linspace(math.log(vp.t_min), math.log(t1), 2001, dtype=torch.float64)
    tt = s.exp()
    f = tt * vp.diffusion(tt) ** 2 / vp.marginal(tt)[1] ** 2          # g^2 / sigma^2 dt = t g^2 / sigma^2 d(log t)
    return simpson(f, float(s[1] - s[0]))


def _snr_cdf(t: torch.Tensor) -> torch.Tensor:
    r""":math:`F(t) = \int_{t_{\min}}^t g^2/\sigma^2\,dt' \big/ \int_{t_{\min}}^T g^2/\sigma^2\,dt'` for the
    linear VP SDE of ``_vp()`` at each entry of the 1-D float64 tensor ``t`` (inside :math:`[t_{\min}, T]`):
    Simpson's rule in :math:`\log t`, 2000 intervals per integral (the integrand :math:`t\,g^2/\sigma^2` is smooth
    in :math:`\log t`; the error is below :math:`10^{-11}`), independent of the closed form the exercise asks for."""
    vp = _vp()
    total = _snr_integral(vp, vp.T)
    return torch.tensor([_snr_integral(vp, float(x)) / total for x in t.tolist()], dtype=torch.float64)


def check_importance_t(sample_t, frac_late) -> bool:
    r"""Exercise ``ex-importance-t``: inverse-CDF sampling of :math:`\pi(t)\propto g^2/\sigma^2` on
    :math:`[t_{\min}, T]` for the linear VP SDE (:math:`\beta = 0.1 + 19.9t`, :math:`t_{\min} = 10^{-3}`,
    :math:`T = 1`), and the fraction of its mass above :math:`t = 0.5`.  The reference is the distribution function
    computed by quadrature: the answer's times must satisfy :math:`F(t(u)) = u`."""
    fn = _function(sample_t, "sample_t", "sample_t(u) -> tensor of times, the shape of u")
    vp = _vp()
    u = torch.linspace(0.0, 1.0, 11, dtype=torch.float64)
    t = _tensor(_call_answer(fn, "sample_t", u.clone()), "sample_t(u)", (11,))
    if bool((t < vp.t_min * (1 - 1e-9)).any() or (t > vp.T * (1 + 1e-9)).any()):
        _fail("sample_t(u) returns times outside [t_min, T] = [0.001, 1]",
              "u = 0 must give t_min and u = 1 must give T: "
              "rescale rho = log(sigma^2/alpha^2) between rho(t_min) and rho(T).")
    err = float((_snr_cdf(t.clamp(vp.t_min, vp.T)) - u).abs().max())
    if err > 1e-7:
        if torch.allclose(t, vp.t_min + u * (vp.T - vp.t_min), rtol=1e-6):
            _fail("sample_t returns uniform times",
                  "invert the distribution function of pi(t) proportional to g^2/sigma^2.")
        if torch.allclose(t, vp.t_min * (vp.T / vp.t_min) ** u, rtol=1e-6):
            _fail("sample_t returns log-uniform times (pi proportional to 1/t)",
                  "for this schedule g^2/sigma^2 is close to 1/t only below t = 0.005; use the exact antiderivative.")
        _fail(f"F(sample_t(u)) differs from u by up to {err:.2g}",
              "g^2/sigma^2 = d/dt log(sigma^2/alpha^2) = d/dt log(e^B - 1) with B(t) = 0.1 t + 9.95 t^2: draw that "
              "logarithm uniformly, then solve for B and for t (the positive root of a quadratic).")
    u2 = torch.tensor([[0.05, 0.5, 0.95], [0.3, 0.7, 0.99]], dtype=torch.float64)
    t2 = _tensor(_call_answer(fn, "sample_t", u2.clone()), "sample_t(u) for u of shape (2, 3)", (2, 3))
    if float((_snr_cdf(t2.reshape(-1).clamp(vp.t_min, vp.T)) - u2.reshape(-1)).abs().max()) > 1e-7:
        _fail("sample_t is right on a 1-D tensor but not on a (2, 3) tensor",
              "work element by element; keep u's shape.")
    f = _number(frac_late, "frac_late")
    late = 1.0 - float(_snr_cdf(torch.tensor([0.5], dtype=torch.float64))[0])
    if abs(f - late) > 1e-6:
        if abs(f - (1.0 - late)) <= 1e-6:
            _fail("frac_late is the fraction of draws BELOW t = 0.5",
                  "the question asks for the draws above t = 0.5: 1 - F(0.5).")
        _fail("frac_late is not the fraction of the draws above t = 0.5",
              "it is 1 - F(0.5), with F the distribution function of pi.")
    return _ok(f"sample_t inverts the distribution function of g^2/sigma^2, and {f:.1%} of its draws lie above t = 0.5")


# --- Chapter 4 ------------------------------------------------------------------------------------
def check_hbar_gaussian_variance(u_final) -> bool:
    """Exercise ``ex-hbar-gaussian``: the sampler's variance at t_min for hbar in {0, 0.5, 1, 2}."""
    if not isinstance(u_final, (list, tuple)) or len(u_final) != 4:
        raise ValueError("u_final must be a list of 4 numbers (hbar = 0, 0.5, 1, 2)")
    from .schedules import Linear
    from .sde import VPSDE

    a, s = (float(v) for v in VPSDE(Linear(0.1, 20.0)).marginal(0.01))
    target = a**2 * 0.04 + s**2
    for h, u in zip((0, 0.5, 1, 2), u_final):
        if abs(_number(u, "u_final[i]") - target) > 1e-6:
            _fail(f"u(t_min) for hbar = {h} is not the data's variance at t_min",
                  "integrate du/dt = 2(-beta/2 + (1+hbar) beta/(2 v_t)) u - hbar beta BACKWARDS from u_T = v_T.")
    return _ok("every hbar returns the same variance")


def check_pf_map(x_end) -> bool:
    """Exercise ``ex-pf-map``: the probability-flow ODE moves x_T to x_T sqrt(v_tmin / v_T)."""
    x = _tensor(x_end, "x_end", (5, 1))
    from .schedules import Linear
    from .sde import VPSDE

    vp = VPSDE(Linear(0.1, 20.0))
    v = lambda t: (lambda a, s: a**2 * 0.04 + s**2)(*(float(z) for z in vp.marginal(t)))
    expected = torch.linspace(-2, 2, 5, dtype=torch.float64)[:, None] * math.sqrt(v(0.01) / v(1.0))
    if not torch.allclose(x, expected, atol=1e-4):
        _fail("the end points are not the rescaled start points",
              "hbar = 0, decreasing times from 1 to 0.01, and enough steps.")
    return _ok("the probability-flow map is a rescaling by sqrt(v_t / v_T)")


def check_gaussian_likelihood(logq) -> bool:
    """Exercise ``ex-likelihood-gaussian``: the closed-form PF-ODE log-likelihood of Gaussian data."""
    fn = _function(logq, "logq", "logq(x0) -> tensor (n,)")
    from .data import GaussianMixture
    from .likelihood import log_likelihood
    from .schedules import Linear
    from .sde import VPSDE

    vp = VPSDE(Linear(0.1, 20.0), t_min=0.01)
    x0 = torch.linspace(-0.6, 0.6, 5, dtype=torch.float64)
    ref = log_likelihood(vp, GaussianMixture([1.0], [[0.0]], [0.2]).score_fn(vp), x0[:, None],
                         rtol=1e-8, atol=1e-8).logp
    out = _tensor(fn(x0), "logq(x0)", (5,))
    if not torch.allclose(out, ref, atol=1e-5):
        _fail("logq differs from the change-of-variables likelihood",
              "log q = log pi(x_T) + (1/2) log(v_T / v_tmin) with x_T = x0 sqrt(v_T / v_tmin).")
    return _ok("your closed form equals the change-of-variables likelihood")


def check_hutchinson(est) -> bool:
    """Exercise ``ex-hutchinson-variance``: Rademacher probes of the exercise's 3 x 3 matrix."""
    e = _tensor(est, "est")
    if e.dim() != 1 or e.numel() < 10000:
        raise ValueError("est must be a 1-D tensor of probe values (at least 10 000)")
    A = torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 1.0], [0.0, -3.0, 2.0]], dtype=torch.float64)
    m, se = _mean_se(e)
    if abs(m - float(torch.trace(A))) > 5 * se:
        _fail("the probes do not average to the trace", "each probe is eps^T A eps with independent random signs eps.")
    target_var = float(sum((A[i, j] + A[j, i]) ** 2 for i in range(3) for j in range(i + 1, 3)))
    v = float(e.var())
    m4 = float(((e - m) ** 4).mean())
    if abs(v - target_var) > 5 * math.sqrt(max(m4 - v**2, 1e-12) / e.numel()):
        _fail("the spread of the probes is not Hutchinson's variance",
              "did you use +-1 signs (Rademacher), not Gaussians?")
    return _ok("unbiased, with variance sum_{i<j} (A_ij + A_ji)^2")


def check_ddim_point_mass(ddim_step) -> bool:
    r"""Exercise ``ex-ddim-point-mass``: one DDIM step {eq}`eq-ddim-update` of a VP SDE, for any :math:`\eta`, and its
    exactness for data at a single point."""
    fn = _function(ddim_step, "ddim_step", "(sde, score, x, t, t_next, eta=0.0, xi=None) -> tensor like x")
    from .data import GaussianMixture
    from .schedules import Cosine, Linear
    from .sde import VPSDE

    gen = make_generator(_SEED, shift=False)
    x = torch.randn(6, 2, generator=gen, dtype=torch.float64) * 1.2
    xi = torch.randn(6, 2, generator=gen, dtype=torch.float64)
    mix = GaussianMixture([0.4, 0.6], [[-1.0, 0.5], [1.0, -0.5]], [0.3, 0.5])

    def reference(sde, score, t, t_next, eta):
        (a, s), (a2, s2) = [[float(v) for v in sde.marginal(tt)] for tt in (t, t_next)]
        z_hat = -s * score(x, torch.full((6,), t, dtype=torch.float64))
        var = eta**2 * (s2**2 / s**2) * (1 - a**2 / a2**2)
        return a2 * (x - s * z_hat) / a + math.sqrt(s2**2 - var) * z_hat + math.sqrt(var) * xi, (a, s, a2, s2, z_hat)

    for sde in (VPSDE(Linear(0.1, 20.0)), VPSDE(Cosine())):
        score = mix.score_fn(sde)
        for t, t_next, eta in ((0.8, 0.5, 0.0), (0.3, 0.25, 0.0), (0.6, 0.4, 0.7), (0.5, 0.45, 1.0)):
            out = _tensor(_call_answer(fn, "ddim_step", sde, score, x.clone(), t, t_next, eta, xi.clone()),
                          "ddim_step(...)", (6, 2))
            want, (a, s, a2, s2, z_hat) = reference(sde, score, t, t_next, eta)
            if torch.allclose(out, want, rtol=1e-9, atol=1e-9):
                continue
            if eta == 0.0:
                _fail(f"the deterministic step (eta = 0) from t = {t} to {t_next} is wrong",
                      "z_hat = -sigma_t s(x, t) (mind the sign) and x0_hat = (x - sigma_t z_hat) / alpha_t, "
                      "both at the CURRENT time t; then x' = alpha_t' x0_hat + sigma_t' z_hat.")
            ancestral = (1 - a**2 / a2**2) * eta**2
            guess = a2 * (x - s * z_hat) / a + math.sqrt(s2**2 - ancestral) * z_hat + math.sqrt(ancestral) * xi
            if torch.allclose(out, guess, rtol=1e-9, atol=1e-9):
                _fail("the fresh noise has the variance eta^2 (1 - alpha_t^2/alpha_t'^2) of the ancestral step",
                      "DDIM's varsigma^2 has the extra factor sigma_t'^2 / sigma_t^2: "
                      "the variance of x_t' given x_t and x_0.")
            _fail(f"the step with eta = {eta} from t = {t} to {t_next} is wrong",
                  "keep the old noise with the weight sqrt(sigma_t'^2 - varsigma^2), so that the total variance is "
                  "sigma_t'^2, and add varsigma * xi.")
    # a single data point a: one step from T to t_min is the probability-flow map, exactly
    sde, a_pt = VPSDE(Linear(0.1, 20.0)), 0.5

    def score_point(y, t):
        al, si = sde.marginal(t)
        return -(y - al.reshape(-1, 1) * a_pt) / si.reshape(-1, 1) ** 2

    (aT, sT), (a1, s1) = [[float(v) for v in sde.marginal(tt)] for tt in (1.0, 0.01)]
    out = _tensor(_call_answer(fn, "ddim_step", sde, score_point, x.clone(), 1.0, 0.01, 0.0, None),
                  "ddim_step(...)", (6, 2))
    if not torch.allclose(out, a1 * a_pt + (s1 / sT) * (x - aT * a_pt), rtol=1e-9, atol=1e-9):
        _fail("for data at a single point one step from T = 1 to 0.01 misses the probability-flow path",
              "with eta = 0 and xi = None the step must not use xi.")
    return _ok("the DDIM step for eta = 0, 0.7 and 1 on two schedules, exact in one step for a single data point")


def _linear_flow_logq(x: torch.Tensor, t: float, B: torch.Tensor, *, sign: float = -1.0, volume: bool = True,
                      pull: float = -1.0, c=None) -> torch.Tensor:
    r"""Log-density of :math:`M x_0`, :math:`x_0\sim N(0, I)`, :math:`M = e^{cB}`, :math:`c = t + t^2/2`, evaluated
    as the Gaussian :math:`N(0, MM^\top)` (Cholesky factor, no trace shortcut). The keyword arguments build the
    wrong answers the check names: the volume term with the other sign (``sign=+1``) or left out, the pull-back
    with :math:`e^{+cB}` (``pull=+1``), another time integral ``c``."""
    c = t + t * t / 2 if c is None else c
    d = x.shape[1]
    if sign < 0 and volume and pull < 0:
        M = torch.linalg.matrix_exp(c * B)
        L = torch.linalg.cholesky(M @ M.T)
        z = torch.linalg.solve_triangular(L, x.T, upper=False).T
        return -0.5 * (z**2).sum(1) - 0.5 * d * math.log(2 * math.pi) - torch.log(torch.diagonal(L)).sum()
    x0 = x @ torch.linalg.matrix_exp(pull * c * B).T
    return (-0.5 * (x0**2).sum(1) - 0.5 * d * math.log(2 * math.pi)
            + (sign * c * float(torch.trace(B)) if volume else 0.0))


def check_cov_linear_flow(logq_linear) -> bool:
    r"""Exercise ``ex-cov-linear-flow``: ``logq_linear(x, t, B)`` is :math:`\log q_t(x)` for particles started from
    :math:`N(0, I)` at :math:`t = 0` that move with :math:`v = (1 + t)Bx`:
    :math:`-\tfrac12|e^{-cB}x|^2 - \tfrac d2\log 2\pi - c\,\mathrm{tr}B`, :math:`c = t + t^2/2`
    ({eq}`eq-cov-instantaneous`). The reference is the push-forward Gaussian :math:`N(0, MM^\top)`, :math:`M = e^{cB}`,
    computed without the trace; three times, a non-normal 3 x 3 matrix, tolerance 1e-8."""
    fn = _function(logq_linear, "logq_linear", "logq_linear(x, t, B) -> tensor (n,)")
    f64 = torch.float64
    B = torch.tensor([[0.2, 1.0, 0.0], [-0.6, -0.5, 0.4], [0.3, 0.0, 0.7]], dtype=f64)     # tr B = 0.4, not normal
    x = torch.randn(6, 3, generator=make_generator(_SEED), dtype=f64) * 1.5
    for t in (0.0, 0.5, 1.2):
        where = f"logq_linear(x, {t}, B)"
        out = _tensor(_call_answer(fn, "logq_linear", x.clone(), t, B.clone()), where, (6,))
        ref = _linear_flow_logq(x, t, B)
        close = lambda want: torch.allclose(out, want, rtol=1e-8, atol=1e-8)
        if close(ref):
            continue
        if t == 0.0:
            _fail(f"{where} is not the standard normal log-density", "at t = 0 nothing has moved: q_0 = N(0, I).")
        if close(_linear_flow_logq(x, t, B, sign=+1.0)):
            _fail(f"{where}: the volume term has the wrong sign",
                  "The instantaneous change of variables (Chapter 4): d log q/dt = -div v, so "
                  "the density at a particle falls where the flow spreads out: subtract c(t) tr B.")
        if close(_linear_flow_logq(x, t, B, volume=False)):
            _fail(f"{where}: the volume term is missing", "log q_t(x_t) = log q_0(x_0) - int_0^t div v ds with "
                  "div v = (1 + s) tr B: a linear flow changes volume by det e^{cB} = e^{c tr B}.")
        if close(_linear_flow_logq(x, t, B, pull=+1.0)):
            _fail(f"{where}: x_0 is pulled back the wrong way", "x_t = e^{c B} x_0, so x_0 = e^{-c B} x_t.")
        if any(close(_linear_flow_logq(x, t, B, c=c)) for c in (t, t * (1 + t), 1 + t)):
            _fail(f"{where}: the time integral is wrong", "the velocity (1 + t) B x grows with t: "
                  "c(t) = int_0^t (1 + s) ds = t + t^2/2, both in e^{-cB} and in the volume term.")
        _fail(f"{where} is not log q_t of the linear flow",
              "log q_t(x) = log N(e^{-cB} x; 0, I) - c tr B with c = t + t^2/2; x has shape (n, d).")
    return _ok("log q_t of the linear flow equals the push-forward Gaussian N(0, M M^T), M = e^{cB}")


# --- Chapter 5 ------------------------------------------------------------------------------------
def check_ou_mean_path_action(A_ito, A_strat, *, theta: float = 2.0, T: float = 1.0) -> bool:
    """Exercise ``ex-ou-action``: the actions of the OU mean path under the Ito and Stratonovich rules."""
    a, b = _number(A_ito, "A_ito"), _number(A_strat, "A_strat")
    if not (0 <= a < 1e-3):
        _fail("the Ito action of the mean path should be (nearly) zero",
              "the mean path solves x' = f, so the kinetic term vanishes.")
    if abs(b + theta * T / 2) > 1e-3:
        _fail("the Stratonovich action should tend to its Jacobian term",
              "a * integral of div f with a = 1/2 and div f = -theta.")
    return _ok("Ito ~ 0, Stratonovich ~ the Jacobian term")


def check_jacobian_step(log_jac) -> bool:
    """Exercise ``ex-jacobian-step``: the exact log-Jacobian of one step, double well, a = 1/2, eps = 0.05."""
    lj = _tensor(log_jac, "log_jac", (21, 21))
    xs = torch.linspace(-1.5, 1.5, 21, dtype=torch.float64)
    xbar = xs[:, None] + 0.5 * (xs[None, :] - xs[:, None])
    if not torch.allclose(lj, torch.log(1 - 0.5 * 0.05 * (1 - 3 * xbar**2)), atol=1e-10):
        _fail("log_jac is not log(1 - a eps f'(x_bar))",
              "rows are x_n, columns x_{n+1}; x_bar = x_n + a (x_{n+1} - x_n).")
    return _ok("the exact Jacobian, whose first order is -a eps f'")


def check_classical_gaussian(mean_path_small, spread_small) -> bool:
    r"""Exercise ``ex-classical-gaussian``: the :math:`\hbar = 10^{-4}` sampler for data :math:`N(0, 0.04)` under the
    linear VP SDE, from :math:`x_T = 1.5`, 500 Euler steps from 1 to 0.01.

    The mean path must follow the probability-flow path :math:`x_T\sqrt{v_t/v_T}` ({eq}`eq-hbar-action`'s classical
    path) and the spread must be the :math:`\sqrt\hbar` fluctuation of Eq. {eq}`eq-jacobi`: for a Gaussian model the
    sampler is linear, so the variance of its Euler chain obeys exactly
    :math:`\Sigma_{k+1} = (1 + J_k\Delta t)^2\Sigma_k + \hbar g_k^2|\Delta t|`, :math:`J = \partial F_\hbar/\partial x`.
    The sample standard deviation of 400 paths is compared with it at steps 100, 200, ..., 500 within 20 %
    (five standard errors, 1/sqrt(800) each), which rejects the :math:`\hbar = 0` path (spread 0) and a factor 2 in
    :math:`\hbar`.
    """
    m = _tensor(mean_path_small, "mean_path_small", (501,))
    sp = _tensor(spread_small, "spread_small", (501,))
    from .solvers import time_grid

    vp, hbar, v0 = _vp(), 1e-4, 0.04
    v = lambda t: (lambda a, s: a**2 * v0 + s**2)(*(float(z) for z in vp.marginal(t)))
    ts = time_grid(1.0, 0.01, 500).tolist()
    classical = torch.tensor([1.5 * math.sqrt(v(t) / v(1.0)) for t in ts], dtype=torch.float64)
    var = [0.0]
    for t, t_next in zip(ts[:-1], ts[1:]):
        dt, beta = t_next - t, float(vp.diffusion(t)) ** 2
        J = -0.5 * beta + 0.5 * (1 + hbar) * beta / v(t)          # d/dx of f - (1+hbar)/2 g^2 (-x / v_t)
        var.append((1 + J * dt) ** 2 * var[-1] + hbar * beta * abs(dt))
    want = torch.tensor(var, dtype=torch.float64).sqrt()
    if float((m - classical).abs().max()) > 5e-3:
        _fail("the mean path is not the probability-flow path",
              "hbar = 1e-4, start at 1.5, 500 steps from t = 1 down to 0.01.")
    ratio = sp[100::100] / want[100::100]
    if not bool(((ratio - 1).abs() < 0.2).all()):
        _fail("the spread is not the sqrt(hbar) fluctuation of the hbar = 1e-4 sampler "
              f"(ratios {[round(float(r), 3) for r in ratio]})",
              "store the standard deviation over the 400 paths at each step; "
              "run the sampler with hbar = 1e-4, not the ODE.")
    return _ok("small-hbar paths follow the classical path, with sqrt(hbar) fluctuations "
               f"(measured / predicted spread at steps 100, ..., 500: {[round(float(r), 3) for r in ratio]})")


def check_hbar_star(hbar_star) -> bool:
    """Exercise ``ex-hbar-coefficient``: the minimiser of (1 + hbar)^2 / (8 hbar)."""
    h = _number(hbar_star, "hbar_star")
    if abs(h - 1.0) > 1e-3:
        _fail("hbar_star does not minimise the coefficient",
              "set the derivative (1 + hbar)(hbar - 1) / (8 hbar^2) to zero.")
    return _ok("the path-KL coefficient is smallest at hbar = 1")


# --- 1. public check (diffedu/checks.py) ------------------------------------------------------------------------------
def check_fluctuation_gauss(fluct_var_gauss) -> bool:
    r"""Exercise ``ex-fluctuation-gaussian``: ``fluct_var_gauss(t, v0)``, the solution :math:`C_t` of
    {eq}`eq-fluct-lyapunov` for data :math:`N(0, v_0)` under the linear VP SDE (:math:`T = 1`).

    The reference is :math:`C_t = v_t\log(\alpha_t^2 v_T / (\alpha_T^2 v_t))` with :math:`\alpha_t` and :math:`\sigma_t`
    from ``VPSDE.marginal``; the answer must match it to 1e-6 (relative) at 41 times for four values of :math:`v_0`,
    which rejects the free spread :math:`\int_t^T\beta` (no :math:`J` terms), :math:`2J` in place of :math:`J`, and a
    dropped factor :math:`v_t`.
    """
    fn = _function(fluct_var_gauss, "fluct_var_gauss", "fluct_var_gauss(t, v0) -> tensor like t")
    vp = _vp()
    t = torch.linspace(0.0, 1.0, 41, dtype=torch.float64)
    alpha, sigma = vp.marginal(t)
    aT, sT = (float(z) for z in vp.marginal(1.0))
    free = torch.log(alpha**2 / aT**2)                           # int_t^T beta ds: the answer without the J terms
    for v0 in (0.04, 0.5, 2.5, 1.0):
        got = _tensor(fn(t.clone(), v0), f"fluct_var_gauss(t, {v0})", (41,))
        v, vT = alpha**2 * v0 + sigma**2, aT**2 * v0 + sT**2
        want = v * (torch.log(alpha**2 / v) - math.log(aT**2 / vT))
        if not torch.allclose(got, want, rtol=1e-6, atol=1e-10):
            if v0 != 1.0 and torch.allclose(got, free, rtol=1e-3, atol=1e-6):
                _fail(f"for v0 = {v0} the answer is int_t^T beta ds, the spread of a free Brownian motion",
                      "keep the J C + C J terms of the Lyapunov equation: "
                      "J = beta (1/v_t - 1) / 2 is not zero unless v0 = 1.")
            k = int((got - want).abs().argmax())
            _fail(f"C_t is wrong for v0 = {v0} (at t = {float(t[k]):.3f}: {float(got[k]):.6g})",
                  "solve dC/dt = 2 J C - beta with C_1 = 0; the integrating factor is exp(-2 int J) = v_s / v_t, "
                  "and d/ds log(alpha_s^2 / v_s) = -beta / v_s.")
    return _ok("C_t = v_t log(alpha_t^2 v_T / (alpha_T^2 v_t)): the fluctuation variance of the Gaussian model")



def _birth_death_gap(U, D: float, L: float, n: int) -> float:
    r"""Spectral gap of the detailed-balance discretisation of :math:`\partial_x(U'p) + D\partial_x^2 p` on
    ``n`` points of ``[-L, L]`` (reflecting ends): the symmetric tridiagonal matrix with :math:`-D/h^2` off the
    diagonal and :math:`(D/h^2)\,(e^{-(U_{i+1} - U_i)/2D} + e^{-(U_{i-1} - U_i)/2D})` on it (a missing neighbour
    contributes nothing). Its lowest eigenvalue is exactly 0; the gap is second order in ``h``."""
    x = torch.linspace(-L, L, n, dtype=torch.float64)
    h = float(x[1] - x[0])
    u = U(x)
    right = torch.cat([torch.exp(-(u[1:] - u[:-1]) / (2 * D)), torch.zeros(1, dtype=torch.float64)])
    left = torch.cat([torch.zeros(1, dtype=torch.float64), torch.exp(-(u[:-1] - u[1:]) / (2 * D))])
    off = torch.full((n - 1,), -D / h**2, dtype=torch.float64)
    S = torch.diag(D / h**2 * (right + left)) + torch.diag(off, 1) + torch.diag(off, -1)
    lam = torch.linalg.eigvalsh(S)
    return float(lam[1] - lam[0])


def check_schrodinger_quartic(quartic_vs, gap_quartic) -> bool:
    r"""Exercise ``ex-schrodinger-quartic``: ``quartic_vs(x, D)`` is :math:`V_S = x^6/4D - \tfrac32x^2`, the
    Schrödinger potential {eq}`eq-schr-hamiltonian` of :math:`U = x^4/4`, and ``gap_quartic`` the spectral gap
    :math:`\lambda_1` for :math:`D = \tfrac12`. The reference gap comes from the detailed-balance discretisation of the
    Fokker–Planck operator (no :math:`V_S` in it) on two grids, Richardson-extrapolated; tolerance :math:`10^{-5}`
    (relative, the accuracy the exercise asks for)."""
    fn = _function(quartic_vs, "quartic_vs", "quartic_vs(x, D) -> tensor like x")
    gap = _number(gap_quartic, "gap_quartic")
    x = torch.linspace(-2.0, 2.0, 9, dtype=torch.float64).reshape(3, 3)
    formula_hint = ("U = x^4/4 has U' = x^3 and U'' = 3 x^2; the Schrodinger potential (Chapter 5) "
                    "is V_S = U'^2 / (4 D) - U'' / 2, so V_S = x^6 / (4 D) - 3 x^2 / 2.")
    for D in (0.5, 0.2, 1.7):
        out = _tensor(fn(x.clone(), D), f"quartic_vs(x, {D:g})", (3, 3))
        want = x**6 / (4 * D) - 1.5 * x**2
        if bool(((out - want).abs() <= 1e-9 * (1 + want.abs())).all()):
            continue
        close = lambda v: bool(((out - v).abs() <= 1e-6 * (1 + v.abs())).all())
        if close(x**6 / (4 * D) + 1.5 * x**2):
            _fail(f"quartic_vs(x, {D:g}) has the wrong sign of the U''/2 term",
                  "that is the partner potential U'^2/4D + U''/2, which has no zero level. " + formula_hint)
        if close(x**6 / D - 1.5 * x**2):
            _fail(f"quartic_vs(x, {D:g}) has U'^2 / D where the Schrodinger potential (Chapter 5) has U'^2 / (4 D)",
                  "the first-derivative terms of (e^{-U/2D} psi)'' carry a factor 1/(2D) each. " + formula_hint)
        if close(x**6 / (4 * D)):
            _fail(f"quartic_vs(x, {D:g}) misses the - U''/2 term", formula_hint)
        _fail(f"quartic_vs(x, {D:g}) is not V_S of U = x^4/4", formula_hint)
    g1, g2 = _birth_death_gap(lambda y: y**4 / 4, 0.5, 4.0, 401), _birth_death_gap(lambda y: y**4 / 4, 0.5, 4.0, 801)
    ref = (4 * g2 - g1) / 3
    if abs(gap - ref) > 1e-5 * ref:
        if abs(gap - ref) < 2e-3 * ref:
            _fail(f"gap_quartic = {gap:.7g} is close, but not accurate to 1e-5",
                  "remove the h^2 error: compute the gap lambda_1 - lambda_0 on two grids (h and h/2) and take "
                  "(4 gap_{h/2} - gap_h) / 3 (the grid-error law of Chapter 5).")
        _fail(f"gap_quartic = {gap:.6g} is not the spectral gap of H = -D d^2/dx^2 + V_S for D = 1/2",
              "build the symmetric tridiagonal matrix of H with quartic_vs(x, 0.5) on [-4, 4] (2D/h^2 + V_S on the "
              "diagonal, -D/h^2 beside it), take lambda_1 - lambda_0 from torch.linalg.eigvalsh, on two grids.")
    return _ok("V_S = x^6/4D - 3x^2/2, and the gap of the quartic well is right")


# --- Chapter 6 -----------------------------------------------------------------------------------
def check_consistent_correction(corr_B) -> bool:
    """Exercise ``ex-wkb-consistent``: a score that is exact for *another* distribution has no first-order term."""
    c = _tensor(corr_B, "corr_B", (4,))
    if float(c.abs().max()) > 5e-2:
        _fail(f"the corrections are not ~0 (largest {float(c.abs().max()):.3g})",
              "use the exact score of mixture B (mixture_B.score_fn(sde)) for s_theta, "
              "not the data's score times 1.05.")
    return _ok("the first-order correction vanishes for a self-consistent (but wrong) model")


def check_gauss_nll_slopes(slopes) -> bool:
    """Exercise ``ex-gauss-slope-sign``: dNLL/dhbar at 0 of the Gaussian model for eps = -0.2, -0.1, 0.1, 0.2."""
    if isinstance(slopes, (list, tuple)):
        slopes = torch.tensor([_number(v, "slopes[i]") for v in slopes], dtype=torch.float64)
    s = _tensor(slopes, "slopes", (4,))
    from .wkb import GaussianModel1D

    want = []
    for eps in (-0.2, -0.1, 0.1, 0.2):
        want.append(GaussianModel1D(v0=0.5, eps=eps, beta=2.0, T=3.0, prior_var=1.0).nll_slope(steps=4000))
    want = torch.tensor(want, dtype=torch.float64)
    if float((s - want).abs().max()) > 1e-4 * (1 + float(want.abs().max())):
        _fail("the slopes differ from (u - v0) du/dhbar / (2u^2)",
              "NLL = v0/(2u) + log(2 pi u)/2; "
              "differentiate in hbar at 0 with u, du/dhbar from GaussianModel1D.variance(0.0).")
    return _ok("dNLL/dhbar = (u - v0) du/dhbar / (2u^2): the sign of u - v0 times the sign of du/dhbar")


def check_score_tmin(sigma0, H0, *, x=(-1.0, 0.5, 2.0)) -> bool:
    """Exercise ``ex-score-tmin``: the score and Hessian ODEs end at -x/u and -1/u for the Gaussian model."""
    s = _tensor(sigma0, "sigma0", (3,))
    h = _tensor(H0, "H0", (3,))
    from .wkb import GaussianModel1D

    u, _ = GaussianModel1D(v0=0.5, eps=0.1, beta=2.0, T=3.0, prior_var=1.0).variance(0.0, steps=4000)
    xs = torch.tensor(x, dtype=torch.float64)
    if float((s + xs / u).abs().max()) > 1e-4 or float((h + 1 / u).abs().max()) > 1e-4:
        _fail("sigma0 / H0 are not -x/u and -1/u", "take r.score[:, 0] and r.hessian[:, 0, 0] of the exact method.")
    return _ok("the score and Hessian ODEs reproduce the gradient and curvature of log q_0^0")


def check_gibbs_crossing(hbar_c, nll_at_c) -> bool:
    """Exercise ``ex-gibbs-crossing``: where the first-order line crosses the entropy of N(0, v0)."""
    hc = _number(hbar_c, "hbar_c")
    nc = _number(nll_at_c, "nll_at_c")
    from .wkb import GaussianModel1D

    m = GaussianModel1D(v0=0.5, eps=0.1, beta=2.0, T=3.0, prior_var=1.0)
    entropy = m.entropy()
    want = (entropy - m.nll(0.0)) / m.nll_slope(steps=4000)
    if abs(hc - want) > 1e-3:
        _fail("hbar_c is not where NLL(0) + hbar * slope equals the entropy", "H = log(2 pi e v0)/2 for data N(0, v0).")
    if abs(nc - m.nll(hc)) > 1e-4 or nc < entropy:
        _fail("nll_at_c is not the exact NLL at hbar_c", "use GaussianModel1D(...).nll(hbar_c).")
    return _ok(f"the line crosses the entropy at hbar = {hc:.3f}, "
               f"where the exact NLL is still {nc - entropy:.3f} above it")


# --- Chapter 7 ------------------------------------------------------------------------------------
def _call_answer(fn, name: str, *args):
    try:
        return fn(*args)
    except Exception as err:                       # noqa: BLE001 — the student's function failed
        raise AssertionError(f"✘ {name} raised {type(err).__name__}: {err}") from None


def check_linear_velocity(linear_velocity) -> bool:
    r"""Exercise ``ex-linear-velocity``: :math:`v = -x/(1-t) - \tfrac{t}{1-t}\,s` for the linear path."""
    fn = _function(linear_velocity, "linear_velocity", "(x, t, score) -> tensor like x")
    gen = make_generator(_SEED)
    x = torch.randn(7, 2, generator=gen, dtype=torch.float64)
    s = torch.randn(7, 2, generator=gen, dtype=torch.float64)
    for t in (0.1, 0.5, 0.9):
        out = _tensor(_call_answer(fn, "linear_velocity", x.clone(), t, s.clone()),
                      "linear_velocity(x, t, score)", (7, 2))
        want = -x / (1 - t) - t / (1 - t) * s
        if not torch.allclose(out, want, rtol=1e-6, atol=1e-8):
            if torch.allclose(out, -x / (1 - t) - 2 * t / (1 - t) * s, rtol=1e-6, atol=1e-8):
                _fail(f"at t = {t} the score term is twice too large",
                      "v = (alpha'/alpha) x - g^2 s / 2: mind the 1/2.")
            _fail(f"at t = {t} the velocity is not the linear path's", "alpha'/alpha = -1/(1-t), g^2 = 2t/(1-t).")
    return _ok("the marginal velocity of the linear path from the score, at three times")


def check_bridge_covariance(bridge_cov) -> bool:
    r"""Exercise ``ex-bridge-covariance``: :math:`c = 2v_0v_1/(\varepsilon + \sqrt{\varepsilon^2 + 4v_0v_1})`."""
    fn = _function(bridge_cov, "bridge_cov", "(v0, v1, eps) -> number")
    for v0, v1, eps in ((0.25, 0.5, 0.0), (0.25, 0.5, 0.5), (1.0, 2.0, 3.0), (1.0, 1.0, 1e7), (0.3, 0.7, 1e8)):
        c = _number(_call_answer(fn, "bridge_cov", v0, v1, eps), "bridge_cov(v0, v1, eps)")
        want = 2 * v0 * v1 / (eps + math.sqrt(eps * eps + 4 * v0 * v1))
        if not abs(c - want) <= 1e-12 * want:
            if c < 0:
                _fail(f"bridge_cov({v0}, {v1}, {eps}) is negative",
                      "take the root with c > 0: the kernel correlates the ends.")
            if eps >= 1e6 and abs(c - want) < 0.5 * want:                # right formula, lost digits
                _fail(f"bridge_cov({v0}, {v1}, {eps:g}) loses digits",
                      "(-eps + sqrt(eps^2 + 4 v0 v1)) / 2 cancels for large "
                      "eps: multiply numerator and denominator by eps + sqrt(...).")
            _fail(f"bridge_cov({v0}, {v1}, {eps:g}) does not solve c^2 + eps c = v0 v1",
                  "equate the cross terms x0 x1 of "
                  "log pi: c / (v0 v1 - c^2) = 1 / eps.")
    return _ok("c solves c^2 + eps c = v0 v1 to round-off, from eps = 0 to 1e8")


def check_sinkhorn_plain(sinkhorn_plain) -> bool:
    """Exercise ``ex-sinkhorn-plain``: the plain Sinkhorn iteration, against the log-domain solver."""
    from .bridges import sinkhorn_bridge
    from .fokker_planck import Grid

    fn = _function(sinkhorn_plain, "sinkhorn_plain", "(mu, nu, x, eps, sweeps) -> tensor (n, n)")
    grid = Grid(-5.0, 5.0, 90)
    x = grid.axes[0]
    mu = torch.exp(-(x + 1.0) ** 2 / 0.5) + 0.5 * torch.exp(-(x - 1.5) ** 2 / 0.2)
    mu = mu / mu.sum()
    nu = torch.exp(-(x - 0.5) ** 2 / 1.2)
    nu = nu / nu.sum()
    pi = _tensor(_call_answer(fn, "sinkhorn_plain", mu.clone(), nu.clone(), x.clone(), 0.7, 300),
                 "sinkhorn_plain(mu, nu, x, eps, sweeps)", (90, 90))
    if float((pi.sum(0) - nu).abs().sum()) > 1e-8:
        _fail("the coupling's second marginal is not nu", "end each sweep with b = nu / (K^T a).")
    if float((pi.sum(1) - mu).abs().sum()) > 1e-6:
        _fail("the coupling's first marginal is not mu after 300 sweeps", "a = mu / (K b), then b = nu / (K^T a).")
    ref = sinkhorn_bridge(mu, nu, grid, 0.7, tol=1e-12).coupling
    if float((pi - ref).abs().max()) > 1e-8 * float(ref.max()):
        _fail("the coupling has the right marginals but is not the Schrödinger coupling",
              "the kernel is exp(-(x_j - x_i)^2 / (2 eps)).")
    # after 3 sweeps the iteration has not converged: the order of the updates shows
    k = torch.exp(-(x[None, :] - x[:, None]) ** 2 / 1.4)
    b = torch.ones_like(nu)
    for _ in range(3):
        a = mu / (k @ b)
        b = nu / (k.T @ a)
    short = _tensor(_call_answer(fn, "sinkhorn_plain", mu.clone(), nu.clone(), x.clone(), 0.7, 3),
                    "sinkhorn_plain(mu, nu, x, eps, 3)", (90, 90))
    if float((short - a[:, None] * k * b[None, :]).abs().max()) > 1e-10:
        _fail("after 3 sweeps the coupling is not Sinkhorn's", "start from b = 1 and update a, then b, once per sweep.")
    return _ok("the coupling matches both marginals and the log-domain solver")


def check_ancestral_step(ancestral_var, ratio_linear) -> bool:
    r"""Exercise ``ex-ancestral-step``: :math:`\mathrm{Var}(x_{t'}\,|\,x_t, x_0) = \sigma_{t'}^2\rho^2/\sigma_t^2`
    on any path, and its ratio to :math:`g_t^2\Delta t` on the linear path (:math:`\to 1`: the ancestral step is the
    :math:`\hbar = 1` sampler)."""
    fn = _function(ancestral_var, "ancestral_var", "(alpha, sigma, alpha_next, sigma_next) -> number")
    # a VP step, and two steps of paths that are not VP (sigma^2 != 1 - alpha^2)
    for a, s, a2, s2 in ((0.5, math.sqrt(0.75), 0.6, 0.8), (0.7, 0.3, 0.8, 0.2), (0.5, 1.2, 0.9, 0.6)):
        out = _number(_call_answer(fn, "ancestral_var", a, s, a2, s2), "ancestral_var(...)")
        want = s2**2 * (s**2 - (a / a2) ** 2 * s2**2) / s**2
        if abs(out - want) > 1e-10 * max(1.0, want):
            ddim = (s2**2 / s**2) * (1 - a**2 / a2**2)
            if abs(out - ddim) <= 1e-10 * max(1.0, ddim):
                _fail("ancestral_var is DDIM's formula, which holds only on the VP path",
                      "condition x_t' on x_t and x_0 for a general path: rho^2 = sigma^2 - (alpha/alpha')^2 sigma'^2.")
            _fail("ancestral_var is not Var(x_t' | x_t, x_0)",
                  "Var = sigma'^2 - Cov^2 / sigma^2 with Cov = (alpha/alpha') sigma'^2.")
    r = _number(ratio_linear, "ratio_linear")
    if abs(r - 1.0) > 1e-3:
        _fail(f"ratio_linear = {r:.5f} is not the limit of Var / (g^2 dt) on the linear path",
              "g^2 = 2t/(1-t) for alpha = 1 - t, sigma = t; take alpha_next, sigma_next at t - dt.")
    return _ok(f"the ancestral variance on any path, and ratio_linear = {r:.5f}: "
               "the ancestral step is the hbar = 1 sampler")
