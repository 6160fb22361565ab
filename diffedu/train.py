r"""Denoising score matching (book: Chapter 3, {eq}`eq-dsm-loss`) and flow matching (Chapter 7).

The loss is the :math:`g^2`-weighted ("likelihood-weighted") denoising objective

.. math:: L(\theta) = \mathbb E_{t\sim U[t_{\min},T]}\,\mathbb E_{x_0,z}\;
          \frac{g(t)^2}{d}\,\big\| s_\theta(\alpha x_0 + \sigma z,\ t) + z/\sigma \big\|^2 ,

estimated by the mean over the batch (the :math:`1/d` makes it the mean over the coordinates), as in Hirono, Tanaka & Fukushima (2024).
Batches are drawn epoch by epoch without replacement, dropping the remainder.
:func:`train_flow_matching` runs the same loop on the flow-matching loss :func:`fm_loss` of an
interpolant (:class:`diffedu.flows.Interpolant`).
"""

from __future__ import annotations

import sys
import time

import torch

from . import _checks
from .device import randn
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
              lr: float = 1e-3, generator: torch.Generator | None = None, *, progress: bool = True,
              log_every: int = 100) -> torch.Tensor:
    """Train ``model`` in place with Adam on the denoising loss; returns the per-step losses ``(steps,)``.

    ``data`` is the training set ``(N, d)`` (``N >= batch_size``); times are uniform on
    ``[sde.t_min, sde.T]``; every random draw comes from ``generator``, so a seed (and the
    model's initial weights) fixes the result.  ``progress`` prints a one-line progress bar.
    ``lr`` lies in (0, 10].
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    data = _checks.batch(data, "data")
    _checks.model_dim(model, data.shape[1], "model", "data")
    if not isinstance(sde, SDE):
        raise TypeError(f"sde must be a diffedu SDE, got {type(sde).__name__}")
    if sde.t_min <= 0:
        raise ValueError("sde.t_min must be > 0 for score matching (the target z / sigma diverges at t = 0)")
    return _fit("train_dsm", model, data, sde, steps, batch_size, lr, generator, progress, log_every,
                lambda x0, t, z: _dsm_loss(model, x0, sde, t, z))


def _fit(name, model, data, sde, steps, batch_size, lr, generator, progress, log_every, batch_loss):
    """The training loop shared by :func:`train_dsm` and :func:`train_flow_matching`: Adam on ``batch_loss(x0, t, z)``,
    batches drawn epoch by epoch without replacement, t uniform on [sde.t_min, sde.T], then z, all from ``generator``."""
    steps = _checks.positive_int(steps, "steps", high=_checks.MAX_STEPS)
    batch_size = _checks.positive_int(batch_size, "batch_size")
    if batch_size > data.shape[0]:
        raise ValueError(f"batch_size must be <= the number of data points {data.shape[0]}, got {batch_size}")
    # Adam with lr > 10 only diverges, and lr > 3e38 does not fit the float32 update at all
    lr = _checks.real(lr, "lr", low=0.0, low_open=True, high=10.0)
    _checks.generator(generator)
    _checks.flag(progress, "progress")
    log_every = _checks.positive_int(log_every, "log_every")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n, per_epoch = data.shape[0], data.shape[0] // batch_size
    losses = torch.empty(steps)
    order, start = None, time.perf_counter()
    for step in range(steps):
        if step % per_epoch == 0:
            order = torch.randperm(n, generator=generator)
        idx = order[(step % per_epoch) * batch_size:(step % per_epoch + 1) * batch_size].to(data.device)
        x0 = data[idx]
        t = sde.t_min + (sde.T - sde.t_min) * torch.rand(batch_size, generator=generator, dtype=torch.float64)
        z = randn(x0.shape, generator=generator, device=data.device, dtype=data.dtype)
        try:
            loss = batch_loss(x0, t.to(data.device), z)
        except ValueError as err:
            if step > 0 and "non-finite" in str(err):
                raise FloatingPointError(f"{name}: the network's output became non-finite at step {step + 1} "
                                         f"(lr = {lr:g}); lower lr (Adam's usual range is 1e-4 to 1e-2)") from err
            raise
        if not bool(torch.isfinite(loss)):
            raise FloatingPointError(f"{name}: the loss became non-finite at step {step + 1} (lr = {lr:g}); "
                                     "lower lr (Adam's usual range is 1e-4 to 1e-2)")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses[step] = loss.detach()
        if progress and ((step + 1) % log_every == 0 or step + 1 == steps):
            done = (step + 1) / steps
            bar = "#" * int(30 * done)
            recent = float(losses[max(0, step + 1 - log_every):step + 1].mean())
            sys.stdout.write(f"\r[{bar:<30}] {step + 1}/{steps}  loss {recent:.4f}  "
                             f"{time.perf_counter() - start:.0f} s")
            sys.stdout.flush()
    if progress:
        sys.stdout.write("\n")
    return losses


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
    data = _checks.batch(data, "data")
    _checks.model_dim(model, data.shape[1], "model", "data")
    path = _path(path)
    if path.kind == "vp" and path.t_min <= 0:
        raise ValueError("path.t_min must be > 0 for flow matching on the VP path (the target's sigma' diverges at 0)")
    return _fit("train_flow_matching", model, data, path, steps, batch_size, lr, generator, progress, log_every,
                lambda x0, t, z: _fm_loss(model, x0, path, t, z))
