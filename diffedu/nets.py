r"""The score network of Hirono, Tanaka & Fukushima (2024) and the shipped pretrained models.

``ScoreMLP(dim)``: input :math:`[x, t]` (raw time, no embedding), three hidden layers of 128
units with the swish (SiLU) activation, output :math:`s_\theta(x, t)\in\mathbb R^{d}` — the
score itself, not a noise prediction.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from . import _checks
from .schedules import Cosine, Linear
from .sde import VPSDE

WEIGHTS = Path(__file__).resolve().parent / "weights"
DATA_NAMES = ("swiss_roll", "gaussian_grid")
SCHEDULE_NAMES = ("simple", "cosine")


class ScoreMLP(nn.Module):
    r""":math:`s_\theta(x, t)`: ``[x, t] -> 3 x (Linear(128), swish) -> Linear(dim)``.

    ``forward(x, t)`` takes ``x`` of shape ``(n, dim)`` and ``t`` a number or a tensor of
    shape ``(n,)``; returns shape ``(n, dim)``.  About 33.8k parameters for ``dim = 2``.
    """

    def __init__(self, dim: int = 2, hidden: int = 128, layers: int = 3):
        super().__init__()
        self.dim = _checks.positive_int(dim, "dim")
        hidden = _checks.positive_int(hidden, "hidden")
        layers = _checks.positive_int(layers, "layers")
        mods, width = [], self.dim + 1
        for _ in range(layers):
            mods += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        mods.append(nn.Linear(width, self.dim))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != self.dim:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must have shape (n, {self.dim}), got {got}")
        n = x.shape[0]
        w = self.net[0].weight
        if isinstance(t, torch.Tensor) and t.numel() > 1:
            if t.shape != (n,):
                raise ValueError(f"t must be a number or a tensor of shape ({n},), got {tuple(t.shape)}")
            tt = t.reshape(n, 1)
        else:
            tt = torch.full((n, 1), _checks.real(t, "t"), device=x.device)
        out = self.net(torch.cat([x.to(w.dtype), tt.to(device=x.device, dtype=w.dtype)], 1))
        return out.to(x.dtype)


def paper_sde(schedule: str) -> VPSDE:
    """The paper's forward SDEs: ``simple`` = VP with beta = 20 t on [0.01, 1];
    ``cosine`` = VP with alpha = cos(pi t / 2) on [0.01, 0.999]."""
    _checks.choice(schedule, "schedule", SCHEDULE_NAMES)
    if schedule == "simple":
        return VPSDE(Linear(0.0, 20.0), T=1.0, t_min=0.01)
    return VPSDE(Cosine(s=0.0, t_max=0.999), T=0.999, t_min=0.01)


def weight_path(data: str, schedule: str) -> Path:
    _checks.choice(data, "data", DATA_NAMES)
    _checks.choice(schedule, "schedule", SCHEDULE_NAMES)
    return WEIGHTS / f"{data}_{schedule}.pt"


def load_pretrained(data: str, schedule: str, *, device=None) -> ScoreMLP:
    """The shipped score model for ``data`` in {swiss_roll, gaussian_grid} and ``schedule`` in
    {simple, cosine}, in eval mode, with ``model.sde`` (its forward SDE) and ``model.info``
    (training record: steps, seconds, final loss) attached.

    Raises ``ValueError`` for unknown names and ``FileNotFoundError`` (with the command to
    make them) if the weights are missing.
    """
    path = weight_path(data, schedule)
    if not path.exists():
        raise FileNotFoundError(f"no weights at {path.name}; run `make weights` to train them")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = ScoreMLP(dim=2)
    model.load_state_dict(blob["state_dict"])
    model.eval()
    model.sde = paper_sde(schedule)
    info_path = path.with_suffix(".json")
    model.info = json.loads(info_path.read_text()) if info_path.exists() else {}
    if device is not None:
        model.to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    return model
