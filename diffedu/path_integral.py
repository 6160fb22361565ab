r"""Path integrals of diffusions: Onsager–Machlup actions (book: Chapter 5).

A discretised path :math:`x_0, \dots, x_N` at times :math:`t_0 < \dots < t_N` of
:math:`dx = f(x,t)\,dt + g(t)\,dw` has the probability density
(book: {eq}`eq-path-density`)

.. math:: P(x_0,\dots,x_N) = p_0(x_0)\prod_n (2\pi\epsilon_n g_n^2)^{-d/2}\,e^{-A_a},\qquad
          A_a = \sum_n \epsilon_n\Big[\frac{|\Delta x_n/\epsilon_n - f(\bar x_n, t_n)|^2}{2 g_n^2}
                + a\,\nabla\cdot f(\bar x_n, t_n)\Big],

with :math:`\bar x_n = x_n + a(x_{n+1}-x_n)`: ``rule="ito"`` (:math:`a=0`), ``"stratonovich"``
(:math:`a=\tfrac12`), ``"post"`` (:math:`a=1`).  The last term is the Jacobian of the change of
variables from the noise to the path; all three rules define the same measure as
:math:`\epsilon\to0`.

Conventions: ``path`` has shape ``(N+1, n, d)`` (time first, as ``return_path=True`` gives),
``ts`` shape ``(N+1,)`` increasing; ``drift(x, t)`` takes ``x`` ``(m, d)`` and a float ``t``;
``g(t)`` returns a number.  Everything is float64 and vectorised over the ``n`` paths.
"""

from __future__ import annotations

import math

import torch

from . import _checks

RULES = {"ito": 0.0, "stratonovich": 0.5, "post": 1.0}
REVERSE_RULES = {"reverse_ito": 0.0, "stratonovich": 0.5}


_DRIFT = "drift(x, t) -> tensor (m, d), x (m, d), t a float"
_SCORE = "score(x, t) -> tensor (m, d), x (m, d), t (m,)"


def _checked(fn, name: str, signature: str):
    """``fn`` wrapped so that every call checks its arguments fit and its value has ``x``'s shape and is finite."""
    _checks.callable_(fn, name, signature)
    return lambda x, t: _checks.evaluate(fn, name, signature, tuple(x.shape), x, t)


def _check_path(path, ts):
    if not isinstance(path, torch.Tensor) or path.dim() != 3:
        raise ValueError("path must be a tensor of shape (N+1, n, d) (time first)")
    if not path.is_floating_point() or not bool(torch.isfinite(path).all()):
        raise ValueError("path must be a finite floating-point tensor")
    t = torch.tensor(_checks.times(ts, "ts"), dtype=torch.float64)
    if t.numel() != path.shape[0]:
        raise ValueError(f"ts must have one time per path point: {path.shape[0]}, got {t.numel()}")
    if not bool((t[1:] > t[:-1]).all()):
        raise ValueError("ts must be strictly increasing")
    return path.to(torch.float64), t


def _g(g, t: float) -> float:
    if callable(g):
        value = _checks.real(_checks.call(g, "g", "g(t) -> a number > 0", t), "g(t)")
    else:
        value = _checks.real(g, "g")
    if not _checks.SCALE_MIN <= value <= _checks.SCALE_MAX:
        raise ValueError(f"g(t) must lie in [{_checks.SCALE_MIN:g}, {_checks.SCALE_MAX:g}] (the action divides by g^2), "
                         f"got {value:g} at t = {t:g}")
    return value


def _drift_div(drift, x: torch.Tensor, t: float, need_div: bool):
    """f(x, t) and its divergence (exact, by autograd) for a batch (m, d)."""
    if not need_div:
        return drift(x, t), None
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        f = drift(xg, t)
        if not _checks.differentiable(f, lambda z: drift(z, t), xg, "drift"):
            return f.detach(), torch.zeros(x.shape[0], dtype=x.dtype)
        div = torch.zeros(x.shape[0], dtype=x.dtype)
        for i in range(x.shape[1]):
            (gi,) = torch.autograd.grad(f[:, i].sum(), xg, retain_graph=i + 1 < x.shape[1], allow_unused=True)
            if gi is not None:
                div = div + gi[:, i]
    return f.detach(), div.detach()


def onsager_machlup(path, ts, drift, g, rule: str = "ito", *, jacobian: bool = True) -> torch.Tensor:
    r"""The discretised Onsager–Machlup action :math:`A_a` of each path, shape ``(n,)`` ({eq}`eq-om-action`).

    ``jacobian=False`` drops the :math:`a\nabla\cdot f` term — wrong unless ``rule="ito"``;
    Chapter 5 shows what goes wrong.
    """
    drift = _checked(drift, "drift", _DRIFT)
    _checks.choice(rule, "rule", RULES)
    _checks.flag(jacobian, "jacobian")
    path, t = _check_path(path, ts)
    a = RULES[rule]
    action = torch.zeros(path.shape[1], dtype=torch.float64)
    for k in range(path.shape[0] - 1):
        eps = float(t[k + 1] - t[k])
        dx = path[k + 1] - path[k]
        xbar = path[k] + a * dx
        f, div = _drift_div(drift, xbar, float(t[k]), jacobian and a != 0.0)
        gk = _g(g, float(t[k]))
        action += ((dx / eps - f) ** 2).sum(1) * eps / (2 * gk**2)
        if div is not None:
            action += a * eps * div
    return action


def _normalisation(t, g, d: int, at_end: bool) -> float:
    total = 0.0
    for k in range(t.numel() - 1):
        eps = float(t[k + 1] - t[k])
        gk = _g(g, float(t[k + 1] if at_end else t[k]))
        total += 0.5 * d * math.log(2 * math.pi * eps * gk**2)
    return total


def path_log_prob(path, ts, drift, g, rule: str = "ito", *, log_p0=None) -> torch.Tensor:
    r""":math:`\log P(x_0,\dots,x_N)` including the Gaussian normalisation ({eq}`eq-path-density`).

    ``log_p0`` (a callable ``(n, d) -> (n,)``) adds the density of the starting point;
    without it the result is the log-density of the path *given* :math:`x_0`.
    """
    path_, t = _check_path(path, ts)
    out = -onsager_machlup(path_, t, drift, g, rule) - _normalisation(t, g, path_.shape[2], at_end=False)
    if log_p0 is not None:
        _checks.callable_(log_p0, "log_p0", "log_p0(x) -> tensor (n,)")
        out = out + _checks.evaluate(log_p0, "log_p0", "log_p0(x) -> tensor (n,)", (path_.shape[1],), path_[0])
    return out


def reverse_action(path, ts, drift, g, score, rule: str = "reverse_ito") -> torch.Tensor:
    r"""The reverse action :math:`\tilde A` of each path ({eq}`eq-reverse-action`): the Onsager–Machlup
    action of the time-reversed process, whose drift is :math:`F = f - g^2 s`.

    ``rule="reverse_ito"`` evaluates :math:`F` at the *later* point of each step (the Itô rule of
    reversed time: no Jacobian term); ``"stratonovich"`` at the midpoint, with the Jacobian
    term :math:`-\tfrac12\nabla\cdot F`.  Noise :math:`g` at the later time.
    """
    drift = _checked(drift, "drift", _DRIFT)
    score = _checked(score, "score", _SCORE)
    _checks.choice(rule, "rule", REVERSE_RULES)
    path, t = _check_path(path, ts)
    b = REVERSE_RULES[rule]
    n = path.shape[1]

    def F(x, tk):
        gk = _g(g, tk)
        s = score(x, torch.full((x.shape[0],), tk, dtype=x.dtype))
        return drift(x, tk) - gk**2 * s

    action = torch.zeros(n, dtype=torch.float64)
    for k in range(path.shape[0] - 1):
        eps = float(t[k + 1] - t[k])
        dx = path[k + 1] - path[k]
        xt = path[k + 1] - b * dx
        tk = float(t[k + 1] - b * eps)
        f, div = _drift_div(F, xt, tk, b != 0.0)
        gk = _g(g, float(t[k + 1]))
        action += ((dx / eps - f) ** 2).sum(1) * eps / (2 * gk**2)
        if div is not None:
            action -= b * eps * div
    if not bool(torch.isfinite(action).all()):
        raise ValueError("the reverse action overflows float64: the drift f - g^2 s is too large on these paths "
                         "(check g and the score's scale)")
    return action


def reverse_path_log_prob(path, ts, drift, g, score, rule: str = "reverse_ito", *, log_pT=None) -> torch.Tensor:
    r""":math:`\log P` of the path written through the reverse process, started from :math:`p_T` at the end:
    :math:`\log p_T(x_N) - \tilde A - \text{normalisation}` ({eq}`eq-reverse-action`)."""
    path_, t = _check_path(path, ts)
    out = -reverse_action(path_, t, drift, g, score, rule) - _normalisation(t, g, path_.shape[2], at_end=True)
    if log_pT is not None:
        _checks.callable_(log_pT, "log_pT", "log_pT(x) -> tensor (n,)")
        out = out + _checks.evaluate(log_pT, "log_pT", "log_pT(x) -> tensor (n,)", (path_.shape[1],), path_[-1])
    return out


def short_time_kernel(x, t: float, eps: float, drift, g, rule: str = "ito", *, jacobian: bool = True) -> torch.Tensor:
    r"""The one-step transition density :math:`K_a(y\,|\,x)` of the discretised path measure on a 1-D grid.

    ``x`` is a 1-D tensor of grid points; returns the matrix ``K[i, j]`` = density of
    :math:`x_{n+1} = x_j` given :math:`x_n = x_i`:
    :math:`(2\pi\epsilon g^2)^{-1/2}\exp(-(x_j - x_i - \epsilon f(\bar x))^2/(2\epsilon g^2) - a\epsilon f'(\bar x))`
    with :math:`\bar x = x_i + a(x_j - x_i)`.  Composing such kernels (Chapman–Kolmogorov) and
    integrating over the intermediate points gives the finite-time transition density.
    """
    _checks.choice(rule, "rule", RULES)
    drift = _checked(drift, "drift", _DRIFT)
    _checks.flag(jacobian, "jacobian")
    t = _checks.real(t, "t")
    eps = _checks.real(eps, "eps", low=0.0, low_open=True)
    if not isinstance(x, torch.Tensor) or x.dim() != 1:
        raise ValueError("x must be a 1-D tensor of grid points")
    if not x.is_floating_point() or not bool(torch.isfinite(x).all()):
        raise ValueError("x must hold finite floating-point grid points")
    _checks.memory(4 * x.numel() ** 2, "x (the kernel is len(x) x len(x))")
    a = RULES[rule]
    x = x.to(torch.float64)
    xi, xj = x[:, None], x[None, :]
    xbar = (xi + a * (xj - xi)).reshape(-1, 1)
    f, div = _drift_div(drift, xbar, t, jacobian and a != 0.0)
    f = f.reshape(x.numel(), x.numel())
    gk = _g(g, t)
    logk = -((xj - xi - eps * f) ** 2) / (2 * eps * gk**2) - 0.5 * math.log(2 * math.pi * eps * gk**2)
    if div is not None:
        logk = logk - a * eps * div.reshape(x.numel(), x.numel())
    k = torch.exp(logk)
    if not bool(torch.isfinite(k).all()):
        raise ValueError(f"the kernel overflows for eps = {eps:g}: the step is far too long for this drift; use a smaller eps")
    return k
