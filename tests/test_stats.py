import math

import pytest
import torch

from diffedu.stats import convergence_order, mean_se, var_se, z_score


def test_mean_se_and_var_se():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    m, se = mean_se(x)
    assert float(m) == 2.5 and float(se) == pytest.approx(float(x.std()) / 2)
    v, vse = var_se(torch.randn(200000, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    assert abs(float(v) - 1) < 5 * float(vse)
    assert float(vse) == pytest.approx(math.sqrt(2 / 200000), rel=0.05)   # Gaussian: sqrt(2/n)


def test_convergence_order_exact_power():
    h = [0.1, 0.05, 0.025]
    assert convergence_order(h, [3 * x**1.5 for x in h]) == pytest.approx(1.5)


def test_z_score():
    assert z_score(1.2, 1.0, 0.1) == pytest.approx(2.0)


@pytest.mark.parametrize("call, err", [
    (lambda: mean_se([1.0, 2.0]), TypeError),
    (lambda: mean_se(torch.tensor([1.0])), ValueError),
    (lambda: var_se(torch.tensor([1.0, float("nan")])), ValueError),
    (lambda: convergence_order([0.1, 0.2], [1.0]), ValueError),
    (lambda: convergence_order([0.1, 0.2], [0.0, 1.0]), ValueError),
    (lambda: z_score(1.0, 1.0, 0.0), ValueError),
])
def test_bad_input(call, err):
    with pytest.raises(err):
        call()
