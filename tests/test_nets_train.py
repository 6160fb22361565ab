import math

import pytest
import torch

import diffedu as de
from diffedu import nets
from diffedu.stats import mean_se
from diffedu.train import dsm_loss


def test_score_mlp_matches_the_paper():
    m = de.ScoreMLP(2)
    assert sum(p.numel() for p in m.parameters()) == 33794          # "about 33.8k parameters"
    acts = [type(layer).__name__ for layer in m.net]
    assert acts == ["Linear", "SiLU", "Linear", "SiLU", "Linear", "SiLU", "Linear"]
    x = torch.randn(5, 2)
    assert m(x, 0.3).shape == (5, 2)
    assert torch.allclose(m(x, torch.full((5,), 0.3)), m(x, 0.3))
    assert m(x.double(), 0.3).dtype == torch.float64


def test_score_mlp_bad_input():
    m = de.ScoreMLP(2)
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        m(torch.randn(5, 3), 0.1)
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        m(torch.randn(5, 2), torch.ones(4))
    with pytest.raises(ValueError, match="dim"):
        de.ScoreMLP(0)


@pytest.mark.parametrize("data", nets.DATA_NAMES)
@pytest.mark.parametrize("schedule", nets.SCHEDULE_NAMES)
def test_the_four_weight_files_load(data, schedule):
    m = de.load_pretrained(data, schedule)
    assert m.info["steps"] == 80000 and m.info["batch_size"] == 512 and m.info["train_points"] == 3000
    assert m.sde.t_min == 0.01 and m.sde.T == (1.0 if schedule == "simple" else 0.999)
    out = m(torch.zeros(4, 2), 0.5)
    assert out.shape == (4, 2) and bool(torch.isfinite(out).all())
    assert not any(p.requires_grad for p in m.parameters())


def test_pretrained_swiss_roll_learned_the_data():
    """The denoising loss of the shipped model is close to its value on fresh data (no overfitting)
    and far below that of an untrained network."""
    m = de.load_pretrained("swiss_roll", "simple")
    sde = m.sde
    gen = de.make_generator(0)
    x0 = de.swiss_roll(20000, gen)
    t = sde.t_min + (sde.T - sde.t_min) * torch.rand(20000, generator=gen, dtype=torch.float64)
    z = de.randn(x0.shape, generator=gen)
    trained = float(dsm_loss(m, x0, sde, t, z))
    torch.manual_seed(0)
    with torch.no_grad():
        untrained = float(dsm_loss(de.ScoreMLP(2), x0, sde, t, z))
    assert abs(trained - m.info["final_loss"]) < 0.25 * m.info["final_loss"]
    assert trained < 0.8 * untrained


def test_load_pretrained_errors(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="data"):
        de.load_pretrained("mnist", "simple")
    with pytest.raises(ValueError, match="schedule"):
        de.load_pretrained("swiss_roll", "linear")
    monkeypatch.setattr(nets, "WEIGHTS", tmp_path)
    with pytest.raises(FileNotFoundError, match="make weights"):
        de.load_pretrained("swiss_roll", "simple")


def test_paper_sdes():
    s = de.paper_sde("simple")
    assert torch.allclose(s.schedule.alpha(torch.tensor([0.5], dtype=torch.float64)),
                          torch.tensor([math.exp(-5 * 0.25)], dtype=torch.float64))
    c = de.paper_sde("cosine")
    assert abs(float(c.marginal(0.999)[0]) - math.cos(math.pi * 0.999 / 2)) < 1e-12


def test_train_is_deterministic_and_learns():
    data = de.GaussianMixture([1.0], [[0.0, 0.0]], [0.5]).sample(1000, de.make_generator(0))
    sde = de.paper_sde("simple")
    gen = de.make_generator(5)
    x_val = data[:1000]
    t_val = sde.t_min + (sde.T - sde.t_min) * torch.rand(1000, generator=gen, dtype=torch.float64)
    z_val = de.randn(x_val.shape, generator=gen)
    runs, before, after = [], None, None
    for _ in range(2):
        torch.manual_seed(0)
        m = de.ScoreMLP(2)
        with torch.no_grad():
            before = dsm_loss(m, x_val, sde, t_val, z_val, reduction="none").double()
        runs.append(de.train_dsm(m, data, sde, 300, batch_size=250, generator=de.make_generator(1), progress=False))
        with torch.no_grad():
            after = dsm_loss(m, x_val, sde, t_val, z_val, reduction="none").double()
    assert torch.equal(runs[0], runs[1])
    d, se = mean_se(before - after)          # paired: same (x0, t, z) before and after training
    assert float(d) > 5 * float(se)


def test_dsm_loss_of_exact_score_is_the_floor():
    """For N(0, v0) data the g^2-weighted loss of the exact score at fixed t is g^2 (1/sigma^2 - 1/v_t) per coordinate."""
    gauss = de.GaussianMixture([1.0], [[0.0]], [0.2])
    sde = de.paper_sde("simple")
    n, t = 400000, 0.3
    gen = de.make_generator(2)
    x0 = gauss.sample(n, gen, dtype=torch.float64)
    z = de.randn(x0.shape, generator=gen, dtype=torch.float64)
    loss = float(dsm_loss(lambda x, tt: gauss.score(x, tt, sde), x0, sde, torch.full((n,), t, dtype=torch.float64), z))
    a, s = (float(v) for v in sde.marginal(t))
    floor = float(sde.diffusion(t)) ** 2 * (1 / s**2 - 1 / (a**2 * 0.04 + s**2))
    assert abs(loss - floor) < 0.02 * floor


def test_train_bad_input():
    data = torch.randn(100, 2)
    m = de.ScoreMLP(2)
    with pytest.raises(ValueError, match="t_min must be > 0"):
        de.train_dsm(m, data, de.VPSDE(de.Linear()), 10, batch_size=50)
    with pytest.raises(ValueError, match="batch_size"):
        de.train_dsm(m, data, de.paper_sde("simple"), 10, batch_size=500)
    with pytest.raises(TypeError, match="model"):
        de.train_dsm(lambda x, t: x, data, de.paper_sde("simple"), 10, batch_size=50)
    with pytest.raises(ValueError, match="steps"):
        de.train_dsm(m, data, de.paper_sde("simple"), 0, batch_size=50)


def test_dsm_loss_and_mixture_helpers_bad_input():
    from diffedu.data import swiss_roll_mixture

    sde = de.paper_sde("simple")
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="reduction"):
        dsm_loss(de.ScoreMLP(2), x, sde, torch.full((4,), 0.5), x, reduction="sum")
    with pytest.raises(ValueError, match="components"):
        swiss_roll_mixture(components=5)
    with pytest.raises(ValueError, match="noise"):
        swiss_roll_mixture(noise=0.0)


# --- the training engines (train_dsm, train_dsm_many) --------------------------------------------------------------

def _reference_training(model, data, sde, steps, batch_size, lr, gen, t_grid=None):
    """Written independently of diffedu.train: the public dsm_loss, autograd and torch.optim.Adam on the draws that
    train_dsm documents (per epoch: a permutation of the data, the epoch's times, then its noise)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    per_epoch, losses = data.shape[0] // batch_size, []
    for step in range(steps):
        if step % per_epoch == 0:
            order = torch.randperm(data.shape[0], generator=gen)[:per_epoch * batch_size]
            x0 = data[order].reshape(per_epoch, batch_size, -1)
            if t_grid is None:
                t = sde.t_min + (sde.T - sde.t_min) * torch.rand(per_epoch, batch_size, generator=gen, dtype=torch.float64)
            else:
                t = torch.linspace(sde.t_min, sde.T, t_grid, dtype=torch.float64)[
                    torch.randint(t_grid, (per_epoch, batch_size), generator=gen)]
            z = torch.randn(per_epoch, batch_size, data.shape[1], generator=gen, dtype=torch.float64).to(data.dtype)
        k = step % per_epoch
        loss = dsm_loss(model, x0[k], sde, t[k], z[k])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return torch.tensor(losses, dtype=torch.float64)


def _two_models(dtype, init="torch"):
    nets = []
    for seed in (3, 4):
        torch.manual_seed(seed)
        nets.append(de.ScoreMLP(2, hidden=32, layers=2, init=init).to(dtype))
    data = [de.swiss_roll(300, de.make_generator(0), dtype=dtype), de.gaussian_grid(260, de.make_generator(1), dtype=dtype)]
    return nets, data, [de.paper_sde("simple"), de.paper_sde("cosine")]


def _gap(a, b, start):
    """Largest parameter difference between two networks, relative to how far ``a`` moved from ``start``."""
    diff = max(float((p - q).detach().abs().max()) for p, q in zip(a.parameters(), b.parameters()))
    moved = max(float((p - q).detach().abs().max()) for p, q in zip(a.parameters(), start.parameters()))
    return diff / moved


@pytest.mark.parametrize("t_grid", [None, 7])
def test_the_batched_engine_is_autograd_and_adam_on_the_documented_draws(t_grid):
    """Two float64 ScoreMLPs (different data, schedule, seeds) trained together by the hand-written engine end where
    the independent autograd + torch Adam loop ends, to round-off; a wrong swish derivative or Adam would not."""
    import copy

    nets, data, sdes = _two_models(torch.float64)
    start, refs = copy.deepcopy(nets), copy.deepcopy(nets)
    losses = de.train.train_dsm_many(nets, data, sdes, 25, batch_size=64, lr=3e-3, t_grid=t_grid, progress=False,
                                     generators=[de.make_generator(5), de.make_generator(6)])
    assert losses.shape == (2, 25)
    for i in range(2):
        ref_losses = _reference_training(refs[i], data[i], sdes[i], 25, 64, 3e-3, de.make_generator(5 + i), t_grid)
        assert torch.allclose(losses[i].double(), ref_losses, rtol=1e-5)     # losses are recorded in float32
        assert _gap(nets[i], refs[i], start[i]) < 1e-9


def test_models_trained_together_get_the_weights_they_get_alone():
    """float32, the shipped setting: train_dsm_many of two models against two train_dsm runs, and a ScoreMLP behind a
    plain module (autograd engine) against the ScoreMLP itself (hand-written engine)."""
    import copy

    from torch import nn

    class Plain(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net, self.dim = net, net.dim

        def forward(self, x, t):
            return self.net(x, t)

    nets, data, sdes = _two_models(torch.float32)
    start, alone, plain = copy.deepcopy(nets), copy.deepcopy(nets), copy.deepcopy(nets)
    de.train.train_dsm_many(nets, data, sdes, 20, batch_size=64, progress=False,
                            generators=[de.make_generator(5), de.make_generator(6)])
    for i in range(2):
        de.train_dsm(alone[i], data[i], sdes[i], 20, batch_size=64, generator=de.make_generator(5 + i), progress=False)
        de.train_dsm(Plain(plain[i]), data[i], sdes[i], 20, batch_size=64, generator=de.make_generator(5 + i),
                     progress=False)
        assert _gap(nets[i], alone[i], start[i]) < 1e-4
        assert _gap(nets[i], plain[i], start[i]) < 1e-4


def test_a_blow_up_stops_naming_lr_and_keeps_the_last_finite_weights(monkeypatch):
    """Adam with lr <= 10 does not blow up this network, so the blow-up is made: the hand-written engine's loss turns
    inf at step 4.  The error names lr and the step; the network keeps the weights after step 3 (a run of 3 steps).
    A network whose first output is not finite is refused with a ValueError."""
    import copy

    from diffedu import train

    torch.manual_seed(0)
    net = de.ScoreMLP(2, hidden=32, layers=2)
    data = de.swiss_roll(256, de.make_generator(0))
    three = copy.deepcopy(net)
    de.train_dsm(three, data, de.paper_sde("simple"), 3, batch_size=64, generator=de.make_generator(1), progress=False)
    gradient, calls = train._Stack.gradient, []

    def failing(self, *batch):
        calls.append(1)
        loss = gradient(self, *batch)
        return loss * float("inf") if len(calls) == 4 else loss

    monkeypatch.setattr(train._Stack, "gradient", failing)
    with pytest.raises(FloatingPointError, match=r"step 4 \(lr = 0.001\)"):
        de.train_dsm(net, data, de.paper_sde("simple"), 10, batch_size=64, generator=de.make_generator(1), progress=False)
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), three.parameters()))
    monkeypatch.undo()
    with torch.no_grad():
        net.net[-1].bias.fill_(float("inf"))
    with pytest.raises(ValueError, match="non-finite"):
        de.train_dsm(net, data, de.paper_sde("simple"), 2, batch_size=64, progress=False)


def test_flax_initialisation_is_lecun_normal_truncated_with_zero_biases():
    """Flax's Dense default: std 1/sqrt(fan_in) after truncation at two standard deviations of the underlying normal
    (|w| sqrt(fan_in) <= 2 / 0.8796 = 2.274), biases 0.  PyTorch's default (uniform, std 1/sqrt(3 fan_in)) fails."""
    for init, ok in (("flax", True), ("torch", False)):
        torch.manual_seed(1)
        net = de.ScoreMLP(2, init=init)
        layers = [layer for layer in net.net if isinstance(layer, torch.nn.Linear)]
        w = layers[1].weight.detach().double() * math.sqrt(128)       # 16384 weights: s.e. of the s.d. ~ 0.0055
        checks = [abs(float(w.std()) - 1.0) < 0.03, float(w.abs().max()) <= 2 / 0.87962566103423978 + 1e-6,
                  float(w.abs().max()) > 2.2, all(float(layer.bias.detach().abs().max()) == 0.0 for layer in layers)]
        assert all(checks) == ok, (init, checks)


def test_training_options_bad_input():
    nets, data, sdes = _two_models(torch.float32)
    gens = [de.make_generator(0), de.make_generator(1)]
    with pytest.raises(ValueError, match="init"):
        de.ScoreMLP(2, init="jax")
    with pytest.raises(TypeError, match="layer"):
        nets_mod = de.nets.flax_init_(torch.nn.Conv1d(2, 2, 1))
        del nets_mod
    with pytest.raises(ValueError, match="t_grid"):
        de.train_dsm(nets[0], data[0], sdes[0], 2, batch_size=64, t_grid=1, progress=False)
    with pytest.raises(ValueError, match="sdes must be a list of 2"):
        de.train.train_dsm_many(nets, data, sdes[:1], 2, batch_size=64, generators=gens, progress=False)
    with pytest.raises(TypeError, match="models"):
        de.train.train_dsm_many(nets[0], data, sdes, 2, batch_size=64, progress=False)
    with pytest.raises(TypeError, match="only ScoreMLPs train together"):
        de.train.train_dsm_many([nets[0], torch.nn.Linear(3, 2)], data, sdes, 2, batch_size=64, progress=False)
    with pytest.raises(ValueError, match="share one shape"):
        de.train.train_dsm_many([nets[0], de.ScoreMLP(2, hidden=16, layers=2)], data, sdes, 2, batch_size=64,
                                progress=False)
    with pytest.raises(ValueError, match=r"sdes\[1\]\.t_min must be > 0"):
        de.train.train_dsm_many(nets, data, [sdes[0], de.VPSDE(de.Linear(), t_min=0.0)], 2, batch_size=64,
                                progress=False)
    with pytest.raises(ValueError, match=r"data\[1\]"):
        de.train.train_dsm_many(nets, [data[0], torch.randn(50, 3)], sdes, 2, batch_size=16, progress=False)
    with pytest.raises(TypeError, match=r"^sde must be a diffedu SDE"):        # train_dsm names its own argument
        de.train_dsm(nets[0], data[0], "vp", 2, batch_size=64, progress=False)
    with pytest.raises(TypeError, match=r"generators\[1\]"):
        de.train.train_dsm_many(nets, data, sdes, 2, batch_size=64, generators=[gens[0], 3], progress=False)
    with pytest.raises(ValueError, match=r"models\[1\] is the same module"):
        de.train.train_dsm_many([nets[0], nets[0]], data, sdes, 2, batch_size=64, progress=False)
    with pytest.raises(ValueError, match="t_grid"):
        de.train_dsm(nets[0], data[0], sdes[0], 2, batch_size=64, t_grid=10**7, progress=False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        de.train_dsm(de.load_pretrained("swiss_roll", "simple"), data[0], sdes[0], 2, batch_size=64, progress=False)


def test_frozen_parameters_stay_frozen():
    """A ScoreMLP with a frozen layer is trained by autograd, which leaves that layer alone (the hand-written engine
    would move every weight); frozen models cannot train together."""
    nets, data, sdes = _two_models(torch.float32)
    first = nets[0].net[0]
    first.weight.requires_grad_(False)
    before = first.weight.detach().clone()
    de.train_dsm(nets[0], data[0], sdes[0], 5, batch_size=64, progress=False)
    assert torch.equal(first.weight, before)
    assert not torch.equal(nets[0].net[2].weight, _two_models(torch.float32)[0][0].net[2].weight)
    with pytest.raises(ValueError, match="frozen"):
        de.train.train_dsm_many(nets, data, sdes, 2, batch_size=64, progress=False)
