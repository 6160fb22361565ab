"""Argument checks shared by every public function of :mod:`diffedu`.

Each helper raises ``TypeError`` (wrong kind of object) or ``ValueError`` (right
kind, wrong value) with a message that names the argument and the accepted
range, so that bad input fails at the call that received it, not three calls
later with a shape error or a silent NaN.
"""

from __future__ import annotations

import math
import numbers

import torch

_TIME_SLACK = 1e-9  # float round-off allowed at the ends of a time range


def real(value, name: str, *, low: float | None = None, high: float | None = None,
         low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value`` as a finite Python float inside the given bounds."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, torch.Tensor)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(f"{name} must be a single number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    lo_bad = low is not None and (value <= low if low_open else value < low)
    hi_bad = high is not None and (value >= high if high_open else value > high)
    if lo_bad or hi_bad:
        lb = "(" if low_open else "["
        hb = ")" if high_open else "]"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ValueError(f"{name} must lie in {lb}{lo}, {hi}{hb}, got {value:g}")
    return value


def positive_int(value, name: str, *, low: int = 1) -> int:
    """Return ``value`` as an int ``>= low``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value}")
    return int(value)


def batch(x, name: str = "x", *, dim: int | None = None) -> torch.Tensor:
    """Check that ``x`` is a finite floating tensor of shape ``(n, d)``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (n, d), got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (n, d) (batch first), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} must have {dim} columns (d = {dim}), got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return x


def time(t, name: str, *, n: int, low: float, high: float, like: torch.Tensor) -> torch.Tensor:
    """Check a time ``t`` (a number or a tensor of shape ``(n,)``) against ``[low, high]``.

    Returns a tensor on ``like``'s device and dtype that broadcasts against a batch of
    shape ``(n, d)``: shape ``()`` for a number, ``(n, 1)`` for a per-sample time.
    """
    if isinstance(t, torch.Tensor) and t.numel() != 1:
        if t.dim() != 1 or t.shape[0] != n:
            raise ValueError(f"{name} must be a number or a tensor of shape ({n},), got shape {tuple(t.shape)}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains non-finite values")
        lo, hi = float(t.min()), float(t.max())
        if lo < low - _TIME_SLACK or hi > high + _TIME_SLACK:
            raise ValueError(f"{name} must lie in [{low:g}, {high:g}], got values in [{lo:g}, {hi:g}]")
        return t.to(device=like.device, dtype=like.dtype).reshape(n, 1)
    value = real(t, name)
    if value < low - _TIME_SLACK or value > high + _TIME_SLACK:
        raise ValueError(f"{name} must lie in [{low:g}, {high:g}], got {value:g}")
    return torch.tensor(value, device=like.device, dtype=like.dtype)


def scalar_time(t, name: str, *, low: float, high: float) -> torch.Tensor:
    """A time without a batch: a number or a tensor of any shape, in ``[low, high]``, as float64."""
    if isinstance(t, torch.Tensor):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains non-finite values")
        tt = t.to(torch.float64)
    else:
        tt = torch.tensor(real(t, name), dtype=torch.float64)
    if tt.numel() and (float(tt.min()) < low - _TIME_SLACK or float(tt.max()) > high + _TIME_SLACK):
        raise ValueError(f"{name} must lie in [{low:g}, {high:g}], got values in "
                         f"[{float(tt.min()):g}, {float(tt.max()):g}]")
    return tt


def generator(gen, name: str = "generator") -> torch.Generator | None:
    """``None`` or a CPU ``torch.Generator`` (noise is drawn on the CPU, then moved)."""
    if gen is None:
        return None
    if not isinstance(gen, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {type(gen).__name__}")
    if gen.device.type != "cpu":
        raise ValueError(f"{name} must live on the CPU (noise is drawn there so CPU and GPU agree), "
                         f"got a generator on {gen.device}")
    return gen


def callable_(fn, name: str, signature: str):
    if not callable(fn):
        raise TypeError(f"{name} must be a callable {signature}, got {type(fn).__name__}")
    return fn


def choice(value, name: str, options) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {sorted(options)}, got {type(value).__name__}")
    if value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}, got {value!r}")
    return value
