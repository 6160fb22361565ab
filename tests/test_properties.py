"""Property-based tests of the input contract (issue: the package keeps its contract under bad input).

Every public function and class of the computational modules has a *valid call* below: tiny, fast
arguments by keyword.  Hypothesis then replaces one argument at a time by a bad or edge value (wrong
types, NaN, inf, huge and negative numbers, empty or integer tensors, tensors of the wrong shape,
callables that return garbage) and checks the contract of CONTRIBUTING.md:

* the call either succeeds and returns finite numbers, or raises ``TypeError``/``ValueError``;
* the message of that error names the argument that was replaced;
* nothing else escapes (no ``IndexError``/``RuntimeError``/``AttributeError`` from deep inside torch,
  no ``ZeroDivisionError``, no allocation error), and no call runs longer than ``HANG_SECONDS``.

The examples are derandomized (the same inputs on every run, so the suite cannot be flaky) and
``test_every_public_callable_has_a_valid_call`` makes sure a new public function cannot skip this.
"""

from __future__ import annotations

import copy
import inspect
import math
import signal

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import diffedu as de
from diffedu import fokker_planck as fp
from diffedu import bridges, langevin, likelihood, ode, path_integral, quadrature, samplers, stats, train, wkb
from diffedu.flows import Interpolant
from diffedu.data import swiss_roll_mixture
from diffedu.nets import flax_init_, flow_path, load_flow, paper_sde, weight_path

#: modules whose public callables are fuzzed here
FUZZED_MODULES = ("device", "sde", "solvers", "stats", "fokker_planck", "schedules", "quadrature", "data",
                  "nets", "train", "samplers", "ode", "likelihood", "path_integral", "wkb", "flows", "bridges", "langevin")
#: modules left to their own tests, and why
NOT_FUZZED = {
    "widgets": "figure builders: their arguments are slider positions, tested in test_widgets_plotting",
    "plotting": "matplotlib styling helpers, tested in test_widgets_plotting",
    "checks": "exercise checkers: a wrong answer must fail with a hint, tested in test_checks",
}
#: public names that are results or bases, not something a reader calls with arguments
NOT_CALLED = {"FPResult", "SpectralFP", "ODEStats", "LikelihoodResult", "WKBResult", "Schedule", "SDE"}
#: result classes whose methods are fuzzed through an instance (their CALLS entry calls one method)

VP = de.VPSDE(de.Linear(0.1, 20.0), t_min=1e-3)
BM = de.BrownianMotion(0.5)
MIX = de.GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.0]], [0.5, 0.5])
MIX1 = de.GaussianMixture([1.0], [[0.0]], [0.7])
SCORE = MIX.score_fn(VP)
SCORE1 = MIX1.score_fn(VP)
GEN = lambda: torch.Generator().manual_seed(0)              # noqa: E731
X = torch.tensor([[0.1, -0.2], [0.3, 0.4], [-0.5, 0.2]], dtype=torch.float64)
X1 = torch.tensor([[0.1], [-0.3], [0.5]], dtype=torch.float64)
TS = [1.0, 0.5, 0.1]
GRID = fp.Grid(-4.0, 4.0, 40)
OU = de.OrnsteinUhlenbeck(1.0, 1.0)
PATH = torch.cumsum(torch.randn(6, 3, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.3, 0)
PATH_TS = torch.linspace(0.0, 1.0, 6, dtype=torch.float64)
OU_DRIFT = lambda x, t: -x                                   # noqa: E731
NET = de.ScoreMLP(dim=2, hidden=8, layers=2)
NET.sde = VP
GAUSS = wkb.GaussianModel1D()
LINEAR_PATH = Interpolant.linear(T=0.9)
G_BRIDGE = bridges.gaussian_bridge(0.0, 0.5, 1.0, 0.3, 0.2)


def _fresh_train(model, **kwargs):
    """train_dsm on a copy: the fuzz must not leave a broken (NaN-weight) network to the next example."""
    return de.train_dsm(copy.deepcopy(model) if isinstance(model, torch.nn.Module) else model, **kwargs)


def _p0():
    return GRID.density(lambda x: -0.5 * (x**2).sum(1))


S_BRIDGE = bridges.sinkhorn_bridge(_p0(), _p0(), GRID, 0.5)


#: name -> (callable, valid keyword arguments); the callable receives them as keywords
CALLS = {
    # device
    "default_device": (de.default_device, {}),
    "randn": (de.randn, dict(shape=(3, 2), generator=GEN(), device=None, dtype=torch.float32)),
    "seed_offset": (de.device.seed_offset, dict(environ={})),
    "make_generator": (de.make_generator, dict(seed=3, shift=True)),
    "manual_seed": (de.manual_seed, dict(seed=3)),
    # sde
    "ReverseSDE": (de.ReverseSDE, dict(forward=VP, score=SCORE, hbar=1.0)),
    "BrownianMotion": (de.BrownianMotion, dict(D=0.5, T=1.0, t_min=0.0)),
    "OrnsteinUhlenbeck": (de.OrnsteinUhlenbeck, dict(theta=1.0, sigma=1.0, mu=0.0, T=1.0)),
    "VPSDE": (de.VPSDE, dict(schedule=de.Linear(0.1, 20.0), T=None, t_min=1e-3)),
    "SubVPSDE": (de.SubVPSDE, dict(schedule=de.Linear(0.1, 20.0), t_min=1e-3)),
    "VESDE": (de.VESDE, dict(sigma_min=0.01, sigma_max=50.0, T=1.0, t_min=0.0)),
    "AdditiveSDE": (de.AdditiveSDE, dict(drift=OU_DRIFT, diffusion=lambda t: 1.0, T=1.0)),
    "GeometricBrownianMotion": (de.GeometricBrownianMotion, dict(mu=1.0, sigma=1.0, T=1.0)),
    "ItoSDE": (de.ItoSDE, dict(drift=OU_DRIFT, diffusion=lambda x, t: torch.ones_like(x), T=1.0)),
    "SDE.drift": (VP.drift, dict(x=X, t=0.5)),
    "SDE.diffusion": (VP.diffusion, dict(t=0.5)),
    "SDE.marginal": (VP.marginal, dict(t=0.5)),
    "SDE.marginal_sample": (VP.marginal_sample, dict(x0=X, t=0.5, generator=GEN())),
    "SDE.prior_sample": (VP.prior_sample, dict(n=4, dim=2, generator=GEN(), device=None, dtype=torch.float64)),
    "SDE.prior_logp": (VP.prior_logp, dict(x=X)),
    "SDE.reverse": (VP.reverse, dict(score=SCORE, hbar=0.5)),
    # solvers
    "time_grid": (de.time_grid, dict(t0=1.0, t1=0.0, steps=4, dtype=torch.float64)),
    "brownian_increments": (de.brownian_increments, dict(ts=TS, n=3, dim=2, generator=GEN(), dtype=torch.float64)),
    "coarsen": (de.coarsen, dict(dw=torch.zeros(4, 3, 2), factor=2)),
    "euler_maruyama": (de.euler_maruyama, dict(sde=OU, x0=X, ts=[0.0, 0.5, 1.0], generator=GEN(),
                                               return_path=False, callback=None, dw=None)),
    "milstein": (de.milstein, dict(sde=OU, x0=X, ts=[0.0, 0.5, 1.0], generator=GEN())),
    "heun": (de.heun, dict(sde=VP.reverse(SCORE, 0.0), x0=X, ts=TS, generator=GEN())),
    "srk15": (de.srk15, dict(sde=de.GeometricBrownianMotion(1.0, 0.5), x0=X1, ts=[0.0, 0.5, 1.0], generator=GEN(),
                             return_path=False, callback=None, dw=None, dz=None)),
    "brownian_increments_dz": (de.brownian_increments_dz, dict(ts=[0.0, 0.5, 1.0], n=3, generator=GEN(), dw=None,
                                                               device=None, dtype=torch.float64)),
    "coarsen_dz": (de.coarsen_dz, dict(dw=torch.zeros(4, 3, 1), dz=torch.zeros(4, 3, 1), factor=2,
                                       ts=[0.0, 0.25, 0.5, 0.75, 1.0])),
    # stats
    "mean_se": (stats.mean_se, dict(x=X)),
    "var_se": (stats.var_se, dict(x=X)),
    "convergence_order": (stats.convergence_order, dict(steps=[0.1, 0.05, 0.025], errors=[0.4, 0.2, 0.1])),
    "z_score": (stats.z_score, dict(estimate=1.0, target=1.1, se=0.05)),
    "energy_distance": (stats.energy_distance, dict(x=X, y=X + 0.1)),
    "squared_w2": (stats.squared_w2, dict(x=X, y=X + 0.1)),
    # fokker_planck, schedules, quadrature
    "Grid": (fp.Grid, dict(lo=-4.0, hi=4.0, cells=20, dtype=torch.float64, device=None)),
    "Grid.from_centers": (lambda x, rtol: fp.Grid.from_centers(x, rtol=rtol),
                          dict(x=torch.linspace(-1.0, 1.0, 9, dtype=torch.float64), rtol=1e-9)),
    "Grid.density": (GRID.density, dict(log_prob=lambda x: -0.5 * (x**2).sum(1))),
    "Grid.evaluate": (GRID.evaluate, dict(fn=lambda x: (x**2).sum(1))),
    "Grid.mass": (GRID.mass, dict(p=_p0())),
    "Grid.l1": (GRID.l1, dict(p=_p0(), q=_p0())),
    "Grid.bin_mass": (GRID.bin_mass, dict(p=_p0(), edges=[-1.0, 0.0, 1.0])),
    "solve": (fp.solve, dict(sde=OU, p0=_p0(), grid=GRID, ts=[0.0, 0.1], max_step=None, rate_factor=0.05,
                             negative_tolerance=1e-10)),
    "sampler_marginal": (fp.sampler_marginal, dict(sde=de.VPSDE(de.Linear(0.1, 20.0), t_min=0.5), score=SCORE1,
                                                   hbar=0.5, grid=GRID, prior_logp=None, max_step=0.05)),
    "sampler_marginal_spectral": (fp.sampler_marginal_spectral, dict(sde=de.VPSDE(de.Linear(0.1, 20.0), t_min=0.5),
                                                                     score=SCORE1, hbar=0.0, dim=1, half_width=8.0,
                                                                     cells=32, second=True, batch=65_536)),
    "Linear": (de.Linear, dict(beta_min=0.1, beta_max=20.0)),
    "Cosine": (de.Cosine, dict(s=0.008, t_max=0.999)),
    "Schedule.alpha": (de.Linear(0.1, 20.0).alpha, dict(t=0.5)),
    "simpson": (quadrature.simpson, dict(y=[0.0, 1.0, 4.0], dx=0.5)),
    # data, nets, train
    "GaussianMixture": (de.GaussianMixture, dict(weights=[0.5, 0.5], means=[[0.0], [1.0]], stds=[0.2, 0.3])),
    "GaussianMixture.sample": (MIX.sample, dict(n=4, generator=GEN(), device=None, dtype=torch.float64)),
    "GaussianMixture.log_prob": (MIX.log_prob, dict(x=X, t=0.5, sde=VP)),
    "GaussianMixture.score": (MIX.score, dict(x=X, t=0.5, sde=VP)),
    "GaussianMixture.marginal": (MIX.marginal, dict(t=0.5, sde=VP, n=1)),
    "GaussianMixture.score_fn": (MIX.score_fn, dict(sde=VP)),
    "swiss_roll": (de.swiss_roll, dict(n=5, generator=GEN(), noise=0.5, dtype=torch.float32, device=None)),
    "swiss_roll_mixture": (swiss_roll_mixture, dict(components=20, noise=0.5)),
    "gaussian_grid_mixture": (de.gaussian_grid_mixture, {}),
    "gaussian_grid": (de.gaussian_grid, dict(n=5, generator=GEN(), dtype=torch.float32, device=None)),
    "ScoreMLP": (de.ScoreMLP, dict(dim=2, hidden=8, layers=2, init="flax")),
    "ScoreMLP.forward": (NET, dict(x=X.float(), t=torch.full((3,), 0.5))),
    "ScoreMLP.derivatives": (NET.derivatives, dict(x=X.float(), t=torch.full((3,), 0.5), order=2)),
    "paper_sde": (paper_sde, dict(schedule="simple")),
    "weight_path": (weight_path, dict(data="swiss_roll", schedule="simple")),
    "load_pretrained": (de.load_pretrained, dict(data="swiss_roll", schedule="simple", device=None)),
    "dsm_loss": (train.dsm_loss, dict(model=NET, x0=X.float(), sde=VP, t=torch.full((3,), 0.5), z=X.float(),
                                      reduction="mean")),
    "flow_path": (flow_path, {}),
    "load_flow": (load_flow, dict(data="swiss_roll", device=None)),
    "train_dsm": (_fresh_train, dict(model=de.ScoreMLP(dim=2, hidden=8, layers=2), data=X.float().repeat(4, 1), sde=VP, t_grid=None,
                                     steps=2, batch_size=4, lr=1e-3, generator=GEN(), progress=False, log_every=1)),
    "train_dsm_many": (lambda models, **kw: train.train_dsm_many(
                           [copy.deepcopy(m) for m in models] if isinstance(models, list) else models, **kw),
                       dict(models=[de.ScoreMLP(dim=2, hidden=8, layers=2)] * 2, data=[X.float().repeat(4, 1)] * 2,
                            sdes=[VP, VP], steps=2, batch_size=4, lr=1e-3, generators=[GEN(), GEN()], t_grid=10,
                            progress=False, log_every=1)),
    "flax_init_": (lambda layer: flax_init_(copy.deepcopy(layer)), dict(layer=torch.nn.Linear(3, 4))),
    "fm_loss": (train.fm_loss, dict(model=NET, x0=X.float(), path=LINEAR_PATH, t=torch.full((3,), 0.5), z=X.float(),
                                    reduction="mean")),
    "train_flow_matching": (lambda **kw: train.train_flow_matching(copy.deepcopy(kw.pop("model")), **kw),
                            dict(model=de.ScoreMLP(dim=2, hidden=8, layers=2), data=X.float().repeat(4, 1),
                                 path=LINEAR_PATH, steps=2, batch_size=4, lr=1e-3, generator=GEN(), progress=False,
                                 log_every=1)),
    # samplers
    "ancestral": (samplers.ancestral, dict(sde=VP, score=SCORE, x=X, ts=TS, generator=GEN())),
    "reverse_diffusion": (samplers.reverse_diffusion, dict(sde=VP, score=SCORE, x=X, ts=TS, generator=GEN(),
                                                            noise_last=True)),
    "langevin_corrector": (samplers.langevin_corrector, dict(sde=VP, score=SCORE, x=X, t=0.5, t_next=0.4,
                                                              generator=GEN(), snr=0.16, steps=1)),
    "pc": (samplers.pc, dict(sde=VP, score=SCORE, x=X, ts=TS, generator=GEN(), snr=0.16, corrector_steps=1)),
    "sample": (de.sample, dict(sde=VP, score=SCORE, n=3, hbar=1.0, steps=3, generator=GEN(), dim=2,
                               method="euler_maruyama", t_min=None, device=None, dtype=torch.float32,
                               return_path=False)),
    "w2_trial": (samplers.w2_trial, dict(model=NET, data="swiss_roll", hbar=1.0, trial=0, n=4, steps=3, shift=True)),
    # ode, likelihood
    "dopri5": (ode.dopri5, dict(rhs=lambda t, y: (-y[0],), t0=0.0, t1=1.0, y0=(X,), rtol=1e-4, atol=1e-4,
                                max_steps=1000, on_step=None, inactive=None, name="dopri5")),
    "pf_drift": (likelihood.pf_drift, dict(sde=VP, score=SCORE, x=X, t=0.5)),
    "log_likelihood": (likelihood.log_likelihood, dict(sde=VP, score=SCORE, x0=X, divergence="exact", rtol=1e-3,
                                                       atol=1e-3, t_min=None, T=None, box=5.0, prior_logp=None,
                                                       generator=None, max_steps=10_000)),
    # path integrals
    "onsager_machlup": (path_integral.onsager_machlup, dict(path=PATH, ts=PATH_TS, drift=OU_DRIFT, g=1.0,
                                                             rule="stratonovich", jacobian=True)),
    "path_log_prob": (path_integral.path_log_prob, dict(path=PATH, ts=PATH_TS, drift=OU_DRIFT, g=1.0, rule="ito",
                                                         log_p0=lambda x: -0.5 * (x**2).sum(1))),
    "reverse_action": (path_integral.reverse_action, dict(path=PATH, ts=PATH_TS, drift=OU_DRIFT, g=1.0,
                                                           score=lambda x, t: -x, rule="stratonovich")),
    "reverse_path_log_prob": (path_integral.reverse_path_log_prob,
                              dict(path=PATH, ts=PATH_TS, drift=OU_DRIFT, g=1.0, score=lambda x, t: -x,
                                   rule="reverse_ito", log_pT=lambda x: -0.5 * (x**2).sum(1))),
    "short_time_kernel": (path_integral.short_time_kernel, dict(x=torch.linspace(-1, 1, 5, dtype=torch.float64),
                                                                 t=0.0, eps=0.1, drift=OU_DRIFT, g=1.0,
                                                                 rule="stratonovich", jacobian=True)),
    # wkb
    "first_order_correction": (wkb.first_order_correction, dict(sde=VP, score=SCORE, x0=X[:2], method="exact",
                                                                 form="score", rtol=1e-3, atol=1e-3, box=5.0,
                                                                 prior_logp=None, max_steps=10_000)),
    "GaussianModel1D": (wkb.GaussianModel1D, dict(v0=0.5, eps=0.1, beta=2.0, T=3.0, t_min=0.0, prior_var=1.0)),
    "GaussianModel1D.variance": (GAUSS.variance, dict(hbar=0.5, steps=100, order=2)),
    "GaussianModel1D.curvature": (GAUSS.curvature, dict(x=X1)),
    "GaussianModel1D.nll_curvature": (GAUSS.nll_curvature, dict(steps=100)),
    "GaussianModel1D.nll_curve": (GAUSS.nll_curve, dict(hbars=[0.0, 0.5], steps=100)),
    "GaussianModel1D.variance_curve": (GAUSS.variance_curve, dict(hbars=[0.0, 0.5], steps=100)),
    "hbar_star": (wkb.hbar_star, dict(hbars=[0.0, 0.1, 0.2], exact=[1.0, 0.9, 0.85], approx=[1.0, 0.9, 0.8], frac=0.1)),
    "GaussianModel1D.log_q": (GAUSS.log_q, dict(x=X1, hbar=0.5)),
    "GaussianModel1D.nll_slope": (GAUSS.nll_slope, dict(steps=100)),
    "mixture_example": (wkb.mixture_example, dict(eps=0.05)),
    # flows
    "Interpolant": (lambda kind, T, t_min: (Interpolant.vp(de.Linear(0.1, 20.0), T=T, t_min=t_min) if kind == "vp"
                                            else Interpolant.linear(T=T, t_min=t_min)),
                    dict(kind="linear", T=0.9, t_min=0.0)),
    "Interpolant.coefficients": (LINEAR_PATH.coefficients, dict(t=0.5)),
    "Interpolant.sample": (LINEAR_PATH.sample, dict(x0=X, t=0.5, generator=GEN())),
    "Interpolant.velocity_from_score": (LINEAR_PATH.velocity_from_score, dict(score=X * 0.5, x=X, t=0.5)),
    "Interpolant.score_from_velocity": (LINEAR_PATH.score_from_velocity, dict(velocity=X * 0.5, x=X, t=0.5)),
    # bridges
    "gaussian_bridge": (bridges.gaussian_bridge, dict(m0=0.0, v0=0.5, m1=1.0, v1=0.3, eps=0.2)),
    "GaussianBridge": (lambda t: G_BRIDGE.var(t), dict(t=0.5)),
    "GaussianBridge.drift": (G_BRIDGE.drift, dict(x=X1[:, 0], t=0.5)),
    "GaussianBridge.sample": (G_BRIDGE.sample, dict(n=5, ts=[0.0, 0.5, 1.0], generator=GEN())),
    "GaussianBridge.conditional_mean": (G_BRIDGE.conditional_mean, dict(x0=X1[:, 0])),
    "sinkhorn_bridge": (bridges.sinkhorn_bridge, dict(p0=_p0(), p1=_p0(), grid=GRID, eps=0.5, tol=1e-8, max_iter=50)),
    "SinkhornBridge": (lambda t, x: S_BRIDGE.marginal(t, x), dict(t=0.5, x=X1[:, 0])),
    "SinkhornBridge.drift": (S_BRIDGE.drift, dict(x=X1[:, 0], t=0.5)),
    "monotone_map": (bridges.monotone_map, dict(p0=_p0(), p1=_p0(), grid=GRID)),
    "SinkhornBridge.sample": (S_BRIDGE.sample, dict(n=5, ts=[0.0, 0.5, 1.0], generator=GEN())),
    "brownian_bridge_paths": (bridges.brownian_bridge_paths, dict(x0=X1[:, 0], x1=X1[:, 0] + 1.0, ts=[0.0, 0.5, 1.0],
                                                                  eps=0.3, generator=GEN())),
    # langevin (Chapter 3)
    "ula": (langevin.ula, dict(score=lambda x: -x, x=X, step=0.1, n_steps=3, generator=GEN(), trace_every=None)),
    "annealed_langevin": (langevin.annealed_langevin, dict(score=lambda x, sigma: -x / (1 + sigma**2), x=X,
                                                           sigmas=[1.0, 0.5], step=0.05, n_steps_each=2, generator=GEN(),
                                                           trace_every=None)),
    "first_passage_times": (langevin.first_passage_times, dict(score=lambda x: torch.ones_like(x), x=X1, level=1.0,
                                                               step=0.1, max_steps=50, generator=GEN(), bridge=True)),
    "mean_first_passage_time": (langevin.mean_first_passage_time, dict(U=lambda x: x**2 / 2, a=-0.5, b=1.0, lower=None,
                                                                       points=401)),
}

#: arguments that are callables: a bad value for them is a callable returning garbage, too
NAN_TENSOR = torch.full((3, 2), float("nan"), dtype=torch.float64)


class UserBug(Exception):
    """What a user's own callable raises: it must reach the user unchanged, with a note naming the argument."""


def _raise(*args):
    raise UserBug("the user's callable failed")


def _bad_callables():
    return [lambda *a: None, lambda *a: "abc", lambda *a: NAN_TENSOR, lambda *a: torch.zeros(7, 5), _raise]


GENERIC_BAD = [None, "abc", float("nan"), float("inf"), -float("inf"), -1, 0, -1.5, 1e308, -1e308, 10**30, True,
               2.5, [], [1.0, float("nan")], (3, -2), torch.tensor(float("nan")), torch.zeros(0),
               torch.ones(3, dtype=torch.int64), torch.ones(2, 3, 4), NAN_TENSOR, torch.ones(3, 2) * 1e300,
               object(), torch.float16, torch.int64, "cuda" if not torch.cuda.is_available() else "nonsense"]

ALLOWED = (TypeError, ValueError)
#: documented errors beyond TypeError/ValueError: running out of steps (RuntimeError from dopri5, named), a
#: blow-up of the user's step (FloatingPointError), missing weights (FileNotFoundError)
DOCUMENTED = (RuntimeError, FloatingPointError, FileNotFoundError)


class _Hang(BaseException):
    pass


def _alarm(signum, frame):
    raise _Hang()


def _finite(value) -> bool:
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() or bool(torch.isfinite(value).all())
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, tuple):
        return all(_finite(v) for v in value)
    return True


#: a call that runs longer is a hang (a loop that never ends), not a slow case: the wall-clock limit has room for a
#: loaded 2-core CI machine, where first_order_correction(atol=1427) once took just over 10 s
HANG_SECONDS = 30


def _call(name, arg, bad):
    fn, kwargs = CALLS[name]
    kwargs = dict(kwargs)
    kwargs[arg] = bad
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_SECONDS)
    try:
        return fn(**kwargs)
    except _Hang:
        pytest.fail(f"{name}({arg}={bad!r}) ran for more than {HANG_SECONDS} s")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _names(name, arg):
    """Words an error about ``arg`` may use: the argument itself, and for a callable argument its call form."""
    return {arg, f"{arg}(", arg.rstrip("0123456789_")} - {""}


CASES = [(name, arg) for name, (_, kwargs) in CALLS.items() for arg in kwargs]
COUNT_ARGS = {"shape", "steps", "corrector_steps", "log_every", "layers", "hidden", "n", "cells", "components", "max_steps",
              "trial", "dim", "factor", "batch_size", "seed", "order",
              "n_steps", "n_steps_each", "points", "trace_every"}
CALLABLE_ARGS = {"score", "drift", "diffusion", "log_prob", "fn", "prior_logp", "log_p0", "log_pT", "rhs",
                 "on_step", "callback", "model", "g", "environ", "U"}


@st.composite
def bad_input(draw):
    name, arg = draw(st.sampled_from(CASES))
    pool = GENERIC_BAD + (_bad_callables() if arg in CALLABLE_ARGS else [])
    if arg in COUNT_ARGS:      # a count: only values that must be refused (a valid large count is just slow)
        numbers = st.one_of(st.integers(max_value=0), st.integers(min_value=10**13, max_value=10**40))
    else:
        numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                            st.integers(min_value=-(10**40), max_value=10**40))
    bad = draw(st.one_of(st.sampled_from(pool), numbers))
    return name, arg, bad


@settings(max_examples=1500, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate],     # no shrinking: a slow failing case would be re-run many times
          suppress_health_check=list(HealthCheck))
@given(bad_input())
def test_bad_input_is_refused_naming_the_argument(case):
    name, arg, bad = case
    try:
        out = _call(name, arg, bad)
    except UserBug as err:
        assert any(arg in note for note in getattr(err, "__notes__", ())), \
            f"{name}({arg}=...) let the user's own error through without saying it came from {arg!r}"
        return
    except ALLOWED as err:
        msg = str(err)
        assert any(w in msg for w in _names(name, arg)), \
            f"{name}({arg}={bad!r}) raised {type(err).__name__} without naming {arg!r}: {msg}"
        return
    except DOCUMENTED as err:
        assert arg in str(err) or type(err) is FileNotFoundError or "max_steps" in str(err), \
            f"{name}({arg}={bad!r}) raised {type(err).__name__}: {err}"
        return
    assert _finite(out), f"{name}({arg}={bad!r}) returned non-finite values without an error"


@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_valid_call_works(name):
    fn, kwargs = CALLS[name]
    out = fn(**dict(kwargs))
    assert _finite(out), name


def test_every_public_callable_has_a_valid_call():
    import importlib

    missing = []
    for mod_name in FUZZED_MODULES:
        mod = importlib.import_module(f"diffedu.{mod_name}")
        for n, obj in vars(mod).items():
            if n.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
                continue
            if not (inspect.isfunction(obj) or inspect.isclass(obj)) or n in NOT_CALLED:
                continue
            if n not in CALLS:
                missing.append(f"{mod_name}.{n}")
    assert not missing, f"public callables without a valid call in CALLS (add one): {missing}"
    assert set(de.MODULES) == set(FUZZED_MODULES) | set(NOT_FUZZED), "a new module must be fuzzed or exempted"
