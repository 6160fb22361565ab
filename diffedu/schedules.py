r"""Noise schedules of the variance-preserving family (book: Chapter 2, "VE, VP and sub-VP", {eq}`eq-variance-ode`).

A schedule is a rate :math:`\beta(t) \ge 0`.  The VP SDE
:math:`dx = -\tfrac12\beta(t)x\,dt + \sqrt{\beta(t)}\,dw` then has the Gaussian
transition :math:`x_t = \alpha(t)x_0 + \sigma(t) z` with

.. math:: \alpha(t) = e^{-\frac12\int_0^t\beta},\qquad \sigma(t)^2 = 1-\alpha(t)^2 .

Every method takes ``t`` as a number or a tensor (any shape) in ``[0, t_max]`` and
returns a tensor of ``t``'s shape (float64 for a number).
"""

from __future__ import annotations

import math

import torch

from . import _checks


class Schedule:
    """Base class: subclasses define :meth:`beta` and :meth:`beta_integral`."""

    #: largest time at which the schedule is finite
    t_max: float = math.inf

    def _t(self, t) -> torch.Tensor:
        if isinstance(t, torch.Tensor) and not t.is_floating_point():
            raise TypeError(f"t must be a floating-point tensor or a number, got dtype {t.dtype}")
        # float64 throughout: a float32 t at t_max = 0.999 reads 0.99900001, past the pole of the cosine
        return _checks.scalar_time(t, "t", low=0.0, high=self.t_max)

    @staticmethod
    def _like(value: torch.Tensor, t) -> torch.Tensor:
        return value.to(t.dtype) if isinstance(t, torch.Tensor) else value

    def beta(self, t) -> torch.Tensor:
        r""":math:`\beta(t)`."""
        raise NotImplementedError

    def beta_integral(self, t) -> torch.Tensor:
        r""":math:`\int_0^t \beta(s)\,ds`."""
        raise NotImplementedError

    def alpha(self, t) -> torch.Tensor:
        r""":math:`\alpha(t) = \exp(-\tfrac12\int_0^t\beta)`, the mean factor of the marginal {eq}`eq-mixture-marginal`."""
        return torch.exp(-0.5 * self.beta_integral(t))

    def sigma(self, t) -> torch.Tensor:
        r""":math:`\sigma(t) = \sqrt{1-\alpha(t)^2}`, the noise level of the marginal {eq}`eq-mixture-marginal`."""
        return torch.sqrt(-torch.expm1(-self.beta_integral(t)))


class Linear(Schedule):
    r"""Linear rate :math:`\beta(t) = \beta_{\min} + t(\beta_{\max}-\beta_{\min})`.

    ``Linear(0.1, 20)`` is the VP SDE of Song et al. (2021); ``Linear(0, 20)`` is the
    "simple" schedule of Hirono, Tanaka & Fukushima (2024), with
    :math:`\alpha(t) = e^{-5t^2}`.

    Raises ``ValueError`` unless ``0 <= beta_min <= beta_max`` and ``beta_max > 0``.
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        self.beta_min = _checks.real(beta_min, "beta_min", low=0.0, high=_checks.SCALE_MAX)
        self.beta_max = _checks.scale(beta_max, "beta_max")
        if self.beta_max < self.beta_min:
            raise ValueError(f"beta_max must be >= beta_min, got beta_min={self.beta_min:g}, "
                             f"beta_max={self.beta_max:g}")

    def __repr__(self):
        return f"Linear(beta_min={self.beta_min:g}, beta_max={self.beta_max:g})"

    def beta(self, t):
        tt = self._t(t)
        return self._like(self.beta_min + tt * (self.beta_max - self.beta_min), t)

    def beta_integral(self, t):
        tt = self._t(t)
        return self._like(self.beta_min * tt + 0.5 * tt**2 * (self.beta_max - self.beta_min), t)


class Cosine(Schedule):
    r"""Cosine schedule :math:`\alpha(t) = \cos\!\big(\tfrac{\pi}{2}\tfrac{t+s}{1+s}\big) / \cos\!\big(\tfrac{\pi}{2}\tfrac{s}{1+s}\big)`.

    With the offset ``s = 0`` (default) this is the paper's "cosine" schedule,
    :math:`\alpha = \cos(\pi t/2)`, :math:`\beta(t) = \pi\tan(\pi t/2)`; ``s = 0.008``
    is the Nichol & Dhariwal (2021) variant.  :math:`\beta` diverges at ``t = 1``, so
    the schedule is only defined up to ``t_max < 1`` (paper: 0.999).

    Raises ``ValueError`` unless ``0 <= s < 1`` and ``0 < t_max < 1``.
    """

    def __init__(self, s: float = 0.0, t_max: float = 0.999):
        self.s = _checks.real(s, "s", low=0.0, high=1.0, high_open=True)
        self.t_max = _checks.real(t_max, "t_max", low=0.0, high=1.0, low_open=True, high_open=True)

    def __repr__(self):
        return f"Cosine(s={self.s:g}, t_max={self.t_max:g})"

    def _phase(self, t):
        return 0.5 * math.pi * (t + self.s) / (1.0 + self.s)

    def beta(self, t):
        tt = self._t(t)
        return self._like(math.pi / (1.0 + self.s) * torch.tan(self._phase(tt)), t)

    def beta_integral(self, t):
        tt = self._t(t)
        c0 = math.cos(0.5 * math.pi * self.s / (1.0 + self.s))
        # clamp: round-off must not make the integral negative at t = 0 (sigma would be NaN)
        return self._like((-2.0 * (torch.log(torch.cos(self._phase(tt))) - math.log(c0))).clamp_min(0.0), t)
