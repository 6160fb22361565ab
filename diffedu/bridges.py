r"""Schrödinger bridges in one dimension: the closed form for Gaussian ends and Sinkhorn on a grid (Chapter 7,
{eq}`eq-sb-problem`).

The **Schrödinger bridge** from :math:`p_0` to :math:`p_1` with reference noise :math:`\varepsilon` is the
path measure on :math:`[0, 1]` with those two marginals that is closest in KL divergence to Brownian motion
:math:`dX = \sqrt\varepsilon\,dW` (variance :math:`\varepsilon` per unit time).  Its law is a mixture of
Brownian bridges over the **static** solution, the entropic optimal-transport coupling

.. math:: \pi(x_0, x_1) = a(x_0)\,K_\varepsilon(x_0, x_1)\,b(x_1), \qquad
          K_\varepsilon(x_0, x_1) = N(x_1;\,x_0,\,\varepsilon),

whose two factors are fixed by the marginals (the Schrödinger system).  Between the ends,
:math:`p_t = \hat\varphi_t\,\varphi_t` with :math:`\hat\varphi_t = a * N(0, \varepsilon t)` solving the forward
heat equation and :math:`\varphi_t = b * N(0, \varepsilon(1-t))` the backward one, and the bridge is the
Markov process :math:`dX = u_t(X)\,dt + \sqrt\varepsilon\,dW` with drift
:math:`u_t = \varepsilon\,\partial_x\log\varphi_t`, which is
:math:`(E[X_1\,|\,X_t = x] - x)/(1 - t)`.

* :func:`gaussian_bridge` — the closed form for :math:`p_0 = N(m_0, v_0)`, :math:`p_1 = N(m_1, v_1)`: the
  coupling's covariance solves :math:`c^2 + \varepsilon c = v_0 v_1`, and every marginal is Gaussian.
  :math:`\varepsilon = 0` is the classical limit, the monotone optimal-transport map.
* :func:`sinkhorn_bridge` — iterative proportional fitting (Sinkhorn) for any two densities on a
  :class:`~diffedu.fokker_planck.Grid`, in the log domain, with its iteration count and marginal error.
* :func:`monotone_map` — the optimal-transport map :math:`F_1^{-1}\circ F_0` of two 1-D densities, the
  :math:`\varepsilon\to0` limit of the bridge's coupling.

Time runs from :math:`p_0` at :math:`t = 0` to :math:`p_1` at :math:`t = 1` here (the bridge literature's
convention); Chapter 7 says how a diffusion model's forward and reverse pair fits into it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import _checks
from .fokker_planck import Grid

__all__ = ["GaussianBridge", "gaussian_bridge", "SinkhornBridge", "sinkhorn_bridge", "monotone_map",
           "brownian_bridge_paths"]


def _unit_time(t, name: str = "t", *, open_ends: bool = False) -> float:
    return _checks.real(t, name, low=0.0, high=1.0, low_open=open_ends, high_open=open_ends)


def _points(x, name: str = "x") -> torch.Tensor:
    """Evaluation points: a number or a 1-D tensor/sequence of numbers, as float64."""
    t = _checks.reals(x, name)
    if t.dim() > 1:
        raise ValueError(f"{name} must be a number or one-dimensional, got shape {tuple(t.shape)}")
    return t


def _finite(out: torch.Tensor, name: str = "x") -> torch.Tensor:
    """``out`` unchanged, or a ValueError naming the evaluation points when they overflow float64."""
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"{name} has points so far from the densities' mass that the result leaves float64 "
                         "(overflows, or its density underflows to 0)")
    return out


@dataclass(frozen=True)
class GaussianBridge:
    r"""The Schrödinger bridge between :math:`N(m_0, v_0)` and :math:`N(m_1, v_1)`; build it with :func:`gaussian_bridge`,
    which solves for ``c``.

    ``c`` is :math:`\mathrm{Cov}(X_0, X_1)` of the coupling, ``correlation`` is :math:`c/\sqrt{v_0 v_1}`.
    """

    m0: float
    v0: float
    m1: float
    v1: float
    eps: float
    c: float

    @property
    def correlation(self) -> float:
        return self.c / math.sqrt(self.v0 * self.v1)

    def mean(self, t) -> float:
        r""":math:`E[X_t] = (1-t)m_0 + t m_1`."""
        t = _unit_time(t)
        return (1 - t) * self.m0 + t * self.m1

    def var(self, t) -> float:
        r""":math:`\mathrm{Var}\,X_t = (1-t)^2 v_0 + t^2 v_1 + 2t(1-t)c + \varepsilon t(1-t)`: the coupling's
        variance along the chord plus the Brownian bridge's own :math:`\varepsilon t(1-t)`."""
        t = _unit_time(t)
        return (1 - t) ** 2 * self.v0 + t ** 2 * self.v1 + 2 * t * (1 - t) * self.c + self.eps * t * (1 - t)

    def log_prob(self, x, t) -> torch.Tensor:
        r""":math:`\log N(x;\,E X_t,\,\mathrm{Var}\,X_t)`, the bridge's marginal density at time ``t``."""
        x = _points(x)
        m, v = self.mean(t), self.var(t)
        return _finite(-0.5 * (x - m) ** 2 / v - 0.5 * math.log(2 * math.pi * v))

    def drift(self, x, t) -> torch.Tensor:
        r"""The bridge's drift :math:`u_t(x) = \dot m_t + k_t\,(x - m_t)` with :math:`k_t = (\dot V_t - \varepsilon)/2V_t`:
        the only affine drift that, with noise :math:`\sqrt\varepsilon\,dW`, carries :math:`N(m_t, V_t)` along
        (the variance obeys :math:`\dot V = 2kV + \varepsilon`).  Defined for :math:`t \in [0, 1)`."""
        x = _points(x)
        t = _checks.real(t, "t", low=0.0, high=1.0, high_open=True)
        v = self.var(t)
        dv = (-2 * (1 - t) * self.v0 + 2 * t * self.v1 + 2 * (1 - 2 * t) * self.c + self.eps * (1 - 2 * t))
        k = (dv - self.eps) / (2 * v)
        return _finite((self.m1 - self.m0) + k * (x - self.mean(t)))

    def conditional_mean(self, x0) -> torch.Tensor:
        r""":math:`E[X_1\,|\,X_0 = x_0] = m_1 + (c/v_0)(x_0 - m_0)`; at :math:`\varepsilon = 0` the monotone map
        :math:`m_1 + \sqrt{v_1/v_0}\,(x_0 - m_0)`."""
        x0 = _points(x0, "x0")
        return _finite(self.m1 + self.c / self.v0 * (x0 - self.m0), "x0")

    def sample(self, n: int, ts, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""``n`` paths of the bridge at the increasing times ``ts`` (in :math:`[0, 1]`), shape ``(len(ts), n)``:
        end points from the Gaussian coupling, then a Brownian bridge of variance :math:`\varepsilon` per unit
        time pinned at both (:func:`brownian_bridge_paths`)."""
        n = _checks.positive_int(n, "n", high=10_000_000)
        ts = _times(ts)
        gen = _checks.generator(generator)
        z = torch.randn(2, n, generator=gen, dtype=torch.float64)
        x0 = self.m0 + math.sqrt(self.v0) * z[0]
        cond_var = max(self.v1 - self.c ** 2 / self.v0, 0.0)            # Var(X_1 | X_0)
        x1 = self.conditional_mean(x0) + math.sqrt(cond_var) * z[1]
        return brownian_bridge_paths(x0, x1, ts, self.eps, gen)


def _times(ts) -> torch.Tensor:
    ts = _checks.vector(ts, "ts")
    if ts.numel() < 1 or bool((ts < 0).any() or (ts > 1).any()) or bool((ts[1:] <= ts[:-1]).any()):
        raise ValueError("ts must be a non-empty, strictly increasing sequence of times in [0, 1]")
    return ts


def brownian_bridge_paths(x0, x1, ts, eps, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Brownian bridges of variance ``eps`` per unit time from ``x0`` at :math:`t = 0` to ``x1`` at :math:`t = 1`
    (1-D tensors of the same length), at the increasing times ``ts`` in :math:`[0, 1]`: shape ``(len(ts), n)``.

    Point by point: given :math:`X_s` and the end :math:`x_1`,
    :math:`X_t \sim N\big(X_s + \tfrac{t-s}{1-s}(x_1 - X_s),\ \varepsilon\tfrac{(t-s)(1-t)}{1-s}\big)`."""
    x0, x1 = _checks.vector(x0, "x0"), _checks.vector(x1, "x1")
    if x0.shape != x1.shape:
        raise ValueError(f"x0 and x1 must have the same length, got {x0.numel()} and {x1.numel()}")
    ts = _times(ts)
    eps = _checks.real(eps, "eps", low=0.0, high=_checks.SCALE_MAX)
    gen = _checks.generator(generator)
    z = torch.randn(ts.numel(), x0.numel(), generator=gen, dtype=torch.float64)
    out, s, xs = [], 0.0, x0
    for k, t in enumerate(ts.tolist()):
        if t > s:
            w = (t - s) / (1 - s)
            xs = (1 - w) * xs + w * x1 + math.sqrt(eps * (t - s) * (1 - t) / (1 - s)) * z[k]
        s = t
        out.append(x1 if t == 1.0 else xs)
    return torch.stack(out)


def gaussian_bridge(m0, v0, m1, v1, eps) -> GaussianBridge:
    r"""The Schrödinger bridge between :math:`N(m_0, v_0)` at :math:`t = 0` and :math:`N(m_1, v_1)` at :math:`t = 1`
    for the reference :math:`dX = \sqrt\varepsilon\,dW`, in closed form ({eq}`eq-gaussian-bridge-c`, {eq}`eq-gaussian-bridge-var`).

    The coupling :math:`a(x_0)K_\varepsilon(x_0, x_1)b(x_1)` is Gaussian, and only the kernel
    :math:`\exp(-(x_1 - x_0)^2/2\varepsilon)` puts a cross term :math:`x_0x_1/\varepsilon` into its log-density;
    so the off-diagonal entry of the inverse covariance is :math:`-1/\varepsilon`, i.e.
    :math:`c/(v_0v_1 - c^2) = 1/\varepsilon`, and :math:`c = 2v_0v_1/(\varepsilon + \sqrt{\varepsilon^2 + 4v_0v_1})`
    (the positive root of :math:`c^2 + \varepsilon c = v_0v_1`, written without cancellation).
    :math:`\varepsilon\to0` gives :math:`c = \sqrt{v_0v_1}` (the monotone map); :math:`\varepsilon\to\infty`
    gives :math:`c\approx v_0v_1/\varepsilon\to0` (independent ends).

    ``m0``, ``m1``: real means; ``v0``, ``v1``: positive variances; ``eps`` :math:`\ge 0`.
    """
    m0 = _checks.real(m0, "m0", low=-_checks.SCALE_MAX, high=_checks.SCALE_MAX)
    m1 = _checks.real(m1, "m1", low=-_checks.SCALE_MAX, high=_checks.SCALE_MAX)
    v0, v1 = _checks.scale(v0, "v0"), _checks.scale(v1, "v1")
    eps = _checks.real(eps, "eps", low=0.0, high=_checks.SCALE_MAX)
    c = 2 * v0 * v1 / (eps + math.sqrt(eps * eps + 4 * v0 * v1))
    return GaussianBridge(m0, v0, m1, v1, eps, c)


@dataclass(frozen=True)
class SinkhornBridge:
    r"""The Schrödinger bridge between two densities on a 1-D grid (see :func:`sinkhorn_bridge`).

    ``coupling[i, j]`` is the mass :math:`\pi` puts on (cell :math:`i`, cell :math:`j`), summing to 1;
    ``log_a`` and ``log_b`` are the log-scalings of the Schrödinger system on the cell centres, ``coupling =
    exp(log_a[:, None] + log K + log_b[None, :])`` with :math:`\log K_{ij} = -(x_j - x_i)^2/2\varepsilon` (so the
    continuous factors are :math:`a(x_i) = e^{\log a_i}/h` and :math:`b(x_j) = \sqrt{2\pi\varepsilon}\,e^{\log b_j}/h`);
    ``iterations`` is the number of Sinkhorn sweeps, ``marginal_error`` the L1 distance between the
    coupling's first marginal and :math:`p_0` (the second is matched exactly by the last sweep),
    ``converged`` whether it fell below ``tol``.
    """

    grid: Grid
    eps: float
    coupling: torch.Tensor
    log_a: torch.Tensor
    log_b: torch.Tensor
    iterations: int
    marginal_error: float
    converged: bool

    @property
    def x(self) -> torch.Tensor:
        return self.grid.axes[0]

    def covariance(self) -> float:
        r""":math:`\mathrm{Cov}(X_0, X_1)` under the coupling."""
        x, pi = self.x, self.coupling
        m0, m1 = float(pi.sum(1) @ x), float(pi.sum(0) @ x)
        return float(x @ pi @ x) - m0 * m1

    def conditional_mean(self) -> torch.Tensor:
        r""":math:`E[X_1\,|\,X_0 = x_i]` at each cell centre (the barycentric map; NaN where :math:`p_0` has no mass)."""
        row = self.coupling.sum(1)
        return torch.where(row > 0, (self.coupling @ self.x) / row.clamp_min(1e-300), torch.full_like(row, math.nan))

    def sample(self, n: int, ts, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""``n`` paths of the bridge at the increasing times ``ts`` in :math:`[0, 1]`, shape ``(len(ts), n)``: end
        cells drawn from the coupling, end points uniform within their cells, then Brownian bridges
        (:func:`brownian_bridge_paths`) — the bridge is the mixture of the reference's bridges over the coupling."""
        n = _checks.positive_int(n, "n", high=10_000_000)
        ts = _times(ts)
        gen = _checks.generator(generator)
        m = self.coupling.shape[0]
        cdf = torch.cumsum(self.coupling.reshape(-1), 0)                  # inverse-CDF draws: any number of cells
        u = torch.rand(n, generator=gen, dtype=torch.float64) * float(cdf[-1])
        cells = torch.searchsorted(cdf, u).clamp_max(m * m - 1)
        h = self.grid.h[0]
        jitter = (torch.rand(2, n, generator=gen, dtype=torch.float64) - 0.5) * h
        x0 = self.x[cells // m] + jitter[0]
        x1 = self.x[cells % m] + jitter[1]
        return brownian_bridge_paths(x0, x1, ts, self.eps, gen)

    def _log_phi(self, x: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        """log of the forward potential a * N(0, eps t) and of the backward one b * N(0, eps (1 - t)) at x (0 < t < 1):
        sums over the cells of h a(x_i) N(x; x_i, eps t) and h b(x_j) N(x_j; x, eps (1 - t))."""
        xc, eps = self.x, self.eps
        log_b = self.log_b + 0.5 * math.log(2 * math.pi * eps)        # b carries the kernel's normalisation
        d2 = (x[:, None] - xc[None, :]) ** 2
        fwd = torch.logsumexp(self.log_a[None, :] - d2 / (2 * eps * t), 1) - 0.5 * math.log(2 * math.pi * eps * t)
        bwd = torch.logsumexp(log_b[None, :] - d2 / (2 * eps * (1 - t)), 1) - 0.5 * math.log(2 * math.pi * eps * (1 - t))
        return fwd, bwd

    def marginal(self, t, x=None) -> torch.Tensor:
        r"""The bridge's density :math:`p_t = \hat\varphi_t\,\varphi_t` ({eq}`eq-sb-potentials`) at the points ``x`` (default: the cell
        centres), for :math:`0 < t < 1`.  Accurate when :math:`\sqrt{\varepsilon t(1-t)}` spans a few cells (the
        potentials are sums of Gaussians centred on the cells)."""
        t = _unit_time(t, open_ends=True)
        x = self.x if x is None else _points(x).reshape(-1)
        fwd, bwd = self._log_phi(x, t)
        return torch.exp(_finite(fwd + bwd))

    def drift(self, x, t) -> torch.Tensor:
        r"""The bridge's drift {eq}`eq-sb-drift`, :math:`u_t(x) = \varepsilon\,\partial_x\log\varphi_t(x) = (E[X_1\,|\,X_t = x] - x)/(1-t)`
        for :math:`0 \le t < 1`, from the backward potential (a weighted mean over the cells; accurate while
        :math:`\sqrt{\varepsilon(1-t)}` spans a few cells, so it turns step-like as :math:`t\to1`)."""
        x = _points(x)
        shape = x.shape
        x = x.reshape(-1)
        t = _checks.real(t, "t", low=0.0, high=1.0, high_open=True)
        c = self.eps * (1 - t)
        # weights b_j N(x_j; x, c) over the cells j: the x^2 of (x - x_j)^2 is common to all j and drops out
        logw = torch.outer(x, self.x / c).add_(self.log_b - self.x ** 2 / (2 * c))
        w = logw.sub_(logw.max(1, keepdim=True).values).exp_()
        return _finite(((w @ self.x) / w.sum(1) - x) / (1 - t)).reshape(shape)


def _masses(p, grid: Grid, name: str) -> torch.Tensor:
    p = grid._on_grid(p, name).to(torch.float64)
    if bool((p < 0).any()):
        raise ValueError(f"{name} must be a density (no negative values), got min {float(p.min()):.3g}")
    total = float(p.sum())
    if not total > 0:
        raise ValueError(f"{name} must have positive mass on the grid, got total {total:g}")
    return p / total


def sinkhorn_bridge(p0, p1, grid: Grid, eps, *, tol=1e-10, max_iter: int = 100_000) -> SinkhornBridge:
    r"""The Schrödinger bridge between the densities ``p0`` and ``p1`` on the 1-D ``grid`` by Sinkhorn's iteration
    {eq}`eq-sinkhorn`.

    With masses :math:`\mu_i, \nu_j` (the densities normalised on the grid) and
    :math:`\log K_{ij} = -(x_j - x_i)^2/2\varepsilon`, it alternates
    :math:`\log a = \log\mu - \mathrm{LSE}_j(\log K_{ij} + \log b_j)` and
    :math:`\log b = \log\nu - \mathrm{LSE}_i(\log K_{ij} + \log a_i)` (iterative proportional fitting, in the
    log domain so that small :math:`\varepsilon` does not underflow) until the first marginal of
    :math:`\pi_{ij} = a_iK_{ij}b_j` is within ``tol`` of :math:`\mu` in L1, or ``max_iter`` sweeps (the second
    marginal is exact after each sweep).  The smaller ``eps``, the more sweeps it needs.

    ``p0``, ``p1``: non-negative tensors of the grid's shape with positive mass (normalised here);
    ``grid``: a 1-D :class:`~diffedu.fokker_planck.Grid`; ``eps`` > 0; ``tol`` in (0, 1); ``max_iter`` ≥ 1.
    """
    if not isinstance(grid, Grid):
        raise TypeError(f"grid must be a diffedu.fokker_planck.Grid, got {type(grid).__name__}")
    if grid.dim != 1:
        raise ValueError(f"grid must be one-dimensional (the bridge solver is 1-D), got a {grid.dim}-D grid")
    mu, nu = _masses(p0, grid, "p0"), _masses(p1, grid, "p1")
    eps = _checks.real(eps, "eps", low=_checks.SCALE_MIN, high=_checks.SCALE_MAX)
    tol = _checks.real(tol, "tol", low=0.0, high=1.0, low_open=True, high_open=True)
    max_iter = _checks.positive_int(max_iter, "max_iter", high=_checks.MAX_STEPS)
    _checks.memory(4 * grid.shape[0] ** 2, "grid cells (the coupling is cells x cells)")
    x = grid.axes[0].to(torch.float64)
    log_k = -(x[None, :] - x[:, None]) ** 2 / (2 * eps)
    log_mu, log_nu = mu.log(), nu.log()
    log_a = torch.zeros_like(x)
    log_b = log_nu - torch.logsumexp(log_k + log_a[:, None], 0)
    err, it = math.inf, 0
    while it < max_iter:
        it += 1
        log_a = log_mu - torch.logsumexp(log_k + log_b[None, :], 1)
        log_b = log_nu - torch.logsumexp(log_k + log_a[:, None], 0)
        row = torch.exp(log_a + torch.logsumexp(log_k + log_b[None, :], 1))
        err = float((row - mu).abs().sum())
        if err < tol:
            break
    coupling = torch.exp(log_a[:, None] + log_k + log_b[None, :])
    return SinkhornBridge(grid=grid, eps=eps, coupling=coupling, log_a=log_a, log_b=log_b,
                          iterations=it, marginal_error=err, converged=err < tol)


def monotone_map(p0, p1, grid: Grid) -> torch.Tensor:
    r"""The optimal-transport map {eq}`eq-monotone-map`, :math:`T = F_1^{-1}\circ F_0`, between two densities on a 1-D grid, at the cell
    centres (for the cost :math:`|x_1 - x_0|^2`, the only increasing map pushing :math:`p_0` to :math:`p_1`).

    :math:`F_0` at a centre is the mass of the cells before it plus half its own; :math:`F_1^{-1}` inverts the
    piecewise-linear CDF of :math:`p_1` on the cell faces.  Cells where :math:`p_0` has no mass before the first
    one with mass map to the grid's lower end."""
    if not isinstance(grid, Grid):
        raise TypeError(f"grid must be a diffedu.fokker_planck.Grid, got {type(grid).__name__}")
    if grid.dim != 1:
        raise ValueError(f"grid must be one-dimensional, got a {grid.dim}-D grid")
    mu, nu = _masses(p0, grid, "p0"), _masses(p1, grid, "p1")
    f0 = torch.cumsum(mu, 0) - 0.5 * mu
    faces = torch.cat([torch.tensor([grid.lo[0]], dtype=torch.float64),
                       grid.axes[0].to(torch.float64) + 0.5 * grid.h[0]])
    f1 = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(nu, 0)])
    j = torch.searchsorted(f1, f0.contiguous()).clamp(1, len(f1) - 1)
    lo, hi = f1[j - 1], f1[j]
    w = torch.where(hi > lo, (f0 - lo) / (hi - lo).clamp_min(1e-300), torch.zeros_like(f0))
    return faces[j - 1] + w * (faces[j] - faces[j - 1])
