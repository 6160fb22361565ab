"""Regression cases for the input contract of every public function of :mod:`diffedu`.

Contract: bad input raises ``TypeError`` (wrong kind of object) or ``ValueError`` (right kind,
wrong value) whose message names the argument (for a user callable: the callable's parameter,
``score``, ``drift``, ``prior_logp``, ...).  Never a silent wrong or non-finite answer, never an
exception leaking from inside torch / numpy / math (AttributeError, IndexError, RuntimeError,
ZeroDivisionError, OverflowError, "math domain error"), never a hang.

Each case is ``(fn, exceptions, names, also)``: ``fn()`` must raise one of ``exceptions`` whose
message names one of ``names`` (as a whole identifier) and contains every string of ``also``.  Every call runs under a
``signal.alarm`` limit (POSIX), so that a hang fails its case instead of blocking the run; the
absurd-size cases also run under an address-space limit, so that "allocate, then fail" shows as a
leaked RuntimeError/MemoryError instead of exhausting the machine.

API names that differ from the issue text (the real equivalents used here):

* ``prior_sample`` is the method ``SDE.prior_sample``; ``pf_drift`` is ``likelihood.pf_drift``;
  ``w2_trial`` is ``samplers.w2_trial``; ``dsm_loss`` is ``train.dsm_loss``.
* the prior log-densities are ``prior_logp`` (likelihood, wkb), ``log_p0`` (path_integral.path_log_prob)
  and ``log_pT`` (path_integral.reverse_path_log_prob).
* ``GaussianModel1D`` lives in ``diffedu.wkb``; ``negative_tolerance`` belongs to ``fokker_planck.solve``
  and ``fokker_planck.sampler_marginal``; ``jacobian`` to ``path_integral.onsager_machlup`` and
  ``path_integral.short_time_kernel``; the Fokker-Planck step limits are ``solve(max_step=, rate_factor=)``.
* the only public single-step sampler taking ``(t, t_next)`` is ``samplers.langevin_corrector``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import resource
import signal

import pytest
import torch

import diffedu as de
from diffedu import fokker_planck as fp
from diffedu import likelihood as lk
from diffedu import path_integral as pi
from diffedu import samplers as sm
from diffedu import stats, wkb
from diffedu.train import dsm_loss, train_dsm

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="the hang guard needs POSIX signal.alarm")

HANG_S = 20                 # a case still running after this many seconds is a hang
MEMORY_HEADROOM = 2**30  # bytes an absurd-size case may map before it counts as "allocated"

NAN, INF = float("nan"), float("inf")
TE, VE = TypeError, ValueError
EITHER = (TypeError, ValueError)
BLOWUP = (ValueError, FloatingPointError)   # where a blow-up may surface as FloatingPointError


# --- the guard and the checker ----------------------------------------------------------------
class Hang(BaseException):
    """Raised by the alarm: not an Exception, so that no ``except Exception`` swallows it."""


@contextlib.contextmanager
def time_limit(seconds: int = HANG_S):
    def on_alarm(signum, frame):
        raise Hang(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _vm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def memory_limit(headroom: int = MEMORY_HEADROOM):
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    vm = _vm_bytes()
    if not vm:                       # no /proc: run without the address-space guard
        yield
        return
    limit = vm + headroom if hard == resource.RLIM_INFINITY else min(vm + headroom, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def describe(out) -> str:
    if isinstance(out, torch.Tensor):
        finite = bool(torch.isfinite(out).all()) if out.is_floating_point() else True
        return f"tensor shape {tuple(out.shape)} dtype {out.dtype} all-finite={finite}"
    if dataclasses.is_dataclass(out):
        return f"{type(out).__name__}(" + ", ".join(
            f"{f.name}={describe(getattr(out, f.name))}" for f in dataclasses.fields(out)
            if isinstance(getattr(out, f.name), torch.Tensor)) + ")"
    if isinstance(out, (tuple, list)):
        return f"{type(out).__name__} of " + ", ".join(describe(v) for v in out[:4])
    text = repr(out)
    return text if len(text) < 120 else text[:117] + "..."


#: messages that come from inside torch / math, not from a check of diffedu (a leak even when they
#: happen to contain the argument's name, as torch's "got (..., dtype=str)" does)
LEAK_MARKERS = ("received an invalid combination of arguments", "math domain error")


def names_in(msg: str, names) -> bool:
    """Whether one of ``names`` occurs in ``msg`` as a whole identifier ("t" must not match "data type")."""
    return any(re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", msg) for n in names)


def expect_error(fn, exc_types, *names, also=(), memory=False):
    """Call ``fn``; it must raise one of ``exc_types`` naming one of ``names`` (as a whole identifier)
    and containing every string of ``also`` (plain substrings)."""
    guard = memory_limit() if memory else contextlib.nullcontext()
    out = None
    try:
        with time_limit(), guard:
            out = fn()
    except Hang as err:
        pytest.fail(f"hang: {err}")
    except exc_types as err:
        msg = str(err)
        leak = [m for m in LEAK_MARKERS if m in msg]
        assert not leak, f"leaked {type(err).__name__} from inside torch/math: {msg}"
        assert not names or names_in(msg, names), \
            f"{type(err).__name__} names none of {names}: {msg}"
        missing = [a for a in also if a not in msg]
        assert not missing, f"{type(err).__name__} does not mention {missing}: {msg}"
        return err
    except Exception as err:  # noqa: BLE001 - a leak from inside torch/numpy/math is the failure
        pytest.fail(f"leaked {type(err).__name__}: {err}")
    pytest.fail(f"silent: returned {describe(out)}")


def case(id_, fn, exc=VE, names=(), also=()):
    if isinstance(names, str):
        names = (names,)
    return pytest.param(fn, exc, tuple(names), tuple(also), id=id_)


# --- shared tiny inputs -----------------------------------------------------------------------
def gen():
    return de.make_generator(0)


VP = de.VPSDE(de.Linear(0.1, 20.0), t_min=1e-3)
VES = de.VESDE(0.01, 10.0)
BM = de.BrownianMotion()
OU = de.OrnsteinUhlenbeck()
MIX = de.GaussianMixture([1.0], [[0.0, 0.0]], [1.0])
X = torch.zeros(4, 2)
X64 = torch.zeros(4, 2, dtype=torch.float64)
X1 = torch.linspace(-1.0, 1.0, 3, dtype=torch.float64)[:, None]     # (3, 1) points for likelihoods
TS = [1.0, 0.5, 0.1]
EM_TS = [0.0, 0.05, 0.1]
T4 = torch.full((4,), 0.5, dtype=torch.float64)
Z = torch.ones(4, 2)
LL = dict(rtol=1e-3, atol=1e-3)
PATH = torch.randn(5, 3, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
PTS = torch.linspace(0.0, 1.0, 5, dtype=torch.float64)
XG = torch.linspace(-2.0, 2.0, 9, dtype=torch.float64)
GRID = fp.Grid(-4.0, 4.0, 16)
P0 = GRID.density(lambda x: -0.5 * (x**2).sum(1))
de.manual_seed(0)
M2 = de.ScoreMLP(2, hidden=8, layers=1)


def score(x, t):
    return -x


def nan_score(x, t):
    return torch.full_like(x, NAN)


def inf_score(x, t):
    return torch.full_like(x, INF)


def nodiff_score(x, t):       # right values, but computed outside autograd: no graph back to x
    return torch.as_tensor(-x.detach().cpu().numpy())


def zero_score(x, t):
    return torch.zeros_like(x)


def one_arg(x):               # wrong signature: (x) where (x, t) is expected
    return -x


def drift(x, t):
    return -x


def column(x, t):             # returns (m, 1) for x of shape (m, 2)
    return -x[:, :1]


def nan_drift(x, t):
    return torch.full_like(x, NAN)


def data64():
    return de.randn((64, 2), generator=gen())


def tiny_train(**kw):
    de.manual_seed(0)
    model = de.ScoreMLP(2, hidden=8, layers=1)
    args = dict(model=model, data=data64(), sde=de.paper_sde("simple"), steps=5, batch_size=32,
                lr=1e-3, generator=gen(), progress=False)
    args.update(kw)
    return train_dsm(**args)


def pretrained():
    return de.load_pretrained("swiss_roll", "simple")


def model_d3():
    m = de.ScoreMLP(3, hidden=8, layers=1)
    m.sde = de.paper_sde("simple")
    return m


# --- 1. silent wrong answers: a score that is not differentiable in x ---------------------------
SILENT_GRAPH = [
    case("log_likelihood-nodiff-score-VP", lambda: lk.log_likelihood(VP, nodiff_score, X1, **LL),
         VE, "score", also=("differentiable",)),
    case("log_likelihood-nodiff-score-BM", lambda: lk.log_likelihood(BM, nodiff_score, X1, **LL),
         VE, "score", also=("differentiable",)),
    case("first_order_correction-nodiff-score-VP",
         lambda: wkb.first_order_correction(VP, nodiff_score, X1, **LL), VE, "score", also=("differentiable",)),
]


@pytest.mark.parametrize("fn, exc, names, also", SILENT_GRAPH)
def test_silent_nondifferentiable_score(fn, exc, names, also):
    expect_error(fn, exc, *names, also=also)


# the one valid input of this group: a score that does not depend on x has divergence 0
def test_log_likelihood_x_independent_score_is_valid():
    out = None
    with time_limit():
        out = lk.log_likelihood(BM, zero_score, X1, **LL)
    assert out.logp.shape == (3,)
    assert bool(torch.isfinite(out.logp).all())
    # pf drift 0 under Brownian motion: x_T = x0, so log q = log pi(x0)
    assert torch.allclose(out.logp, BM.prior_logp(X1), atol=1e-6)


# --- 1. silent wrong answers: shapes (n, 1) instead of (n,); (m, 1) drifts; x of shape (n,) ----
def _col_prior(sde):
    return lambda x: sde.prior_logp(x)[:, None]


def _col_logp(x):
    return torch.zeros(x.shape[0], 1, dtype=x.dtype)


SILENT_SHAPE = [
    case("log_likelihood-prior_logp-(n,1)",
         lambda: lk.log_likelihood(VP, score, X1, prior_logp=_col_prior(VP), **LL), VE, "prior_logp"),
    case("first_order_correction-prior_logp-(n,1)",
         lambda: wkb.first_order_correction(VP, score, X1, prior_logp=_col_prior(VP), **LL), VE, "prior_logp"),
    case("path_log_prob-log_p0-(n,1)", lambda: pi.path_log_prob(PATH, PTS, drift, 1.0, log_p0=_col_logp),
         VE, "log_p0"),
    case("reverse_path_log_prob-log_pT-(n,1)",
         lambda: pi.reverse_path_log_prob(PATH, PTS, drift, 1.0, score, log_pT=_col_logp), VE, "log_pT"),
    case("onsager_machlup-ito-drift-(m,1)", lambda: pi.onsager_machlup(PATH, PTS, column, 1.0, "ito"), VE, "drift"),
    case("path_log_prob-drift-(m,1)", lambda: pi.path_log_prob(PATH, PTS, column, 1.0), VE, "drift"),
    case("reverse_action-drift-(m,1)", lambda: pi.reverse_action(PATH, PTS, column, 1.0, score), VE, "drift"),
    case("reverse_action-score-(m,1)", lambda: pi.reverse_action(PATH, PTS, drift, 1.0, column), VE, "score"),
    case("reverse_action-strat-score-(m,1)",
         lambda: pi.reverse_action(PATH, PTS, drift, 1.0, column, "stratonovich"), VE, "score"),
    case("ancestral-x-(n,)", lambda: sm.ancestral(VP, score, torch.zeros(4), TS, gen()), VE, "x"),
    case("reverse_diffusion-x-(n,)", lambda: sm.reverse_diffusion(VP, score, torch.zeros(4), TS, gen()), VE, "x"),
    case("pc-x-(n,)", lambda: sm.pc(VP, score, torch.zeros(4), TS, gen()), VE, "x"),
    case("langevin_corrector-x-(n,)",
         lambda: sm.langevin_corrector(VP, score, torch.zeros(4), 0.5, 0.4, gen()), VE, "x"),
    case("pf_drift-x-(n,)", lambda: lk.pf_drift(VP, score, torch.zeros(4, dtype=torch.float64), 0.5), VE, "x"),
]


@pytest.mark.parametrize("fn, exc, names, also", SILENT_SHAPE)
def test_silent_shape(fn, exc, names, also):
    expect_error(fn, exc, *names, also=also)


# --- 1. silent wrong answers: integer / bool / string dtypes -----------------------------------
def _dtype_cases():
    out = []
    for label, dt in (("int64", torch.int64), ("bool", torch.bool), ("str", "float32")):
        fns = {
            "randn": lambda dt=dt: de.randn((3, 2), generator=gen(), dtype=dt),
            "prior_sample": lambda dt=dt: VP.prior_sample(3, 2, gen(), dtype=dt),
            "sample": lambda dt=dt: de.sample(VP, score, 3, 1.0, 2, gen(), dtype=dt),
            "GaussianMixture.sample": lambda dt=dt: MIX.sample(3, gen(), dtype=dt),
            "swiss_roll": lambda dt=dt: de.swiss_roll(3, gen(), dtype=dt),
            "gaussian_grid": lambda dt=dt: de.gaussian_grid(3, gen(), dtype=dt),
            "time_grid": lambda dt=dt: de.time_grid(0.0, 1.0, 4, dtype=dt),
            "brownian_increments": lambda dt=dt: de.brownian_increments([0.0, 0.5, 1.0], 3, 2, gen(), dtype=dt),
            "brownian_increments_dz": lambda dt=dt: de.brownian_increments_dz([0.0, 0.5, 1.0], 3, gen(), dtype=dt),
            "Grid": lambda dt=dt: fp.Grid(0.0, 1.0, 8, dtype=dt),
        }
        out += [case(f"{name}-dtype-{label}", fn, EITHER, "dtype") for name, fn in fns.items()]
    return out


@pytest.mark.parametrize("fn, exc, names, also", _dtype_cases())
def test_dtype_refused(fn, exc, names, also):
    expect_error(fn, exc, *names, also=also)


# --- 1. silent wrong answers: options (misspelt / inapplicable keywords, ranges, truthy strings) -
def _sample(**kw):
    args = dict(n=3, hbar=1.0, steps=2, generator=gen())
    args.update(kw)
    return de.sample(VP, score, **args)


def _fp(**kw):
    return fp.solve(OU, P0, GRID, [0.0, 0.1], **kw)


OPTIONS = [
    case("sample-em-misspelt-snrr", lambda: _sample(snrr=0.1), TE, "snrr"),
    case("sample-ancestral-misspelt-snrr", lambda: _sample(method="ancestral", snrr=0.1), TE, "snrr"),
    case("sample-pc-misspelt-snrr", lambda: _sample(method="pc", snrr=0.1), TE, "snrr"),
    # a pc option given to a method that ignores it is as silent as a misspelt one
    case("sample-em-snr-ignored", lambda: _sample(snr=0.1), EITHER, "snr"),
    case("sample-pc-snr-negative", lambda: _sample(method="pc", snr=-0.1), VE, "snr"),
    case("pc-snr-negative", lambda: sm.pc(VP, score, X, TS, gen(), snr=-0.1), VE, "snr"),
    case("langevin_corrector-snr-negative",
         lambda: sm.langevin_corrector(VP, score, X, 0.5, 0.4, gen(), snr=-0.1), VE, "snr"),
    case("sample-pc-corrector_steps-negative", lambda: _sample(method="pc", corrector_steps=-1), VE, "corrector_steps"),
    case("pc-corrector_steps-negative", lambda: sm.pc(VP, score, X, TS, gen(), corrector_steps=-1),
         VE, "corrector_steps"),
    case("langevin_corrector-steps-negative",
         lambda: sm.langevin_corrector(VP, score, X, 0.5, 0.4, gen(), steps=-1), VE, "steps"),
    case("sample-steps-negative", lambda: _sample(steps=-1), VE, "steps"),
    case("langevin_corrector-t_next-after-t",
         lambda: sm.langevin_corrector(VP, score, X, 0.4, 0.5, gen()), VE, "t_next"),
    case("ancestral-ts-increasing", lambda: sm.ancestral(VP, score, X, [0.1, 0.5, 1.0], gen()), VE, "ts"),
    case("reverse_diffusion-ts-increasing",
         lambda: sm.reverse_diffusion(VP, score, X, [0.1, 0.5, 1.0], gen()), VE, "ts"),
    case("pc-ts-increasing", lambda: sm.pc(VP, score, X, [0.1, 0.5, 1.0], gen()), VE, "ts"),
    case("ancestral-VE-ts-increasing", lambda: sm.ancestral(VES, score, X, [0.1, 0.5, 1.0], gen()), VE, "ts"),
    case("ancestral-ts-not-monotone", lambda: sm.ancestral(VP, score, X, [1.0, 0.2, 0.5], gen()), VE, "ts"),
    case("ancestral-ts-single", lambda: sm.ancestral(VP, score, X, [1.0], gen()), VE, "ts"),
    case("reverse_diffusion-ts-single", lambda: sm.reverse_diffusion(VP, score, X, [1.0], gen()), VE, "ts"),
    case("pc-ts-single", lambda: sm.pc(VP, score, X, [1.0], gen()), VE, "ts"),
    case("ancestral-ts-beyond-T", lambda: sm.ancestral(VP, score, X, [2.0, 0.5], gen()), VE, "ts"),
    case("pf_drift-t-beyond-T", lambda: lk.pf_drift(VP, score, X64, 2.0), VE, "t"),
    case("pf_drift-BM-t-beyond-T", lambda: lk.pf_drift(BM, score, X64, 2.0), VE, "t"),
    case("GaussianMixture.marginal-n-0", lambda: MIX.marginal(0.5, VP, n=0), VE, "n"),
    case("GaussianMixture.marginal-n-negative", lambda: MIX.marginal(0.5, VP, n=-1), VE, "n"),
    case("solve-negative_tolerance-nan", lambda: _fp(negative_tolerance=NAN), VE, "negative_tolerance"),
    case("solve-negative_tolerance-negative", lambda: _fp(negative_tolerance=-1.0), VE, "negative_tolerance"),
    case("solve-negative_tolerance-str", lambda: _fp(negative_tolerance="a"), TE, "negative_tolerance"),
    case("sampler_marginal-negative_tolerance-nan",
         lambda: fp.sampler_marginal(VP, score, 1.0, fp.Grid(-4.0, 4.0, 16), negative_tolerance=NAN),
         VE, "negative_tolerance"),
    case("onsager_machlup-jacobian-str",
         lambda: pi.onsager_machlup(PATH, PTS, drift, 1.0, "stratonovich", jacobian="no"), TE, "jacobian"),
    case("short_time_kernel-jacobian-str",
         lambda: pi.short_time_kernel(XG, 0.0, 0.1, drift, 1.0, "stratonovich", jacobian="no"), TE, "jacobian"),
    case("euler_maruyama-return_path-str",
         lambda: de.euler_maruyama(OU, X, EM_TS, generator=gen(), return_path="no"), TE, "return_path"),
    case("sample-return_path-str", lambda: _sample(return_path="no"), TE, "return_path"),
    case("reverse_diffusion-noise_last-str",
         lambda: sm.reverse_diffusion(VP, score, X, TS, gen(), noise_last="no"), TE, "noise_last"),
    case("train_dsm-progress-str", lambda: tiny_train(steps=1, progress="no"), TE, "progress"),
]


@pytest.mark.parametrize("fn, exc, names, also", OPTIONS)
def test_options(fn, exc, names, also):
    expect_error(fn, exc, *names, also=also)


# --- 1. non-finite input: NaN / inf in x, t, ts and constructor parameters ----------------------
def _bad(value, shape=(4, 2), dtype=torch.float32):
    x = torch.zeros(shape, dtype=dtype)
    x[0, 0] = value
    return x


NONFINITE_INPUT = []
for _label, _v in (("nan", NAN), ("inf", INF)):
    NONFINITE_INPUT += [
        case(f"ancestral-x-{_label}", lambda v=_v: sm.ancestral(VP, score, _bad(v), TS, gen()), VE, "x"),
        case(f"reverse_diffusion-x-{_label}", lambda v=_v: sm.reverse_diffusion(VP, score, _bad(v), TS, gen()),
             VE, "x"),
        case(f"pc-x-{_label}", lambda v=_v: sm.pc(VP, score, _bad(v), TS, gen()), VE, "x"),
        case(f"langevin_corrector-x-{_label}",
             lambda v=_v: sm.langevin_corrector(VP, score, _bad(v), 0.5, 0.4, gen()), VE, "x"),
        case(f"pf_drift-x-{_label}", lambda v=_v: lk.pf_drift(VP, score, _bad(v, dtype=torch.float64), 0.5), VE, "x"),
        case(f"dsm_loss-x0-{_label}", lambda v=_v: dsm_loss(M2, _bad(v), VP, T4, Z), VE, "x0"),
        case(f"dsm_loss-z-{_label}", lambda v=_v: dsm_loss(M2, X, VP, T4, _bad(v)), VE, "z"),
        case(f"euler_maruyama-x0-{_label}", lambda v=_v: de.euler_maruyama(OU, _bad(v), EM_TS, generator=gen()),
             VE, "x0"),
        case(f"pf_drift-BM-t-{_label}", lambda v=_v: lk.pf_drift(BM, score, X64, v), VE, "t"),
        case(f"short_time_kernel-t-{_label}", lambda v=_v: pi.short_time_kernel(XG, v, 0.1, drift, 1.0), VE, "t"),
        case(f"langevin_corrector-t_next-{_label}",
             lambda v=_v: sm.langevin_corrector(VP, score, X, 0.5, v, gen()), VE, "t_next"),
        case(f"ancestral-ts-{_label}", lambda v=_v: sm.ancestral(VP, score, X, [1.0, v, 0.1], gen()), VE, "ts"),
        case(f"reverse_diffusion-ts-{_label}",
             lambda v=_v: sm.reverse_diffusion(VP, score, X, [1.0, v, 0.1], gen()), VE, "ts"),
        case(f"pc-ts-{_label}", lambda v=_v: sm.pc(VP, score, X, [1.0, v, 0.1], gen()), VE, "ts"),
        case(f"brownian_increments-ts-{_label}",
             lambda v=_v: de.brownian_increments([0.0, 0.5, v], 3, 2, gen()), VE, "ts"),
        case(f"euler_maruyama-ts-{_label}", lambda v=_v: de.euler_maruyama(OU, X, [0.0, v], generator=gen()),
             VE, "ts"),
        case(f"srk15-x0-{_label}", lambda v=_v: de.srk15(OU, _bad(v, shape=(4, 1)), EM_TS, generator=gen()), VE, "x0"),
        case(f"srk15-ts-{_label}", lambda v=_v: de.srk15(OU, X1, [0.0, v], generator=gen()), VE, "ts"),
        case(f"brownian_increments_dz-ts-{_label}",
             lambda v=_v: de.brownian_increments_dz([0.0, 0.5, v], 3, gen()), VE, "ts"),
        case(f"onsager_machlup-ts-{_label}",
             lambda v=_v: pi.onsager_machlup(PATH, [0.0, 0.25, 0.5, 0.75, v], drift, 1.0), VE, "ts"),
        case(f"BrownianMotion-D-{_label}", lambda v=_v: de.BrownianMotion(D=v), VE, "D"),
        case(f"OrnsteinUhlenbeck-theta-{_label}", lambda v=_v: de.OrnsteinUhlenbeck(theta=v), VE, "theta"),
        case(f"VESDE-sigma_max-{_label}", lambda v=_v: de.VESDE(0.01, v), VE, "sigma_max"),
        case(f"Linear-beta_max-{_label}", lambda v=_v: de.Linear(0.1, v), VE, "beta_max"),
        case(f"GaussianMixture-means-{_label}", lambda v=_v: de.GaussianMixture([1.0], [[v, 0.0]], [1.0]),
             VE, "means"),
        case(f"Grid-hi-{_label}", lambda v=_v: fp.Grid(0.0, v, 8), VE, "hi"),
        case(f"GaussianModel1D-v0-{_label}", lambda v=_v: wkb.GaussianModel1D(v0=v), VE, "v0"),
    ]


@pytest.mark.parametrize("fn, exc, names, also", NONFINITE_INPUT)
def test_nonfinite_input(fn, exc, names, also):
    expect_error(fn, exc, *names, also=also)


# --- 1. non-finite output of a user callable: the error names the callable ----------------------
def _nan_logp(x):
    return torch.full((x.shape[0],), NAN, dtype=x.dtype)


def _inf_logp(x):
    return torch.full((x.shape[0],), INF, dtype=x.dtype)


NONFINITE_CALLABLE = [
    case("sample-em-score-nan", lambda: de.sample(VP, nan_score, 3, 1.0, 2, gen()), BLOWUP, "score"),
    case("sample-heun-score-inf", lambda: de.sample(VP, inf_score, 3, 1.0, 2, gen(), method="heun"),
         BLOWUP, "score"),
    case("sample-ancestral-score-nan", lambda: de.sample(VP, nan_score, 3, 1.0, 2, gen(), method="ancestral"),
         BLOWUP, "score"),
    case("sample-reverse_diffusion-score-nan",
         lambda: de.sample(VP, nan_score, 3, 1.0, 2, gen(), method="reverse_diffusion"), BLOWUP, "score"),
    case("sample-pc-score-nan", lambda: de.sample(VP, nan_score, 3, 1.0, 2, gen(), method="pc"), BLOWUP, "score"),
    case("euler_maruyama-reverse-score-nan",
         lambda: de.euler_maruyama(VP.reverse(nan_score), X, TS, generator=gen()), BLOWUP, "score"),
    case("euler_maruyama-AdditiveSDE-drift-nan",
         lambda: de.euler_maruyama(de.AdditiveSDE(nan_drift, lambda t: 1.0), X, EM_TS, generator=gen()),
         BLOWUP, "drift"),
    case("euler_maruyama-ItoSDE-diffusion-nan",
         lambda: de.euler_maruyama(de.ItoSDE(drift, nan_drift), X, EM_TS, generator=gen()), BLOWUP, "diffusion"),
    case("euler_maruyama-dw-nan",
         lambda: de.euler_maruyama(OU, X, EM_TS, dw=torch.full((2, 4, 2), NAN)), BLOWUP, "dw"),
    case("heun-dw-inf", lambda: de.heun(OU, X, EM_TS, dw=torch.full((2, 4, 2), INF)), BLOWUP, "dw"),
    case("srk15-dz-nan", lambda: de.srk15(OU, X1, EM_TS, dw=torch.zeros(2, 3, 1), dz=torch.full((2, 3, 1), NAN)),
         BLOWUP, "dz"),
    case("coarsen_dz-dz-inf", lambda: de.coarsen_dz(torch.zeros(2, 3, 1), torch.full((2, 3, 1), INF), 2, EM_TS),
         VE, "dz"),
    case("log_likelihood-score-nan", lambda: lk.log_likelihood(VP, nan_score, X1, **LL), BLOWUP, "score"),
    case("log_likelihood-prior_logp-nan", lambda: lk.log_likelihood(VP, score, X1, prior_logp=_nan_logp, **LL),
         BLOWUP, "prior_logp"),
    case("first_order_correction-score-nan", lambda: wkb.first_order_correction(VP, nan_score, X1, **LL),
         BLOWUP, "score"),
    case("onsager_machlup-drift-nan", lambda: pi.onsager_machlup(PATH, PTS, nan_drift, 1.0), BLOWUP, "drift"),
    case("reverse_action-score-nan", lambda: pi.reverse_action(PATH, PTS, drift, 1.0, nan_score), BLOWUP, "score"),
    case("path_log_prob-log_p0-inf", lambda: pi.path_log_prob(PATH, PTS, drift, 1.0, log_p0=_inf_logp),
         BLOWUP, "log_p0"),
    case("reverse_path_log_prob-log_pT-nan",
         lambda: pi.reverse_path_log_prob(PATH, PTS, drift, 1.0, score, log_pT=_nan_logp), BLOWUP, "log_pT"),
    case("solve-AdditiveSDE-drift-nan",
         lambda: fp.solve(de.AdditiveSDE(nan_drift, lambda t: 1.0), P0, GRID, [0.0, 0.1]), BLOWUP, "drift"),
]


@pytest.mark.parametrize("fn, exc, names, also", NONFINITE_CALLABLE)
def test_nonfinite_callable_output(fn, exc, names, also):
    expect_error(fn, exc, *names, also=also)


# --- 1. extreme finite parameters whose derived quantities overflow ----------------------------
OVERFLOW = [
    case("BrownianMotion-D-1e308", lambda: de.BrownianMotion(D=1e308), VE, "D"),
    case("VESDE-sigma_min-1e-320", lambda: de.VESDE(sigma_min=1e-320), VE, "sigma_min"),
    case("OrnsteinUhlenbeck-theta-1e-320", lambda: de.OrnsteinUhlenbeck(theta=1e-320), VE, "theta"),
    case("GaussianMixture-stds-1e-300", lambda: de.GaussianMixture([1.0], [[0.0]], [1e-300]), VE, "stds"),
    case("train_dsm-lr-1e30", lambda: tiny_train(lr=1e30), BLOWUP, "lr"),
]


@pytest.mark.parametrize("fn, exc, names, also", OVERFLOW)
def test_overflowing_parameters(fn, exc, names, also):
    expect_error(fn, exc, *names, also=also)


# --- 2. hangs: step limits that ask for ~1e9 steps must be refused up front --------------------
HANGS = [
    case("solve-max_step-1e-9", lambda: _fp(max_step=1e-9), VE, "max_step"),
    case("solve-rate_factor-1e-9", lambda: _fp(rate_factor=1e-9), VE, "rate_factor"),
    case("GaussianModel1D.variance-steps-1e9", lambda: wkb.GaussianModel1D().variance(0.0, steps=10**9), VE, "steps"),
]


@pytest.mark.parametrize("fn, exc, names, also", HANGS)
def test_no_hang(fn, exc, names, also):
    expect_error(fn, exc, *names, also=also)


# --- 3. leaks: wrong types and mismatched sizes in the samplers, pf_drift, dsm_loss, w2_trial ----
def _sampler_leaks():
    out = []
    runners = {
        "ancestral": lambda sde=VP, sc=score, x=X, ts=TS: sm.ancestral(sde, sc, x, ts, gen()),
        "reverse_diffusion": lambda sde=VP, sc=score, x=X, ts=TS: sm.reverse_diffusion(sde, sc, x, ts, gen()),
        "pc": lambda sde=VP, sc=score, x=X, ts=TS: sm.pc(sde, sc, x, ts, gen()),
    }
    for name, run in runners.items():
        out += [
            case(f"{name}-sde-str", lambda run=run: run(sde="abc"), EITHER, "sde"),
            case(f"{name}-sde-None", lambda run=run: run(sde=None), EITHER, "sde"),
            case(f"{name}-score-str", lambda run=run: run(sc="abc"), EITHER, "score"),
            case(f"{name}-score-None", lambda run=run: run(sc=None), EITHER, "score"),
            case(f"{name}-x-str", lambda run=run: run(x="abc"), EITHER, "x"),
            case(f"{name}-x-None", lambda run=run: run(x=None), EITHER, "x"),
            case(f"{name}-ts-str", lambda run=run: run(ts="abc"), EITHER, "ts"),
            case(f"{name}-ts-None", lambda run=run: run(ts=None), EITHER, "ts"),
            case(f"{name}-ts-2d", lambda run=run: run(ts=torch.tensor([[1.0, 0.5], [0.4, 0.1]])), EITHER, "ts"),
            case(f"{name}-score-wrong-shape", lambda run=run: run(sc=lambda x, t: torch.zeros(x.shape[0], 3)),
                 VE, "score"),
        ]
    lc = lambda sde=VP, sc=score, x=X, t=0.5, t_next=0.4: sm.langevin_corrector(sde, sc, x, t, t_next, gen())
    out += [
        case("langevin_corrector-sde-str", lambda: lc(sde="abc"), EITHER, "sde"),
        case("langevin_corrector-score-None", lambda: lc(sc=None), EITHER, "score"),
        case("langevin_corrector-x-str", lambda: lc(x="abc"), EITHER, "x"),
        case("langevin_corrector-t-str", lambda: lc(t="a"), EITHER, "t"),
        case("langevin_corrector-t_next-None", lambda: lc(t_next=None), EITHER, "t_next"),
        case("langevin_corrector-score-wrong-shape", lambda: lc(sc=lambda x, t: torch.zeros(x.shape[0], 3)),
             VE, "score"),
    ]
    return out


def _other_leaks():
    pf = lambda sde=VP, sc=score, x=X64, t=0.5: lk.pf_drift(sde, sc, x, t)
    dl = lambda model=M2, x0=X, sde=VP, t=T4, z=Z: dsm_loss(model, x0, sde, t, z)
    return [
        case("pf_drift-sde-str", lambda: pf(sde="abc"), EITHER, "sde"),
        case("pf_drift-score-str", lambda: pf(sc="abc"), EITHER, "score"),
        case("pf_drift-x-str", lambda: pf(x="abc"), EITHER, "x"),
        case("pf_drift-x-None", lambda: pf(x=None), EITHER, "x"),
        case("pf_drift-t-str", lambda: pf(t="a"), EITHER, "t"),
        case("pf_drift-t-None", lambda: pf(t=None), EITHER, "t"),
        case("pf_drift-score-wrong-shape", lambda: pf(sc=lambda x, t: torch.zeros(x.shape[0], 3)), VE, "score"),
        case("dsm_loss-model-str", lambda: dl(model="abc"), EITHER, "model"),
        case("dsm_loss-model-None", lambda: dl(model=None), EITHER, "model"),
        case("dsm_loss-x0-str", lambda: dl(x0="abc"), EITHER, "x0"),
        case("dsm_loss-x0-None", lambda: dl(x0=None), EITHER, "x0"),
        case("dsm_loss-sde-str", lambda: dl(sde="abc"), EITHER, "sde"),
        case("dsm_loss-sde-None", lambda: dl(sde=None), EITHER, "sde"),
        case("dsm_loss-t-None", lambda: dl(t=None), EITHER, "t"),
        case("dsm_loss-t-float", lambda: dl(t=0.5), EITHER, "t"),
        case("dsm_loss-t-str", lambda: dl(t="a"), EITHER, "t"),
        case("dsm_loss-z-None", lambda: dl(z=None), EITHER, "z"),
        case("dsm_loss-z-wrong-shape", lambda: dl(z=torch.ones(4, 3)), VE, "z"),
        case("dsm_loss-t-wrong-length", lambda: dl(t=torch.full((3,), 0.5, dtype=torch.float64)), VE, "t"),
        case("dsm_loss-t-zero", lambda: dl(t=torch.zeros(4, dtype=torch.float64)), VE, "t"),
        case("swiss_roll-noise-overflows-float32", lambda: de.swiss_roll(3, gen(), noise=1.5e90), VE, "noise"),
        case("w2_trial-model-str", lambda: sm.w2_trial("abc", "swiss_roll", 1.0, 0, n=2, steps=2), EITHER, "model"),
        case("w2_trial-model-None", lambda: sm.w2_trial(None, "swiss_roll", 1.0, 0, n=2, steps=2), EITHER, "model"),
        case("w2_trial-model-without-sde", lambda: sm.w2_trial(de.ScoreMLP(2), "swiss_roll", 1.0, 0, n=2, steps=2),
             EITHER, ("model", "sde")),
        case("w2_trial-data-None", lambda: sm.w2_trial(pretrained(), None, 1.0, 0, n=2, steps=2), EITHER, "data"),
        case("w2_trial-hbar-str", lambda: sm.w2_trial(pretrained(), "swiss_roll", "a", 0, n=2, steps=2),
             EITHER, "hbar"),
        case("w2_trial-steps-negative", lambda: sm.w2_trial(pretrained(), "swiss_roll", 1.0, 0, n=2, steps=-1),
             VE, "steps"),
        case("short_time_kernel-drift-wrong-shape",
             lambda: pi.short_time_kernel(XG, 0.0, 0.1, lambda x, t: torch.cat([x, x], 1), 1.0), VE, "drift"),
    ]


@pytest.mark.parametrize("fn, exc, names, also", _sampler_leaks() + _other_leaks())
def test_leak_samplers(fn, exc, names, also):
    expect_error(fn, exc, *names, also=also)


# --- 3. leaks: stats with strings, None, empty, mismatched or non-finite input ------------------
E = torch.zeros(0, 2, dtype=torch.float64)
A = torch.randn(5, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
STATS = [
    case("convergence_order-steps-str", lambda: stats.convergence_order("ab", [1.0, 2.0]), EITHER, "steps"),
    case("convergence_order-steps-None", lambda: stats.convergence_order(None, [1.0, 2.0]), EITHER, "steps"),
    case("convergence_order-errors-str", lambda: stats.convergence_order([0.1, 0.2], "ab"), EITHER, "errors"),
    case("convergence_order-errors-None", lambda: stats.convergence_order([0.1, 0.2], None), EITHER, "errors"),
    case("convergence_order-empty", lambda: stats.convergence_order([], []), VE, ("steps", "errors")),
    case("convergence_order-mismatch", lambda: stats.convergence_order([0.1, 0.2, 0.4], [1.0, 2.0]),
         VE, ("steps", "errors")),
    case("convergence_order-steps-nan", lambda: stats.convergence_order([NAN, 0.1], [1.0, 2.0]), VE, "steps"),
    case("convergence_order-steps-inf", lambda: stats.convergence_order([INF, 0.1], [1.0, 2.0]), VE, "steps"),
    case("convergence_order-errors-nan", lambda: stats.convergence_order([0.1, 0.2], [NAN, 2.0]), VE, "errors"),
    case("convergence_order-steps-all-equal", lambda: stats.convergence_order([0.1, 0.1], [1.0, 2.0]), VE, "steps"),
    case("z_score-estimate-str", lambda: stats.z_score("a", 1.0, 1.0), EITHER, "estimate"),
    case("z_score-estimate-None", lambda: stats.z_score(None, 1.0, 1.0), EITHER, "estimate"),
    case("z_score-target-str", lambda: stats.z_score(1.0, "a", 1.0), EITHER, "target"),
    case("z_score-se-None", lambda: stats.z_score(1.0, 1.0, None), EITHER, "se"),
    case("z_score-empty", lambda: stats.z_score([], [], []), VE, ("estimate", "target", "se")),
    case("z_score-mismatch", lambda: stats.z_score([1.0, 2.0, 3.0], [1.0, 2.0], [1.0, 1.0, 1.0]),
         VE, ("estimate", "target")),
    case("z_score-estimate-nan", lambda: stats.z_score(NAN, 1.0, 1.0), VE, "estimate"),
    case("z_score-target-inf", lambda: stats.z_score(1.0, INF, 1.0), VE, "target"),
    case("z_score-se-nan", lambda: stats.z_score(1.0, 1.0, NAN), VE, "se"),
    case("squared_w2-x-str", lambda: stats.squared_w2("a", A), EITHER, "x"),
    case("squared_w2-x-None", lambda: stats.squared_w2(None, A), EITHER, "x"),
    case("squared_w2-y-None", lambda: stats.squared_w2(A, None), EITHER, "y"),
    case("squared_w2-empty", lambda: stats.squared_w2(E, E), VE, ("x", "y")),
    case("squared_w2-mismatch", lambda: stats.squared_w2(A, A[:4]), VE, ("x", "y")),
    case("squared_w2-x-nan", lambda: stats.squared_w2(_bad(NAN, (5, 2), torch.float64), A), VE, "x"),
    case("squared_w2-y-inf", lambda: stats.squared_w2(A, _bad(INF, (5, 2), torch.float64)), VE, "y"),
]


@pytest.mark.parametrize("fn, exc, names, also", STATS)
def test_leak_stats(fn, exc, names, also):
    expect_error(fn, exc, *names, also=also)


# --- 3. leaks: shapes, seeds, ts, device and dtype given as the wrong kind -----------------------
KINDS = [
    case("randn-shape-negative", lambda: de.randn((-1, 2), generator=gen()), VE, "shape"),
    case("randn-shape-str", lambda: de.randn("ab", generator=gen()), EITHER, "shape"),
    case("randn-shape-None", lambda: de.randn(None, generator=gen()), EITHER, "shape"),
    case("randn-shape-float", lambda: de.randn(2.5, generator=gen()), EITHER, "shape"),
    case("randn-shape-float-entry", lambda: de.randn((2.5, 2), generator=gen()), EITHER, "shape"),
    case("make_generator-seed-2**70", lambda: de.make_generator(2**70), VE, "seed"),
    case("manual_seed-seed-2**70", lambda: de.manual_seed(2**70), VE, "seed"),
    case("brownian_increments-ts-str", lambda: de.brownian_increments("ab", 3, 2, gen()), EITHER, "ts"),
    case("brownian_increments-ts-None", lambda: de.brownian_increments(None, 3, 2, gen()), EITHER, "ts"),
    case("euler_maruyama-ts-str", lambda: de.euler_maruyama(OU, X, "ab", generator=gen()), EITHER, "ts"),
    case("euler_maruyama-ts-None", lambda: de.euler_maruyama(OU, X, None, generator=gen()), EITHER, "ts"),
    case("srk15-ts-str", lambda: de.srk15(OU, X1, "ab", generator=gen()), EITHER, "ts"),
    case("srk15-x0-(n, 2)", lambda: de.srk15(OU, X64, EM_TS, generator=gen()), VE, "x0"),
    case("srk15-ts-decreasing", lambda: de.srk15(OU, X1, [0.1, 0.05, 0.0], generator=gen()), VE, "ts"),
    case("srk15-dw-without-dz", lambda: de.srk15(OU, X1, EM_TS, dw=torch.zeros(2, 3, 1)), VE, "dz"),
    case("coarsen_dz-ts-None", lambda: de.coarsen_dz(torch.zeros(2, 3, 1), torch.zeros(2, 3, 1), 2, None), EITHER, "ts"),
    case("onsager_machlup-ts-str", lambda: pi.onsager_machlup(PATH, "abcde", drift, 1.0), EITHER, "ts"),
    case("onsager_machlup-ts-None", lambda: pi.onsager_machlup(PATH, None, drift, 1.0), EITHER, "ts"),
    case("solve-ts-None", lambda: fp.solve(OU, P0, GRID, None), EITHER, "ts"),
    # dtype="float32" (a string): see test_dtype_refused[*-dtype-str]
]


def _device_cases(device, marks=()):
    fns = {
        "randn": lambda: de.randn((2, 2), generator=gen(), device=device),
        "prior_sample": lambda: VP.prior_sample(2, 2, gen(), device=device),
        "sample": lambda: de.sample(VP, score, 2, 1.0, 2, gen(), device=device),
        "GaussianMixture.sample": lambda: MIX.sample(2, gen(), device=device),
        "swiss_roll": lambda: de.swiss_roll(2, gen(), device=device),
        "gaussian_grid": lambda: de.gaussian_grid(2, gen(), device=device),
        "brownian_increments": lambda: de.brownian_increments([0.0, 0.5, 1.0], 2, 2, gen(), device=device),
        "brownian_increments_dz": lambda: de.brownian_increments_dz([0.0, 0.5, 1.0], 2, gen(), device=device),
        "Grid": lambda: fp.Grid(0.0, 1.0, 8, device=device),
        "load_pretrained": lambda: de.load_pretrained("swiss_roll", "simple", device=device),
    }
    return [pytest.param(fn, VE, ("device",), (), id=f"{name}-device-{device}",
                         marks=marks) for name, fn in fns.items()]


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
DEVICES = _device_cases("nonsense") + _device_cases("cuda", marks=(NO_CUDA,))


@pytest.mark.parametrize("fn, exc, names, also", KINDS + DEVICES)
def test_leak_kinds(fn, exc, names, also):
    expect_error(fn, exc, *names, also=also)


# --- 3. leaks: an empty batch (0, d) gives empty results or a ValueError naming x -----------------
@pytest.mark.parametrize("fn", [
    pytest.param(lambda: lk.log_likelihood(VP, score, torch.zeros(0, 2, dtype=torch.float64), **LL),
                 id="log_likelihood-empty"),
    pytest.param(lambda: wkb.first_order_correction(VP, score, torch.zeros(0, 2, dtype=torch.float64), **LL),
                 id="first_order_correction-empty"),
])
def test_empty_batch(fn):
    try:
        with time_limit():
            out = fn()
    except Hang as err:
        pytest.fail(f"hang: {err}")
    except ValueError as err:
        assert names_in(str(err), ("x", "x0")), f"ValueError does not name x: {err}"
        return
    except Exception as err:  # noqa: BLE001
        pytest.fail(f"leaked {type(err).__name__}: {err}")
    for field in ("logp", "correction", "excluded"):
        if hasattr(out, field):
            assert tuple(getattr(out, field).shape) == (0,), f"{field} has shape {tuple(getattr(out, field).shape)}"


# --- 3. leaks: a user callable with the wrong signature ----------------------------------------
SIGNATURE = [
    case("sample-em-score-one-arg", lambda: de.sample(VP, one_arg, 3, 1.0, 2, gen()), TE, "score",
         also=("(x, t)",)),
    case("sample-ancestral-score-one-arg", lambda: de.sample(VP, one_arg, 3, 1.0, 2, gen(), method="ancestral"),
         TE, "score", also=("(x, t)",)),
    case("sample-pc-score-one-arg", lambda: de.sample(VP, one_arg, 3, 1.0, 2, gen(), method="pc"),
         TE, "score", also=("(x, t)",)),
    case("log_likelihood-score-one-arg", lambda: lk.log_likelihood(VP, one_arg, X1, **LL), TE, "score",
         also=("(x, t)",)),
    case("first_order_correction-score-one-arg", lambda: wkb.first_order_correction(VP, one_arg, X1, **LL),
         TE, "score", also=("(x, t)",)),
    case("pf_drift-score-one-arg", lambda: lk.pf_drift(VP, one_arg, X64, 0.5), TE, "score", also=("(x, t)",)),
    case("euler_maruyama-reverse-score-one-arg",
         lambda: de.euler_maruyama(VP.reverse(one_arg), X, TS, generator=gen()), TE, "score", also=("(x, t)",)),
    case("AdditiveSDE-drift-one-arg",
         lambda: de.euler_maruyama(de.AdditiveSDE(one_arg, lambda t: 1.0), X, EM_TS, generator=gen()),
         TE, "drift", also=("(x, t)",)),
    case("AdditiveSDE-diffusion-no-arg",
         lambda: de.euler_maruyama(de.AdditiveSDE(drift, lambda: 1.0), X, EM_TS, generator=gen()),
         TE, "diffusion", also=("(t)",)),
    case("onsager_machlup-drift-one-arg", lambda: pi.onsager_machlup(PATH, PTS, one_arg, 1.0), TE, "drift",
         also=("(x, t)",)),
    case("reverse_action-score-one-arg", lambda: pi.reverse_action(PATH, PTS, drift, 1.0, one_arg), TE, "score",
         also=("(x, t)",)),
    case("log_likelihood-prior_logp-two-args",
         lambda: lk.log_likelihood(VP, score, X1, prior_logp=lambda x, t: x.sum(1), **LL), TE, "prior_logp"),
]


@pytest.mark.parametrize("fn, exc, names, also", SIGNATURE)
def test_wrong_signature(fn, exc, names, also):
    expect_error(fn, exc, *names, also=also)


# --- 3. leaks: a ScoreMLP of d = 2 against data of d = 3, named at the caller (not inside ScoreMLP) ----
X3 = torch.zeros(4, 3, dtype=torch.float64)
DIMS = [
    case("sample-em-d3", lambda: de.sample(VP, M2, 4, 1.0, 2, gen(), dim=3), VE, ("score", "model"), also=("2", "3", "dimensional network")),
    case("sample-ancestral-d3", lambda: de.sample(VP, M2, 4, 1.0, 2, gen(), dim=3, method="ancestral"),
         VE, ("score", "model"), also=("2", "3", "dimensional network")),
    case("log_likelihood-d3", lambda: lk.log_likelihood(VP, M2, X3, **LL), VE, ("score", "model"), also=("2", "3", "dimensional network")),
    case("first_order_correction-d3", lambda: wkb.first_order_correction(VP, M2, X3, **LL), VE, ("score", "model"),
         also=("2", "3", "dimensional network")),
    case("pf_drift-d3", lambda: lk.pf_drift(VP, M2, X3, 0.5), VE, ("score", "model"), also=("2", "3", "dimensional network")),
    case("dsm_loss-d3", lambda: dsm_loss(M2, X3.float(), VP, T4, torch.ones(4, 3)), VE, ("score", "model"), also=("2", "3", "dimensional network")),
    case("train_dsm-d3", lambda: tiny_train(model=M2, data=de.randn((64, 3), generator=gen()), steps=1),
         VE, ("score", "model"), also=("2", "3", "dimensional network")),
    case("w2_trial-model-d3", lambda: sm.w2_trial(model_d3(), "swiss_roll", 1.0, 0, n=2, steps=2),
         VE, ("score", "model"), also=("2", "3", "dimensional network")),
]


@pytest.mark.parametrize("fn, exc, names, also", DIMS)
def test_dimension_mismatch(fn, exc, names, also):
    expect_error(fn, exc, *names, also=also)


# --- 3. absurd sizes: refused with ValueError before anything is allocated ----------------------
BIG = 10**12
ABSURD = [
    case("sample-n-1e12", lambda: de.sample(VP, score, BIG, 1.0, 2, gen()), VE, "n"),
    case("sample-steps-1e12", lambda: de.sample(VP, score, 2, 1.0, BIG, gen()), VE, "steps"),
    case("randn-shape-1e12", lambda: de.randn((BIG, 2), generator=gen()), VE, "shape"),
    case("prior_sample-n-1e12", lambda: VP.prior_sample(BIG, 2, gen()), VE, "n"),
    case("prior_sample-dim-1e12", lambda: VP.prior_sample(1, BIG, gen()), VE, "dim"),
    case("time_grid-steps-1e12", lambda: de.time_grid(0.0, 1.0, BIG), VE, "steps"),
    case("brownian_increments-n-1e12", lambda: de.brownian_increments([0.0, 1.0], BIG, 2, gen()), VE, "n"),
    case("brownian_increments_dz-n-1e12", lambda: de.brownian_increments_dz([0.0, 1.0], BIG, gen()), VE, "n"),
    case("GaussianMixture.sample-n-1e12", lambda: MIX.sample(BIG, gen()), VE, "n"),
    case("swiss_roll-n-1e12", lambda: de.swiss_roll(BIG, gen()), VE, "n"),
    case("gaussian_grid-n-1e12", lambda: de.gaussian_grid(BIG, gen()), VE, "n"),
    case("Grid-cells-1e12", lambda: fp.Grid(0.0, 1.0, BIG), VE, "cells"),
    case("Grid-cells-1e6x1e6", lambda: fp.Grid((0.0, 0.0), (1.0, 1.0), (10**6, 10**6)), VE, "cells"),
    case("sampler_marginal_spectral-cells-1e12",
         lambda: fp.sampler_marginal_spectral(VP, lambda x, t: -x, cells=BIG), VE, "cells"),
    case("ScoreMLP-hidden-1e12", lambda: de.ScoreMLP(2, hidden=BIG), VE, "hidden"),
    case("ScoreMLP-layers-1e6", lambda: de.ScoreMLP(2, layers=10**6), VE, "layers"),
]


@pytest.mark.parametrize("fn, exc, names, also", ABSURD)
def test_absurd_sizes(fn, exc, names, also):
    expect_error(fn, exc, *names, also=also, memory=True)


# --- found by a second, independent fuzz of the methods (after the fixes above) ------------------
def test_float32_time_at_T_is_accepted_and_the_cosine_schedule_stays_finite():
    # float32 rounds 0.999 up to 0.99900001: that is T, not a time past it (and past the cosine's pole)
    vp = de.VPSDE(de.Cosine(0.0, 0.999))
    x = torch.ones(3, 2)
    t = torch.full((3,), vp.T, dtype=torch.float32)
    f = vp.drift(x, t)
    assert bool(torch.isfinite(f).all()) and bool((f < 0).all())      # -beta x / 2 with beta > 0
    assert bool(torch.isfinite(vp.schedule.alpha(t)).all())


def test_empty_batches_pass_through_the_sde_methods():
    x, t = torch.zeros(0, 2), torch.zeros(0)
    for sde in (de.BrownianMotion(), de.VPSDE(de.Linear()), de.OrnsteinUhlenbeck(mu=1.0)):
        assert sde.drift(x, t).shape == (0, 2)
        assert sde.marginal_mean(x, t).shape == (0, 2)
    mix = de.GaussianMixture([1.0], [[0.0, 0.0]], [1.0])
    assert mix.log_prob(x).shape == (0,) and mix.score(x).shape == (0, 2)


def test_results_with_every_point_excluded_refuse_to_average():
    r = lk.log_likelihood(de.VPSDE(de.Linear(0.1, 20.0), t_min=1e-3), lambda x, t: -30 * x, torch.full((2, 1), 0.9),
                          box=1.0, rtol=1e-3, atol=1e-3)
    if bool(r.excluded.all()):
        expect_error(lambda: r.nll, VE, "nll")
    expect_error(lambda: lk.LikelihoodResult(torch.tensor([1.0]), torch.tensor([False]), torch.zeros(1, 1),
                                             0, 0, 0).nll_se, VE, "nll_se")


def test_a_reverse_sde_is_not_a_forward_sde():
    vp = de.VPSDE(de.Linear(0.1, 20.0), t_min=1e-3)
    score = lambda x, t: -x
    expect_error(lambda: lk.log_likelihood(vp.reverse(score), score, torch.zeros(2, 2)), TE, "sde")
    expect_error(lambda: wkb.first_order_correction(vp.reverse(score), score, torch.zeros(2, 2)), TE, "sde")


def test_grid_quantities_refuse_non_finite_densities_and_far_points():
    g = fp.Grid(-1.0, 1.0, 10)
    p = torch.ones(10, dtype=torch.float64)
    p[3] = float("nan")
    expect_error(lambda: g.mass(p), VE, "p")
    expect_error(lambda: g.l1(torch.ones(10, dtype=torch.float64), torch.ones(10, dtype=torch.bool)), TE, "q")
    expect_error(lambda: fp.Grid(-1e308, 1e308, 10), VE, "lo", "hi")
    mix = de.GaussianMixture([1.0], [[0.0]], [1.0])
    expect_error(lambda: mix.score(torch.full((2, 1), 1e160, dtype=torch.float64)), VE, "x")
