r"""Time-stepping schemes for SDEs and ODEs (book: Chapter 1, {eq}`eq-em`, {eq}`eq-milstein`, {eq}`eq-heun`).

All solvers share one signature::

    solver(sde, x0, ts, *, generator=None, return_path=False, callback=None, dw=None)

* ``sde`` is a :class:`diffedu.sde.SDE` (a reverse sampler ``sde.reverse(score, hbar)`` too);
* ``x0`` has shape ``(n, d)``; its dtype and device are the computation's;
* ``ts`` is a strictly increasing **or** strictly decreasing sequence of times in
  ``[0, sde.T]``; decreasing times integrate backward (the Brownian increments then
  have variance :math:`|\Delta t|`);
* the noise is drawn on the CPU from ``generator`` (see :func:`~diffedu.randn`),
  or taken from ``dw``, a tensor of Brownian increments of shape ``(len(ts)-1, n, d)``
  (for several schemes on one Brownian path, see :func:`~diffedu.brownian_increments`);
* ``callback(k, t, x)`` is called after the start and after every step;
* returns the final state, or the whole path of shape ``(len(ts), n, d)`` when
  ``return_path=True``.

The noise is diagonal: component ``i`` of :math:`g` multiplies :math:`\Delta w_i`.
A step that produces NaN or inf raises ``FloatingPointError`` naming the step.
"""

from __future__ import annotations

import torch

from . import _checks
from .device import randn
from .sde import SDE

__all__ = ["euler_maruyama", "milstein", "heun", "brownian_increments", "coarsen", "time_grid"]


def time_grid(t0: float, t1: float, steps: int, *, dtype=torch.float64) -> torch.Tensor:
    """``steps + 1`` equally spaced times from ``t0`` to ``t1`` (either order); ``steps`` at most 10**7."""
    t0 = _checks.real(t0, "t0")
    t1 = _checks.real(t1, "t1")
    if t0 == t1:
        raise ValueError("t0 and t1 must differ")
    steps = _checks.positive_int(steps, "steps", high=_checks.MAX_STEPS)
    dtype = _checks.floating_dtype(dtype)
    return torch.linspace(t0, t1, steps + 1, dtype=dtype)


def _check_ts(ts, sde: SDE) -> list[float]:
    values = _checks.times(ts)
    diffs = [b - a for a, b in zip(values, values[1:])]
    if not (all(h > 0 for h in diffs) or all(h < 0 for h in diffs)):
        raise ValueError("ts must be strictly increasing or strictly decreasing")
    lo, hi = min(values), max(values)
    if lo < -1e-12 or hi > sde.T + 1e-12:
        raise ValueError(f"ts must lie in [0, T] = [0, {sde.T:g}] for {sde!r}, got [{lo:g}, {hi:g}]")
    return values


def brownian_increments(ts, n: int, dim: int, generator: torch.Generator | None = None, *,
                        device=None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""Brownian increments :math:`\Delta w_k \sim N(0, |t_{k+1}-t_k| I)`, shape ``(len(ts)-1, n, dim)``."""
    ts = torch.tensor(_checks.times(ts), dtype=torch.float64)
    n = _checks.positive_int(n, "n")
    dim = _checks.positive_int(dim, "dim")
    _checks.generator(generator)
    device, dtype = _checks.device(device), _checks.floating_dtype(dtype)
    _checks.memory((len(ts) - 1) * n * dim, "(len(ts) - 1) * n * dim")
    h = (ts[1:] - ts[:-1]).abs()
    z = randn((len(h), n, dim), generator=generator, dtype=torch.float64)
    return (h.sqrt().view(-1, 1, 1) * z).to(device=device if device is not None else "cpu", dtype=dtype)


def coarsen(dw: torch.Tensor, factor: int) -> torch.Tensor:
    """Sum consecutive groups of ``factor`` increments: the same Brownian path on a coarser grid."""
    if not isinstance(dw, torch.Tensor) or dw.dim() != 3:
        raise ValueError("dw must be a tensor of shape (steps, n, d)")
    factor = _checks.positive_int(factor, "factor")
    if dw.shape[0] % factor:
        raise ValueError(f"factor must divide the number of steps {dw.shape[0]}, got {factor}")
    return dw.reshape(dw.shape[0] // factor, factor, *dw.shape[1:]).sum(1)


def _integrate(name, step, sde, x0, ts, generator, return_path, callback, dw):
    if not isinstance(sde, SDE):
        raise TypeError(f"sde must be a diffedu SDE, got {type(sde).__name__}")
    x = _checks.batch(x0, "x0")
    tl = _check_ts(ts, sde)
    _checks.generator(generator)
    _checks.flag(return_path, "return_path")
    if callback is not None:
        _checks.callable_(callback, "callback", "callback(k, t, x)")
    backward = tl[1] < tl[0]
    if backward and sde.state_dependent:
        raise ValueError("decreasing ts (reverse time) is supported only for noise g(t) independent of x")
    steps = len(tl) - 1
    if dw is not None:
        if not isinstance(dw, torch.Tensor) or tuple(dw.shape) != (steps, *x.shape):
            got = tuple(dw.shape) if isinstance(dw, torch.Tensor) else type(dw).__name__
            raise ValueError(f"dw must have shape (len(ts)-1, n, d) = {(steps, *x.shape)}, got {got}")
        if not dw.is_floating_point() or not bool(torch.isfinite(dw).all()):
            raise ValueError("dw must hold finite floating-point Brownian increments (it contains NaN, inf or integers)")
    if return_path:
        _checks.memory((steps + 1) * x.numel(), "return_path=True: (len(ts)) * n * d", bytes_per_element=x.element_size())
    path = [x] if return_path else None
    if callback is not None:
        _checks.call(callback, "callback", "callback(k, t, x)", 0, tl[0], x)
    for k in range(steps):
        h = tl[k + 1] - tl[k]
        if dw is None:
            dwk = randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) * abs(h) ** 0.5
        else:
            dwk = dw[k].to(device=x.device, dtype=x.dtype)
        t = torch.tensor(tl[k], dtype=x.dtype, device=x.device)
        t_next = torch.tensor(tl[k + 1], dtype=x.dtype, device=x.device)
        try:
            x = step(sde, x, t, t_next, h, dwk)
        except ValueError as err:
            if k == 0 or "non-finite" not in str(err):
                raise
            # a drift or noise that is finite at x0 but not at the state the scheme reached: a blow-up
            raise FloatingPointError(f"{name}: at step {k + 1} (t = {tl[k]:g}) {err}, at a finite state with "
                                     f"max |x| = {float(x.abs().max()):.3g}: the solution blew up; the step "
                                     f"|dt| = {abs(h):g} is probably too large for this SDE") from err
        if not bool(torch.isfinite(x).all()):
            raise FloatingPointError(f"{name} produced non-finite values at step {k + 1} (t = {tl[k + 1]:g}) from finite "
                                     f"x0, dw and drift values: the step |dt| = {abs(h):g} is probably too large for this SDE")
        if return_path:
            path.append(x)
        if callback is not None:
            _checks.call(callback, "callback", "callback(k, t, x)", k + 1, tl[k + 1], x)
    return torch.stack(path) if return_path else x


def _em_step(sde, x, t, t_next, h, dw):
    return x + sde._f(x, t) * h + sde._gx(x, t) * dw


def _milstein_step(sde, x, t, t_next, h, dw):
    g = sde._gx(x, t)
    return x + sde._f(x, t) * h + g * dw + 0.5 * g * sde._dgx(x, t) * (dw**2 - abs(h))


def _stratonovich_drift(sde, x, t):
    f = sde._f(x, t)
    if sde.state_dependent:
        f = f - 0.5 * sde._gx(x, t) * sde._dgx(x, t)
    return f


def _heun_step(sde, x, t, t_next, h, dw):
    f0 = _stratonovich_drift(sde, x, t)
    g0 = sde._gx(x, t)
    x_pred = x + f0 * h + g0 * dw
    f1 = _stratonovich_drift(sde, x_pred, t_next)
    g1 = sde._gx(x_pred, t_next)
    return x + 0.5 * (f0 + f1) * h + 0.5 * (g0 + g1) * dw


def euler_maruyama(sde, x0, ts, *, generator=None, return_path=False, callback=None, dw=None):
    r"""Euler–Maruyama, {eq}`eq-em`: :math:`x_{k+1} = x_k + f(x_k,t_k)\Delta t + g(x_k,t_k)\Delta w_k`.

    Strong order 1/2, weak order 1 (order 1 strong for additive noise).
    """
    return _integrate("euler_maruyama", _em_step, sde, x0, ts, generator, return_path, callback, dw)


def milstein(sde, x0, ts, *, generator=None, return_path=False, callback=None, dw=None):
    r"""Milstein, {eq}`eq-milstein`: Euler–Maruyama plus :math:`\tfrac12 g\,\partial_x g\,(\Delta w^2-\Delta t)`.

    Strong order 1 for diagonal noise where :math:`g_i` depends on :math:`x_i` only.
    Needs ``sde.diffusion_dx``; equal to Euler–Maruyama when the noise is additive.
    """
    return _integrate("milstein", _milstein_step, sde, x0, ts, generator, return_path, callback, dw)


def heun(sde, x0, ts, *, generator=None, return_path=False, callback=None, dw=None):
    r"""Stochastic Heun (predictor–corrector trapezoid), {eq}`eq-heun`; Heun's method for an ODE.

    Heun's trapezoid rule converges to the *Stratonovich* solution, so for
    state-dependent noise it is applied to the Stratonovich form of the Itô SDE,
    with drift :math:`f - \tfrac12 g\,\partial_x g`; it then solves the same Itô
    equation as the other two schemes.  Strong order 1 for additive noise (``g`` independent
    of ``x``, no correction needed), as for Euler–Maruyama there; order 2 only for ODEs
    (``g = 0``), which is the Heun method of Karras et al. (2022) for the probability-flow ODE.
    """
    return _integrate("heun", _heun_step, sde, x0, ts, generator, return_path, callback, dw)
