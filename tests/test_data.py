import math

import pytest
import torch

import diffedu as de
from diffedu.stats import mean_se, var_se

MIX = de.GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [1.5, -0.5]], [[0.4, 0.4], [0.2, 0.6]])


def test_data_log_prob_matches_torch_distributions():
    x = torch.randn(20, 2, dtype=torch.float64)
    comps = [torch.distributions.Independent(torch.distributions.Normal(MIX.means[k], MIX.stds[k]), 1)
             for k in range(2)]
    ref = torch.logsumexp(torch.stack([math.log(float(MIX.weights[k])) + comps[k].log_prob(x) for k in range(2)]), 0)
    assert torch.allclose(MIX.log_prob(x), ref)


@pytest.mark.parametrize("sde", [de.VPSDE(de.Linear()), de.SubVPSDE(de.Linear()), de.VESDE(0.01, 5.0),
                                 de.OrnsteinUhlenbeck(theta=1.0, sigma=0.8, mu=0.7, T=2.0)])
def test_marginal_moments_against_particles(sde):
    n, t = 40000, 0.4
    x0 = MIX.sample(n, de.make_generator(1), dtype=torch.float64)
    xt = sde.marginal_sample(x0, t, de.make_generator(2))
    m, v = MIX.marginal(t, sde)
    w = MIX.weights[None, :, None]
    mean = (w * m).sum(1)[0]
    var = (w * (v + m**2)).sum(1)[0] - mean**2
    mm, mse = mean_se(xt)
    vv, vse = var_se(xt)
    assert bool(((mm - mean).abs() < 5 * mse).all())
    assert bool(((vv - var).abs() < 5 * vse).all())


def test_score_is_gradient_of_log_prob():
    sde = de.VPSDE(de.Linear())
    x = torch.randn(15, 2, dtype=torch.float64, requires_grad=True)
    t = torch.rand(15, dtype=torch.float64) * 0.9 + 0.05
    (grad,) = torch.autograd.grad(MIX.log_prob(x, t, sde).sum(), x)
    assert torch.allclose(MIX.score(x.detach(), t, sde), grad)
    assert torch.allclose(MIX.score_fn(sde)(x.detach(), t), grad)


ONE_TIME_CASES = {
    "equal stds": de.GaussianMixture([1.0, 2.0, 3.0], [[-1.0, 0.5], [1.5, -0.5], [0.0, 2.0]], [0.3, 0.3, 0.3]),
    "unequal stds": de.GaussianMixture([1.0, 2.0, 3.0], [[-1.0, 0.5], [1.5, -0.5], [0.0, 2.0]], [0.2, 0.5, 0.9]),
    "diagonal": MIX,
    "diagonal, equal per axis": de.GaussianMixture([1.0, 2.0], [[-1.0, 0.5], [1.5, -0.5]], [[0.3, 0.7], [0.3, 0.7]]),
}


def _reference_log_prob(mix, x, t, sde):
    """log p_t(x) component by component with torch.distributions (no shortcut)."""
    m, v = mix.marginal(t, sde)
    comps = [torch.distributions.Independent(torch.distributions.Normal(m[0, k], v[0, k].sqrt()), 1)
             for k in range(len(mix.weights))]
    return torch.logsumexp(torch.stack([torch.log(mix.weights[k]) + c.log_prob(x) for k, c in enumerate(comps)]), 0)


@pytest.mark.parametrize("case", sorted(ONE_TIME_CASES))
@pytest.mark.parametrize("t", [0.0, 0.05, 0.7])
def test_one_time_forms_match_the_definition(case, t):
    """One time for all points takes the matrix-product form: same log p and score as the definition."""
    mix, sde = ONE_TIME_CASES[case], (None if t == 0 else de.VPSDE(de.Linear()))
    x = torch.cat([3 * torch.randn(40, 2, generator=de.make_generator(5), dtype=torch.float64),
                   torch.tensor([[40.0, -30.0]], dtype=torch.float64)])          # one point far out: the direct form
    assert torch.allclose(mix.log_prob(x, t, sde), _reference_log_prob(mix, x, t, sde), rtol=1e-12, atol=1e-10)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(_reference_log_prob(mix, xg, t, sde).sum(), xg)
    assert torch.allclose(mix.score(x, t, sde), grad, rtol=1e-10, atol=1e-10)
    per_point = torch.full((x.shape[0],), t, dtype=torch.float64)              # equal per-point times: one time
    if sde is not None:
        assert torch.allclose(mix.score(x, per_point, sde), grad, rtol=1e-10, atol=1e-10)
    assert mix.score(x.float(), t, sde).dtype == torch.float32


def test_isotropic_form_far_from_the_data_still_clear():
    mix = ONE_TIME_CASES["equal stds"]
    with pytest.raises(ValueError, match="so far from every component"):
        mix.score(torch.tensor([[1e160, 0.0]], dtype=torch.float64))


def test_log_prob_normalised_on_a_grid():
    g = de.fokker_planck.Grid((-6, -6), (6, 6), (200, 200))
    for t in [0.0, 0.3]:
        sde = None if t == 0 else de.VPSDE(de.Linear())
        assert abs(g.mass(g.density(lambda z: MIX.log_prob(z, t, sde))) - 1) < 1e-6


def test_sample_reproducible_and_weights():
    a = MIX.sample(50000, de.make_generator(3))
    assert torch.equal(a, MIX.sample(50000, de.make_generator(3)))
    frac = float((a[:, 0] > 0.25).double().mean())
    assert abs(frac - 0.7) < 0.02


@pytest.mark.parametrize("args, match", [
    (([1.0], [[0.0]], [0.0]), "stds must be positive"),
    (([1.0, -1.0], [[0.0], [1.0]], [1.0, 1.0]), "weights must be positive"),
    (([1.0], [0.0], [1.0]), "means must have shape"),
    (([1.0], [[0.0, 1.0]], [[1.0, 1.0, 1.0]]), "stds must have shape"),
    (([1.0], [[float("nan")]], [1.0]), "non-finite"),
])
def test_bad_mixture(args, match):
    with pytest.raises(ValueError, match=match):
        de.GaussianMixture(*args)


def test_ragged_stds_rejected_clearly():
    with pytest.raises(TypeError, match="stds must be a tensor"):
        de.GaussianMixture([0.5, 0.5], [[0.0, 0.0], [1.0, 1.0]], [0.4, [0.2, 0.6]])


def test_bad_mixture_calls():
    with pytest.raises(ValueError, match="t must be 0 when sde is None"):
        MIX.log_prob(torch.zeros(2, 2), 0.5)
    with pytest.raises(ValueError, match="2 columns"):
        MIX.log_prob(torch.zeros(2, 3))
    with pytest.raises(TypeError, match="sde must be"):
        MIX.score(torch.zeros(2, 2), 0.5, "vp")
    with pytest.raises(ValueError, match="t must lie"):
        MIX.log_prob(torch.zeros(2, 2), 2.0, de.VPSDE(de.Linear()))


def test_additive_sde():
    sde = de.AdditiveSDE(lambda x, t: -x, lambda t: 0.5 + 0 * t, T=2.0)
    x = torch.ones(3, 1)
    assert torch.allclose(sde.drift(x, 0.3), -x)
    assert float(sde.diffusion(0.3)) == 0.5
    rev = sde.reverse(lambda x, t: -x, 1.0)
    assert torch.allclose(rev.drift(x, 0.3), -x + 0.25 * x)
    bad = de.AdditiveSDE(lambda x, t: x[:, :0], lambda t: -1.0)
    with pytest.raises(ValueError, match="drift"):
        bad.drift(x, 0.1)
    with pytest.raises(ValueError, match="g\\(t\\) >= 0"):
        bad.diffusion(0.1)


def test_swiss_roll_statistics():
    x = de.swiss_roll(40000, de.make_generator(0), dtype=torch.float64)
    r2 = (x**2).sum(1)
    a, b = 1.5 * math.pi, 4.5 * math.pi
    expected = ((b**3 - a**3) / (3 * (b - a)) + 2 * 0.25) / 6.865**2     # E[u^2] + 2 noise^2, scaled
    m, se = mean_se(r2)
    assert abs(float(m) - expected) < 5 * float(se)
    clean = de.swiss_roll(1000, de.make_generator(1), noise=0.0, dtype=torch.float64) * 6.865
    u = clean.norm(dim=1)
    assert float(u.min()) >= a - 1e-9 and float(u.max()) <= b + 1e-9
    assert torch.allclose(clean[:, 0], u * torch.cos(u)) and torch.allclose(clean[:, 1], u * torch.sin(u))
    assert torch.equal(de.swiss_roll(10, de.make_generator(3)), de.swiss_roll(10, de.make_generator(3)))


def test_gaussian_grid_statistics():
    x = de.gaussian_grid(25 * 400, de.make_generator(0), dtype=torch.float64) * 2.828
    lattice = torch.round(x / 2)
    assert bool((lattice.abs() <= 2).all())
    counts = torch.unique(lattice, dim=0, return_counts=True)[1]
    assert len(counts) == 25 and bool((counts == 400).all())
    resid = x - 2 * lattice
    v, se = var_se(resid.reshape(-1))
    assert abs(float(v) - 0.05**2) < 5 * float(se)
    mix = de.gaussian_grid_mixture()
    assert mix.means.shape == (25, 2) and abs(float(mix.stds[0, 0]) - 0.05 / 2.828) < 1e-12
    assert de.gaussian_grid(7, de.make_generator(1)).shape == (7, 2)


def test_generators_bad_input():
    with pytest.raises(ValueError, match="n must be"):
        de.swiss_roll(0)
    with pytest.raises(TypeError, match="generator"):
        de.gaussian_grid(10, generator=1)
    with pytest.raises(ValueError, match="noise"):
        de.swiss_roll(10, noise=-1.0)
