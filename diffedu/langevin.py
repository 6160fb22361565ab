r"""Langevin samplers that use only a score, and the time a chain needs to hop between modes (book: Chapter 3).

* ``ula``: the unadjusted Langevin algorithm {eq}`eq-ula`, the Euler–Maruyama discretisation of the
  Langevin SDE {eq}`eq-langevin-sampler`, whose stationary law is the density whose score it follows;
* ``annealed_langevin``: annealed Langevin dynamics (score matching with Langevin dynamics, SMLD), the same
  algorithm run through a decreasing ladder of noise levels with the steps of {eq}`eq-annealed-step`;
* ``first_passage_times``: Monte-Carlo first-passage times of a 1-D Langevin chain across a level, with the
  Brownian-bridge test {eq}`eq-bridge-crossing` for a crossing inside a step;
* ``mean_first_passage_time``: the exact mean first-passage time {eq}`eq-mfpt` of the 1-D Langevin SDE,
  by quadrature in float64.
"""

from __future__ import annotations

import math

import torch

from . import _checks

#: the most points the quadrature of ``mean_first_passage_time`` accepts
POINTS_MAX = 10_000_000
#: the largest |a|, |b|, |lower| accepted by ``mean_first_passage_time`` (so that b - lower stays finite)
_COORD_MAX = 1e100
#: the tail left out of the inner integral of {eq}`eq-mfpt` when ``lower`` is chosen automatically: e^(-45) ~ 3e-20
_TAIL_EXPONENT = 45.0


def _blow_up(k: int, what: str) -> FloatingPointError:
    return FloatingPointError(
        f"the chain left the range of floating-point numbers at iteration {k}: x or the score is no longer finite. The "
        f"step is too large for this score ({what}; the unadjusted Langevin algorithm needs step below 2 / L for a "
        f"score that is L-Lipschitz), or x or the score is too large")


#: how often (in steps) the chains are tested for a blow-up, and first-passage chains that have crossed are dropped
_EVERY = 32


def _score_at(score, x: torch.Tensor, name: str, signature: str, *args) -> torch.Tensor:
    """The user's score at the chains' states: its kind and shape are checked at every step, its values with the
    chains' (every ``_EVERY`` steps: a non-finite score makes the chains non-finite)."""
    out = _checks.call(score, name, signature, x, *args)
    if not (isinstance(out, torch.Tensor) and out.shape == x.shape and out.is_floating_point()):
        _checks.output(out, name, tuple(x.shape), signature)            # raises, naming what is wrong
    return out if out.dtype == x.dtype and out.device == x.device else out.to(device=x.device, dtype=x.dtype)


def _noise(generator, shape, like: torch.Tensor) -> torch.Tensor:
    z = torch.randn(shape, generator=generator, dtype=torch.float64)
    return z.to(device=like.device, dtype=like.dtype)


def _finite_or_blow_up(x: torch.Tensor, k: int, what: str) -> None:
    if not bool(torch.isfinite(x).all()):
        raise _blow_up(k, what)


def _first_score(score, x, name, signature, *args):
    """The score at the start, checked in full (kind, shape and finite values)."""
    out = _checks.output(_checks.call(score, name, signature, x, *args), name, tuple(x.shape), signature)
    return out.to(device=x.device, dtype=x.dtype)


def _trace_every(trace_every, n_steps: int, n: int, d: int):
    if trace_every is None:
        return None
    k = _checks.positive_int(trace_every, "trace_every", high=_checks.MAX_STEPS)
    _checks.memory((n_steps // k + 1) * n * d, "the trace (n_steps // trace_every + 1) * n * d")
    return k


def ula(score, x, step: float, n_steps: int, generator: torch.Generator | None = None, *,
        trace_every: int | None = None):
    r"""The unadjusted Langevin algorithm (ULA) {eq}`eq-ula`:
    :math:`x \leftarrow x + \epsilon\,s(x) + \sqrt{2\epsilon}\,z`, ``n_steps`` times.

    It is Euler–Maruyama with step :math:`\epsilon` for the Langevin SDE {eq}`eq-langevin-sampler`,
    :math:`dx = s(x)\,dt + \sqrt2\,dw`, whose stationary law is :math:`p` when :math:`s = \nabla\log p`; the chain's own
    stationary law differs from :math:`p` by :math:`O(\epsilon)`.

    Parameters
    ----------
    score : ``score(x) -> tensor (n, d)``, the score :math:`s = \nabla\log p` (no time argument).
    x : the initial states, a finite floating tensor ``(n, d)``; the chains keep its dtype and device.
    step : the step :math:`\epsilon > 0`, in ``[1e-100, 1e100]``.
    n_steps : the number of steps, an integer in ``[1, 10**7]``.
    generator : a CPU ``torch.Generator`` (or ``None``) for the normal draws :math:`z`.
    trace_every : ``None`` (default) returns the final states only; an integer :math:`k \ge 1` also returns the
        states after every :math:`k`-th step, with the initial states first: shape ``(n_steps // k + 1, n, d)``.

    Returns the final states ``(n, d)``, or ``(final, trace)``. Raises ``FloatingPointError`` if a chain
    leaves the floating-point range (a step too large for the score).
    """
    _checks.callable_(score, "score", "score(x) -> tensor (n, d)")
    x = _checks.batch(x, "x")
    eps = _checks.scale(step, "step")
    n_steps = _checks.positive_int(n_steps, "n_steps", high=_checks.MAX_STEPS)
    _checks.generator(generator)
    every = _trace_every(trace_every, n_steps, *x.shape)
    kick = math.sqrt(2.0 * eps)
    sig = "score(x) -> tensor (n, d)"
    what = f"step = {eps:g}"
    trace = [x.clone()] if every else None
    for k in range(n_steps):
        s = _first_score(score, x, "score", sig) if k == 0 else _score_at(score, x, "score", sig)
        x = torch.add(x, s, alpha=eps).add_(_noise(generator, x.shape, x), alpha=kick)
        if (k + 1) % _EVERY == 0 or k + 1 == n_steps:
            _finite_or_blow_up(x, k, what)
        if every and (k + 1) % every == 0:
            trace.append(x.clone())
    return (x, torch.stack(trace)) if every else x


def _sigmas(sigmas) -> torch.Tensor:
    s = _checks.vector(sigmas, "sigmas")
    if s.numel() < 1:
        raise ValueError("sigmas must hold at least one noise level")
    if not bool(((s >= _checks.SCALE_MIN) & (s <= _checks.SCALE_MAX)).all()):
        raise ValueError(f"sigmas must be positive noise levels in [{_checks.SCALE_MIN:g}, {_checks.SCALE_MAX:g}], "
                         f"got values in [{float(s.min()):g}, {float(s.max()):g}]")
    if s.numel() > 1 and not bool((s[1:] < s[:-1]).all()):
        raise ValueError("sigmas must be strictly decreasing (sigma_1 > sigma_2 > ... > sigma_L), got "
                         f"{[round(v, 6) for v in s.tolist()[:8]]}{' ...' if s.numel() > 8 else ''}")
    return s


def annealed_langevin(score, x, sigmas, step: float, n_steps_each: int, generator: torch.Generator | None = None, *,
                      trace_every: int | None = None):
    r"""Annealed Langevin dynamics (SMLD): for each noise level :math:`\sigma_i` of the decreasing ladder
    ``sigmas``, ``n_steps_each`` steps of {eq}`eq-ula` with the score of :math:`p_{\sigma_i} = p * N(0, \sigma_i^2 I)`
    and the step :math:`\epsilon_i = \epsilon\,\sigma_i^2/\sigma_L^2` of {eq}`eq-annealed-step`.

    Parameters
    ----------
    score : ``score(x, sigma) -> tensor (n, d)``, the score of the data smoothed at the noise level ``sigma``
        (a Python float).
    x : the initial states, a finite floating tensor ``(n, d)``; the chains keep its dtype and device.
    sigmas : the noise levels :math:`\sigma_1 > \dots > \sigma_L > 0`, a 1-D tensor or a sequence of numbers,
        strictly decreasing, each in ``[1e-100, 1e100]``.
    step : :math:`\epsilon > 0`, the step at the last (smallest) level, in ``[1e-100, 1e100]``.
    n_steps_each : the number of steps per level, an integer in ``[1, 10**7]``.
    generator : a CPU ``torch.Generator`` (or ``None``) for the normal draws.
    trace_every : ``None`` (default), or an integer :math:`k \ge 1`: then also the states after every
        :math:`k`-th step of the whole run (the initial states first), shape ``(L * n_steps_each // k + 1, n, d)``.

    Returns the final states ``(n, d)``, or ``(final, trace)``. Raises ``FloatingPointError`` if a chain
    leaves the floating-point range (a step too large for the score at some level).
    """
    _checks.callable_(score, "score", "score(x, sigma) -> tensor (n, d)")
    x = _checks.batch(x, "x")
    s = _sigmas(sigmas)
    eps = _checks.scale(step, "step")
    n_each = _checks.positive_int(n_steps_each, "n_steps_each", high=_checks.MAX_STEPS)
    if s.numel() * n_each > _checks.MAX_STEPS:
        raise ValueError(f"len(sigmas) * n_steps_each must be at most {_checks.MAX_STEPS}, got {s.numel() * n_each}")
    _checks.generator(generator)
    every = _trace_every(trace_every, s.numel() * n_each, *x.shape)
    sig = s.tolist()
    log_steps = [math.log(eps) + 2 * (math.log(v) - math.log(sig[-1])) for v in sig]
    if max(log_steps) > math.log(_checks.SCALE_MAX):
        raise ValueError(f"step * (sigma_1 / sigma_L)^2 = {eps:g} * ({sig[0]:g} / {sig[-1]:g})^2 overflows: "
                         "make step or the range of sigmas smaller")
    steps = [eps * (v / sig[-1]) ** 2 for v in sig]
    trace = [x.clone()] if every else None
    k, total = 0, len(sig) * n_each
    signature = "score(x, sigma) -> tensor (n, d)"
    for sigma, eps_i in zip(sig, steps):
        kick = math.sqrt(2.0 * eps_i)
        what = f"step = {eps:g} at sigma = {sigma:g} is {eps_i:g}; sigmas = [{sig[0]:g}, ..., {sig[-1]:g}]"
        for _ in range(n_each):
            g = (_first_score if k == 0 else _score_at)(score, x, "score", signature, sigma)
            x = torch.add(x, g, alpha=eps_i).add_(_noise(generator, x.shape, x), alpha=kick)
            k += 1
            if k % _EVERY == 0 or k == total:
                _finite_or_blow_up(x, k - 1, what)
            if every and k % every == 0:
                trace.append(x.clone())
    return (x, torch.stack(trace)) if every else x


def first_passage_times(score, x, level: float, step: float, max_steps: int,
                        generator: torch.Generator | None = None, *, bridge: bool = True):
    r"""First-passage times of 1-D Langevin chains {eq}`eq-ula` from ``x`` up across ``level``.

    Each chain takes steps :math:`x' = x + \epsilon\,s(x) + \sqrt{2\epsilon}\,z` until it first reaches ``level``.
    With ``bridge=True`` (default) a step that ends below the level still counts as a crossing with the
    probability :math:`\exp\!\big(-(b - x)(b - x')/\epsilon\big)` of {eq}`eq-bridge-crossing`, that a Brownian
    bridge from :math:`x` to :math:`x'` reaches :math:`b`; this removes the :math:`O(\sqrt\epsilon)` delay of checking
    the level only at the grid times, leaving the :math:`O(\epsilon)` bias of the Euler step. A chain's time is
    that at the end of the step in which it crossed (at most one step late). Chains that have crossed are
    dropped from the loop every 32 steps, so the cost grows with the sum of the times, not with n times the longest.

    Parameters
    ----------
    score : ``score(x) -> tensor (m, 1)`` for ``x`` of shape ``(m, 1)`` (``m`` shrinks as chains cross).
    x : the starting points, a finite floating tensor ``(n, 1)``, all below ``level``.
    level : the level :math:`b`, a finite number.
    step : the step :math:`\epsilon`, in ``[1e-100, 1e100]``.
    max_steps : the most steps a chain may take, an integer in ``[1, 10**7]``.
    generator : a CPU ``torch.Generator`` (or ``None``) for the normal and uniform draws.
    bridge : ``True`` (default) for the Brownian-bridge test, ``False`` to check the level at the grid times only.

    Returns ``(times, hit)``: float64 tensors ``(n,)`` of first-passage times (``max_steps * step`` for a chain
    that did not cross) and a boolean tensor ``(n,)``, ``True`` where the chain crossed within ``max_steps``.
    """
    _checks.callable_(score, "score", "score(x) -> tensor (m, 1)")
    x = _checks.batch(x, "x", dim=1)
    b = _checks.real(level, "level")
    eps = _checks.scale(step, "step")
    max_steps = _checks.positive_int(max_steps, "max_steps", high=_checks.MAX_STEPS)
    _checks.generator(generator)
    _checks.flag(bridge, "bridge")
    if x.shape[0] and not bool((x[:, 0] < b).all()):
        raise ValueError(f"every starting point x must lie below level = {b:g}, got max x = {float(x.max()):g}")
    n = x.shape[0]
    times = torch.full((n,), max_steps * eps, dtype=torch.float64)
    hit = torch.zeros(n, dtype=torch.bool)
    index = torch.arange(n)                         # the chains still in the loop (compacted every _EVERY steps)
    alive = torch.ones(n, dtype=torch.bool, device=x.device)
    first = torch.full((n,), max_steps * eps, dtype=torch.float64, device=x.device)
    kick = math.sqrt(2.0 * eps)
    sig, what = "score(x) -> tensor (m, 1)", f"step = {eps:g}"
    for k in range(max_steps):
        if index.numel() == 0:
            break
        s = _first_score(score, x, "score", sig) if k == 0 else _score_at(score, x, "score", sig)
        x_new = torch.add(x, s, alpha=eps).add_(_noise(generator, x.shape, x), alpha=kick)
        if bridge:
            # crossed inside the step with probability exp(-(b - x)(b - x')/eps), Eq. (eq-bridge-crossing); with an
            # exponential variate E this is (b - x)(b - x') < eps E, which also holds whenever x' >= b
            e = torch.empty(x.shape[0], dtype=torch.float64).exponential_(generator=generator).to(x.device)
            crossed = ((b - x[:, 0]) * (b - x_new[:, 0])).to(torch.float64) < eps * e
        else:
            crossed = x_new[:, 0] >= b
        first = torch.where(crossed & alive, (k + 1) * eps, first)
        alive = alive & ~crossed
        x = x_new
        if (k + 1) % _EVERY == 0 or k + 1 == max_steps:
            _finite_or_blow_up(x, k, what)
            done = ~alive.cpu()
            times[index[done]] = first[~alive].cpu()
            hit[index[done]] = True
            keep = alive.cpu()
            index, x, alive, first = index[keep], x[alive], alive[alive], first[alive]
    return times, hit


def _trapezoid_cumulative(f: torch.Tensor, h: float) -> torch.Tensor:
    return torch.cat([f.new_zeros(1), torch.cumsum(0.5 * h * (f[1:] + f[:-1]), 0)])


def _mfpt_once(U, lower: float, a: float, b: float, n_left: int, n_right: int) -> tuple[float, float]:
    """(top, s) with tau = e^top * s: the trapezoidal rule on n_left points over [lower, a], n_right over [a, b]."""
    yl = torch.linspace(lower, a, n_left, dtype=torch.float64)[:-1]
    yr = torch.linspace(a, b, n_right, dtype=torch.float64)
    y = torch.cat([yl, yr])
    u = _checks.evaluate(U, "U", "U(x) -> tensor (n,) for x of shape (n,)", (y.numel(),), y).to(torch.float64)
    u_min = float(u.min())
    w = torch.exp(-(u - u_min))                                  # e^{-U}, scaled so that its maximum is 1
    hr = (b - a) / (n_right - 1)
    wl, wr = w[:n_left], w[n_left - 1:]
    left_mass = float(0.5 * (a - lower) / (n_left - 1) * (wl[1:] + wl[:-1]).sum()) if n_left > 1 else 0.0
    inner = left_mass + _trapezoid_cumulative(wr, hr)            # int_lower^y e^{-(U - U_min)} for y in [a, b]
    log_f = (u[n_left - 1:] - u_min) + torch.log(inner.clamp_min(1e-300))
    log_f[inner <= 0] = -math.inf                                # at y = a = lower the inner integral is 0
    top = float(log_f.max())
    g = torch.exp(log_f - top)
    return top, float(hr * (g.sum() - 0.5 * (g[0] + g[-1])))


def mean_first_passage_time(U, a: float, b: float, *, lower: float | None = None, points: int = 4001) -> float:
    r"""The exact mean first-passage time {eq}`eq-mfpt` of :math:`dx = -U'(x)\,dt + \sqrt2\,dw` from ``a`` up to ``b``,

    .. math:: \tau(a\to b) = \int_a^b e^{U(y)}\int_{\ell}^{y} e^{-U(z)}\,dz\,dy ,

    with a reflecting end at :math:`\ell` = ``lower`` (:math:`-\infty` by default). Composite trapezoidal rules on
    two nested grids of spacing :math:`h` and :math:`h/2`, combined by Richardson extrapolation (error
    :math:`O(h^4)` for a smooth :math:`U`), in float64 and in logarithms, so a barrier of several hundred
    :math:`k_BT` neither overflows nor loses digits. The constant in :math:`U` cancels.

    Parameters
    ----------
    U : the potential, ``U(x) -> tensor (n,)`` for a float64 tensor ``x`` of shape ``(n,)``; :math:`U = -\log p` up
        to a constant for the Langevin sampler of :math:`p`. With ``lower=None`` it must grow to the left of ``a``
        so that :math:`e^{-U}` is integrable there.
    a, b : the start and the target, finite numbers with ``a < b``.
    lower : ``None`` (the chain is free to the left: the left end is found where :math:`e^{-U}` has fallen below
        :math:`e^{-45}` of its maximum), or a reflecting wall, a finite number ``<= a``.
    points : the number of grid points of the coarser rule on each of ``[lower, a]`` and ``[a, b]``, an integer in
        ``[11, 10**7]``.

    Returns :math:`\tau` as a float. Raises ``ValueError`` if :math:`e^{-U}` does not decay to the left
    (``lower=None``), if the finer rule's error estimate exceeds :math:`10^{-3}` (relative: raise ``points``), or if
    :math:`\tau` overflows float64.
    """
    _checks.callable_(U, "U", "U(x) -> tensor (n,) for x of shape (n,)")
    a, b = _checks.real(a, "a", low=-_COORD_MAX, high=_COORD_MAX), _checks.real(b, "b", low=-_COORD_MAX, high=_COORD_MAX)
    if not a < b:
        raise ValueError(f"a must be smaller than b (the chain starts at a and goes up to b), got a = {a:g}, b = {b:g}")
    if b - a < 1e-12 * max(1.0, abs(a), abs(b)):
        raise ValueError(f"b - a = {b - a:g} is below the float64 resolution of a and b: move a and b apart")
    points = _checks.positive_int(points, "points", low=11, high=POINTS_MAX)
    if lower is None:
        lower = _left_end(U, a, b)
    else:
        lower = _checks.real(lower, "lower", low=-_COORD_MAX, high=a)
    span = b - lower
    if not math.isfinite(span) or span > 1e15 * (b - a):
        raise ValueError(f"lower = {lower:g} is too far below a = {a:g} for a grid that resolves [a, b] = "
                         f"[{a:g}, {b:g}]: move lower up")
    cells_left = points - 1 if a > lower else 0                  # each piece gets points - 1 intervals
    cells_right = points - 1
    results = [_mfpt_once(U, lower, a, b, r * cells_left + 1, r * cells_right + 1) for r in (1, 2)]
    (top1, t1), (top2, t2) = results
    # Richardson: T = T_{h/2} + (T_{h/2} - T_h) / 3, all relative to e^{top2}
    t1 = t1 * math.exp(top1 - top2) if top1 - top2 < 700 else math.inf
    if not (math.isfinite(t1) and math.isfinite(t2) and t2 > 0):
        raise ValueError("the quadrature failed (U too rough or too steep for the grid on [lower, b]): raise points")
    rich = t2 + (t2 - t1) / 3
    if abs(t2 - t1) > 3e-3 * abs(rich):
        raise ValueError(f"the quadrature has not converged: the rules with h and h/2 differ by {abs(t2 / t1 - 1):.2g} "
                         f"(relative); raise points (now {points}) so that the grid resolves U on [lower, a] = "
                         f"[{lower:g}, {a:g}] and on [a, b] = [{a:g}, {b:g}], or move lower up")
    log_tau = top2 + math.log(rich)
    if log_tau > 709.0:
        raise ValueError(f"the mean first-passage time overflows float64 (log tau = {log_tau:.1f}): the barrier of U "
                         "between a and b is too high")
    return math.exp(log_tau)


def _left_end(U, a: float, b: float) -> float:
    """A point left of ``a`` beyond which e^{-U} is below e^{-45} of its maximum on [that point, b]."""
    width = b - a
    sig = "U(x) -> tensor (n,) for x of shape (n,)"
    for k in range(60):
        lo = a - width * 2.0**k
        if not math.isfinite(lo) or lo < -1e15 * max(1.0, abs(a)):
            break
        y = torch.linspace(lo, b, 4001, dtype=torch.float64)
        u = _checks.evaluate(U, "U", sig, (y.numel(),), y).to(torch.float64)
        rel = u - u.min()
        tail = rel[: 400]                         # the leftmost tenth of the scan
        if bool((tail > _TAIL_EXPONENT).all()):
            inside = torch.nonzero(rel <= _TAIL_EXPONENT)
            first = int(inside[0]) if inside.numel() else 400
            return float(y[max(first - 1, 0)])
    raise ValueError("U does not grow to the left of a (e^{-U} is not integrable there, or only very far out): "
                     "pass a reflecting wall lower <= a")
