r"""Monte-Carlo statistics for the book's check cells.

A check cell compares an estimate with a formula at a tolerance of at least five
standard errors (so a correct claim essentially never fails, and a wrong one with
an effect larger than the tolerance always does).  These helpers return the
estimate together with its standard error.
"""

from __future__ import annotations

import math

import torch

from . import _checks



def _sample(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 0 or x.shape[0] < 2:
        raise ValueError(f"{name} must hold at least two samples along dimension 0, got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains non-finite values")
    return x.to(torch.float64)


def _numbers(value, name: str) -> torch.Tensor:
    """A number, a sequence of numbers or a tensor, as a flat float64 CPU tensor of at least one finite entry."""
    t = _checks.reals(value, name).cpu()
    if t.numel() == 0:
        raise ValueError(f"{name} must not be empty")
    return t


def mean_se(x) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Sample mean over dimension 0 and its standard error :math:`s/\sqrt{n}`."""
    x = _sample(x, "x")
    n = x.shape[0]
    return x.mean(0), x.std(0) / math.sqrt(n)


def var_se(x) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Unbiased sample variance over dimension 0 and its standard error :math:`\sqrt{(m_4 - s^4)/n}`."""
    x = _sample(x, "x")
    n = x.shape[0]
    c = x - x.mean(0)
    v = (c**2).sum(0) / (n - 1)
    m4 = (c**4).mean(0)
    return v, torch.sqrt(torch.clamp(m4 - v**2, min=0.0) / n)


def convergence_order(steps, errors) -> float:
    r"""Least-squares slope of :math:`\log(\text{error})` against :math:`\log(\Delta t)`: the measured order."""
    h = _numbers(steps, "steps").flatten()
    e = _numbers(errors, "errors").flatten()
    if h.numel() != e.numel() or h.numel() < 2:
        raise ValueError(f"steps and errors must have the same length >= 2, got {h.numel()} and {e.numel()}")
    if not bool((h > 0).all() and (e > 0).all() and torch.isfinite(e).all()):
        raise ValueError("steps and errors must be positive and finite")
    lh, le = h.log(), e.log()
    lh0 = lh - lh.mean()
    if float((lh0**2).sum()) == 0.0:
        raise ValueError("steps must not all be equal (the slope against log(dt) needs at least two step sizes)")
    return float((lh0 * (le - le.mean())).sum() / (lh0**2).sum())


def z_score(estimate, target, se) -> float:
    r""":math:`|\text{estimate}-\text{target}|/\text{se}`, the distance in standard errors (max over entries)."""
    est, tgt, s = _numbers(estimate, "estimate"), _numbers(target, "target"), _numbers(se, "se")
    try:
        torch.broadcast_shapes(est.shape, tgt.shape, s.shape)
    except RuntimeError:
        raise ValueError(f"estimate, target and se must have broadcastable shapes, got {tuple(est.shape)}, "
                         f"{tuple(tgt.shape)} and {tuple(s.shape)}") from None
    if not bool((s > 0).all()):
        raise ValueError("se must be positive")
    z = float(((est - tgt).abs() / s).max())
    if not math.isfinite(z):
        raise ValueError("|estimate - target| / se overflowed: estimate and target too far apart for float64, "
                         "or se too small")
    return z



def energy_distance(x, y) -> float:
    r"""Unbiased energy distance :math:`2E\|X-Y\| - E\|X-X'\| - E\|Y-Y'\|` between two samples ``(n, d)``, ``(m, d)``.

    Zero in expectation when both samples come from the same law, positive otherwise; its
    null spread is calibrated in the book by comparing two fresh samples of the data.
    """
    for name, v in (("x", x), ("y", y)):
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape (n, d), got {type(v).__name__}")
        if v.dim() != 2 or v.shape[0] < 2:
            raise ValueError(f"{name} must be a tensor of shape (n, d) with n >= 2, got shape {tuple(v.shape)}")
        if not v.is_floating_point() or not bool(torch.isfinite(v).all()):
            raise ValueError(f"{name} must hold finite floating-point values (it contains NaN, inf or integers)")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    x, y = x.to(torch.float64), y.to(torch.float64)
    n, m = x.shape[0], y.shape[0]
    dxy = torch.cdist(x, y).mean()
    dxx = torch.cdist(x, x).sum() / (n * (n - 1))
    dyy = torch.cdist(y, y).sum() / (m * (m - 1))
    return float(2 * dxy - dxx - dyy)


def squared_w2(x, y) -> float:
    r"""Squared 2-Wasserstein distance between two equal-size empirical samples ``(n, d)``.

    Exact optimal transport: with uniform weights and equal sizes the optimal plan is a
    permutation, found by the Hungarian algorithm on the squared-distance cost.
    """
    from scipy.optimize import linear_sum_assignment

    for name, v in (("x", x), ("y", y)):
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape (n, d), got {type(v).__name__}")
        if v.dim() != 2 or v.shape[0] == 0:
            raise ValueError(f"{name} must be a tensor of shape (n, d) with n >= 1, got shape {tuple(v.shape)}")
        if not v.is_floating_point() or not bool(torch.isfinite(v).all()):
            raise ValueError(f"{name} must hold finite floating-point values (it contains NaN, inf or integers)")
    _checks.memory(x.shape[0] * y.shape[0], "x and y (the cost matrix is n x n)")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape (equal-size samples), got {tuple(x.shape)} and {tuple(y.shape)}")
    cost = torch.cdist(x.detach().double(), y.detach().double()) ** 2
    rows, cols = linear_sum_assignment(cost.cpu().numpy())
    return float(cost[torch.as_tensor(rows), torch.as_tensor(cols)].mean())
