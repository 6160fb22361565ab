r"""Stochastic differential equations :math:`dx = f(x,t)\,dt + g\,dw` (book: {eq}`eq-ito-sde`).

Conventions (the book's notation table):

* ``x`` has shape ``(n, d)`` (batch first); ``t`` is a number or a tensor of shape ``(n,)``.
* ``drift(x, t)`` is :math:`f(x,t)`, ``diffusion(t)`` is :math:`g(t)` for the
  state-independent SDEs of diffusion models.  Itô SDEs whose noise depends on the
  state (``GeometricBrownianMotion``, ``ItoSDE``) give :math:`g(x,t)` through
  ``diffusion_x(x, t)`` and its derivative :math:`\partial g_i/\partial x_i` through
  ``diffusion_dx(x, t)``; the noise is *diagonal*: component ``i`` of ``g`` multiplies
  :math:`dw_i`.
* Time runs forward in every formula.  A reverse-time integration is a solver fed
  decreasing times (:mod:`diffedu.solvers`), never a sign hidden in a drift.
* ``marginal(t) -> (alpha, sigma)`` for affine SDEs: :math:`x_t = \alpha x_0 + \sigma z`
  (plus a constant shift for an OU process with :math:`\mu\ne0`, see ``marginal_mean``).

Every public method checks its input and raises ``TypeError``/``ValueError`` naming
the argument and the accepted range.
"""

from __future__ import annotations

import math

import torch

from . import _checks
from .device import randn
from .schedules import Schedule


class SDE:
    """Base class.  Subclasses implement ``_f(x, t)`` and ``_g(t)`` on checked tensors.

    Attributes: ``T`` (final time; times must lie in ``[0, T]``) and ``t_min`` (the
    small-time cut-off that samplers and likelihoods stop at; 0 unless given).
    """

    T: float = 1.0
    t_min: float = 0.0
    #: True when g depends on x (then ``diffusion(t)`` is undefined)
    state_dependent: bool = False

    def _set_times(self, T: float, t_min: float, t_cap: float = math.inf):
        self.T = _checks.real(T, "T", low=_checks.SCALE_MIN, high=min(t_cap, _checks.SCALE_MAX))
        self.t_min = _checks.real(t_min, "t_min", low=0.0)
        if not self.t_min < self.T:
            raise ValueError(f"t_min must be smaller than T, got t_min={self.t_min:g}, T={self.T:g}")

    # --- checked public interface ------------------------------------------------
    def _xt(self, x, t, name: str = "x"):
        x = _checks.batch(x, name)
        return x, _checks.time(t, "t", n=x.shape[0], low=0.0, high=self.T, like=x)

    def drift(self, x, t) -> torch.Tensor:
        """The drift :math:`f(x, t)`, shape ``(n, d)``."""
        x, tt = self._xt(x, t)
        return self._f(x, tt)

    def diffusion(self, t) -> torch.Tensor:
        """The noise amplitude :math:`g(t)`, a tensor of ``t``'s shape (float64 for a number)."""
        if self.state_dependent:
            raise TypeError(f"{type(self).__name__} has state-dependent noise g(x, t): "
                            "call diffusion_x(x, t) instead of diffusion(t)")
        return self._g(_checks.scalar_time(t, "t", low=0.0, high=self.T))

    def diffusion_x(self, x, t) -> torch.Tensor:
        """:math:`g` evaluated at the batch ``x``: a tensor that broadcasts to ``(n, d)``."""
        x, tt = self._xt(x, t)
        return self._gx(x, tt)

    def diffusion_dx(self, x, t) -> torch.Tensor:
        r""":math:`\partial g_i/\partial x_i` at ``x`` (zero for state-independent noise); used by Milstein."""
        x, tt = self._xt(x, t)
        return self._dgx(x, tt)

    # --- unchecked internals used by the solvers ------------------------------------
    def _f(self, x, t):
        raise NotImplementedError

    def _g(self, t):
        raise NotImplementedError

    def _gx(self, x, t):
        return self._g(t).to(x.dtype)

    def _dgx(self, x, t):
        return torch.zeros((), dtype=x.dtype, device=x.device)

    # --- affine SDEs: Gaussian transitions and a Gaussian prior ----------------------
    def marginal(self, t):
        r"""``(alpha, sigma)`` with :math:`x_t = \alpha(t) x_0 + \sigma(t) z` (float64 tensors of ``t``'s shape)."""
        raise TypeError(f"{type(self).__name__} is not an affine SDE: it has no Gaussian marginal(t)")

    def marginal_mean(self, x0, t) -> torch.Tensor:
        r""":math:`E[x_t \mid x_0]`; ``alpha(t) * x0`` unless the SDE has a shifted fixed point."""
        x0, tt = self._xt(x0, t, "x0")
        alpha, _ = self.marginal(tt)
        return alpha.to(x0.dtype) * x0

    def marginal_sample(self, x0, t, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""Draw :math:`x_t \sim N(E[x_t|x_0], \sigma(t)^2 I)` for each row of ``x0``."""
        x0, tt = self._xt(x0, t, "x0")
        _, sigma = self.marginal(tt)
        z = randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        return self.marginal_mean(x0, t) + sigma.to(x0.dtype) * z

    def _prior(self):
        """(mean, variance) of the Gaussian prior at ``T``."""
        raise TypeError(f"{type(self).__name__} has no Gaussian prior")

    def prior_sample(self, n: int, dim: int, generator: torch.Generator | None = None, *,
                     device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        r"""``n`` draws of the prior :math:`\pi = N(m, v I_d)` at time ``T``, shape ``(n, dim)``."""
        n = _checks.positive_int(n, "n")
        dim = _checks.positive_int(dim, "dim")
        _checks.memory(n * dim, "n * dim")
        mean, var = self._prior()
        z = randn((n, dim), generator=generator, device=device, dtype=dtype)
        return mean + math.sqrt(var) * z

    def prior_logp(self, x) -> torch.Tensor:
        r""":math:`\log\pi(x)` of the Gaussian prior, summed over dimensions, shape ``(n,)``."""
        x = _checks.batch(x, "x")
        mean, var = self._prior()
        d = x.shape[1]
        return -0.5 * ((x - mean) ** 2).sum(1) / var - 0.5 * d * math.log(2 * math.pi * var)

    # --- the hbar family -------------------------------------------------------------
    def reverse(self, score, hbar: float = 1.0) -> "ReverseSDE":
        r"""The model sampler of the :math:`\hbar` family (book: {eq}`eq-hbar-family`).

        Drift :math:`F_\hbar = f - \tfrac{1+\hbar}{2} g^2 s(x,t)`, noise :math:`\sqrt{\hbar}\,g`;
        integrate it with decreasing times.  ``hbar = 0`` is the probability-flow ODE,
        ``hbar = 1`` Anderson's reverse SDE.  ``score(x, t)`` takes ``x`` of shape
        ``(n, d)`` and ``t`` of shape ``(n,)`` and returns shape ``(n, d)``.
        """
        return ReverseSDE(self, score, hbar)


class ReverseSDE(SDE):
    r"""The :math:`\hbar`-family sampler of a forward SDE (see :meth:`SDE.reverse`)."""

    def __init__(self, forward: SDE, score, hbar: float = 1.0):
        if not isinstance(forward, SDE):
            raise TypeError(f"forward must be a diffedu SDE, got {type(forward).__name__}")
        if forward.state_dependent:
            raise TypeError("reverse() needs noise g(t) independent of x; "
                            f"{type(forward).__name__} has state-dependent noise")
        self.forward = forward
        self.score = _checks.callable_(score, "score", "score(x, t) -> tensor (n, d)")
        self.hbar = _checks.hbar(hbar)
        self.T, self.t_min = forward.T, forward.t_min

    def __repr__(self):
        return f"ReverseSDE({self.forward!r}, hbar={self.hbar:g})"

    def _score(self, x, t):
        n = x.shape[0]
        tv = t.expand(n) if t.dim() == 0 else t.reshape(n)
        return _checks.evaluate(self.score, "score", "score(x, t) -> tensor (n, d)", tuple(x.shape), x, tv)

    def _f(self, x, t):
        g2 = self.forward._g(t).to(x.dtype) ** 2
        return self.forward._f(x, t) - 0.5 * (1.0 + self.hbar) * g2 * self._score(x, t)

    def _g(self, t):
        return math.sqrt(self.hbar) * self.forward._g(t)

    def _prior(self):
        return self.forward._prior()

    def marginal(self, t):
        raise TypeError("a ReverseSDE has no closed-form marginal: its marginals depend on the score")


class BrownianMotion(SDE):
    r"""Brownian motion with diffusion constant :math:`D`: :math:`dx = \sqrt{2D}\,dw` (book: {eq}`eq-msd`).

    :math:`\langle (x_t-x_0)^2\rangle = 2Dt` per coordinate.  ``D = 0.5`` is the
    standard Wiener process.  The "prior" is :math:`N(0, 2DT)`, the law at ``T`` of a
    walk started at the origin.  Raises ``ValueError`` unless ``D > 0``, ``T > 0``.
    """

    def __init__(self, D: float = 0.5, T: float = 1.0, t_min: float = 0.0):
        self.D = _checks.scale(D, "D")
        self._set_times(T, t_min)

    def __repr__(self):
        return f"BrownianMotion(D={self.D:g}, T={self.T:g})"

    def _f(self, x, t):
        return torch.zeros_like(x)

    def _g(self, t):
        return torch.full_like(t, math.sqrt(2 * self.D))

    def marginal(self, t):
        t = _checks.scalar_time(t, "t", low=0.0, high=self.T)
        return torch.ones_like(t), torch.sqrt(2 * self.D * t)

    def _prior(self):
        return 0.0, 2 * self.D * self.T


class OrnsteinUhlenbeck(SDE):
    r"""Ornstein–Uhlenbeck process :math:`dx = \theta(\mu - x)\,dt + \sigma\,dw` (book: {eq}`eq-ou`).

    Mean :math:`\mu + (x_0-\mu)e^{-\theta t}`, variance
    :math:`\frac{\sigma^2}{2\theta}(1-e^{-2\theta t})`; the prior is the stationary law
    :math:`N(\mu, \sigma^2/2\theta)`.  Raises ``ValueError`` unless ``theta > 0``, ``sigma > 0``.
    """

    def __init__(self, theta: float = 1.0, sigma: float = 1.0, mu: float = 0.0,
                 T: float = 1.0, t_min: float = 0.0):
        self.theta = _checks.scale(theta, "theta")
        self.sigma = _checks.scale(sigma, "sigma")
        self.mu = _checks.real(mu, "mu", low=-_checks.SCALE_MAX, high=_checks.SCALE_MAX)
        self._set_times(T, t_min)

    def __repr__(self):
        return f"OrnsteinUhlenbeck(theta={self.theta:g}, sigma={self.sigma:g}, mu={self.mu:g}, T={self.T:g})"

    def _f(self, x, t):
        return self.theta * (self.mu - x)

    def _g(self, t):
        return torch.full_like(t, self.sigma)

    def marginal(self, t):
        t = _checks.scalar_time(t, "t", low=0.0, high=self.T)
        alpha = torch.exp(-self.theta * t)
        var = self.sigma**2 / (2 * self.theta) * -torch.expm1(-2 * self.theta * t)
        return alpha, torch.sqrt(var)

    def marginal_mean(self, x0, t):
        x0, tt = self._xt(x0, t, "x0")
        alpha, _ = self.marginal(tt)
        alpha = alpha.to(x0.dtype)
        return self.mu + alpha * (x0 - self.mu)

    @property
    def stationary_variance(self) -> float:
        r""":math:`\sigma^2/(2\theta)`."""
        return self.sigma**2 / (2 * self.theta)

    def _prior(self):
        return self.mu, self.stationary_variance


class VPSDE(SDE):
    r"""Variance-preserving SDE :math:`dx = -\tfrac12\beta(t)x\,dt + \sqrt{\beta(t)}\,dw` (book: Chapter 2, "VE, VP and sub-VP", {eq}`eq-variance-ode`).

    ``schedule`` is a :class:`~diffedu.schedules.Schedule`; ``T`` defaults to 1, capped
    by the schedule's ``t_max``.  Prior :math:`N(0, I)`.
    """

    def __init__(self, schedule: Schedule, T: float | None = None, t_min: float = 0.0):
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a diffedu Schedule (Linear, Cosine), got {type(schedule).__name__}")
        self.schedule = schedule
        if T is None:
            T = min(1.0, schedule.t_max)
        self._set_times(T, t_min, t_cap=schedule.t_max)

    def __repr__(self):
        return f"{type(self).__name__}({self.schedule!r}, T={self.T:g}, t_min={self.t_min:g})"

    def _f(self, x, t):
        return -0.5 * self.schedule.beta(t).to(x.dtype) * x

    def _g(self, t):
        return torch.sqrt(self.schedule.beta(t))

    def marginal(self, t):
        t = _checks.scalar_time(t, "t", low=0.0, high=self.T)
        return self.schedule.alpha(t), self.schedule.sigma(t)

    def _prior(self):
        return 0.0, 1.0


class SubVPSDE(VPSDE):
    r"""Sub-VP SDE: VP drift, :math:`g^2 = \beta(t)(1-e^{-2\int_0^t\beta})` (book: Chapter 2, {eq}`eq-variance-ode`).

    :math:`x_t = \alpha x_0 + \sigma z` with :math:`\alpha = e^{-\frac12\int\beta}` and
    :math:`\sigma = 1-e^{-\int\beta}`, which is below the VP value :math:`\sqrt{1-\alpha^2}`.
    """

    def _g(self, t):
        b = self.schedule.beta(t)
        return torch.sqrt(b * -torch.expm1(-2 * self.schedule.beta_integral(t)))

    def marginal(self, t):
        t = _checks.scalar_time(t, "t", low=0.0, high=self.T)
        B = self.schedule.beta_integral(t)
        return torch.exp(-0.5 * B), -torch.expm1(-B)


class VESDE(SDE):
    r"""Variance-exploding SDE :math:`dx = \sqrt{d\sigma^2/dt}\,dw`, :math:`\sigma(t) = \sigma_{\min}(\sigma_{\max}/\sigma_{\min})^t`.

    (book: Chapter 2, {eq}`eq-variance-ode`.)  :math:`x_t = x_0 + \sqrt{\sigma(t)^2-\sigma_{\min}^2}\,z`;
    prior :math:`N(0, \sigma_{\max}^2 I)`.  Raises ``ValueError`` unless
    ``0 < sigma_min < sigma_max``.
    """

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0, T: float = 1.0, t_min: float = 0.0):
        self.sigma_min = _checks.scale(sigma_min, "sigma_min")
        self.sigma_max = _checks.scale(sigma_max, "sigma_max")
        if self.sigma_max <= self.sigma_min:
            raise ValueError(f"sigma_max must exceed sigma_min, got sigma_min={self.sigma_min:g}, "
                             f"sigma_max={self.sigma_max:g}")
        self._set_times(T, t_min)

    def __repr__(self):
        return f"VESDE(sigma_min={self.sigma_min:g}, sigma_max={self.sigma_max:g}, T={self.T:g})"

    def _sigma_t(self, t):
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** (t / self.T)

    def _f(self, x, t):
        return torch.zeros_like(x)

    def _g(self, t):
        return self._sigma_t(t) * math.sqrt(2 * math.log(self.sigma_max / self.sigma_min) / self.T)

    def marginal(self, t):
        t = _checks.scalar_time(t, "t", low=0.0, high=self.T)
        return torch.ones_like(t), torch.sqrt(self._sigma_t(t) ** 2 - self.sigma_min**2)

    def _prior(self):
        return 0.0, self.sigma_max**2


class AdditiveSDE(SDE):
    r"""An SDE with additive noise from callables: :math:`dx = f(x,t)\,dt + g(t)\,dw`.

    ``drift(x, t)`` takes ``x`` of shape ``(n, d)`` and ``t`` as a tensor broadcastable
    against it and returns shape ``(n, d)``; ``diffusion(t)`` returns :math:`g(t) \ge 0`
    (a number or a tensor of ``t``'s shape).  Being state-independent, it has a
    ``reverse(score, hbar)`` and works with the Fokker–Planck solver.
    """

    def __init__(self, drift, diffusion, T: float = 1.0, t_min: float = 0.0):
        self._drift = _checks.callable_(drift, "drift", "drift(x, t) -> tensor (n, d)")
        self._diff = _checks.callable_(diffusion, "diffusion", "diffusion(t) -> g(t) >= 0")
        self._set_times(T, t_min)

    def _f(self, x, t):
        return _checks.evaluate(self._drift, "drift", "drift(x, t) -> tensor (n, d)", tuple(x.shape), x, t)

    def _g(self, t):
        out = _checks.call(self._diff, "diffusion", "diffusion(t) -> g(t) >= 0", t)
        if isinstance(out, torch.Tensor):
            if out.is_complex() or out.dtype == torch.bool:
                raise TypeError(f"diffusion(t) must return real numbers, got dtype {out.dtype}")
        elif isinstance(out, bool) or not isinstance(out, (int, float)):
            raise TypeError(f"diffusion(t) must return a number or a tensor of t's shape, got {type(out).__name__}")
        g = torch.as_tensor(out, dtype=t.dtype, device=t.device)
        try:
            torch.broadcast_shapes(g.shape, t.shape)
            if g.dim() > t.dim() or g.numel() > max(t.numel(), 1):
                raise RuntimeError
        except RuntimeError:
            raise ValueError(f"diffusion(t) must return a number or a tensor of t's shape {tuple(t.shape)}, "
                             f"got shape {tuple(g.shape)}") from None
        if not bool(torch.isfinite(g).all()) or bool((g < 0).any()):
            raise ValueError("diffusion(t) must return finite values g(t) >= 0 (g is the square root of g^2 >= 0)")
        return torch.broadcast_to(g, t.shape)


class GeometricBrownianMotion(SDE):
    r"""Geometric Brownian motion :math:`dX = \mu X\,dt + \sigma X\,dw` (Itô; book: {eq}`eq-gbm`).

    Exact solution :math:`X_t = X_0\exp((\mu-\sigma^2/2)t + \sigma w_t)`, see :meth:`exact`.
    Raises ``ValueError`` unless ``sigma > 0``.
    """

    state_dependent = True

    def __init__(self, mu: float = 1.0, sigma: float = 1.0, T: float = 1.0):
        self.mu = _checks.real(mu, "mu", low=-_checks.SCALE_MAX, high=_checks.SCALE_MAX)
        self.sigma = _checks.scale(sigma, "sigma")
        self._set_times(T, 0.0)

    def __repr__(self):
        return f"GeometricBrownianMotion(mu={self.mu:g}, sigma={self.sigma:g}, T={self.T:g})"

    def _f(self, x, t):
        return self.mu * x

    def _gx(self, x, t):
        return self.sigma * x

    def _dgx(self, x, t):
        return torch.full_like(x, self.sigma)

    def exact(self, x0, t, w) -> torch.Tensor:
        r""":math:`X_t` given :math:`X_0` = ``x0`` and the Brownian value :math:`w_t` = ``w`` (both ``(n, d)``)."""
        x0 = _checks.batch(x0, "x0")
        w = _checks.batch(w, "w", dim=x0.shape[1])
        if w.shape != x0.shape:
            raise ValueError(f"w must have the shape of x0 {tuple(x0.shape)}, got {tuple(w.shape)}")
        t = _checks.real(t, "t", low=0.0, high=self.T)
        return x0 * torch.exp((self.mu - 0.5 * self.sigma**2) * t + self.sigma * w)


class ItoSDE(SDE):
    r"""An Itô SDE from callables, with diagonal noise: :math:`dx_i = f_i\,dt + g_i\,dw_i`.

    ``drift(x, t)`` and ``diffusion(x, t)`` take ``x`` of shape ``(n, d)`` and a time
    tensor broadcastable against it, and return tensors broadcastable to ``(n, d)``;
    ``diffusion_dx(x, t)`` (optional; needed by Milstein when ``g`` depends on ``x``)
    returns :math:`\partial g_i/\partial x_i`.  Used for the Langevin equation in
    Chapter 1 and for exercises.
    """

    state_dependent = True

    def __init__(self, drift, diffusion, diffusion_dx=None, T: float = 1.0, t_min: float = 0.0):
        self._drift = _checks.callable_(drift, "drift", "drift(x, t) -> tensor (n, d)")
        self._diff = _checks.callable_(diffusion, "diffusion", "diffusion(x, t) -> tensor (n, d)")
        self._diff_dx = None if diffusion_dx is None else _checks.callable_(
            diffusion_dx, "diffusion_dx", "diffusion_dx(x, t) -> tensor (n, d)")
        self._set_times(T, t_min)

    def _out(self, fn, x, t, what):
        value = _checks.call(fn, what, f"{what}(x, t) -> tensor broadcastable to (n, d)", x, t)
        if not isinstance(value, torch.Tensor):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{what}(x, t) must return a tensor broadcastable to {tuple(x.shape)} or a number, "
                                f"got {type(value).__name__}")
            value = torch.as_tensor(value, dtype=x.dtype, device=x.device)
        if not value.is_floating_point():
            raise TypeError(f"{what}(x, t) must return real floating-point values, got dtype {value.dtype}")
        try:
            value = torch.broadcast_to(value, x.shape)
        except RuntimeError:
            raise ValueError(f"{what}(x, t) must return a tensor broadcastable to {tuple(x.shape)}, "
                             f"got shape {tuple(value.shape)}") from None
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{what} returned non-finite values (NaN or inf)")
        return value

    def _f(self, x, t):
        return self._out(self._drift, x, t, "drift")

    def _gx(self, x, t):
        return self._out(self._diff, x, t, "diffusion")

    def _dgx(self, x, t):
        if self._diff_dx is None:
            raise TypeError("this ItoSDE was built without diffusion_dx, which Milstein needs; "
                            "pass diffusion_dx=... (the derivative dg_i/dx_i)")
        return self._out(self._diff_dx, x, t, "diffusion_dx")
