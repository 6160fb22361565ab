r"""Numerical integration over an equally spaced grid, for the book's check cells.

Chapter 2 integrates the relative Fisher information over time to test
{eq}`eq-kl-lyapunov`; Chapter 3 integrates the score term of {eq}`eq-kl-bound`.  Both use
composite Simpson's rule, whose error is :math:`O(h^4)` for a smooth integrand.
"""

from __future__ import annotations

import math

import torch

from . import _checks


def simpson(y, dx) -> float:
    r"""Composite Simpson's rule :math:`\tfrac{h}{3}\,(y_0 + 4y_1 + 2y_2 + 4y_3 + \dots + 4y_{N-1} + y_N)`.

    ``y`` holds the integrand at :math:`N + 1` equally spaced points (a 1-D tensor or a sequence of
    numbers; :math:`N` must be even, so the number of points odd and at least 3), ``dx`` is the spacing
    :math:`h > 0`.  A decreasing grid (``t`` from 1 down to 0) is integrated with its positive spacing,
    which gives the integral from the smaller end to the larger.
    """
    y = _checks.vector(y, "y").cpu()
    n = y.shape[0]
    if n < 3 or n % 2 == 0:
        raise ValueError(f"y must hold an odd number (>= 3) of equally spaced values for Simpson's rule, got {n}")
    h = _checks.real(dx, "dx", low=0.0, low_open=True)
    w = torch.ones(n, dtype=torch.float64)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    total = float((w * y).sum()) * h / 3
    if not math.isfinite(total):
        raise ValueError(f"the integral overflowed (dx = {h:g}, max |y| = {float(y.abs().max()):g})")
    return total
