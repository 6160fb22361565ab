r"""Exact log-likelihoods of the probability-flow ODE (book: Chapter 4, {eq}`eq-cov-likelihood`).

Along the probability-flow ODE :math:`\dot x = f^{\rm PF}(x,t) = f - \tfrac12 g^2 s(x,t)`, the
model density obeys :math:`\tfrac{d}{dt}\log q_t(x_t) = -\nabla\cdot f^{\rm PF}(x_t, t)`, hence

.. math:: \log q_{t_{\min}}(x_0) = \log\pi(x_T) + \int_{t_{\min}}^{T} \nabla\cdot f^{\rm PF}(x_t, t)\,dt,
          \qquad x_{t_{\min}} = x_0 .

:func:`log_likelihood` integrates :math:`x_t` and the divergence integral together, in float64,
for a batch of points, with an adaptive Dormand–Prince 5(4) Runge–Kutta scheme (``rtol``,
``atol``; the paper's conventions are the defaults: 1e-5 both).  The divergence is exact
(autograd, one backward pass per dimension) or Hutchinson's unbiased estimate
:math:`E[\epsilon^\top J \epsilon]` with Rademacher :math:`\epsilon` from a seeded generator.

The paper discards points whose trajectory leaves the box :math:`[-5, 5]^d` (whole batches of
10); ``box`` reproduces that rule per point and *reports* the excluded points in the result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import _checks
from .ode import dopri5
from .sde import SDE, ReverseSDE

@dataclass
class LikelihoodResult:
    r"""Per-point :math:`\log q_{t_{\min}}(x_0)` and what the solver did."""

    logp: torch.Tensor        #: shape (n,), float64; NaN for excluded points
    excluded: torch.Tensor    #: shape (n,), bool: the trajectory left the box
    x_T: torch.Tensor         #: end points of the trajectories, (n, d)
    nfe: int                  #: evaluations of the drift (and divergence)
    steps: int                #: accepted Runge–Kutta steps
    rejected: int             #: rejected steps

    @property
    def nll(self) -> float:
        """Mean negative log-likelihood over the points that were kept."""
        return float(-_kept_points(self.logp, self.excluded, "nll", 1).mean())

    @property
    def nll_se(self) -> float:
        """Standard error of :attr:`nll` (std / sqrt(n) over the kept points; needs two of them)."""
        v = _kept_points(self.logp, self.excluded, "nll_se", 2)
        return float(v.std() / math.sqrt(v.numel()))


def _kept_points(values: torch.Tensor, excluded: torch.Tensor, what: str, least: int) -> torch.Tensor:
    """The values of the points the box kept; a ``ValueError`` if fewer than ``least`` remain (no silent NaN)."""
    v = values[~excluded]
    if v.numel() < least:
        raise ValueError(f"{what} needs at least {least} kept point(s), but {v.numel()} of {values.numel()} were kept "
                         "(the others left the box): pass more points, a larger box, or box=None")
    return v


_SCORE_SIGNATURE = "score(x, t) -> tensor (n, d), x (n, d), t (n,)"
_PRIOR_SIGNATURE = "prior_logp(x) -> tensor (n,), x (n, d)"


def _check_sde(sde, what: str) -> SDE:
    if not isinstance(sde, SDE):
        raise TypeError(f"sde must be a diffedu SDE, got {type(sde).__name__}")
    if isinstance(sde, ReverseSDE):
        raise TypeError(f"sde must be the forward SDE (e.g. model.sde), not a ReverseSDE sampler: {what} builds "
                        "the probability-flow drift from the forward SDE and the score itself")
    if sde.state_dependent:
        raise TypeError(f"{what} needs noise g(t) independent of x; {type(sde).__name__} has state-dependent noise")
    return sde


def pf_drift(sde: SDE, score, x: torch.Tensor, t: float) -> torch.Tensor:
    r"""The probability-flow drift :math:`f^{\rm PF} = f - \tfrac12 g^2 s(x, t)` of {eq}`eq-pf-ode` (in ``x``'s dtype).

    ``x`` is a batch ``(n, d)``, ``t`` a number in ``[0, T]``; ``score(x, t)`` must return ``(n, d)``."""
    _check_sde(sde, "pf_drift")
    _checks.callable_(score, "score", _SCORE_SIGNATURE)
    x = _checks.batch(x, "x")
    _checks.model_dim(score, x.shape[1], "score", "x")
    t = _checks.real(t, "t", low=0.0, high=sde.T)
    return _pf_drift(sde, score, x, t)[0]


def _pf_drift(sde, score, x, t):
    tt = torch.tensor(t, dtype=x.dtype, device=x.device)
    s = _checks.evaluate(score, "score", _SCORE_SIGNATURE, tuple(x.shape), x, tt.expand(x.shape[0]))
    g2 = sde._g(tt).to(x.dtype) ** 2
    return sde._f(x, tt) - 0.5 * g2 * s.to(x.dtype), s


def _drift_and_divergence(sde, score, x, t, eps):
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        f, s = _pf_drift(sde, score, xg, t)
        if not (f.requires_grad and s.requires_grad):
            tt = torch.tensor(t, dtype=x.dtype, device=x.device)
            _checks.differentiable(s, lambda z: score(z, tt.expand(z.shape[0])), xg, "score")
            if not _checks.differentiable(f, lambda z: sde._f(z, tt), xg, "the SDE's drift f"):
                # neither the score nor the drift depends on x: the divergence is 0
                return f.detach(), torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        if eps is None:     # exact trace of the Jacobian, one backward pass per dimension
            div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
            for i in range(x.shape[1]):
                (gi,) = torch.autograd.grad(f[:, i].sum(), xg, retain_graph=i + 1 < x.shape[1])
                div = div + gi[:, i]
        else:               # Hutchinson: eps^T J eps with one vector-Jacobian product
            (v,) = torch.autograd.grad((f * eps).sum(), xg)
            div = (v * eps).sum(1)
    return f.detach(), div.detach()


def log_likelihood(sde: SDE, score, x0, *, divergence: str = "exact", rtol: float = 1e-5, atol: float = 1e-5,
                   t_min: float | None = None, T: float | None = None, box: float | None = 5.0, prior_logp=None,
                   generator: torch.Generator | None = None, max_steps: int = 100_000) -> LikelihoodResult:
    r"""Probability-flow log-likelihood :math:`\log q^{\hbar=0}_{t_{\min}}(x_0)` for every row of ``x0`` ({eq}`eq-cov-likelihood`).

    Parameters
    ----------
    sde : the forward SDE (state-independent noise); ``t_min``/``T`` default to its own.
    score : ``score(x, t)``, ``x`` ``(n, d)``, ``t`` ``(n,)``; differentiable in ``x`` (torch).
    x0 : points ``(n, d)``; all must lie in the box when ``box`` is given.
    divergence : ``"exact"`` (autograd; for low dimension) or ``"hutchinson"`` (Rademacher
        probes drawn once per point from ``generator``; unbiased).
    rtol, atol : tolerances of the adaptive Dormand–Prince 5(4) solver (one step size shared
        by the batch, error measured on both x and the log-density).
    box : half-width of the box :math:`[-b, b]^d`; points whose trajectory leaves it are marked
        ``excluded`` (their ``logp`` is NaN) — the paper's rule, applied per point. ``None``: no box.
    prior_logp : :math:`\log\pi` as a callable ``(n, d) -> (n,)``; default ``sde.prior_logp``.

    Raises ``ValueError`` for bad tolerances, unknown ``divergence``, points outside the box,
    or ``t_min >= T``.
    """
    _check_sde(sde, "log_likelihood")
    _checks.callable_(score, "score", _SCORE_SIGNATURE)
    x = _checks.batch(x0, "x0").detach().to(torch.float64)
    if x.shape[0] == 0:
        raise ValueError("x0 must hold at least one point, got an empty batch of shape (0, d)")
    _checks.model_dim(score, x.shape[1], "score", "x0")
    _checks.choice(divergence, "divergence", ("exact", "hutchinson"))
    rtol = _checks.tolerance(rtol, "rtol")
    atol = _checks.tolerance(atol, "atol")
    t0 = sde.t_min if t_min is None else _checks.real(t_min, "t_min", low=0.0)
    t1 = sde.T if T is None else _checks.real(T, "T", low=0.0, high=sde.T)
    if not t0 < t1:
        raise ValueError(f"t_min must be smaller than T, got t_min={t0:g}, T={t1:g}")
    if box is not None:
        box = _checks.real(box, "box", low=0.0, low_open=True)
        if bool((x.abs() > box).any()):
            raise ValueError(f"x0 has points outside the box [-{box:g}, {box:g}]^d; remove them or pass box=None")
    prior = sde.prior_logp if prior_logp is None else _checks.callable_(prior_logp, "prior_logp", _PRIOR_SIGNATURE)
    max_steps = _checks.positive_int(max_steps, "max_steps", high=_checks.MAX_STEPS)
    eps = None
    if divergence == "hutchinson":
        _checks.generator(generator)
        eps = (torch.randint(0, 2, x.shape, generator=generator) * 2 - 1).to(x)

    n = x.shape[0]
    delta = torch.zeros(n, dtype=torch.float64, device=x.device)   # integral of the divergence

    dropped = torch.zeros(n, dtype=torch.bool, device=x.device)

    def rhs(t, y):
        # rows that left the box are frozen by the solver: evaluate them at the origin instead, so that a
        # score that overflows far outside the box does not stop the batch (their derivative is unused)
        xs = torch.where(dropped[:, None], torch.zeros_like(y[0]), y[0]) if bool(dropped.any()) else y[0]
        return _drift_and_divergence(sde, score, xs, t, eps)

    def leaves_box(t, y):
        if box is None:
            return None
        out = (y[0].abs() > box).any(1)
        dropped.logical_or_(out)
        return out

    (x, delta), st = dopri5(rhs, t0, t1, (x, delta), rtol=rtol, atol=atol, max_steps=max_steps,
                            on_step=leaves_box, name="log_likelihood")
    excluded = st.inactive
    logp = _checks.evaluate(prior, "prior_logp", _PRIOR_SIGNATURE, (n,), x) + delta
    logp = torch.where(excluded, torch.full_like(logp, float("nan")), logp)
    return LikelihoodResult(logp=logp, excluded=excluded, x_T=x, nfe=st.nfe, steps=st.steps, rejected=st.rejected)
