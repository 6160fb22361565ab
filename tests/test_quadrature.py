import math

import pytest
import torch

import diffedu as de


def test_simpson_is_exact_for_cubics_and_fourth_order():
    x = torch.linspace(0.0, 2.0, 5, dtype=torch.float64)
    # exact for a cubic (the trapezoid rule gives 4.5 for the x^3 - x^2 integral 4 - 8/3)
    assert abs(de.quadrature.simpson(x**3 - x**2, 0.5) - (4 - 8 / 3)) < 1e-12
    errs = []
    for n in (11, 21, 41):
        t = torch.linspace(0.0, math.pi, n, dtype=torch.float64)
        errs.append(abs(de.quadrature.simpson(torch.sin(t), math.pi / (n - 1)) - 2.0))
    order = math.log2(errs[0] / errs[1]), math.log2(errs[1] / errs[2])
    assert all(3.8 < p < 4.2 for p in order), order


def test_simpson_accepts_a_list():
    assert abs(de.quadrature.simpson([1.0, 1.0, 1.0], 0.25) - 0.5) < 1e-15


@pytest.mark.parametrize("y, dx, exc, word", [
    (torch.ones(4), 0.1, ValueError, "odd"),
    (torch.ones(1), 0.1, ValueError, "odd"),
    (torch.ones(3, 2), 0.1, ValueError, "one-dimensional"),
    (torch.tensor([1.0, float("nan"), 1.0]), 0.1, ValueError, "non-finite"),
    (torch.ones(3), 0.0, ValueError, "dx"),
    (torch.ones(3), -0.1, ValueError, "dx"),
    (torch.ones(3), "0.1", TypeError, "dx"),
    ("abc", 0.1, TypeError, "y"),
    (torch.ones(3, dtype=torch.bool), 0.1, TypeError, "dtype"),
])
def test_simpson_refuses_bad_input(y, dx, exc, word):
    with pytest.raises(exc, match=word):
        de.quadrature.simpson(y, dx)
