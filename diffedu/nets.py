r"""The score network of Hirono, Tanaka & Fukushima (2024) and the shipped pretrained models.

``ScoreMLP(dim)``: input :math:`[x, t]` (raw time, no embedding), three hidden layers of 128
units with the swish (SiLU) activation, output :math:`s_\theta(x, t)\in\mathbb R^{d}` — the
score itself, not a noise prediction.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import nn

from . import _checks
from .schedules import Cosine, Linear
from .sde import VPSDE

WEIGHTS = Path(__file__).resolve().parent / "weights"
DATA_NAMES = ("swiss_roll", "gaussian_grid")
SCHEDULE_NAMES = ("simple", "cosine")


#: the network's time input must fit float32 with room to spare
T_LIMIT = 1e30


#: the initialisations of :class:`ScoreMLP`: PyTorch's ``nn.Linear`` default, or Flax's ``nn.Dense`` default
INITS = ("torch", "flax")

#: the standard deviation of a standard normal truncated to [-2, 2]
_TRUNCATED_STD = 0.87962566103423978


def flax_init_(layer: nn.Linear) -> None:
    r"""Initialise ``layer`` in place as Flax's ``nn.Dense`` does by default (the paper's code): LeCun-normal kernels,
    a normal truncated to two standard deviations and rescaled so that its standard deviation is
    :math:`1/\sqrt{\mathrm{fan}_{\rm in}}`, and zero biases.  Draws from torch's global generator (seed it with
    :func:`diffedu.manual_seed`)."""
    if not isinstance(layer, nn.Linear):
        raise TypeError(f"layer must be a torch.nn.Linear, got {type(layer).__name__}")
    scale = 1.0 / math.sqrt(layer.in_features) / _TRUNCATED_STD
    with torch.no_grad():
        nn.init.trunc_normal_(layer.weight, 0.0, scale, -2.0 * scale, 2.0 * scale)
        if layer.bias is not None:
            layer.bias.zero_()


class ScoreMLP(nn.Module):
    r""":math:`s_\theta(x, t)`: ``[x, t] -> 3 x (Linear(128), swish) -> Linear(dim)``.

    ``forward(x, t)`` takes ``x`` of shape ``(n, dim)`` and ``t`` a number or a tensor of
    shape ``(n,)``; returns shape ``(n, dim)``.  About 33.8k parameters for ``dim = 2``.
    ``init="torch"`` keeps PyTorch's default initialisation (uniform on :math:`\pm 1/\sqrt{\mathrm{fan}_{\rm in}}` for
    weights and biases); ``init="flax"`` is that of the paper's Flax code (:func:`diffedu.nets.flax_init_`).  Both draw from
    torch's global generator.
    """

    def __init__(self, dim: int = 2, hidden: int = 128, layers: int = 3, init: str = "torch"):
        super().__init__()
        _checks.choice(init, "init", INITS)
        self.dim = _checks.positive_int(dim, "dim")
        hidden = _checks.positive_int(hidden, "hidden", high=100_000)
        layers = _checks.positive_int(layers, "layers", high=1000)
        # float32 weights (layers - 1) hidden^2 plus Adam's two moments and a gradient: 16 bytes each
        _checks.memory((layers + 1) * (hidden + 1) * (hidden + self.dim + 2), "dim, hidden and layers",
                       bytes_per_element=16)
        mods, width = [], self.dim + 1
        for _ in range(layers):
            mods += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        mods.append(nn.Linear(width, self.dim))
        self.net = nn.Sequential(*mods)
        if init == "flax":
            for layer in self.net:
                if isinstance(layer, nn.Linear):
                    flax_init_(layer)

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != self.dim:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must have shape (n, {self.dim}), got {got}")
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError("x must hold finite values (it contains NaN or inf)")
        n = x.shape[0]
        w = self.net[0].weight
        if isinstance(t, torch.Tensor) and t.numel() > 1:
            if t.shape != (n,):
                raise ValueError(f"t must be a number or a tensor of shape ({n},), got {tuple(t.shape)}")
            if not t.is_floating_point() or not bool((t.abs() <= T_LIMIT).all()):
                raise ValueError(f"t must hold finite floating-point times with |t| <= {T_LIMIT:g}")
            tt = t.reshape(n, 1)
        else:
            tt = torch.full((n, 1), _checks.real(t, "t", low=-T_LIMIT, high=T_LIMIT), device=x.device, dtype=w.dtype)
        out = self.net(torch.cat([x.to(w.dtype), tt.to(device=x.device, dtype=w.dtype)], 1))
        return out.to(x.dtype)

    def derivatives(self, x: torch.Tensor, t, order: int = 3):
        r"""The score and its spatial derivatives up to ``order`` (1–3), by forward-mode Taylor
        propagation through the layers (exact; much faster than nested autograd).

        Returns a list ``[s, Ds, D2s, D3s][:order + 1]`` with ``Ds[n, i, j]`` =
        :math:`\partial_j s_i`, ``D2s[n, i, j, k]`` = :math:`\partial_j\partial_k s_i`, and so on,
        in the network's dtype.  Only the distinct mixed partials (:math:`j\le k\le l`) are
        propagated, with the hidden units on the last axis.  Used by :mod:`diffedu.wkb`
        (book: Chapter 6).
        """
        order = _checks.positive_int(order, "order")
        if order > 3:
            raise ValueError(f"order must be 1, 2 or 3, got {order}")
        s = self.forward(x, t)          # checks the shapes
        n, d = x.shape
        w = self.net[0].weight
        dev = x.device
        if isinstance(t, torch.Tensor) and t.numel() > 1:
            tt = t.reshape(n, 1).to(device=dev, dtype=w.dtype)
        else:
            tt = torch.full((n, 1), float(t), device=dev, dtype=w.dtype)
        pairs = [(j, k) for j in range(d) for k in range(j, d)]
        triples = [(j, k, m) for j in range(d) for k in range(j, d) for m in range(k, d)]
        pos = {p: i for i, p in enumerate(pairs)}
        ix = lambda lst: torch.tensor(lst, dtype=torch.long, device=dev)
        pj, pk = ix([p[0] for p in pairs]), ix([p[1] for p in pairs])
        tj, tk, tm = (ix([q[i] for q in triples]) for i in range(3))
        t_jk, t_jm, t_km = (ix([pos[(q[a], q[b])] for q in triples]) for a, b in ((0, 1), (0, 2), (1, 2)))
        # D[k]: derivatives of the current layer's values, shape (n, components, width)
        D = [torch.cat([x.to(w.dtype), tt], 1), None, None, None]
        first = True
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                if first:             # d(input)/dx_j is the unit vector: the first layer's columns
                    D[1] = layer.weight[:, :d].T.expand(n, d, -1)
                    first = False
                else:
                    for k in range(1, order + 1):
                        if D[k] is not None:
                            D[k] = D[k] @ layer.weight.T
                D[0] = layer(D[0])
                continue
            z = D[0]                  # swish: phi(z) = z sigmoid(z), chain rule to third order
            sg = torch.sigmoid(z)
            p = sg * (1 - sg)
            q = 1 - 2 * sg
            phi1 = (sg * (1 + z * (1 - sg)))[:, None]
            phi2 = (p * (2 + z * q))[:, None]
            phi3 = (p * (q * (3 + z * q) - 2 * z * p))[:, None]
            d1, d2, d3 = D[1], D[2], D[3]
            new = [z * sg, phi1 * d1, None, None]
            if order >= 2:
                new[2] = phi2 * d1[:, pj] * d1[:, pk]
                if d2 is not None:
                    new[2] = new[2] + phi1 * d2
            if order >= 3:
                new[3] = phi3 * d1[:, tj] * d1[:, tk] * d1[:, tm]
                if d2 is not None:
                    new[3] = new[3] + phi2 * (d2[:, t_jk] * d1[:, tm] + d2[:, t_jm] * d1[:, tk] + d2[:, t_km] * d1[:, tj])
                if d3 is not None:
                    new[3] = new[3] + phi1 * d3
            D = new
        out = [s.to(w.dtype), D[1].transpose(1, 2)]
        if order >= 2:
            full = torch.empty(n, d, d, d, dtype=w.dtype, device=dev)
            for c, (j, k) in enumerate(pairs):
                full[:, :, j, k] = full[:, :, k, j] = D[2][:, c]
            out.append(full)
        if order >= 3:
            full = torch.empty(n, d, d, d, d, dtype=w.dtype, device=dev)
            for c, q in enumerate(triples):
                for a, b, m in {(q[0], q[1], q[2]), (q[0], q[2], q[1]), (q[1], q[0], q[2]),
                                (q[1], q[2], q[0]), (q[2], q[0], q[1]), (q[2], q[1], q[0])}:
                    full[:, :, a, b, m] = D[3][:, c]
            out.append(full)
        return out


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


def flow_path():
    """The path of the shipped flow-matching model (Chapter 7): ``Interpolant.linear(T=0.999, t_min=0.001)``."""
    from .flows import Interpolant

    return Interpolant.linear(T=0.999, t_min=1e-3)


def load_flow(data: str = "swiss_roll", *, device=None) -> ScoreMLP:
    """The shipped flow-matching model for ``data``: a :class:`ScoreMLP` whose output is the velocity
    :math:`v_\\theta(x, t)` of the linear path (:func:`flow_path`, attached as ``model.path``), trained with the
    score models' recipe (``scripts/train_weights.py --flow``), in eval mode, with ``model.info``.

    Raises ``ValueError`` for an unknown ``data`` and ``FileNotFoundError`` if the weights are missing.
    """
    device = _checks.device(device)
    _checks.choice(data, "data", DATA_NAMES)
    path = WEIGHTS / f"{data}_flow.pt"
    if not path.exists():
        raise FileNotFoundError(f"no weights at {path.name}; run `python scripts/train_weights.py --flow {data}`")
    model = _load_weights(path, device)
    model.path = flow_path()
    return model


def _load_weights(path, device) -> ScoreMLP:
    """A frozen ScoreMLP from a shipped ``.pt`` file, in eval mode, with ``info`` from the ``.json`` beside it."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = ScoreMLP(dim=2)
    model.load_state_dict(blob["state_dict"])
    model.eval()
    info_path = path.with_suffix(".json")
    model.info = json.loads(info_path.read_text()) if info_path.exists() else {}
    if device is not None:
        model.to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_pretrained(data: str, schedule: str, *, device=None) -> ScoreMLP:
    """The shipped score model for ``data`` in {swiss_roll, gaussian_grid} and ``schedule`` in
    {simple, cosine}, in eval mode, with ``model.sde`` (its forward SDE) and ``model.info``
    (training record: steps, seconds, final loss) attached.

    Raises ``ValueError`` for unknown names and ``FileNotFoundError`` (with the command to
    make them) if the weights are missing.
    """
    device = _checks.device(device)
    path = weight_path(data, schedule)
    if not path.exists():
        raise FileNotFoundError(f"no weights at {path.name}; run `make weights` to train them")
    model = _load_weights(path, device)
    model.sde = paper_sde(schedule)
    return model
