r"""Time-stepping schemes for SDEs and ODEs (book: Chapter 1, {eq}`eq-em`, {eq}`eq-milstein`, {eq}`eq-heun`,
{eq}`eq-srk15`).

All solvers share one signature (:func:`~diffedu.srk15` takes ``dw`` *and* ``dz``, see there)::

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

The strong order-1.5 scheme :func:`~diffedu.srk15` (scalar SDEs, increasing times) needs, besides
:math:`\Delta w_k`, the time integral :math:`\Delta z_k = \int_{t_k}^{t_{k+1}}(w_s - w_{t_k})\,ds`
of each step; :func:`~diffedu.brownian_increments_dz` draws both with their exact joint law and
:func:`~diffedu.coarsen_dz` carries them exactly to a coarser grid.
"""

from __future__ import annotations

import math

import torch

from . import _checks
from .device import randn
from .sde import SDE

__all__ = ["euler_maruyama", "milstein", "heun", "srk15", "brownian_increments", "coarsen", "brownian_increments_dz",
           "coarsen_dz", "time_grid"]


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


def brownian_increments_dz(ts, n: int, generator: torch.Generator | None = None, *, dw: torch.Tensor | None = None,
                           device=None, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Brownian increments and their time integrals on a grid, the noise of :func:`srk15`.

    Returns ``(dw, dz)``, each of shape ``(len(ts)-1, n, 1)``: :math:`\Delta w_k = w_{t_{k+1}} - w_{t_k}` and
    :math:`\Delta z_k = \int_{t_k}^{t_{k+1}}(w_s - w_{t_k})\,ds`, with their exact joint law on the grid
    (with :math:`h_k = t_{k+1} - t_k`: :math:`\Delta w_k \sim N(0, h_k)`, :math:`\Delta z_k \sim N(0, h_k^3/3)`,
    covariance :math:`h_k^2/2`, independent between steps), drawn as
    :math:`\Delta z_k = \tfrac12 h_k(\Delta w_k + \Delta v_k/\sqrt3)` with an independent
    :math:`\Delta v_k \sim N(0, h_k)`.  ``dw`` is drawn first, exactly as
    ``brownian_increments(ts, n, 1, generator)`` draws it: the same seed gives the same Brownian
    path, now with its time integrals.  ``ts`` must be strictly increasing.

    To add time integrals to increments already drawn (by :func:`brownian_increments`, say), pass
    them as ``dw`` (shape ``(len(ts)-1, n, 1)``): then only :math:`\Delta v_k` is drawn from
    ``generator``, so that ``dz`` follows its law given these increments,
    :math:`N(\tfrac12 h_k\Delta w_k,\ h_k^3/12)`, and ``dw`` comes back unchanged (on ``device``,
    in ``dtype``) with it.  This costs half the draws of a fresh pair.
    """
    tl = _checks.times(ts)
    if not all(b > a for a, b in zip(tl, tl[1:])):
        raise ValueError("ts must be strictly increasing: dz is the integral of w_s - w_{t_k} forward in time")
    ts = torch.tensor(tl, dtype=torch.float64)
    n = _checks.positive_int(n, "n")
    _checks.generator(generator)
    device, dtype = _checks.device(device), _checks.floating_dtype(dtype)
    steps = len(tl) - 1
    if dw is not None:
        if not isinstance(dw, torch.Tensor) or tuple(dw.shape) != (steps, n, 1):
            got = tuple(dw.shape) if isinstance(dw, torch.Tensor) else type(dw).__name__
            raise ValueError(f"dw must have shape (len(ts)-1, n, 1) = {(steps, n, 1)}, got {got}")
        if not dw.is_floating_point() or not _all_finite(dw):
            raise ValueError("dw must hold finite floating-point Brownian increments (it contains NaN, inf or integers)")
    _checks.memory(3 * steps * n, "(len(ts) - 1) * n (the increments, their integrals and the draws)")
    h = (ts[1:] - ts[:-1]).view(-1, 1, 1)
    if dw is None:
        dw = h.sqrt() * randn((steps, n, 1), generator=generator, dtype=torch.float64)
    else:
        dw = dw.to(device="cpu", dtype=torch.float64)
    dz = randn((steps, n, 1), generator=generator, dtype=torch.float64)
    dz.mul_(h * h.sqrt() / (2 * math.sqrt(3.0))).add_(0.5 * h * dw)
    device = device if device is not None else "cpu"
    return dw.to(device=device, dtype=dtype), dz.to(device=device, dtype=dtype)


def _all_finite(x: torch.Tensor) -> bool:
    """Whether every entry of ``x`` is finite: a finite sum proves it (NaN and inf propagate), and is cheap on large
    tensors of increments; an infinite sum is checked entry by entry (finite values may overflow a sum)."""
    return bool(torch.isfinite(x.sum())) or bool(torch.isfinite(x).all())


def _increments(value, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of shape (steps, n, d), got {type(value).__name__}")
    if value.dim() != 3:
        raise ValueError(f"{name} must be a tensor of shape (steps, n, d), got shape {tuple(value.shape)}")
    if not value.is_floating_point() or not _all_finite(value):
        raise ValueError(f"{name} must hold finite floating-point values (it contains NaN, inf or integers)")
    return value


def coarsen_dz(dw: torch.Tensor, dz: torch.Tensor, factor: int, ts) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``(dw, dz)`` of :func:`brownian_increments_dz` on the grid ``ts``, carried exactly to ``ts[::factor]``.

    A coarse step made of the fine steps :math:`j = 0, \dots, m-1` (:math:`m` = ``factor``) that ends at
    :math:`t_m` has :math:`\Delta w = \sum_j \Delta w_j` and
    :math:`\Delta z = \sum_j \big[\Delta z_j + (t_m - t_{j+1})\,\Delta w_j\big]`: the rise of the path
    during fine step :math:`j` is held for the rest of the coarse step.  For two fine steps of lengths
    :math:`h_1, h_2` this is :math:`\Delta z = \Delta z_1 + \Delta z_2 + h_2\,\Delta w_1`.  Unlike
    :func:`coarsen`, this needs the fine grid ``ts`` (``len(dw) + 1`` strictly increasing times; it
    may be non-uniform): :math:`\Delta z` carries units of time.  ``factor`` must divide ``len(dw)``;
    returns two tensors of shape ``(len(dw) // factor, n, d)`` in ``dw``'s dtype and device.
    """
    dw = _increments(dw, "dw")
    dz = _increments(dz, "dz")
    if dz.shape != dw.shape:
        raise ValueError(f"dz must have the shape of dw {tuple(dw.shape)}, got {tuple(dz.shape)}")
    factor = _checks.positive_int(factor, "factor")
    steps = dw.shape[0]
    if steps % factor:
        raise ValueError(f"factor must divide the number of steps {steps}, got {factor}")
    tl = _checks.times(ts)
    if len(tl) != steps + 1:
        raise ValueError(f"ts must be the fine grid of dw and dz: len(dw) + 1 = {steps + 1} times, got {len(tl)}")
    if not all(b > a for a, b in zip(tl, tl[1:])):
        raise ValueError("ts must be strictly increasing")
    t = torch.tensor(tl, dtype=torch.float64)
    coarse = steps // factor
    rest = t[factor::factor].view(coarse, 1) - t[1:].view(coarse, factor)   # t_m - t_{j+1} in each coarse step
    dw4 = dw.reshape(coarse, factor, *dw.shape[1:])
    dz4 = dz.to(device=dw.device, dtype=dw.dtype).reshape(coarse, factor, *dw.shape[1:])
    dw_c = dw4.sum(1)
    dz_c = dz4.sum(1) + torch.einsum("bm...,bm->b...", dw4, rest.to(device=dw.device, dtype=dw.dtype))
    if not (_all_finite(dw_c) and _all_finite(dz_c)):
        raise ValueError(f"dw and dz are too large to coarsen: their sums overflow {dw.dtype}")
    return dw_c, dz_c


def _integrate(name, step, sde, x0, ts, generator, return_path, callback, dw, dz=None, levy=False):
    # levy=True (srk15): scalar x, increasing ts, and each step also gets dz = int (w_s - w_{t_k}) ds
    if not isinstance(sde, SDE):
        raise TypeError(f"sde must be a diffedu SDE, got {type(sde).__name__}")
    x = _checks.batch(x0, "x0")
    if levy and x.shape[1] != 1:
        raise ValueError(f"{name}: scalar SDEs only: x0 must have shape (n, 1), got shape {tuple(x.shape)}")
    tl = _check_ts(ts, sde)
    _checks.generator(generator)
    _checks.flag(return_path, "return_path")
    if callback is not None:
        _checks.callable_(callback, "callback", "callback(k, t, x)")
    backward = tl[1] < tl[0]
    if levy and backward:
        raise ValueError(f"{name} integrates forward in time only: ts must be strictly increasing, got decreasing "
                         f"times from {tl[0]:g} to {tl[-1]:g}")
    if backward and sde.state_dependent:
        raise ValueError("decreasing ts (reverse time) is supported only for noise g(t) independent of x")
    steps = len(tl) - 1
    if levy and (dw is None) != (dz is None):
        given, missing = ("dw", "dz") if dz is None else ("dz", "dw")
        raise ValueError(f"dw and dz must be given together (see brownian_increments_dz): got {given} without {missing}")
    for noise, what, value in (("dw", "Brownian increments", dw), ("dz", "time integrals of w", dz)):
        if value is None:
            continue
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != (steps, *x.shape):
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"{noise} must have shape (len(ts)-1, n, d) = {(steps, *x.shape)}, got {got}")
        if not value.is_floating_point() or not _all_finite(value):
            raise ValueError(f"{noise} must hold finite floating-point {what} (it contains NaN, inf or integers)")
    noises = "dw, dz" if levy else "dw"
    if return_path:
        _checks.memory((steps + 1) * x.numel(), "return_path=True: (len(ts)) * n * d", bytes_per_element=x.element_size())
    path = [x] if return_path else None
    if callback is not None:
        _checks.call(callback, "callback", "callback(k, t, x)", 0, tl[0], x)
    for k in range(steps):
        h = tl[k + 1] - tl[k]
        if dw is None and levy:       # dz = h (dw + dv / sqrt 3) / 2 with dv independent: the exact joint law
            z = randn((2, *x.shape), generator=generator, device=x.device, dtype=x.dtype) * abs(h) ** 0.5
            dwk, dzk = z[0], 0.5 * h * (z[0] + z[1] / math.sqrt(3.0))
        elif dw is None:
            dwk = randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) * abs(h) ** 0.5
        else:
            dwk = dw[k].to(device=x.device, dtype=x.dtype)
            dzk = dz[k].to(device=x.device, dtype=x.dtype) if levy else None
        t = torch.tensor(tl[k], dtype=x.dtype, device=x.device)
        t_next = torch.tensor(tl[k + 1], dtype=x.dtype, device=x.device)
        try:
            x = step(sde, x, t, t_next, h, dwk, dzk) if levy else step(sde, x, t, t_next, h, dwk)
        except ValueError as err:
            if k == 0 or "non-finite" not in str(err):
                raise
            # a drift or noise that is finite at x0 but not at the state the scheme reached: a blow-up
            raise FloatingPointError(f"{name}: at step {k + 1} (t = {tl[k]:g}) {err}, at a finite state with "
                                     f"max |x| = {float(x.abs().max()):.3g}: the solution blew up; the step "
                                     f"|dt| = {abs(h):g} is probably too large for this SDE") from err
        if not bool(torch.isfinite(x).all()):
            raise FloatingPointError(f"{name} produced non-finite values at step {k + 1} (t = {tl[k + 1]:g}) from finite "
                                     f"x0, {noises} and drift values: the step |dt| = {abs(h):g} is probably too large for this SDE")
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


def _srk15_step(sde, x, t, t_next, h, dw, dz):
    # eq-srk15: the supporting values (at t_next) replace the derivatives of the order-1.5 Ito-Taylor scheme
    sq = h ** 0.5
    a, b = sde._f(x, t), sde._gx(x, t)
    y_plus, y_minus = x + a * h + b * sq, x + a * h - b * sq
    a_plus, a_minus = sde._f(y_plus, t_next), sde._f(y_minus, t_next)
    b_plus, b_minus = sde._gx(y_plus, t_next), sde._gx(y_minus, t_next)
    b_phi = sde._gx(y_plus + b_plus * sq, t_next) - sde._gx(y_plus - b_plus * sq, t_next)
    return (x + b * dw + 0.25 * (a_plus + 2 * a + a_minus) * h
            + (a_plus - a_minus) * dz / (2 * sq)
            + (b_plus - b_minus) * (dw**2 - h) / (4 * sq)
            + (b_plus - 2 * b + b_minus) * (dw * h - dz) / (2 * h)
            + (b_phi - b_plus + b_minus) * (dw**2 / 3 - h) * dw / (4 * h))


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


def srk15(sde, x0, ts, *, generator=None, return_path=False, callback=None, dw=None, dz=None):
    r"""Derivative-free stochastic Runge–Kutta scheme of strong order 1.5 (Platen type), {eq}`eq-srk15`.

    For a scalar Itô SDE :math:`dx = f(x,t)\,dt + g(x,t)\,dw` (``x0`` of shape ``(n, 1)``).  From the
    supporting values :math:`\bar x_\pm = x_k + f\,\Delta t \pm g\,\sqrt{\Delta t}` and
    :math:`\phi_\pm = \bar x_+ \pm g(\bar x_+)\sqrt{\Delta t}`, where :math:`f` and :math:`g` are evaluated at
    :math:`t_{k+1}`, differences such as :math:`[g(\bar x_+) - g(\bar x_-)]/(2\sqrt{\Delta t})`
    replace the derivatives of the order-1.5 Itô–Taylor scheme (:math:`g\,\partial_x g`,
    :math:`\partial_t g + f\,\partial_x g + \tfrac12 g^2\partial_x^2 g`, ...), which it reproduces up to
    terms that do not lower the order.  Besides :math:`\Delta w_k` every step needs the time integral
    :math:`\Delta z_k = \int_{t_k}^{t_{k+1}}(w_s - w_{t_k})\,ds`: both are drawn from ``generator``, or
    given together as ``dw`` and ``dz`` (each of shape ``(len(ts)-1, n, 1)``; see
    :func:`brownian_increments_dz` and :func:`coarsen_dz`), so that the scheme can run on the Brownian
    paths of an exact solution.  No derivative of :math:`g` is needed (unlike :func:`milstein`).  The
    other arguments are those of every solver (module docstring).

    Strong order 1.5 for scalar SDEs with smooth coefficients (time-dependent ones included); weak
    order 2.  Cost per step: 3 evaluations of the drift :math:`f` and 5 of the noise :math:`g`
    (Euler–Maruyama: 1 and 1; Milstein: 1, 1 and 1 of :math:`\partial_x g`).  Raises ``ValueError``
    for ``x0`` with more than one column and for decreasing ``ts`` (no reverse time).
    """
    return _integrate("srk15", _srk15_step, sde, x0, ts, generator, return_path, callback, dw, dz, levy=True)
