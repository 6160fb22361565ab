r"""Adaptive Dormand–Prince 5(4) integration of batched ODE systems, in either direction of time.

Used by the probability-flow log-likelihood (Chapter 4) and by the first-order WKB correction
(Chapter 6).  The state is a tuple of tensors whose first axis is the batch: each row is an
independent ODE (one test point), but the batch shares one step size.  The local error of the
embedded 4th-order solution is measured per row as the RMS over all of that row's components of
:math:`e / (a_{\rm tol} + r_{\rm tol}\max(|y_n|, |y_{n+1}|))`; a step is accepted when the
largest row error is at most 1.  Rows marked inactive (for example trajectories that left the
box) no longer control the step size and are no longer advanced: they keep the value of the step
at which they were dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import _checks

_RHS = "rhs(t, y) -> tuple of tensors of y's shapes"

# Dormand–Prince 5(4) tableau
_C = [0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0]
_A = [
    [],
    [1 / 5],
    [3 / 40, 9 / 40],
    [44 / 45, -56 / 15, 32 / 9],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
    [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84],
]
_B5 = [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0]
_B4 = [5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40]


@dataclass
class ODEStats:
    """What the integrator did."""

    nfe: int          #: evaluations of the right-hand side
    steps: int        #: accepted steps
    rejected: int     #: rejected steps
    inactive: torch.Tensor  #: rows dropped from the error control by ``on_step``


def dopri5(rhs, t0: float, t1: float, y0, *, rtol: float, atol: float, max_steps: int = 100_000,
           on_step=None, inactive: torch.Tensor | None = None, name: str = "dopri5"):
    r"""Integrate :math:`\dot y = {\rm rhs}(t, y)` from ``t0`` to ``t1`` (``t1 < t0`` runs backwards).

    ``y0`` is a tuple of tensors with the batch on axis 0; ``rhs(t, y)`` returns a tuple of the
    same shapes.  ``on_step(t, y)``, if given, is called after every accepted step and returns a
    boolean mask (batch,) of rows to drop from the error control from then on (or ``None``); a
    dropped row is frozen at its value at that step (so it stays finite).
    Returns ``(y1, ODEStats)``.  Raises ``RuntimeError`` after ``max_steps`` attempted steps and
    ``FloatingPointError`` if the step size underflows; both name ``name`` and the time reached.
    """
    _checks.callable_(rhs, "rhs", _RHS)
    if on_step is not None:
        _checks.callable_(on_step, "on_step", "on_step(t, y) -> bool mask (n,) or None")
    t0, t1 = _checks.real(t0, "t0"), _checks.real(t1, "t1")
    if t0 == t1:
        raise ValueError("t0 and t1 must differ")
    rtol, atol = _checks.tolerance(rtol, "rtol"), _checks.tolerance(atol, "atol")
    max_steps = _checks.positive_int(max_steps, "max_steps", high=_checks.MAX_STEPS)
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    if not isinstance(y0, (tuple, list)) or not y0 or not all(isinstance(v, torch.Tensor) for v in y0):
        raise TypeError("y0 must be a non-empty tuple of tensors (the batch on axis 0)")
    y = tuple(y0)
    n = y[0].shape[0] if y[0].dim() else 0
    if y[0].dim() == 0 or n == 0 or any(v.dim() == 0 or v.shape[0] != n for v in y):
        raise ValueError(f"y0 must be tensors that share a non-empty batch axis 0, got shapes {[tuple(v.shape) for v in y]}")
    if not all(v.is_floating_point() and bool(torch.isfinite(v).all()) for v in y):
        raise ValueError("y0 must hold finite floating-point values")
    if inactive is not None and (not isinstance(inactive, torch.Tensor) or inactive.dtype != torch.bool
                                 or tuple(inactive.shape) != (n,)):
        raise ValueError(f"inactive must be None or a bool tensor of shape ({n},)")
    off = torch.zeros(n, dtype=torch.bool, device=y[0].device) if inactive is None else inactive.clone()
    width = sum(v[0].numel() for v in y)
    span = t1 - t0
    direction = 1.0 if span > 0 else -1.0
    t, nfe, steps, rejected = t0, 1, 0, 0
    k0 = _checks.call(rhs, "rhs", _RHS, t, y)
    if not isinstance(k0, (tuple, list)) or len(k0) != len(y) or any(
            not isinstance(k, torch.Tensor) or k.shape != v.shape for k, v in zip(k0, y)):
        raise ValueError(f"rhs must return a tuple of tensors of the shapes of y0 {[tuple(v.shape) for v in y]}")
    h = 1e-3 * abs(span)
    while direction * (t1 - t) > 1e-14 * max(1.0, abs(t1)):
        if steps + rejected >= max_steps:
            raise RuntimeError(f"{name}: more than max_steps={max_steps} steps at t = {t:g}; "
                               "loosen rtol/atol or check the model (a stiff schedule near T needs many steps)")
        h = min(h, direction * (t1 - t))
        hs = direction * h
        ks = [k0]
        for stage in range(1, 7):
            ys = tuple(v + hs * sum(a * k[j] for a, k in zip(_A[stage], ks)) for j, v in enumerate(y))
            ks.append(rhs(t + _C[stage] * hs, ys))
        nfe += 6
        y5 = tuple(v + hs * sum(b * k[j] for b, k in zip(_B5, ks)) for j, v in enumerate(y))
        ssq = torch.zeros(n, dtype=torch.float64, device=y[0].device)
        for j, v in enumerate(y):
            e = hs * sum((b5 - b4) * k[j] for b5, b4, k in zip(_B5, _B4, ks))
            scale = atol + rtol * torch.maximum(v.abs(), y5[j].abs())
            ssq = ssq + ((e / scale) ** 2).reshape(n, -1).sum(1)
        err_pt = torch.sqrt(ssq / width)
        err_pt = torch.where(off, torch.zeros_like(err_pt), err_pt)
        err = float(err_pt.max()) if bool(torch.isfinite(err_pt).all()) else float("inf")
        if err <= 1.0:
            t += hs
            # inactive rows stay where they were dropped: uncontrolled, they could overflow to inf/NaN
            y = tuple(torch.where(off.view(-1, *([1] * (v.dim() - 1))), v, v5) for v, v5 in zip(y, y5))
            k0 = ks[6]              # first same as last
            steps += 1
            if on_step is not None:
                drop = _checks.call(on_step, "on_step", "on_step(t, y) -> bool mask (n,) or None", t, y)
                if drop is not None and (not isinstance(drop, torch.Tensor) or drop.dtype != torch.bool
                                         or tuple(drop.shape) != (n,)):
                    raise ValueError(f"on_step must return None or a bool tensor of shape ({n},)")
                if drop is not None:
                    off |= drop
        else:
            rejected += 1
        h = h * (5.0 if err == 0 else min(5.0, max(0.2, 0.9 * err ** -0.2)))
        if h < 1e-14:
            raise FloatingPointError(f"{name}: step size underflow at t = {t:g} on the way from t0 = {t0:g} to t1 = {t1:g}: "
                                     f"the solution blows up or the rhs is not finite there (rtol = {rtol:g}, atol = {atol:g})")
    return y, ODEStats(nfe=nfe, steps=steps, rejected=rejected, inactive=off)
