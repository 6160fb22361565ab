"""Argument checks shared by every public function of :mod:`diffedu`.

Each helper raises ``TypeError`` (wrong kind of object) or ``ValueError`` (right
kind, wrong value) with a message that names the argument and the accepted
range, so that bad input fails at the call that received it, not three calls
later with a shape error or a silent NaN.
"""

from __future__ import annotations

import inspect
import math
import numbers
import os

import torch

_TIME_SLACK = 1e-9  # float round-off allowed at the ends of a time range


def _slack(t, high: float) -> float:
    """Round-off allowed at the ends of ``[low, high]``: 1e-9, or a few ulps of ``t``'s dtype (float32 rounds
    0.999 to 0.99900001)."""
    if isinstance(t, torch.Tensor) and t.is_floating_point():
        # an infinite upper end (a schedule without a pole) must not make the slack infinite
        return max(_TIME_SLACK, 4 * torch.finfo(t.dtype).eps * max(1.0, abs(high) if math.isfinite(high) else 1.0))
    return _TIME_SLACK


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


#: the range of a positive scale parameter (a diffusion constant, a rate, a noise level): products and
#: squares of such numbers stay finite and nonzero in float64
SCALE_MIN, SCALE_MAX = 1e-100, 1e100


def scale(value, name: str) -> float:
    """A positive scale parameter in ``[SCALE_MIN, SCALE_MAX]`` (so that its square and inverse are finite)."""
    return real(value, name, low=SCALE_MIN, high=SCALE_MAX)


#: the largest hbar accepted: the book's hbar family lives in [0, a few]; far beyond, every solver is stiff
HBAR_MAX = 100.0
#: a nonzero hbar below this is refused (the noise sqrt(hbar) g would underflow the solvers' scales)
HBAR_MIN = 1e-12
#: the smallest tolerance an adaptive solver accepts (float64 cannot deliver less)
TOL_MIN = 1e-15


def hbar(value, name: str = "hbar") -> float:
    """The interpolation parameter of the hbar family: 0, or a number in ``[HBAR_MIN, HBAR_MAX]``."""
    value = real(value, name, low=0.0, high=HBAR_MAX)
    if 0.0 < value < HBAR_MIN:
        raise ValueError(f"{name} must be 0 or at least {HBAR_MIN:g} (the probability-flow ODE is hbar = 0), got {value:g}")
    return value


def tolerance(value, name: str) -> float:
    """A positive solver tolerance (rtol, atol) of at least ``TOL_MIN``."""
    return real(value, name, low=TOL_MIN)


def positive_int(value, name: str, *, low: int = 1, high: int | None = None) -> int:
    """Return ``value`` as an int in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value}")
    return int(value)


#: the most steps a fixed-step loop (a solver, a sampler, an ODE on a grid) may be asked for
MAX_STEPS = 10_000_000


def reals(value, name: str, *, scalar: bool = True) -> torch.Tensor:
    """A real tensor, a sequence of real numbers (nested, for a table) or — when ``scalar`` — one number,
    as a finite float64 tensor (a tensor stays on its device).  The one reader of "numbers" input."""
    if isinstance(value, torch.Tensor):
        if not (value.is_floating_point() or value.dtype in (torch.int32, torch.int64)):
            raise TypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
        t = value.detach().to(torch.float64)
    elif isinstance(value, (list, tuple, range)) and not any(isinstance(v, (list, tuple)) for v in value):
        t = torch.tensor([real(v, f"{name}[{i}]") for i, v in enumerate(value)], dtype=torch.float64)
    elif isinstance(value, (list, tuple)) or (scalar and isinstance(value, numbers.Real) and not isinstance(value, bool)):
        try:
            t = torch.tensor(value, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{name} must be a number, a (non-ragged) sequence of numbers or a tensor") from None
    else:
        what = "a number, a sequence of numbers or a tensor" if scalar else "a 1-D tensor or a sequence of numbers"
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return t


def vector(value, name: str) -> torch.Tensor:
    """A 1-D tensor or a sequence of real numbers, as a finite float64 tensor (see :func:`reals`)."""
    t = reals(value, name, scalar=False)
    if t.dim() != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {tuple(t.shape)}")
    return t


def flag(value, name: str) -> bool:
    """``True`` or ``False`` only (a string such as ``"no"`` is truthy, so it is refused)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def floating_dtype(value, name: str = "dtype") -> torch.dtype:
    """A floating-point ``torch.dtype`` (integer or bool dtypes would truncate normal draws)."""
    if not isinstance(value, torch.dtype):
        raise TypeError(f"{name} must be a torch.dtype such as torch.float32 or torch.float64, "
                        f"got {type(value).__name__} {value!r}")
    if not value.is_floating_point:
        raise TypeError(f"{name} must be a floating-point dtype (torch.float32 or torch.float64), got {value}")
    return value


def device(value, name: str = "device"):
    """``None`` (the caller's default), or a device name / ``torch.device`` that this machine has."""
    if value is None:
        return None
    if not isinstance(value, (str, torch.device)):
        raise TypeError(f"{name} must be None, a string such as 'cpu' or 'cuda', or a torch.device, "
                        f"got {type(value).__name__}")
    try:
        dev = torch.device(value)
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"{name}={value!r} is not a torch device (use 'cpu', 'cuda', 'cuda:N' or 'mps'): {err}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name}={value!r} asks for CUDA, but torch sees no CUDA device here")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"{name}={value!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"{name}={value!r} asks for MPS, but torch sees no MPS device here")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"{name} must be 'cpu', 'cuda' or 'mps', got {value!r}")
    return dev


def _machine_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: assume a large machine
        return 1 << 40


def memory(elements: int, name: str, *, bytes_per_element: int = 8) -> None:
    """Refuse a request whose tensors would not fit in this machine's memory, before allocating."""
    need = int(elements) * bytes_per_element
    have = _machine_bytes()
    if need > have:
        raise ValueError(f"{name} asks for about {need / 2**30:.3g} GiB, more than this machine's "
                         f"{have / 2**30:.3g} GiB of memory; make it smaller")


def shape(value, name: str = "shape") -> tuple[int, ...]:
    """A tensor shape: a tuple (or list, or ``torch.Size``) of non-negative integers, or one integer."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (tuple, list, torch.Size)):
        raise TypeError(f"{name} must be a tuple of non-negative integers, got {type(value).__name__}")
    dims = tuple(positive_int(v, f"{name}[{i}]", low=0) for i, v in enumerate(value))
    memory(math.prod(dims), name)
    return dims


def call(fn, name: str, signature: str, *args):
    """Call the user's callable ``fn(*args)``; if it cannot take these arguments, say which callable and
    the signature it needs (instead of Python's bare "takes 1 positional argument")."""
    try:
        return fn(*args)
    except TypeError as err:
        try:
            inspect.signature(fn).bind(*args)
        except TypeError:
            raise TypeError(f"{name} must be a callable {signature}; calling it with {len(args)} "
                            f"argument(s) failed: {err}") from None
        except ValueError:  # no signature to inspect (a builtin): the error is the user's own
            pass
        _note(err, name)
        raise
    except Exception as err:   # the user's own error: keep it, and say where it came from
        _note(err, name)
        raise


def _note(err: BaseException, name: str) -> None:
    note = f"(raised inside the callable {name} that was passed to diffedu)"
    if note not in getattr(err, "__notes__", ()):
        err.add_note(note)


def output(value, name: str, shape: tuple[int, ...], signature: str) -> torch.Tensor:
    """Check what a user callable returned: a floating tensor of exactly ``shape``, all finite."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must return a torch.Tensor ({signature}), got {type(value).__name__}")
    if tuple(value.shape) != tuple(shape):
        raise ValueError(f"{name} must return a tensor of shape {tuple(shape)} ({signature}), "
                         f"got shape {tuple(value.shape)}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must return a floating-point tensor, got dtype {value.dtype}")
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} returned non-finite values (NaN or inf)")
    return value


def evaluate(fn, name: str, signature: str, shape: tuple[int, ...], *args) -> torch.Tensor:
    """:func:`call` then :func:`output`: the one way the package evaluates a user callable."""
    return output(call(fn, name, signature, *args), name, shape, signature)


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
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor or a number, got dtype {t.dtype}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains non-finite values")
        if t.numel() == 0:
            return t.to(device=like.device, dtype=like.dtype).reshape(0, 1)
        lo, hi = float(t.min()), float(t.max())
        slack = _slack(t, high)
        if lo < low - slack or hi > high + slack:
            raise ValueError(f"{name} must lie in [{low:g}, {high:g}], got values in [{lo:g}, {hi:g}]")
        # round-off outside the range is clamped back into it (sigma(t)^2 < 0 at t = -1e-12 would give NaN)
        return t.to(device=like.device, dtype=like.dtype).clamp(low, high).reshape(n, 1)
    slack = _slack(t, high)
    value = real(t, name)
    if value < low - slack or value > high + slack:
        raise ValueError(f"{name} must lie in [{low:g}, {high:g}], got {value:g}")
    return torch.tensor(min(max(value, low), high), device=like.device, dtype=like.dtype)


def scalar_time(t, name: str, *, low: float, high: float) -> torch.Tensor:
    """A time without a batch: a number or a tensor of any shape, in ``[low, high]``, as float64."""
    slack = _slack(t, high)
    if isinstance(t, torch.Tensor):
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor or a number, got dtype {t.dtype}")
        if t.numel() == 1:                      # the common case: one number read once (one sync, not four)
            value = float(t)
            if not math.isfinite(value):
                raise ValueError(f"{name} contains non-finite values")
            if value < low - slack or value > high + slack:
                raise ValueError(f"{name} must lie in [{low:g}, {high:g}], got values in [{value:g}, {value:g}]")
            return t.to(torch.float64).clamp(low, high)
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains non-finite values")
        tt = t.to(torch.float64)
    else:
        tt = torch.tensor(real(t, name), dtype=torch.float64)
    if tt.numel() and (float(tt.min()) < low - slack or float(tt.max()) > high + slack):
        raise ValueError(f"{name} must lie in [{low:g}, {high:g}], got values in "
                         f"[{float(tt.min()):g}, {float(tt.max()):g}]")
    return tt.clamp(low, high)


def times(ts, name: str = "ts") -> list[float]:
    """``ts`` as a list of at least two (at most ``MAX_STEPS + 1``) finite times: a 1-D tensor or a sequence of numbers."""
    if isinstance(ts, (list, tuple, range)) and len(ts) > MAX_STEPS + 1:       # before converting a huge list
        raise ValueError(f"{name} must hold at most {MAX_STEPS + 1} times, got {len(ts)}")
    values = vector(ts, name).cpu().tolist()
    if len(values) < 2:
        raise ValueError(f"{name} must hold at least two times, got {len(values)}")
    if len(values) > MAX_STEPS + 1:
        raise ValueError(f"{name} must hold at most {MAX_STEPS + 1} times, got {len(values)}")
    return values


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


def differentiable(out: torch.Tensor, fn, x: torch.Tensor, name: str) -> bool:
    """Refuse ``out = fn(x)`` computed outside autograd (through numpy, ``.detach()``, ``.item()``):
    a derivative taken through it would silently be wrong.  An output without a graph is accepted only
    if ``fn`` does not change when ``x`` moves (then its derivative is 0); returns whether it has one."""
    if out.requires_grad:
        return True
    with torch.no_grad():
        x = x.detach()
        moved = not torch.equal(fn(x), fn(x + 1e-3 * (1.0 + x.abs())))
    if moved:
        raise ValueError(f"{name} must be differentiable in x with torch autograd: its output carries no graph "
                         "(was it computed through numpy, .detach() or .item()?), so its derivative cannot be taken")
    return False


def model_dim(score, d: int, name: str = "score", what: str = "x") -> None:
    """A score network that knows its dimension (``ScoreMLP.dim``) must match the data's ``d``: say so at the
    caller instead of letting the network complain about a shape three calls later."""
    m = getattr(score, "dim", None)
    if isinstance(m, int) and not isinstance(m, bool) and m != d:
        raise ValueError(f"{what} has d = {d} columns but {'the model' if name == 'model' else 'the model ' + name} "
                         f"is a {m}-dimensional network "
                         f"({name}.dim = {m}): pass data of shape (n, {m}) or a model of dimension {d}")
