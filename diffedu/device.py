"""Where tensors live, and where noise comes from.

Every random draw in :mod:`diffedu` goes through :func:`~diffedu.randn`: the normal numbers
are drawn on the CPU from an explicit ``torch.Generator`` and then moved to the
compute device, so a notebook gives the same samples on a laptop and on a GPU.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from . import _checks

_ALLOWED = ("cpu", "cuda", "mps")


def default_device() -> torch.device:
    """The device the book computes on.

    ``DIFFEDU_DEVICE`` (``cpu``, ``cuda``, ``cuda:N`` or ``mps``) wins when set;
    otherwise CUDA if available, else the CPU.

    Raises ``ValueError`` when ``DIFFEDU_DEVICE`` names an unknown device or one
    that this machine does not have.
    """
    name = os.environ.get("DIFFEDU_DEVICE", "").strip()
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind = name.split(":")[0]
    if kind not in _ALLOWED:
        raise ValueError(f"DIFFEDU_DEVICE must be one of {', '.join(_ALLOWED)} (optionally cuda:N), got {name!r}")
    try:
        device = torch.device(name)
    except RuntimeError as err:  # e.g. "cuda:x"
        raise ValueError(f"DIFFEDU_DEVICE={name!r} is not a valid torch device: {err}") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError("DIFFEDU_DEVICE asks for cuda, but torch sees no CUDA device here")
    if kind == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError("DIFFEDU_DEVICE asks for mps, but torch sees no MPS device here")
    return device


def randn(shape, *, generator: torch.Generator | None = None, device=None,
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal numbers of ``shape`` drawn on the CPU from ``generator``, moved to ``device``.

    ``generator=None`` uses torch's global CPU generator (not reproducible unless
    ``torch.manual_seed`` was called); pass a seeded ``torch.Generator()`` instead.
    ``dtype`` must be a floating-point dtype; ``shape`` a tuple of non-negative integers whose
    tensor fits in memory.
    """
    shape = _checks.shape(shape)
    _checks.generator(generator)
    device = _checks.device(device)
    dtype = _checks.floating_dtype(dtype)
    z = torch.randn(shape, generator=generator, dtype=torch.float64)
    return z.to(device=device if device is not None else "cpu", dtype=dtype)


def seed_offset(environ=None) -> int:
    """The shift ``DIFFEDU_SEED_OFFSET`` (default 0) that every seed of the book is moved by.

    ``make robust`` runs every notebook under several offsets: a check that passes only for
    its own seed is a wrong check.  Raises ``ValueError`` unless the variable is a
    non-negative integer.
    """
    environ = os.environ if environ is None else environ
    if not isinstance(environ, Mapping):
        raise TypeError(f"environ must be a mapping of environment variables (like os.environ), got {type(environ).__name__}")
    raw = environ.get("DIFFEDU_SEED_OFFSET", "")
    if not isinstance(raw, str):
        raise TypeError(f"environ['DIFFEDU_SEED_OFFSET'] must be a string, got {type(raw).__name__}")
    raw = raw.strip()
    if not raw:
        return 0
    try:
        offset = int(raw)
    except ValueError:
        offset = -1
    if offset < 0:
        raise ValueError(f"DIFFEDU_SEED_OFFSET must be a non-negative integer, got {raw!r}")
    return offset


#: the largest seed a torch.Generator takes
SEED_MAX = 2**64 - 1


def make_generator(seed: int, *, shift: bool = True) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed + DIFFEDU_SEED_OFFSET`` (``seed`` a non-negative integer).

    ``shift=False`` ignores the offset.  It is only for re-creating the data of a *stored*
    computation from the seed recorded with it (the seed names a data set whose shipped results
    are compared point by point), never for a Monte-Carlo draw that a check relies on.
    """
    seed = _checks.positive_int(seed, "seed", low=0, high=SEED_MAX)
    _checks.flag(shift, "shift")
    total = seed + (seed_offset() if shift else 0)
    if total > SEED_MAX:
        raise ValueError(f"seed + DIFFEDU_SEED_OFFSET must be at most 2**64 - 1, got {total}")
    return torch.Generator().manual_seed(total)


def manual_seed(seed: int) -> None:
    """Seed torch's global generator with ``seed + DIFFEDU_SEED_OFFSET``: for the one draw the book
    cannot route through a generator, the initial weights of a freshly built network."""
    seed = _checks.positive_int(seed, "seed", low=0, high=SEED_MAX)
    if seed + seed_offset() > SEED_MAX:
        raise ValueError(f"seed + DIFFEDU_SEED_OFFSET must be at most 2**64 - 1, got {seed + seed_offset()}")
    torch.manual_seed(seed + seed_offset())

