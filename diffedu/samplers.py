r"""Samplers of diffusion models (book: Chapters 3 and 4).

Every sampler starts from :math:`x_T \sim \pi` and walks the decreasing time grid
:math:`T = t_0 > t_1 > \dots > t_N = t_{\min}` using a score :math:`s(x, t)`:

* ``euler_maruyama`` / ``heun``: the :math:`\hbar` family {eq}`eq-hbar-family` — the SDE
  ``sde.reverse(score, hbar)`` integrated by :mod:`diffedu.solvers` (``hbar = 1``: reverse SDE,
  ``hbar = 0``: probability-flow ODE). This is the paper's sampler.
* ``ancestral``: DDPM ancestral sampling (VP) or its SMLD analogue (VE), {eq}`eq-ancestral`.
* ``reverse_diffusion``: the reverse-diffusion predictor of Song et al. (2021), built from
  the exact one-step Gaussian transition of the affine forward SDE.
* ``pc``: at each time a Langevin corrector step, then the reverse-diffusion predictor.

:func:`~diffedu.sample` is the one-line entry point.
"""

from __future__ import annotations

import math

import torch

from . import _checks
from .device import randn
from .sde import SDE, VESDE, VPSDE, SubVPSDE
from .solvers import euler_maruyama, heun, time_grid

METHODS = ("euler_maruyama", "heun", "ancestral", "reverse_diffusion", "pc")
#: the extra keyword options each method of :func:`sample` takes
_OPTIONS = {"euler_maruyama": (), "heun": (), "ancestral": (), "reverse_diffusion": ("noise_last",),
            "pc": ("snr", "corrector_steps")}


def _transition(sde: SDE, t_from: float, t_to: float):
    r"""Forward one-step transition from ``t_to`` up to ``t_from`` (> t_to): :math:`x_{t} = r\,x_{s} + \sqrt{v}\,z`."""
    a1, s1 = (float(v) for v in sde.marginal(t_from))
    a0, s0 = (float(v) for v in sde.marginal(t_to))
    r = a1 / a0
    return r, max(s1**2 - r**2 * s0**2, 0.0)


_SCORE_SIGNATURE = "score(x, t) -> tensor (n, d), x (n, d), t (n,)"


def _score(score, x, t):
    tt = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
    return _checks.evaluate(score, "score", _SCORE_SIGNATURE, tuple(x.shape), x, tt)


def _decreasing_times(ts, sde: SDE, name: str = "ts") -> list[float]:
    """A sampler's time grid: at least two finite, strictly decreasing times in [0, T]."""
    values = _checks.times(ts, name)
    if not all(b < a for a, b in zip(values, values[1:])):
        raise ValueError(f"{name} must be strictly decreasing (samplers run from T down to t_min)")
    if values[-1] < 0.0 or values[0] > sde.T + 1e-12:
        raise ValueError(f"{name} must lie in [0, T] = [0, {sde.T:g}], got [{values[-1]:g}, {values[0]:g}]")
    return values


def _inputs(sde, score, x, ts, generator, *, affine: bool = True):
    """Check a sampler's common arguments; returns ``(x, ts as a list)``."""
    if not isinstance(sde, SDE):
        raise TypeError(f"sde must be a diffedu SDE, got {type(sde).__name__}")
    if affine and sde.state_dependent:
        raise TypeError(f"this sampler needs an affine SDE with noise g(t), got {type(sde).__name__}")
    _checks.callable_(score, "score", _SCORE_SIGNATURE)
    x = _checks.batch(x, "x")
    _checks.model_dim(score, x.shape[1], "score", "x")
    _checks.generator(generator)
    tl = _decreasing_times(ts, sde)
    if affine:
        sde.marginal(tl[0])     # a TypeError naming the SDE if it has no Gaussian transition
    return x, tl


def ancestral(sde: SDE, score, x, ts, generator=None) -> torch.Tensor:
    r"""DDPM ancestral sampling {eq}`eq-ancestral` (VP) / SMLD ancestral sampling (VE).

    VP, with :math:`\beta_k = 1 - \alpha(t_{k})^2/\alpha(t_{k+1})^2`:
    :math:`x_{k+1} = (x_k + \beta_k s(x_k, t_k))/\sqrt{1-\beta_k} + \sqrt{\beta_k}\,z`.
    """
    if isinstance(sde, SubVPSDE) or not isinstance(sde, (VPSDE, VESDE)):
        raise TypeError(f"sde must be a VPSDE or a VESDE for ancestral sampling, got {type(sde).__name__}")
    x, ts = _inputs(sde, score, x, ts, generator)
    for t, t_next in zip(ts, ts[1:]):
        s = _score(score, x, t)
        z = randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        if isinstance(sde, VPSDE):
            r, _ = _transition(sde, t, t_next)
            beta = 1.0 - r**2
            x = (x + beta * s) / math.sqrt(1.0 - beta) + math.sqrt(beta) * z
        else:
            s1, s0 = float(sde._sigma_t(torch.tensor(t))), float(sde._sigma_t(torch.tensor(t_next)))
            x = x + (s1**2 - s0**2) * s + math.sqrt(s0**2 * (s1**2 - s0**2) / s1**2) * z
    return x


def reverse_diffusion(sde: SDE, score, x, ts, generator=None, *, noise_last: bool = True) -> torch.Tensor:
    r"""Song et al.'s reverse-diffusion predictor: with the forward step :math:`x_t = r x_s + \sqrt v z`,
    :math:`x_s = x_t - (r-1)x_t + v\,s(x_t, t) + \sqrt{v}\,z`."""
    x, ts = _inputs(sde, score, x, ts, generator)
    _checks.flag(noise_last, "noise_last")
    for k, (t, t_next) in enumerate(zip(ts, ts[1:])):
        x = _rd_step(sde, score, x, t, t_next, generator, noise=noise_last or k < len(ts) - 2)
    return x


def _rd_step(sde, score, x, t, t_next, generator, noise=True):
    r, v = _transition(sde, t, t_next)
    x = x - (r - 1.0) * x + v * _score(score, x, t)
    if noise:
        x = x + math.sqrt(v) * randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x


def langevin_corrector(sde: SDE, score, x, t: float, t_next: float, generator=None, *, snr: float = 0.16,
                       steps: int = 1) -> torch.Tensor:
    r"""Langevin MCMC at fixed time ``t``: :math:`x \leftarrow x + \epsilon s + \sqrt{2\epsilon} z`,
    with :math:`\epsilon = 2 r^2 (\mathrm{snr}\,\|z\|/\|s\|)^2` (Song et al. 2021, Algorithm 5).

    ``t_next < t`` is the next time of the sampler's grid (it sets :math:`r`); ``snr >= 0``;
    ``steps >= 0`` corrector steps (0: none)."""
    t, t_next = _checks.real(t, "t"), _checks.real(t_next, "t_next")
    if t_next < 0:
        raise ValueError(f"t_next must be >= 0, got {t_next:g}")
    if not t_next < t:
        raise ValueError(f"t_next must be smaller than t (the sampler's next, earlier time), got t={t:g}, t_next={t_next:g}")
    x, _ = _inputs(sde, score, x, [t, t_next], generator)
    return _langevin(sde, score, x, float(t), float(t_next), generator,
                     _checks.real(snr, "snr", low=0.0, high=_checks.SCALE_MAX),
                     _checks.positive_int(steps, "steps", low=0, high=_checks.MAX_STEPS))


def _langevin(sde, score, x, t, t_next, generator, snr, steps):
    r, _ = _transition(sde, t, t_next)
    for _ in range(steps):
        s = _score(score, x, t)
        z = randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        ratio = float(z.norm(dim=1).mean() / s.norm(dim=1).mean().clamp_min(1e-12))
        eps = 2.0 * r**2 * (snr * ratio) ** 2
        x = x + eps * s + math.sqrt(2.0 * eps) * z
    return x


def pc(sde: SDE, score, x, ts, generator=None, *, snr: float = 0.16, corrector_steps: int = 1) -> torch.Tensor:
    """Predictor–corrector: a Langevin corrector at each time, then a reverse-diffusion predictor step.

    ``snr >= 0`` sets the corrector's step (:func:`langevin_corrector`); ``corrector_steps >= 0``."""
    x, ts = _inputs(sde, score, x, ts, generator)
    snr = _checks.real(snr, "snr", low=0.0, high=_checks.SCALE_MAX)
    corrector_steps = _checks.positive_int(corrector_steps, "corrector_steps", low=0, high=_checks.MAX_STEPS)
    for t, t_next in zip(ts, ts[1:]):
        x = _langevin(sde, score, x, t, t_next, generator, snr, corrector_steps)
        x = _rd_step(sde, score, x, t, t_next, generator)
    return x


def sample(sde: SDE, score, n: int, hbar: float = 1.0, steps: int = 1000, generator: torch.Generator | None = None,
           *, dim: int = 2, method: str = "euler_maruyama", t_min: float | None = None, device=None,
           dtype: torch.dtype = torch.float32, return_path: bool = False, **options) -> torch.Tensor:
    r"""Draw ``n`` samples of the model :math:`q_{t_{\min}}` from the prior, in ``steps`` steps.

    ``method`` is one of ``euler_maruyama`` (default; the :math:`\hbar` family), ``heun``,
    ``ancestral``, ``reverse_diffusion``, ``pc``; the last three are stochastic samplers of
    the reverse SDE and need ``hbar = 1``.  ``t_min`` defaults to ``sde.t_min``.
    ``score(x, t)``: ``x`` ``(n, dim)``, ``t`` ``(n,)``.  Returns ``(n, dim)`` (or the path
    ``(steps+1, n, dim)`` with ``return_path=True``, for the :math:`\hbar` family only).
    ``options``: ``snr`` and ``corrector_steps`` for ``pc``, ``noise_last`` for
    ``reverse_diffusion``; any other keyword is refused.
    """
    if not isinstance(sde, SDE):
        raise TypeError(f"sde must be a diffedu SDE, got {type(sde).__name__}")
    _checks.callable_(score, "score", "score(x, t) -> tensor (n, d)")
    _checks.choice(method, "method", METHODS)
    hbar = _checks.hbar(hbar)
    steps = _checks.positive_int(steps, "steps", high=_checks.MAX_STEPS)
    n = _checks.positive_int(n, "n")
    dim = _checks.positive_int(dim, "dim")
    _checks.model_dim(score, dim, "score", "dim")
    _checks.flag(return_path, "return_path")
    _checks.memory(n * dim * (steps + 1 if return_path else 4), "n * dim" + (" * (steps + 1)" if return_path else ""))
    allowed = _OPTIONS[method]
    for key in options:
        if key not in allowed:
            raise TypeError(f"sample() got an unexpected keyword argument {key!r}; method={method!r} takes "
                            + (f"the options {sorted(allowed)}" if allowed else "no extra options"))
    t_min = sde.t_min if t_min is None else _checks.real(t_min, "t_min", low=0.0, high=sde.T, high_open=True)
    ts = time_grid(sde.T, t_min, steps)
    x = sde.prior_sample(n, dim, generator, device=device, dtype=dtype)
    if method in ("euler_maruyama", "heun"):
        solver = euler_maruyama if method == "euler_maruyama" else heun
        return solver(sde.reverse(score, hbar), x, ts, generator=generator, return_path=return_path)
    if hbar != 1.0:
        raise ValueError(f"method={method!r} samples the reverse SDE: hbar must be 1, got {hbar:g}")
    if return_path:
        raise ValueError("return_path is available for method='euler_maruyama' or 'heun' only")
    tl = ts.tolist()
    if method == "ancestral":
        return ancestral(sde, score, x, tl, generator)
    if method == "reverse_diffusion":
        return reverse_diffusion(sde, score, x, tl, generator, **options)
    return pc(sde, score, x, tl, generator, **options)


def w2_trial(model, data: str, hbar: float, trial: int, *, n: int = 2000, steps: int = 1000, shift: bool = True) -> float:
    r"""One trial of sample quality against :math:`\hbar` (Chapter 4; the paper's Fig. 4 setting).

    ``n`` samples of the shipped ``model`` (with ``model.sde``) by ``steps`` reverse
    Euler–Maruyama steps of the :math:`\hbar` sampler, against ``n`` fresh points of the data set
    ``data``, by the squared W2 distance of exact optimal transport.  Trial ``k`` uses the same
    prior draws, Brownian increments (seed ``1000 + k``) and data (seed ``2000 + k``) for every
    ``hbar``, so values at different ``hbar`` are paired.  ``shift=False`` ignores
    ``DIFFEDU_SEED_OFFSET`` (see :func:`~diffedu.make_generator`): only for re-creating a value of the
    shipped table ``w2_vs_hbar.json``.
    """
    from .data import DATASETS
    from .device import make_generator
    from .solvers import brownian_increments
    from .stats import squared_w2

    _checks.choice(data, "data", DATASETS)
    if not callable(model) or not isinstance(getattr(model, "sde", None), SDE):
        raise TypeError(f"model must be a shipped score network with a .sde (see load_pretrained), got {type(model).__name__}")
    sde = model.sde
    _checks.model_dim(model, 2, "model", "the data set")
    hbar = _checks.hbar(hbar)
    steps = _checks.positive_int(steps, "steps", high=_checks.MAX_STEPS)
    trial = _checks.positive_int(trial, "trial", low=0, high=10**9)
    _checks.flag(shift, "shift")
    gen = make_generator(1000 + _checks.positive_int(trial, "trial", low=0), shift=shift)
    x_T = sde.prior_sample(_checks.positive_int(n, "n", low=2), 2, gen, dtype=torch.float64)
    ts = time_grid(sde.T, sde.t_min, steps)
    dw = brownian_increments(ts, n, 2, gen)
    x = euler_maruyama(sde.reverse(model, hbar), x_T, ts, dw=dw)
    y = DATASETS[data](n, make_generator(2000 + trial, shift=shift), dtype=torch.float64)
    return squared_w2(x, y)
