r"""Denoising score matching (book: Chapter 3, {eq}`eq-dsm-loss`) and flow matching (Chapter 7).

The loss is the :math:`g^2`-weighted ("likelihood-weighted") denoising objective

.. math:: L(\theta) = \mathbb E_{t\sim U[t_{\min},T]}\,\mathbb E_{x_0,z}\;
          \frac{g(t)^2}{d}\,\big\| s_\theta(\alpha x_0 + \sigma z,\ t) + z/\sigma \big\|^2 ,

estimated by the mean over the batch (the :math:`1/d` makes it the mean over the coordinates), as in Hirono, Tanaka & Fukushima (2024).
Batches are drawn epoch by epoch without replacement, dropping the remainder.
:func:`train_flow_matching` runs the same loop on the flow-matching loss :func:`fm_loss` of an
interpolant (:class:`diffedu.flows.Interpolant`).

Two engines run the loop on the same draws.  A :class:`~diffedu.nets.ScoreMLP` (or several, trained together by
:func:`train_dsm_many` as one batched network) is trained with its gradient written out layer by layer and Adam applied
to one flat tensor of all its parameters: about 1.3 times the steps per second of the paper's JAX code on one core
(``benchmarks/train.py``).  Any other module is trained with autograd and ``torch.optim.Adam``.
"""

from __future__ import annotations

import math
import sys
import time

import torch
from torch import nn

from . import _checks
from .device import randn
from .nets import ScoreMLP
from .sde import SDE


def dsm_loss(model, x0: torch.Tensor, sde: SDE, t: torch.Tensor, z: torch.Tensor, *,
             reduction: str = "mean") -> torch.Tensor:
    r"""The :math:`g^2`-weighted denoising loss {eq}`eq-dsm-loss` of a batch (``t`` shape ``(n,)``, ``z`` like ``x0``).

    ``reduction="mean"`` averages over the batch and the coordinates (the 1/d of the equation); ``"none"`` returns the
    per-sample losses ``(n,)`` (averaged over coordinates), e.g. for paired comparisons of models.
    """
    if not isinstance(sde, SDE):
        raise TypeError(f"sde must be a diffedu SDE, got {type(sde).__name__}")
    x0, z, t = _batch(model, x0, z, t, reduction, sde.T)
    if bool((t <= 0).any()):
        raise ValueError("t must be > 0: the target z / sigma(t) diverges at t = 0")
    return _dsm_loss(model, x0, sde, t.to(x0.device), z, reduction)


_MODEL = "model(x, t) -> tensor (n, d)"


def _batch(model, x0, z, t, reduction, T):
    """The checks shared by :func:`dsm_loss` and :func:`fm_loss`: the model, the batch, its noise and its times."""
    _checks.choice(reduction, "reduction", ("mean", "none"))
    _checks.callable_(model, "model", _MODEL)
    x0 = _checks.batch(x0, "x0")
    _checks.model_dim(model, x0.shape[1], "model", "x0")
    z = _checks.batch(z, "z")
    if z.shape != x0.shape:
        raise ValueError(f"z must have the shape of x0 {tuple(x0.shape)}, got {tuple(z.shape)}")
    if not isinstance(t, torch.Tensor) or t.dim() != 1 or t.shape[0] != x0.shape[0]:
        got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"t must be a tensor of shape (n,) = ({x0.shape[0]},), got {got}")
    return x0, z, _checks.scalar_time(t, "t", low=0.0, high=T)


def _dsm_loss(model, x0, sde, t, z, reduction="mean"):
    alpha, sigma = sde.marginal(t)
    alpha = alpha.to(x0.dtype)[:, None]
    sigma = sigma.to(x0.dtype)[:, None]
    g2 = (sde.diffusion(t) ** 2).to(x0.dtype)[:, None]
    xt = alpha * x0 + sigma * z
    s = _checks.call(model, "model", _MODEL, xt, t.to(x0.dtype))
    if not isinstance(s, torch.Tensor) or s.shape != x0.shape:
        got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
        raise ValueError(f"model must return a tensor of shape {tuple(x0.shape)} ({_MODEL}), got {got}")
    if not bool(torch.isfinite(s.detach()).all()):
        raise ValueError("model returned non-finite values (NaN or inf)")
    per_sample = (g2 * (s + z / sigma) ** 2).mean(1)
    return per_sample.mean() if reduction == "mean" else per_sample


def train_dsm(model: torch.nn.Module, data: torch.Tensor, sde: SDE, steps: int, batch_size: int = 512,
              lr: float = 1e-3, generator: torch.Generator | None = None, *, t_grid: int | None = None,
              progress: bool = True, log_every: int = 100) -> torch.Tensor:
    """Train ``model`` in place with Adam on the denoising loss; returns the per-step losses ``(steps,)``.

    ``data`` is the training set ``(N, d)`` (``N >= batch_size``); times are uniform on
    ``[sde.t_min, sde.T]``, or, with ``t_grid = K`` (an integer >= 2), uniform on the K points of
    ``linspace(t_min, T, K)`` (the paper's code uses K = 1000); every random draw comes from ``generator``,
    epoch by epoch (a permutation of the data, then the epoch's times, then its noise), so a seed (and the
    model's initial weights) fixes the result.  ``progress`` prints a one-line progress bar.
    ``lr`` lies in (0, 10].  A :class:`~diffedu.nets.ScoreMLP` is trained by the fast engine of
    :func:`diffedu.train.train_dsm_many` (its gradient written out by hand, Adam on one flat tensor); any other module by
    autograd and ``torch.optim.Adam``, on the same draws and the same loss.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return _train_dsm("train_dsm", [model], [data], [sde], steps, batch_size, lr, [generator], t_grid, progress,
                      log_every)[0]


def train_dsm_many(models, data, sdes, steps: int, batch_size: int = 512, lr: float = 1e-3, generators=None, *,
                   t_grid: int | None = None, progress: bool = True, log_every: int = 100) -> torch.Tensor:
    r"""Train several score networks at once, each exactly as :func:`diffedu.train_dsm` would; returns the losses ``(M, steps)``.

    ``models``, ``data``, ``sdes`` and ``generators`` are sequences of one length M: model m learns the score of
    ``data[m]`` under ``sdes[m]`` with the draws of ``generators[m]`` (``None``: torch's global generator, or
    one ``None`` for all).  Only distinct generators give each model the draws of its own :func:`diffedu.train_dsm` run:
    models that share one (or torch's global generator) take turns on its stream, epoch by epoch.  :class:`~diffedu.nets.ScoreMLP`\ s of one shape, dtype and device become one batched
    network (weights ``(M, in, out)``, batched matrix products), so the four shipped models train as one;
    any other module must come alone (M = 1).  The models are updated in place.
    """
    return _train_dsm("train_dsm_many", models, data, sdes, steps, batch_size, lr, generators, t_grid, progress,
                      log_every)


def _train_dsm(name, models, data, sdes, steps, batch_size, lr, generators, t_grid, progress, log_every):
    models, data, procs, generators = _many(models, data, sdes, generators)
    for m, sde in enumerate(procs):
        arg = "sde" if len(procs) == 1 else f"sdes[{m}]"
        if not isinstance(sde, SDE):
            raise TypeError(f"{arg} must be a diffedu SDE, got {type(sde).__name__}")
        if sde.t_min <= 0:
            raise ValueError(f"{arg}.t_min must be > 0 for score matching (the target z / sigma diverges at t = 0), "
                             f"got t_min = {sde.t_min:g}")
    return _fit(name, models, data, procs, [_dsm_targets(sde) for sde in procs], steps, batch_size, lr,
                generators, t_grid, progress, log_every)


def _many(models, data, procs, generators):
    """Check the sequences of :func:`train_dsm_many`: equal lengths, modules, finite batches of each model's dimension."""
    if isinstance(models, torch.nn.Module) or not isinstance(models, (list, tuple)) or not models:
        raise TypeError("models must be a non-empty list of torch.nn.Module (one per model)")
    n = len(models)
    if generators is None:
        generators = [None] * n
    for name, seq in (("data", data), ("sdes", procs), ("generators", generators)):
        if not isinstance(seq, (list, tuple)) or len(seq) != n:
            raise ValueError(f"{name} must be a list of {n} entries, one per model, got "
                             f"{len(seq) if isinstance(seq, (list, tuple)) else type(seq).__name__}")
    for m, model in enumerate(models):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}" + (f" (models[{m}])" if n > 1 else ""))
        if any(other is model for other in models[:m]):
            raise ValueError(f"models[{m}] is the same module as an earlier entry: each model must be its own network")
    out = []
    for m, (model, x) in enumerate(zip(models, data)):
        x = _checks.batch(x, "data" if n == 1 else f"data[{m}]")
        _checks.model_dim(model, x.shape[1], "model" if n == 1 else f"models[{m}]", "data" if n == 1 else f"data[{m}]")
        out.append(x)
    for m, g in enumerate(generators):
        _checks.generator(g, "generator" if n == 1 else f"generators[{m}]")
    if n > 1 and not all(type(model) is ScoreMLP for model in models):
        raise TypeError("models: only ScoreMLPs train together (as one batched network); train any other module alone")
    return list(models), out, list(procs), list(generators)


def _dsm_targets(sde):
    """(x0, t, z) -> (x_t, y, w): the denoising loss {eq}`eq-dsm-loss` as w |s(x_t, t) - y|^2 with y = -z/sigma, w = g^2."""
    def targets(x0, t, z):
        alpha, sigma = sde.marginal(t)
        g2 = sde.diffusion(t) ** 2
        a, s, w = (c.to(x0.dtype)[..., None] for c in (alpha, sigma, g2))
        return a * x0 + s * z, -z / s, w
    return targets


def _fit(name, models, data, procs, targets, steps, batch_size, lr, generators, t_grid, progress, log_every):
    """The training loop of :func:`train_dsm_many` and :func:`train_flow_matching`: Adam on the mean over the batch and
    the coordinates of ``w |model(x_t, t) - y|^2``, where ``targets[m](x0, t, z) -> (x_t, y, w)``.

    For each model, each epoch draws from its generator a permutation of its data, the times of the epoch's
    batches (uniform on ``[t_min, T]``, or on the ``t_grid`` points of ``linspace(t_min, T, t_grid)``), then their
    noise; the remainder of the permutation is dropped."""
    steps = _checks.positive_int(steps, "steps", high=_checks.MAX_STEPS)
    batch_size = _checks.positive_int(batch_size, "batch_size")
    for m, x in enumerate(data):
        if batch_size > x.shape[0]:
            raise ValueError(f"batch_size must be <= the number of data points {x.shape[0]}"
                             f"{'' if len(data) == 1 else f' of data[{m}]'}, got {batch_size}")
    # Adam with lr > 10 only diverges, and lr > 3e38 does not fit the float32 update at all
    lr = _checks.real(lr, "lr", low=0.0, low_open=True, high=10.0)
    if t_grid is not None:
        t_grid = _checks.positive_int(t_grid, "t_grid", low=2, high=10**6)
    _checks.flag(progress, "progress")
    log_every = _checks.positive_int(log_every, "log_every")
    for m, model in enumerate(models):
        if not any(p.requires_grad for p in model.parameters()):
            raise ValueError(f"{'model' if len(models) == 1 else f'models[{m}]'} has no trainable parameters (all have "
                             "requires_grad=False, as a loaded pretrained model does): unfreeze them to train it")
    # the hand-written engine trains every weight: it is for ScoreMLPs none of whose parameters are frozen
    fast = all(type(model) is ScoreMLP and all(p.requires_grad for p in model.parameters()) for model in models)
    if len(models) > 1 and not fast:
        raise ValueError("models: ScoreMLPs with frozen parameters (requires_grad=False) train one at a time, with "
                         "train_dsm; unfreeze them (p.requires_grad_(True)) to train them together")
    engine = _Stack(models, lr) if fast else _Autograd(models[0], lr, name)
    if fast:
        dev = engine.p.device
        for m, x in enumerate(data):
            if x.device != dev:
                raise ValueError(f"data must be on the models' device {dev}, got {x.device}"
                                 + (f" (data[{m}])" if len(data) > 1 else ""))
    grids = [None if t_grid is None else torch.linspace(p.t_min, p.T, t_grid, dtype=torch.float64) for p in procs]
    per_epoch = [x.shape[0] // batch_size for x in data]
    epochs = [None] * len(models)
    losses = torch.empty(len(models), steps)
    start = time.perf_counter()
    for step in range(steps):
        for m in range(len(models)):
            if step % per_epoch[m] == 0:
                x0, t, z = _draw_epoch(data[m], procs[m], per_epoch[m], batch_size, generators[m], grids[m])
                epochs[m] = (*targets[m](x0, t, z), t.to(x0.dtype))
        k = [step % pe for pe in per_epoch]
        if len(models) == 1:
            batch = [part[k[0]] for part in epochs[0]]
        else:             # (x_t, y, w, t) of the M models, stacked
            batch = [torch.stack([e[i][k[j]] for j, e in enumerate(epochs)]) for i in range(4)]
        loss = engine.gradient(*batch)
        finite = torch.isfinite(loss)
        if not bool(finite.all()):
            engine.finish(models)      # the weights of the last finite step
            which = "" if len(models) == 1 else f" of models {torch.nonzero(~finite).flatten().tolist()}"
            if step == 0:
                raise ValueError(f"model returned non-finite values (NaN or inf){which}")
            raise FloatingPointError(f"{name}: the loss{which} became non-finite at step {step + 1} (lr = {lr:g}); "
                                     "lower lr (Adam's usual range is 1e-4 to 1e-2)")
        engine.update()
        losses[:, step] = loss.detach().to("cpu", torch.float32)
        if progress and ((step + 1) % log_every == 0 or step + 1 == steps):
            done = (step + 1) / steps
            bar = "#" * int(30 * done)
            recent = float(losses[:, max(0, step + 1 - log_every):step + 1].mean())
            sys.stdout.write(f"\r[{bar:<30}] {step + 1}/{steps}  loss {recent:.4f}  "
                             f"{time.perf_counter() - start:.0f} s")
            sys.stdout.flush()
    if progress:
        sys.stdout.write("\n")
    engine.finish(models)
    return losses


def _draw_epoch(data, proc, per_epoch, batch_size, generator, grid):
    """One epoch's draws: ``x0 (E, B, d)`` from a permutation of ``data``, ``t (E, B)`` (float64, uniform on
    ``[t_min, T]`` or on ``grid``), then ``z (E, B, d)``; E = ``per_epoch`` batches of B = ``batch_size``."""
    order = torch.randperm(data.shape[0], generator=generator)[:per_epoch * batch_size].to(data.device)
    x0 = data[order].reshape(per_epoch, batch_size, data.shape[1])
    if grid is None:
        t = proc.t_min + (proc.T - proc.t_min) * torch.rand(per_epoch, batch_size, generator=generator,
                                                              dtype=torch.float64)
    else:
        t = grid[torch.randint(grid.shape[0], (per_epoch, batch_size), generator=generator)]
    z = randn(x0.shape, generator=generator, device=data.device, dtype=data.dtype)
    return x0, t.to(data.device), z


class _Autograd:
    """The engine for any module: its forward pass, autograd and ``torch.optim.Adam`` (fused where it can be)."""

    def __init__(self, model, lr, name):
        self.model, self.name, self.checked = model, name, False
        params = list(model.parameters())
        fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
        self.opt = torch.optim.Adam(params, lr=lr, fused=fused or None)

    def gradient(self, xt, y, w, t):
        """The loss of the batch ``(B, d)``, shape ``(1,)``, and its gradient in the parameters' ``.grad``."""
        if self.checked:
            out = self.model(xt, t)
        else:                 # the first call is checked (signature, shape, finite values); the later ones are not
            out = _checks.call(self.model, "model", _MODEL, xt, t)
            if not isinstance(out, torch.Tensor) or out.shape != xt.shape:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ValueError(f"model must return a tensor of shape {tuple(xt.shape)} ({_MODEL}), got {got}")
            self.checked = True
        loss = (w * (out - y) ** 2).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        return loss.detach()[None]

    def update(self):
        self.opt.step()

    def finish(self, models):
        pass


class _Stack:
    r"""M :class:`~diffedu.nets.ScoreMLP`\ s of one shape as one network: the weights of layer k as ``(M, out, in)`` (as
    ``nn.Linear`` stores them), the biases as ``(M, 1, out)``, all of them views of one flat tensor (and their gradients
    of another), so that a step is a few batched matrix products and one Adam update of the flat tensor.

    The gradient is written out: with :math:`h_k = \phi(a_k)`, :math:`\phi(a) = a\,\varsigma(a)` (swish,
    :math:`\varsigma` the logistic function), :math:`\phi'(a) = \varsigma + h(1-\varsigma)`, and the loss
    :math:`L_m = \operatorname{mean}\, w (\text{out} - y)^2`, the backward pass is
    :math:`\delta = 2w(\text{out}-y)/(Bd)`, :math:`\nabla W_k = \delta^\top h_{k-1}`, :math:`\nabla b_k = \sum\delta`,
    :math:`\delta \leftarrow (\delta W_k)\,\phi'(a_{k-1})`.
    """

    def __init__(self, models, lr):
        lin = [[layer for layer in model.net if isinstance(layer, nn.Linear)] for model in models]
        ref = lin[0][0].weight
        shapes = [(layer.out_features, layer.in_features) for layer in lin[0]]
        for m, layers in enumerate(lin):
            w = layers[0].weight
            if [(layer.out_features, layer.in_features) for layer in layers] != shapes or w.dtype != ref.dtype \
                    or w.device != ref.device:
                raise ValueError(f"models must share one shape, dtype and device to train together: models[{m}] "
                                 f"differs from models[0] ({ref.dtype} on {ref.device})")
        M = len(models)
        size = sum(M * (o * i + o) for o, i in shapes)
        self.p = torch.empty(size, dtype=ref.dtype, device=ref.device)
        self.g = torch.zeros_like(self.p)
        self.W, self.b, self.gW, self.gb = [], [], [], []
        off = 0
        with torch.no_grad():
            for k, (o, i) in enumerate(shapes):
                for full, grad, n, shape in ((self.W, self.gW, o * i, (M, o, i)), (self.b, self.gb, o, (M, 1, o))):
                    full.append(self.p[off:off + M * n].view(shape))
                    grad.append(self.g[off:off + M * n].view(shape))
                    off += M * n
                self.W[k].copy_(torch.stack([layers[k].weight for layers in lin]))
                self.b[k].copy_(torch.stack([layers[k].bias[None] for layers in lin]))
        self.m1, self.m2 = torch.zeros_like(self.p), torch.zeros_like(self.p)
        self.lr, self.count = lr, 0

    @torch.no_grad()
    def gradient(self, xt, y, w, t):
        """The M losses of the batch ``(M, B, d)`` (or ``(B, d)`` for M = 1), and their gradients in ``self.g``."""
        dt = self.p.dtype
        h = torch.cat([xt.to(dt), t.to(dt)[..., None]], -1)
        if h.dim() == 2:
            h, y, w = h[None], y[None], w[None]
        hs, pre = [h], []
        last = len(self.W) - 1
        for k in range(last + 1):
            a = torch.baddbmm(self.b[k], h, self.W[k].transpose(1, 2))
            if k < last:
                h = torch.nn.functional.silu(a)
                hs.append(h)
                pre.append(a)
        r = a.sub_(y.to(dt))
        delta = r * (w.to(dt) * (2.0 / (r.shape[1] * r.shape[2])))
        loss = (delta * r).sum((1, 2)) * 0.5
        for k in range(last, -1, -1):
            out, inp = self.W[k].shape[1:]
            if inp < out:     # a product with few output columns is slow: form the transpose (MKL, measured)
                self.gW[k].copy_(torch.bmm(hs[k].transpose(1, 2), delta).transpose(1, 2))
            else:
                torch.bmm(delta.transpose(1, 2), hs[k], out=self.gW[k])
            torch.sum(delta, 1, keepdim=True, out=self.gb[k])
            if k > 0:
                delta = torch.ops.aten.silu_backward(torch.bmm(delta, self.W[k]), pre[k - 1])
        return loss

    @torch.no_grad()
    def update(self):
        """One Adam step of every model: torch's Adam (betas 0.9, 0.999, eps 1e-8) written out on the flat tensor, five
        element-wise operations (faster here than ``torch.optim.Adam(fused=True)`` on the same tensor, whose Python
        wrapper costs more than the update; measured)."""
        (b1, b2), self.count = (0.9, 0.999), self.count + 1
        self.m1.lerp_(self.g, 1 - b1)
        self.m2.mul_(b2).addcmul_(self.g, self.g, value=1 - b2)
        denom = (self.m2.sqrt() / math.sqrt(1 - b2 ** self.count)).add_(1e-8)
        self.p.addcdiv_(self.m1, denom, value=-self.lr / (1 - b1 ** self.count))

    @torch.no_grad()
    def finish(self, models):
        """Write the trained weights back into the models."""
        for m, model in enumerate(models):
            layers = [layer for layer in model.net if isinstance(layer, nn.Linear)]
            for k, layer in enumerate(layers):
                layer.weight.copy_(self.W[k][m])
                layer.bias.copy_(self.b[k][m, 0])


# --- flow matching (Chapter 7) --------------------------------------------------------------------

def _path(path):
    from .flows import Interpolant

    if not isinstance(path, Interpolant):
        raise TypeError(f"path must be a diffedu.flows.Interpolant (Interpolant.vp(...), Interpolant.linear()), "
                        f"got {type(path).__name__}")
    return path


def fm_loss(model, x0: torch.Tensor, path, t: torch.Tensor, z: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    r"""The conditional flow-matching loss {eq}`eq-fm-loss` of a batch: the mean over the batch and the coordinates of
    :math:`\|v_\theta(x_t, t) - (\dot\alpha_t x_0 + \dot\sigma_t z)\|^2/d` with :math:`x_t = \alpha_t x_0 + \sigma_t z`
    (``t`` shape ``(n,)`` in ``[0, path.T]``, ``z`` like ``x0``).  Its minimiser over all fields is the marginal
    velocity.  On the VP path, with :math:`v_\theta = f - \tfrac12 g^2 s_\theta`, each sample's loss is
    :math:`g^2/4` times its :func:`dsm_loss`: flow matching is score matching with the weight :math:`g^4/4`.
    ``reduction="none"`` returns the per-sample losses ``(n,)``.
    """
    path = _path(path)
    x0, z, t = _batch(model, x0, z, t, reduction, path.T)
    path._vp_positive(t)
    return _fm_loss(model, x0, path, t.to(x0.device), z, reduction)


def _fm_loss(model, x0, path, t, z, reduction="mean"):
    a, s, da, ds = (c.to(x0.dtype)[:, None] for c in path._coefficients(t.to(torch.float64)))
    xt = a * x0 + s * z
    v = _checks.call(model, "model", _MODEL, xt, t.to(x0.dtype))
    if not isinstance(v, torch.Tensor) or v.shape != x0.shape:
        got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
        raise ValueError(f"model must return a tensor of shape {tuple(x0.shape)} ({_MODEL}), got {got}")
    if not bool(torch.isfinite(v.detach()).all()):
        raise ValueError("model returned non-finite values (NaN or inf)")
    per_sample = ((v - (da * x0 + ds * z)) ** 2).mean(1)
    return per_sample.mean() if reduction == "mean" else per_sample


def train_flow_matching(model: torch.nn.Module, data: torch.Tensor, path, steps: int, batch_size: int = 512,
                        lr: float = 1e-3, generator: torch.Generator | None = None, *, progress: bool = True,
                        log_every: int = 100) -> torch.Tensor:
    r"""Train the velocity network ``model(x, t)`` in place with Adam on :func:`fm_loss`; returns the per-step losses.

    The loop, the batches and the random draws are those of :func:`diffedu.train_dsm` (times uniform on
    ``[path.t_min, path.T]``), so a seed fixes the result.  The linear path allows ``path.t_min = 0`` (its target
    :math:`z - x_0` stays finite); the VP path needs ``t_min > 0`` (its :math:`\dot\sigma` diverges at 0).
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    models, data, _, generators = _many([model], [data], [path], [generator])
    path = _path(path)
    if path.kind == "vp" and path.t_min <= 0:
        raise ValueError("path.t_min must be > 0 for flow matching on the VP path (the target's sigma' diverges at 0)")
    return _fit("train_flow_matching", models, data, [path], [_fm_targets(path)], steps, batch_size, lr, generators,
                None, progress, log_every)[0]


def _fm_targets(path):
    """(x0, t, z) -> (x_t, y, w): the flow-matching loss {eq}`eq-fm-loss` with y the conditional velocity and w = 1."""
    def targets(x0, t, z):
        a, s, da, ds = (c.to(x0.dtype)[..., None] for c in path._coefficients(t))
        return a * x0 + s * z, da * x0 + ds * z, torch.ones_like(a)
    return targets
