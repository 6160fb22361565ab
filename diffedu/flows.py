r"""Flow matching and stochastic interpolants in the book's notation (Chapter 7, {eq}`eq-interpolant`).

An **interpolant** is a Gaussian path between the data and the noise,

.. math:: x_t = \alpha_t\,x_0 + \sigma_t\,z, \qquad z\sim N(0, I), \qquad t\in[t_{\min}, T],

with data at small :math:`t` and noise at :math:`T` — the book's time (the flow-matching literature runs
the other way: its :math:`s = 1 - t`, with noise at :math:`s = 0`).  Its **conditional velocity** is
:math:`\dot x_t = \dot\alpha_t x_0 + \dot\sigma_t z`, and the **marginal velocity**
:math:`v_t(x) = E[\dot\alpha_t x_0 + \dot\sigma_t z\,|\,x_t = x]` is the regression target of flow matching:
it minimises :math:`E\,|v(x_t, t) - \dot x_t|^2`, and :math:`dx/dt = v_t(x)` carries :math:`p_t` along.

With Tweedie's :math:`E[x_0|x] = (x + \sigma^2\nabla\log p_t)/\alpha` and :math:`E[z|x] = -\sigma\nabla\log p_t`,

.. math:: v_t(x) = \frac{\dot\alpha}{\alpha}\,x - \tfrac12 g_t^2\,\nabla\log p_t(x), \qquad
          g_t^2 = 2\sigma^2\,\frac{d}{dt}\log\frac{\sigma}{\alpha},

which is the probability-flow drift :math:`f - \tfrac12 g^2 s` of the SDE :math:`dx = (\dot\alpha/\alpha)x\,dt + g_t\,dw`
that has the same marginals.  So an :class:`Interpolant` *is* an :class:`~diffedu.sde.SDE`: the
:math:`\hbar` family (``interpolant.reverse(score, hbar)``), the exact mixture scores
(:class:`~diffedu.data.GaussianMixture` reads ``marginal(t)``) and the likelihood machinery of Chapters 4
and 6 apply to it unchanged.  For the VP path (:meth:`Interpolant.vp`) it is the VP SDE of Chapter 2.

* :class:`Interpolant` — ``vp(schedule)`` and ``linear()`` (:math:`\alpha = 1 - t`, :math:`\sigma = t`, the
  rectified-flow path); :meth:`~Interpolant.sample` draws :math:`(x_t, \dot x_t)`;
  :meth:`~Interpolant.velocity_from_score` and :meth:`~Interpolant.score_from_velocity` convert.
"""

from __future__ import annotations

import torch

from . import _checks
from .device import randn
from .schedules import Schedule
from .sde import SDE

__all__ = ["Interpolant"]


class Interpolant(SDE):
    r"""The Gaussian path :math:`x_t = \alpha_t x_0 + \sigma_t z` and the SDE with its marginals.

    Build it with :meth:`vp` or :meth:`linear`.  As an SDE its drift is :math:`(\dot\alpha/\alpha)\,x` and its
    noise :math:`g_t = \sigma\sqrt{2\,\tfrac{d}{dt}\log(\sigma/\alpha)}` (the path's signal-to-noise ratio must
    fall with :math:`t`); its prior at :math:`T` is :math:`N(0, \alpha_T^2 + \sigma_T^2)`, the marginal of
    zero-mean, unit-variance data.  The conversions between score and velocity are ill-conditioned near the ends of
    the linear path: :meth:`velocity_from_score` multiplies score errors by :math:`g^2/2 = t/(1-t)` (999 at
    :math:`T = 0.999`), :meth:`score_from_velocity` divides velocity errors by it (like :math:`1/t` near 0).
    """

    def __init__(self, kind: str, schedule: Schedule | None, T: float, t_min: float):
        _checks.choice(kind, "kind", ("vp", "linear"))
        self.kind, self.schedule = kind, schedule
        cap = schedule.t_max if schedule is not None else 1.0
        self._set_times(T, t_min, cap)
        if kind == "linear" and not self.T < 1.0:
            raise ValueError(f"T must be < 1 for the linear path (alpha = 1 - t vanishes at 1), got T={self.T:g}")

    @classmethod
    def vp(cls, schedule: Schedule, *, T: float | None = None, t_min: float = 0.0) -> "Interpolant":
        r"""The variance-preserving path :math:`\alpha = e^{-\frac12\int_0^t\beta}`, :math:`\sigma = \sqrt{1-\alpha^2}`
        of ``schedule``: the VP SDE of Chapter 2 (``T`` defaults to 1, or the schedule's ``t_max``)."""
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a diffedu Schedule (Linear, Cosine), got {type(schedule).__name__}")
        T = min(1.0, schedule.t_max) if T is None else T
        return cls("vp", schedule, T, t_min)

    @classmethod
    def linear(cls, *, T: float = 0.999, t_min: float = 0.0) -> "Interpolant":
        r"""The linear path :math:`\alpha = 1 - t`, :math:`\sigma = t` (rectified flow / conditional OT), with
        :math:`g_t^2 = 2t/(1 - t)`; ``T < 1`` because that noise diverges at :math:`t = 1`."""
        return cls("linear", None, T, t_min)

    def __repr__(self):
        inner = f"{self.schedule!r}, " if self.schedule is not None else ""
        return f"Interpolant.{self.kind}({inner}T={self.T:g}, t_min={self.t_min:g})"

    # --- the path's coefficients ------------------------------------------------------------------
    def _coefficients(self, t: torch.Tensor):
        """alpha, sigma, d alpha/dt, d sigma/dt at checked float64 times."""
        if self.kind == "vp":
            beta, a, s = self.schedule.beta(t), self.schedule.alpha(t), self.schedule.sigma(t)
            return a, s, -0.5 * beta * a, 0.5 * beta * a**2 / s
        return 1.0 - t, t, -torch.ones_like(t), torch.ones_like(t)

    def _vp_positive(self, t: torch.Tensor, name: str = "t"):
        if self.kind == "vp" and bool((t <= 0).any()):
            raise ValueError(f"{name} must be > 0 on the VP path: sigma = sqrt(1 - alpha^2) has an infinite slope at t = 0")

    def coefficients(self, t):
        r"""``(alpha, sigma, dalpha, dsigma)`` at ``t`` (a number or a tensor in ``[0, T]``, and > 0 on the VP path,
        where :math:`\dot\sigma` diverges at 0; float64)."""
        tt = _checks.scalar_time(t, "t", low=0.0, high=self.T)
        self._vp_positive(tt)
        return self._coefficients(tt)

    def marginal(self, t):
        r"""``(alpha, sigma)`` at ``t`` in ``[0, T]`` (float64 tensors of ``t``'s shape), as for every affine SDE."""
        tt = _checks.scalar_time(t, "t", low=0.0, high=self.T)
        a, s, _, _ = self._coefficients(tt)
        return a, s

    def _rate_and_g2(self, t: torch.Tensor):
        r""":math:`\dot\alpha/\alpha` and :math:`g_t^2 = 2\sigma^2\,\tfrac{d}{dt}\log(\sigma/\alpha)` in closed form (finite at
        :math:`t = 0`): :math:`-\beta/2` and :math:`\beta` for the VP path, :math:`-1/(1-t)` and :math:`2t/(1-t)` for the
        linear one."""
        if self.kind == "vp":
            beta = self.schedule.beta(t)
            return -0.5 * beta, beta
        return -1.0 / (1.0 - t), 2.0 * t / (1.0 - t)

    def _f(self, x, t):
        rate, _ = self._rate_and_g2(t.to(torch.float64))
        rate = rate.to(x.dtype)
        return (rate.reshape(-1, 1) if rate.dim() else rate) * x

    def _g(self, t):
        t64 = t.to(torch.float64) if isinstance(t, torch.Tensor) else torch.as_tensor(t, dtype=torch.float64)
        g = torch.sqrt(self._rate_and_g2(t64)[1])
        return g.to(t.dtype) if isinstance(t, torch.Tensor) and t.is_floating_point() else g

    def _prior(self):
        a, s = self.marginal(self.T)
        return 0.0, float(a**2 + s**2)

    # --- flow matching ----------------------------------------------------------------------------
    def sample(self, x0, t, generator: torch.Generator | None = None):
        r"""``(x_t, dx_t)`` for data ``x0`` (shape ``(n, d)``) at times ``t`` (a number or ``(n,)``):
        :math:`x_t = \alpha_t x_0 + \sigma_t z` and the conditional velocity {eq}`eq-conditional-velocity`,
        the regression target of the flow-matching loss."""
        x0, tt = self._xt(x0, t, "x0")
        self._vp_positive(tt)
        a, s, da, ds = (c.to(x0.dtype).reshape(-1, 1) if c.dim() else c.to(x0.dtype)
                        for c in self._coefficients(tt.to(torch.float64)))
        z = randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        return a * x0 + s * z, da * x0 + ds * z

    def _conversion(self, x, t):
        x, tt = self._xt(x, t)
        rate, g2 = self._rate_and_g2(tt.to(torch.float64))
        shape = (-1, 1) if tt.dim() else ()
        return x, rate.to(x.dtype).reshape(shape), (0.5 * g2).to(x.dtype).reshape(shape)

    def velocity_from_score(self, score, x, t) -> torch.Tensor:
        r"""The marginal velocity {eq}`eq-velocity-score`, :math:`v_t(x) = (\dot\alpha/\alpha)\,x - \tfrac12 g_t^2\,s`, for the score values
        ``score`` (a tensor of ``x``'s shape, :math:`s = \nabla\log p_t(x)`), at ``t`` > 0."""
        x, rate, half_g2 = self._conversion(x, t)
        score = _values(score, x, "score")
        return rate * x - half_g2 * score

    def score_from_velocity(self, velocity, x, t) -> torch.Tensor:
        r"""The inverse: :math:`\nabla\log p_t(x) = ((\dot\alpha/\alpha)\,x - v)/(\tfrac12 g_t^2)`, where :math:`g_t > 0`
        (``t`` > 0 on the linear path)."""
        x, rate, half_g2 = self._conversion(x, t)
        velocity = _values(velocity, x, "velocity")
        if bool((half_g2 <= 0).any()):
            raise ValueError("t must be > 0: at t = 0 the path has no noise and the velocity does not fix the score")
        return (rate * x - velocity) / half_g2


def _values(v, x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of x's shape {tuple(x.shape)}, got {type(v).__name__}")
    if tuple(v.shape) != tuple(x.shape):
        raise ValueError(f"{name} must have x's shape {tuple(x.shape)}, got {tuple(v.shape)}")
    if not v.is_floating_point() or not bool(torch.isfinite(v).all()):
        raise ValueError(f"{name} must hold finite floating-point values")
    return v.to(x.dtype)
