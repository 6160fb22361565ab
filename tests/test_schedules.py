import math

import pytest
import torch

import diffedu as de


def _quad(f, t, n=20000):
    s = torch.linspace(0, t, n + 1, dtype=torch.float64)
    y = f(s)
    return float(((y[1:] + y[:-1]) / 2).sum() * (t / n))


@pytest.mark.parametrize("schedule", [de.Linear(0.1, 20), de.Linear(0, 20), de.Cosine(), de.Cosine(s=0.008)])
def test_beta_integral_matches_quadrature(schedule):
    for t in [0.1, 0.5, 0.9]:
        assert abs(float(schedule.beta_integral(t)) - _quad(schedule.beta, t)) < 1e-6


@pytest.mark.parametrize("schedule", [de.Linear(0.1, 20), de.Cosine(s=0.008)])
def test_alpha_sigma_relation(schedule):
    t = torch.linspace(0, 0.99, 50, dtype=torch.float64)
    a, s = schedule.alpha(t), schedule.sigma(t)
    assert torch.allclose(a**2 + s**2, torch.ones_like(t), atol=1e-12)
    assert a.shape == t.shape


def test_paper_simple_schedule():
    sch = de.Linear(0, 20)
    t = torch.tensor([0.01, 0.5, 1.0], dtype=torch.float64)
    assert torch.allclose(sch.alpha(t), torch.exp(-5 * t**2))
    assert torch.allclose(sch.beta(t), 20 * t)
    assert abs(float(sch.sigma(0.01)) - 0.0316) < 1e-3      # paper notes: sigma(0.01) = 0.0316
    assert abs(float(sch.alpha(1.0)) - 6.7e-3) < 1e-4


def test_paper_cosine_schedule():
    sch = de.Cosine()
    t = torch.tensor([0.01, 0.5, 0.999], dtype=torch.float64)
    assert torch.allclose(sch.alpha(t), torch.cos(math.pi * t / 2))
    assert torch.allclose(sch.beta(t), math.pi * torch.tan(math.pi * t / 2))
    assert abs(float(sch.alpha(0.999)) - 1.6e-3) < 1e-4


def test_cosine_offset_matches_nichol_dhariwal():
    s = 0.008
    sch = de.Cosine(s=s)
    t = torch.tensor([0.0, 0.3, 0.7], dtype=torch.float64)
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    abar = f / math.cos(s / (1 + s) * math.pi / 2) ** 2
    assert torch.allclose(sch.alpha(t) ** 2, abar)


def test_number_in_tensor_out():
    assert isinstance(de.Linear().beta(0.5), torch.Tensor)


@pytest.mark.parametrize("make, match", [
    (lambda: de.Linear(-0.1, 20), "beta_min"),
    (lambda: de.Linear(5, 1), "beta_max"),
    (lambda: de.Linear(0, 0), "beta_max"),
    (lambda: de.Linear(0, float("nan")), "beta_max"),
    (lambda: de.Cosine(t_max=1.0), "t_max"),
    (lambda: de.Cosine(s=-0.1), "s"),
])
def test_bad_schedule_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_schedule_types():
    with pytest.raises(TypeError, match="beta_min"):
        de.Linear("0.1", 20)
    with pytest.raises(TypeError, match="t must be a floating"):
        de.Linear().beta(torch.tensor([1, 2]))


@pytest.mark.parametrize("t", [-0.1, 1.5, float("nan")])
def test_cosine_time_out_of_range(t):
    with pytest.raises(ValueError, match="t"):
        de.Cosine().beta(t)


def test_cosine_guards_t_max():
    with pytest.raises(ValueError, match=r"\[0, 0.999\]"):
        de.Cosine().alpha(torch.tensor([0.5, 1.0]))
