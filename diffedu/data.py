r"""Toy data sets with exact densities (book: Chapters 2–4).

:class:`GaussianMixture` is the workhorse: under any affine SDE (VP, sub-VP, VE, OU,
Brownian motion) each component stays Gaussian,
:math:`N(m_k, s_k^2) \mapsto N(\alpha m_k + c(t),\ \alpha^2 s_k^2 + \sigma^2)`, so the
marginal density :math:`p_t` and its score :math:`\nabla\log p_t` are known exactly
(book: {eq}`eq-mixture-marginal`).
"""

from __future__ import annotations

import math

import torch

from . import _checks
from .device import randn
from .sde import SDE


def _as_float64(value, name: str) -> torch.Tensor:
    try:
        return torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be a tensor or a (non-ragged) nested list of numbers") from None


#: the range of component standard deviations whose variance and inverse variance are finite in float64
STD_MIN, STD_MAX = 1e-100, 1e100


class GaussianMixture:
    r"""A mixture :math:`\sum_k w_k N(m_k, \mathrm{diag}(s_k^2))` in ``d`` dimensions.

    * ``weights``: shape ``(K,)``, positive (normalised here);
    * ``means``: shape ``(K, d)``;
    * ``stds``: shape ``(K,)`` (isotropic components) or ``(K, d)`` (diagonal), positive.

    Densities are computed in float64.  Raises ``ValueError`` on inconsistent shapes,
    non-positive weights or standard deviations, or non-finite entries.
    """

    def __init__(self, weights, means, stds):
        w, m, s = (_as_float64(v, name) for v, name in ((weights, "weights"), (means, "means"), (stds, "stds")))
        if w.dim() != 1 or w.numel() == 0:
            raise ValueError(f"weights must have shape (K,) with K >= 1, got {tuple(w.shape)}")
        K = w.shape[0]
        if m.dim() != 2 or m.shape[0] != K:
            raise ValueError(f"means must have shape (K, d) = ({K}, d) with K = len(weights), got {tuple(m.shape)}")
        d = m.shape[1]
        if s.dim() == 1 and s.shape[0] == K:
            s = s[:, None].expand(K, d).clone()
        if s.shape != (K, d):
            raise ValueError(f"stds must have shape ({K},) or ({K}, {d}), got {tuple(s.shape)}")
        for name, v in (("weights", w), ("means", m), ("stds", s)):
            if not bool(torch.isfinite(v).all()):
                raise ValueError(f"{name} contains non-finite values")
        if not bool((w > 0).all()):
            raise ValueError("weights must be positive")
        if not bool((s > 0).all()):
            raise ValueError("stds must be positive")
        if not bool(((s >= STD_MIN) & (s <= STD_MAX)).all()):
            raise ValueError(f"stds must lie in [{STD_MIN:g}, {STD_MAX:g}] (1/std^2 and std^2 must stay finite "
                             f"in float64), got values in [{float(s.min()):g}, {float(s.max()):g}]")
        if not bool((m.abs() <= STD_MAX).all()):
            raise ValueError(f"means must lie in [-{STD_MAX:g}, {STD_MAX:g}]")
        self.weights = w / w.sum()
        self.means = m
        self.stds = s
        self.dim = d

    def __repr__(self):
        return f"GaussianMixture(K={len(self.weights)}, d={self.dim})"

    def sample(self, n: int, generator: torch.Generator | None = None, *, device=None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``n`` samples, shape ``(n, d)``; the component indices and the noise come from ``generator``."""
        n = _checks.positive_int(n, "n")
        _checks.generator(generator)
        device, dtype = _checks.device(device), _checks.floating_dtype(dtype)
        _checks.memory(n * self.dim, "n")
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = randn((n, self.dim), generator=generator, dtype=torch.float64)
        x = self.means[k] + self.stds[k] * z
        return x.to(device=device if device is not None else "cpu", dtype=dtype)

    def marginal(self, t=0.0, sde: SDE | None = None, *, n: int = 1):
        r"""Component means ``(n, K, d)`` and variances ``(n, K, d)`` of :math:`p_t` (float64).

        ``sde=None`` means the data themselves (``t`` must then be 0).  ``t`` is a number
        or a tensor of shape ``(n,)``.
        """
        n = _checks.positive_int(n, "n")
        m, v = self.means[None], (self.stds**2)[None]
        if sde is None:
            if isinstance(t, torch.Tensor) and t.numel() > 1:
                t_max = float(t.abs().max())
            else:
                t_max = abs(_checks.real(t, "t"))
            if t_max != 0.0:
                raise ValueError("t must be 0 when sde is None (pass an SDE to get p_t at t > 0)")
            return m, v
        if not isinstance(sde, SDE):
            raise TypeError(f"sde must be a diffedu SDE or None, got {type(sde).__name__}")
        probe = torch.zeros(n, self.dim, dtype=torch.float64)
        tt = _checks.time(t, "t", n=n, low=0.0, high=sde.T, like=probe)
        try:
            alpha, sigma = sde.marginal(tt)
        except TypeError as err:
            raise TypeError(f"sde must be an affine SDE with Gaussian marginals (VP, sub-VP, VE, OU, Brownian "
                            f"motion) for the mixture's p_t: {err}") from None
        alpha = alpha.reshape(-1, 1, 1) if alpha.dim() else alpha
        sigma = sigma.reshape(-1, 1, 1) if sigma.dim() else sigma
        if type(sde).marginal_mean is SDE.marginal_mean:          # E[x_t | x_0] = alpha x_0: no shift
            return alpha * m, alpha**2 * v + sigma**2
        shift = sde.marginal_mean(probe, t)[:, None, :]          # c(t): nonzero for OU with mu != 0
        return alpha * m + shift, alpha**2 * v + sigma**2

    def _terms(self, x, t, sde):
        r"""``x`` checked, and as float64 ``xd``; the marginal's means ``m`` and variances ``v`` (``(1 or n, K, d)``);
        ``logw``, shape ``(n, K)``, and ``shift``, shape ``(n,)``, with ``logw + shift[:, None]``
        :math:`= \log w_k + \log N(x; m_k, v_k)` (the softmax over ``k`` ignores ``shift``); and whether the
        matrix-product form served."""
        x = _checks.batch(x, "x", dim=self.dim)
        if (isinstance(t, torch.Tensor) and tuple(t.shape) == (x.shape[0],) and x.shape[0] > 1
                and not t.requires_grad and bool((t == t[0]).all())):
            t = t[0]                       # one time for every point (samplers and solvers pass t.expand(n))
        one_time = not (isinstance(t, torch.Tensor) and t.dim() > 0 and t.numel() > 1)
        m, v = self.marginal(t, sde, n=1 if one_time else max(x.shape[0], 1))
        xd = x.to(torch.float64)
        fast = self._log_normal_expanded(xd, m, v)
        if fast is not None:
            logw, shift = fast
        else:
            diff = xd[:, None, :] - m
            logw = -0.5 * ((diff**2) / v + torch.log(2 * math.pi * v)).sum(-1) + torch.log(self.weights)[None]
            shift = torch.zeros(x.shape[0], dtype=torch.float64)
        if x.shape[0] and not bool(torch.isfinite(logw.max(1).values + shift).all()):
            raise ValueError(f"x has points so far from every component (max |x| = {float(x.abs().max()):.3g}) "
                             "that their squared distances overflow float64")
        return x, xd, m, v, logw, shift, fast is not None

    def _log_normal_expanded(self, xd, m, v):
        r"""``(logw, shift)`` of ``_terms`` by matrix products, when one time serves all points:
        :math:`\sum_j (x_j - m_{kj})^2/v_{kj} = \sum_j x_j^2/v_{kj} - 2\sum_j x_j m_{kj}/v_{kj} + \sum_j m_{kj}^2/v_{kj}`
        needs no ``(n, K, d)`` tensor, and when every component has the same variances the :math:`x_j^2` term
        is common to all :math:`k` (``shift``). ``None`` (use the direct form) for per-point times, or where
        cancellation in the expansion could cost more than about :math:`10^{-9}` in :math:`\log N`."""
        if m.shape[0] != 1 or xd.shape[0] == 0:
            return None
        vk, mk = v[0], m[0]                                                    # (K, d), (K, d)
        x2 = xd**2
        if not float(torch.maximum(x2.max(), (mk**2).max()).detach()) <= 1e6 * float(vk.min().detach()):
            return None
        inv = 1.0 / vk
        const = (torch.log(self.weights) - 0.5 * (mk**2 * inv).sum(1)
                 - 0.5 * torch.log(2 * math.pi * vk).sum(1))
        logw = torch.addmm(const[None], xd, (mk * inv).T)                       # all but -sum_j x_j^2 / 2v_kj
        if bool((vk == vk[:1]).all()):
            return logw, -0.5 * x2 @ inv[0]
        return logw.addmm_(x2, inv.T, alpha=-0.5), torch.zeros(xd.shape[0], dtype=torch.float64)

    def log_prob(self, x, t=0.0, sde: SDE | None = None) -> torch.Tensor:
        r""":math:`\log p_t(x)`, shape ``(n,)``, float64 (book: {eq}`eq-mixture-marginal`)."""
        _, _, _, _, logw, shift, _ = self._terms(x, t, sde)
        return torch.logsumexp(logw, dim=1) + shift

    def score(self, x, t=0.0, sde: SDE | None = None) -> torch.Tensor:
        r""":math:`\nabla\log p_t(x) = -\sum_k r_k(x)\,(x - m_k(t))/v_k(t)`, shape ``(n, d)``, in ``x``'s dtype."""
        x, xd, m, v, logw, _, expanded = self._terms(x, t, sde)
        r = torch.softmax(logw, dim=1)                                         # responsibilities r_k(x)
        if expanded:
            inv = 1.0 / v[0]                                                   # 1 / v_kj, (K, d)
            return (r @ (m[0] * inv) - (r @ inv) * xd).to(x.dtype)
        return (-(r[:, :, None] * (xd[:, None, :] - m) / v).sum(1)).to(x.dtype)

    def score_fn(self, sde: SDE):
        """The exact score as a callable ``score(x, t)`` for ``sde.reverse(score, hbar)``."""
        if not isinstance(sde, SDE):
            raise TypeError(f"sde must be a diffedu SDE, got {type(sde).__name__}")
        return lambda x, t: self.score(x, t, sde)


# --- the paper's two 2-D data sets (Hirono, Tanaka & Fukushima 2024) ----------------------------
SWISS_ROLL_SCALE = 6.865      #: the paper divides the Swiss roll by this (about its std)
GAUSSIAN_GRID_SCALE = 2.828   #: the paper divides the 25-Gaussian grid by this (about 2 sqrt 2)


def swiss_roll(n: int, generator: torch.Generator | None = None, *, noise: float = 0.5,
               dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    r"""The paper's Swiss roll, shape ``(n, 2)``.

    :math:`u \sim U(1.5\pi, 4.5\pi)`, the point :math:`(u\cos u, u\sin u)` plus isotropic
    Gaussian noise of std ``noise`` (0.5), divided by 6.865 — the (x, z) columns of
    scikit-learn's ``make_swiss_roll``, written out here.  Seeded by ``generator``.
    """
    n = _checks.positive_int(n, "n")
    noise = _checks.real(noise, "noise", low=0.0, high=_checks.SCALE_MAX)
    _checks.generator(generator)
    device, dtype = _checks.device(device), _checks.floating_dtype(dtype)
    _checks.memory(4 * n, "n")
    u = 1.5 * math.pi * (1.0 + 2.0 * torch.rand(n, generator=generator, dtype=torch.float64))
    z = randn((n, 2), generator=generator, dtype=torch.float64)
    x = torch.stack([u * torch.cos(u), u * torch.sin(u)], 1) + noise * z
    x = (x / SWISS_ROLL_SCALE).to(device=device if device is not None else "cpu", dtype=dtype)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"noise = {noise:g} is too large for {dtype}: the points overflow")
    return x


def swiss_roll_mixture(components: int = 2000, *, noise: float = 0.5) -> GaussianMixture:
    r"""The Swiss roll's exact density as a mixture: the curve :math:`u\mapsto(u\cos u, u\sin u)/6.865`,
    :math:`u\in[1.5\pi, 4.5\pi]` uniform, blurred by :math:`N(0, (0.5/6.865)^2 I)`.

    The integral over :math:`u` is done by the midpoint rule with ``components`` equal-weight
    Gaussians (2000 resolve the curve far below the blur width: neighbouring centres are
    about 0.007 apart against a blur of 0.073), so its ``log_prob`` and ``score`` at any ``t``
    give the perfect-score reference for the Swiss roll.
    """
    components = _checks.positive_int(components, "components", low=10, high=10_000_000)
    noise = _checks.real(noise, "noise", low=SWISS_ROLL_SCALE * STD_MIN, high=SWISS_ROLL_SCALE * STD_MAX)
    u = 1.5 * math.pi + 3.0 * math.pi * (torch.arange(components, dtype=torch.float64) + 0.5) / components
    means = torch.stack([u * torch.cos(u), u * torch.sin(u)], 1) / SWISS_ROLL_SCALE
    return GaussianMixture(torch.ones(components, dtype=torch.float64), means,
                           torch.full((components,), noise / SWISS_ROLL_SCALE, dtype=torch.float64))


def gaussian_grid_mixture() -> GaussianMixture:
    r"""The 25-Gaussian data as an exact mixture: means :math:`(2i, 2j)/2.828`, :math:`i,j\in\{-2..2\}`,
    std :math:`0.05/2.828`, equal weights."""
    ij = torch.arange(-2, 3, dtype=torch.float64)
    means = torch.stack(torch.meshgrid(ij, ij, indexing="ij"), -1).reshape(25, 2) * 2.0
    return GaussianMixture(torch.ones(25, dtype=torch.float64), means / GAUSSIAN_GRID_SCALE,
                           torch.full((25,), 0.05 / GAUSSIAN_GRID_SCALE, dtype=torch.float64))


def gaussian_grid(n: int, generator: torch.Generator | None = None, *, dtype: torch.dtype = torch.float32,
                  device=None) -> torch.Tensor:
    r"""The paper's 25 Gaussians, shape ``(n, 2)``: equal numbers of points per mode (the first
    ``n mod 25`` modes get one more), std 0.05 around :math:`(2i, 2j)`, shuffled, divided by 2.828."""
    n = _checks.positive_int(n, "n")
    _checks.generator(generator)
    device, dtype = _checks.device(device), _checks.floating_dtype(dtype)
    _checks.memory(4 * n, "n")
    mix = gaussian_grid_mixture()
    k = torch.arange(n) % 25
    k = k[torch.randperm(n, generator=generator)]
    z = randn((n, 2), generator=generator, dtype=torch.float64)
    x = mix.means[k] + mix.stds[k] * z
    return x.to(device=device if device is not None else "cpu", dtype=dtype)


#: the paper's two 2-D data sets by name: ``DATASETS[name](n, generator)`` draws ``n`` points
DATASETS = {"swiss_roll": swiss_roll, "gaussian_grid": gaussian_grid}
