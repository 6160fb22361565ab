"""Interpolants and flow matching (diffedu.flows): the VP path is the VP SDE, the marginal velocity is the
probability-flow drift and carries p_t along (continuity equation), it minimises the flow-matching loss,
the SDE with the path's marginals solves its Fokker-Planck equation, and bad input is refused."""

import math

import pytest
import torch

import diffedu as de
from diffedu import stats
from diffedu.flows import Interpolant

MIX1 = de.GaussianMixture([0.3, 0.7], [[-1.5], [1.0]], [0.3, 0.4])
PATHS = {"vp": Interpolant.vp(de.Linear(0.1, 20.0)), "linear": Interpolant.linear(T=0.99)}


def test_the_vp_path_is_the_vp_sde():
    vp, ref = PATHS["vp"], de.VPSDE(de.Linear(0.1, 20.0))
    x = torch.tensor([[0.3, -1.0], [2.0, 0.5]], dtype=torch.float64)
    for t in (0.01, 0.3, 0.9):
        assert torch.allclose(vp.drift(x, t), ref.drift(x, t), rtol=1e-12)
        assert float(vp.diffusion(t)) == pytest.approx(float(ref.diffusion(t)), rel=1e-12)
        assert [float(v) for v in vp.marginal(t)] == pytest.approx([float(v) for v in ref.marginal(t)], rel=1e-12)
    score = MIX1.score_fn(ref)
    x1 = torch.linspace(-3, 3, 13, dtype=torch.float64)[:, None]
    for t in (0.05, 0.5):
        v = vp.velocity_from_score(score(x1, torch.full((13,), t, dtype=torch.float64)), x1, t)
        pf = ref.reverse(score, hbar=0.0).drift(x1, t)                     # f - g^2 s / 2
        assert torch.allclose(v, pf, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["vp", "linear"])
def test_the_noise_is_the_general_formula(kind):
    """g^2 = 2 sigma^2 d/dt log(sigma/alpha), the drift rate d/dt log alpha (closed forms against finite differences)."""
    path = PATHS[kind]
    for t in (0.1, 0.4, 0.8):
        h = 1e-6
        a0, s0 = (float(v) for v in path.marginal(t - h))
        a1, s1 = (float(v) for v in path.marginal(t + h))
        a, s = (float(v) for v in path.marginal(t))
        d_log_ratio = (math.log(s1 / a1) - math.log(s0 / a0)) / (2 * h)
        assert float(path.diffusion(t)) ** 2 == pytest.approx(2 * s * s * d_log_ratio, rel=1e-7)
        rate = float(path.drift(torch.ones(1, 1, dtype=torch.float64), t))
        assert rate == pytest.approx((math.log(a1) - math.log(a0)) / (2 * h), rel=1e-7)
        _, _, da, ds = (float(v) for v in path.coefficients(t))
        assert (da, ds) == pytest.approx(((a1 - a0) / (2 * h), (s1 - s0) / (2 * h)), rel=1e-7)


def _density_terms(path, x, t, h=1e-5):
    """p, dp/dt and d(v p)/dx at the 1-D points x by central differences, with v from the exact mixture score."""
    def p(xx, tt):
        return torch.exp(MIX1.log_prob(xx, tt, path))

    def flux(xx):
        s = MIX1.score(xx, t, path)
        return path.velocity_from_score(s, xx, t)[:, 0] * p(xx, t)

    dpdt = (p(x, t + h) - p(x, t - h)) / (2 * h)
    dflux = (flux(x + h) - flux(x - h)) / (2 * h)
    return p(x, t), dpdt, dflux


@pytest.mark.parametrize("kind", ["vp", "linear"])
def test_the_marginal_velocity_carries_p_t_along(kind):
    """Continuity equation dp/dt + d(v p)/dx = 0 for the mixture's exact p_t: it holds to finite-difference
    accuracy, while the velocity without the 1/2 (or with the score's sign flipped) leaves a residual of the
    size of dp/dt itself."""
    path = PATHS[kind]
    x = torch.linspace(-3.0, 3.0, 25, dtype=torch.float64)[:, None]
    for t in (0.1, 0.5, 0.9):
        _, dpdt, dflux = _density_terms(path, x, t)
        scale = float(dpdt.abs().max())
        assert float((dpdt + dflux).abs().max()) < 1e-5 * scale, (kind, t)
    # the same check rejects the wrong conversion (g^2 s instead of g^2 s / 2)
    t = 0.5
    s = MIX1.score(x, t, path)
    good = path.velocity_from_score(s, x, t)
    wrong = 2 * good - path.drift(x, t)                       # rate x - g^2 s
    p0 = torch.exp(MIX1.log_prob(x, t, path))[:, None]
    assert float((wrong - good).abs().mul(p0).max()) > 0.1 * float(_density_terms(path, x, t)[1].abs().max())


def test_the_marginal_velocity_of_gaussian_data_is_the_conditional_expectation():
    """For x_0 ~ N(0, v0): E[x_0|x] = alpha v0 x / V and E[z|x] = sigma x / V, V = alpha^2 v0 + sigma^2."""
    v0 = 0.3
    data = de.GaussianMixture([1.0], [[0.0]], [math.sqrt(v0)])
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)[:, None]
    for kind, path in PATHS.items():
        for t in (0.2, 0.7):
            a, s, da, ds = (float(c) for c in path.coefficients(t))
            V = a * a * v0 + s * s
            expected = (da * a * v0 + ds * s) * x / V
            v = path.velocity_from_score(data.score(x, t, path), x, t)
            assert torch.allclose(v, expected, rtol=1e-12, atol=1e-13), kind
            back = path.score_from_velocity(v, x, t)
            assert torch.allclose(back, -x / V, rtol=1e-10)


def test_the_marginal_velocity_minimises_the_flow_matching_loss():
    """L(v) = E|v(x_t) - dx_t|^2 over data, t and z.  For v = v* + delta, L(v) - L(v*) = E|delta|^2 (the cross term
    has mean zero because v* is the conditional mean): checked on paired samples within 5 standard errors."""
    path = PATHS["linear"]
    gen = de.make_generator(11)
    n = 200_000
    x0 = MIX1.sample(n, gen, dtype=torch.float64)
    t = 0.05 + 0.9 * torch.rand(n, generator=gen, dtype=torch.float64)
    xt, target = path.sample(x0, t, gen)
    vstar = path.velocity_from_score(MIX1.score(xt, t, path), xt, t)
    delta = 0.3 * torch.sin(2 * xt)                                      # any perturbation field
    gain = ((vstar + delta - target) ** 2 - (vstar - target) ** 2)[:, 0]
    m, se = stats.mean_se(gain)
    want = float((delta**2).mean())
    assert abs(float(m) - want) < 5 * float(se), (float(m), want, float(se))
    # and the loss is sharp at v*: a rescaled v* does worse
    assert float(((vstar - target) ** 2).mean()) < float(((0.9 * vstar - target) ** 2).mean())


@pytest.mark.parametrize("kind", ["vp", "linear"])
def test_the_sde_of_the_path_solves_its_fokker_planck_equation(kind):
    """dp/dt = -d(f p)/dx + g^2/2 d^2p/dx^2 with f = (alpha'/alpha) x: the SDE has the path's marginals."""
    path = PATHS[kind]
    x = torch.linspace(-3.0, 3.0, 25, dtype=torch.float64)[:, None]
    h, t = 1e-4, 0.4

    def p(xx, tt):
        return torch.exp(MIX1.log_prob(xx, tt, path))

    fp_ = path.drift(x + h, t)[:, 0] * p(x + h, t) - path.drift(x - h, t)[:, 0] * p(x - h, t)
    rhs = -fp_ / (2 * h) + 0.5 * float(path.diffusion(t)) ** 2 * (p(x + h, t) - 2 * p(x, t) + p(x - h, t)) / h**2
    dpdt = (p(x, t + h) - p(x, t - h)) / (2 * h)
    assert float((dpdt - rhs).abs().max()) < 1e-5 * float(dpdt.abs().max())


def test_the_prior_is_the_marginal_of_standardised_data():
    """N(0, alpha_T^2 + sigma_T^2): the exact law of x_T for zero-mean, unit-variance data."""
    for path, var in ((Interpolant.linear(T=0.99), 0.01**2 + 0.99**2),
                      (Interpolant.vp(de.Linear(0.1, 20.0)), 1.0)):
        x = torch.tensor([[0.0], [1.3]], dtype=torch.float64)
        want = -0.5 * x[:, 0] ** 2 / var - 0.5 * math.log(2 * math.pi * var)
        assert torch.allclose(path.prior_logp(x), want, rtol=1e-12)
    unit = de.GaussianMixture([0.5, 0.5], [[-0.6], [0.6]], [0.8, 0.8])      # mean 0, variance 0.36 + 0.64 = 1
    path = Interpolant.linear(T=0.99)
    xs = torch.linspace(-3, 3, 7, dtype=torch.float64)[:, None]
    # at T the data's shape has all but vanished: p_T is within 1e-4 of the prior
    assert torch.allclose(unit.log_prob(xs, 0.99, path), path.prior_logp(xs), atol=1e-4)


def test_the_probability_flow_of_the_linear_path_generates_the_data():
    """The ODE dx/dt = v_t(x) from the prior at T down to t_min, with the exact score, lands on the data law:
    mean and variance of the samples within 5 standard errors (the existing hbar-family sampler, hbar = 0)."""
    path = Interpolant.linear(T=0.99, t_min=1e-3)
    x = de.sample(path, MIX1.score_fn(path), n=20_000, hbar=0.0, steps=400, generator=de.make_generator(4),
                  dim=1, dtype=torch.float64)[:, 0]
    w, m, s = torch.tensor([0.3, 0.7]), torch.tensor([-1.5, 1.0]), torch.tensor([0.3, 0.4])
    mean = float((w * m).sum())
    var = float((w * (s**2 + m**2)).sum()) - mean**2
    n = x.numel()
    assert abs(float(x.mean()) - mean) < 5 * math.sqrt(var / n)
    m4 = float((w * (m - mean) ** 4 + 6 * w * (m - mean) ** 2 * s**2 + 3 * w * s**4).sum())
    assert abs(float(x.var()) - var) < 5 * math.sqrt((m4 - var**2) / n) + 0.01 * var      # + the ODE's step error


def test_bad_input_is_refused_naming_the_argument():
    with pytest.raises(TypeError, match="schedule"):
        Interpolant.vp("linear")
    with pytest.raises(ValueError, match="T must be < 1"):
        Interpolant.linear(T=1.0)
    with pytest.raises(ValueError, match="t_min"):
        Interpolant.linear(T=0.5, t_min=0.6)
    path = PATHS["linear"]
    x = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="score"):
        path.velocity_from_score(torch.zeros(3, 1), x, 0.5)
    with pytest.raises(TypeError, match="velocity"):
        path.score_from_velocity([0.0], x, 0.5)
    with pytest.raises(ValueError, match="t must lie"):
        path.velocity_from_score(torch.zeros(3, 2), x, 1.5)
    with pytest.raises(ValueError, match="t must lie"):
        path.marginal(1.5)
    vp = PATHS["vp"]
    with pytest.raises(ValueError, match="t must be > 0 on the VP path"):
        vp.sample(x, 0.0)
    with pytest.raises(ValueError, match="t must be > 0 on the VP path"):
        vp.coefficients(torch.tensor([0.0, 0.5]))
    with pytest.raises(ValueError, match="kind"):
        Interpolant("foo", None, 0.5, 0.0)
    with pytest.raises(ValueError, match="t must be > 0"):
        path.score_from_velocity(torch.zeros(3, 2), x, 0.0)
    with pytest.raises(ValueError, match="score"):
        path.velocity_from_score(torch.full((3, 2), math.nan), x, 0.5)
    with pytest.raises(ValueError, match="x0"):
        path.sample(torch.zeros(3), 0.5)


def test_flow_matching_on_the_vp_path_is_score_matching_with_weight_g4_over_4():
    """Per sample, fm_loss of the velocity v = f - g^2 s / 2 built from a score network equals g^2/4 times its dsm_loss."""
    from diffedu import train

    sde, path = de.VPSDE(de.Linear(0.1, 20.0), t_min=1e-3), PATHS["vp"]
    net = de.ScoreMLP(dim=2, hidden=16, layers=2).double()
    gen = de.make_generator(3)
    x0 = MIX1.sample(64, gen, dtype=torch.float64).repeat(1, 2)
    t = 0.01 + 0.98 * torch.rand(64, generator=gen, dtype=torch.float64)
    z = torch.randn(64, 2, generator=gen, dtype=torch.float64)

    def velocity(x, tt):
        return path.velocity_from_score(net(x, tt), x, tt)

    fm = train.fm_loss(velocity, x0, path, t, z, reduction="none")
    dsm = train.dsm_loss(net, x0, sde, t, z, reduction="none")
    g2 = sde.diffusion(t) ** 2
    assert torch.allclose(fm, g2 / 4 * dsm, rtol=1e-10)
    assert not torch.allclose(fm, dsm, rtol=0.1)                         # the weights differ: it is not the same loss


def test_train_flow_matching_is_deterministic_and_learns_the_marginal_velocity():
    """600 steps on 1-D Gaussian data N(0.5, 0.3) with the linear path: the same seed gives the same losses, and the
    network's velocity approaches the exact marginal velocity (mean squared error weighted by p_t, at t = 0.2, 0.5,
    0.8: 25 to 70 times smaller than at initialisation for four seeds; asserted: 10 times)."""
    from diffedu import train

    path = Interpolant.linear(T=0.99)
    data = 0.5 + math.sqrt(0.3) * torch.randn(2048, 1, generator=de.make_generator(0))
    exact = de.GaussianMixture([1.0], [[0.5]], [math.sqrt(0.3)])
    xs = torch.linspace(-2.0, 3.0, 101, dtype=torch.float64)[:, None]

    def error(net):
        num = den = 0.0
        with torch.no_grad():
            for t in (0.2, 0.5, 0.8):
                want = path.velocity_from_score(exact.score(xs, t, path), xs, t)
                w = torch.exp(exact.log_prob(xs, t, path))[:, None]
                num += float((w * (net(xs.float(), torch.full((101,), t)).double() - want) ** 2).sum())
                den += float(w.sum())
        return num / den

    runs = []
    for _ in range(2):
        de.manual_seed(1)
        net = de.ScoreMLP(dim=1, hidden=32, layers=2)
        before = error(net)
        runs.append(train.train_flow_matching(net, data, path, steps=600, batch_size=256, lr=3e-3,
                                              generator=de.make_generator(2), progress=False))
    assert torch.equal(runs[0], runs[1])
    assert error(net) < 0.1 * before, (error(net), before)


def test_flow_matching_refuses_bad_input():
    from diffedu import train

    net = de.ScoreMLP(dim=1, hidden=8, layers=1)
    x0 = torch.zeros(4, 1)
    with pytest.raises(TypeError, match="path"):
        train.fm_loss(net, x0, de.VPSDE(de.Linear()), torch.full((4,), 0.5), x0)
    with pytest.raises(ValueError, match="t"):
        train.fm_loss(net, x0, PATHS["linear"], torch.full((3,), 0.5), x0)
    with pytest.raises(ValueError, match="t"):
        train.fm_loss(net, x0, PATHS["linear"], torch.full((4,), 1.5), x0)
    with pytest.raises(TypeError, match="path"):
        train.train_flow_matching(net, x0, "linear", steps=1, batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        train.train_flow_matching(net, x0, PATHS["linear"], steps=1, batch_size=8)
    with pytest.raises(ValueError, match="t_min must be > 0"):
        train.train_flow_matching(net, x0, Interpolant.vp(de.Linear(0.1, 20.0)), steps=1, batch_size=2)
    with pytest.raises(ValueError, match="VP path"):
        train.fm_loss(net, x0, PATHS["vp"], torch.zeros(4), x0)
