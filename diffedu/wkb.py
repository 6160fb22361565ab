r"""The first-order (WKB) expansion of the model likelihood in :math:`\hbar` (book: Chapter 6).

The sampler :math:`dx = [f - \tfrac{1+\hbar}{2}g^2 s_\theta]\,dt + \sqrt\hbar\,g\,d\bar w` has marginals
:math:`q_t^\hbar` (terminal condition :math:`q_T^\hbar = \pi`) that are transported by the velocity
:math:`v^\hbar = f^{\rm PF} - \tfrac\hbar2 g^2 (s_\theta - \nabla\log q_t^\hbar)` ({eq}`eq-wkb-velocity`).
:func:`first_order_correction` returns

.. math:: \partial_\hbar \log q^\hbar_{t_{\min}}(x_0)\big|_{\hbar=0}
          = -\int_{t_{\min}}^{T} \tfrac{g^2}{2}\,\big[\nabla\cdot e + e\cdot\nabla\log q_t^0\big]\,dt,
          \qquad e = s_\theta - \nabla\log q_t^0,

along the probability-flow path from :math:`x_0` ({eq}`eq-wkb-score-form`), or in the paper's
:math:`\delta x` form ({eq}`eq-wkb-dx-form`, Hirono, Tanaka & Fukushima 2024, Thm. 4.2).  Two methods:

``method="exact"``
    :math:`\nabla\log q_t^0` and its Hessian :math:`H_t` along the path from their own ODEs
    ({eq}`eq-score-ode`, {eq}`eq-hessian-ode`), integrated backwards from
    :math:`\nabla\log\pi(x_T)`, :math:`\nabla^2\log\pi(x_T)`, with autograd derivatives of
    :math:`s_\theta` up to third order (fourth for :math:`\nabla^2(\nabla\cdot s_\theta)`).
    No finite differences, no inner solves.
``method="finite_difference"``
    The paper's pipeline: one outer Dormand–Prince solve of the :math:`\delta x` form, in which
    every right-hand side evaluation computes :math:`\nabla\log q_t^0` and :math:`\Delta\log q_t^0`
    by central differences (spacing ``dx``) of inner log-likelihood solves at the ``2d + 1``
    stencil points, and integrates the paper's error bound ("ERRORS") alongside.

Score networks given as ``torch.nn.Module`` are evaluated in float64 (on a copy).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

from . import _checks
from .likelihood import _check_sde, _kept_points, log_likelihood
from .ode import dopri5
from .sde import SDE

METHODS = ("exact", "finite_difference")
FORMS = ("score", "dx", "both")


@dataclass
class WKBResult:
    r"""Per-point first-order coefficient and the zeroth order it expands around.

    ``correction`` is :math:`\partial_\hbar\log q^\hbar_{t_{\min}}(x_0)` at :math:`\hbar = 0`; the
    paper's table reports its negative, :attr:`first_corr` (the slope of the NLL).
    """

    correction: torch.Tensor            #: (n,), NaN where excluded
    logp: torch.Tensor                  #: (n,) log q^0_{t_min}(x0), NaN where excluded
    excluded: torch.Tensor              #: (n,) bool: the path left the box
    method: str
    correction_dx: torch.Tensor | None = None   #: the delta-x form (exact method, form "dx"/"both")
    score: torch.Tensor | None = None   #: (n, d) grad log q^0_{t_min}(x0) from the score ODE (exact)
    hessian: torch.Tensor | None = None  #: (n, d, d) its Hessian (exact)
    closure: torch.Tensor | None = None  #: (n,) ``|x back at t_min - x0|`` after the backward pass (exact)
    error: torch.Tensor | None = None    #: (n,) the paper's error bound (finite differences)
    nfe: int = 0                         #: right-hand-side evaluations (outer solves)
    inner_nfe: int = 0                   #: evaluations inside the inner solves (finite differences)

    def _kept(self, v, what: str = "the mean", least: int = 1):
        return _kept_points(v, self.excluded, what, least)

    @property
    def first_corr(self) -> float:
        r"""The paper's 1ST-CORR: mean of :math:`-\partial_\hbar\log q` = :math:`d\,{\rm NLL}/d\hbar` at 0."""
        return float(-self._kept(self.correction, "first_corr").mean())

    @property
    def first_corr_se(self) -> float:
        """Standard error of :attr:`first_corr` (std / sqrt(n) over the kept points)."""
        v = self._kept(self.correction, "first_corr_se", 2)
        return float(v.std() / math.sqrt(v.numel()))

    @property
    def nll(self) -> float:
        return float(-self._kept(self.logp, "nll").mean())

    @property
    def nll_se(self) -> float:
        v = self._kept(self.logp, "nll_se", 2)
        return float(v.std() / math.sqrt(v.numel()))

    @property
    def errors(self) -> float:
        """Mean of the finite-difference error bound (the paper's ERRORS column)."""
        if self.error is None:
            raise AttributeError("errors: only method='finite_difference' carries an error bound")
        return float(self._kept(self.error, "errors").mean())


def _float64(score):
    if isinstance(score, torch.nn.Module):
        return copy.deepcopy(score).double()
    return score


def _grad(y, x, create_graph):
    """Per-row gradient of the batch of scalars ``y`` (n,) with respect to ``x`` (n, d)."""
    if not y.requires_grad:
        return torch.zeros_like(x)
    (g,) = torch.autograd.grad(y.sum(), x, create_graph=create_graph, retain_graph=True, allow_unused=True)
    return torch.zeros_like(x) if g is None else g


def _jacobian(v, x, create_graph):
    """Per-row Jacobian ``J[n, i, j] = dv_i / dx_j`` of ``v`` (n, d)."""
    return torch.stack([_grad(v[:, i], x, create_graph) for i in range(v.shape[1])], 1)


def _derivatives(fn, x, order):
    r"""``[v, Dv, D2v][:order + 1]`` of a batched vector field ``fn(x)`` by nested autograd, and at ``order = 3``
    in fourth place :math:`\nabla\nabla(\nabla\cdot v)`, shape ``(n, d, d)``: the only contraction of the third
    derivatives that the right-hand sides use, in d backward passes instead of :math:`d^3` (the fallback for
    score callables without a ``derivatives`` method, and for the drift f)."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        out = [fn(xg).to(torch.float64)]
        for k in range(min(order, 2)):
            v = out[-1]
            flat = v.reshape(v.shape[0], -1)
            cols = [_grad(flat[:, i], xg, k + 1 < order) for i in range(flat.shape[1])]
            out.append(torch.stack(cols, 1).reshape(*v.shape, x.shape[1]))
        if order == 3:                     # D2v[n, i, j, k] = d_k d_j v_i; its (i, j) trace is grad(div v)
            out.append(_jacobian(torch.diagonal(out[2], dim1=1, dim2=2).sum(-1), xg, False))
    return [v.detach() for v in out]


def _fields(sde, score, x, t, sigma=None, *, fd_terms=False):
    r"""Everything the right-hand sides need at :math:`(x, t)`, per row.

    Always: ``s``, ``div_s``, ``F`` (:math:`f^{\rm PF}`), ``J`` (:math:`\partial F_i/\partial x_j`),
    ``g2``, ``grad_div`` (:math:`\nabla\nabla\cdot F`).  With ``sigma`` given: ``hess_div``
    (:math:`\nabla^2\nabla\cdot F`) and ``K`` (:math:`\sum_i \sigma_i\nabla^2 F_i`).  With
    ``fd_terms``: ``C1`` = :math:`\nabla(\nabla\cdot s)`, ``C2`` = :math:`\Delta(\nabla\cdot s)`.
    """
    n, d = x.shape
    order = 3 if (sigma is not None or fd_terms) else 2
    tt = torch.tensor(t, dtype=torch.float64, device=x.device)
    tr = lambda D: torch.diagonal(D, dim1=1, dim2=2)
    if hasattr(score, "derivatives"):
        Ds = [v.to(torch.float64) for v in score.derivatives(x, tt.expand(n), order)]
        Ds[3:] = [tr(D3).sum(-1) for D3 in Ds[3:]]                 # grad grad div s, as _derivatives gives it
    else:
        Ds = _derivatives(lambda z: score(z, tt.expand(n)), x, order)
    Df = _derivatives(lambda z: sde._f(z, tt), x, order)
    g2 = sde._g(tt).to(torch.float64) ** 2
    DF = [a - 0.5 * g2 * b for a, b in zip(Df, Ds)]
    out = dict(s=Ds[0], div_s=tr(Ds[1]).sum(-1), F=DF[0], J=DF[1], g2=g2, grad_div=tr(DF[2]).sum(-1))
    if sigma is not None:
        out["hess_div"] = DF[3]
        out["K"] = torch.einsum("ni,nijk->njk", sigma, DF[2])
    if fd_terms:
        out["C1"] = tr(Ds[2]).sum(-1)
        out["C2"] = tr(Ds[3]).sum(-1)
    return out


def _prior_derivatives(prior, x):
    """Gradient and Hessian of the prior log-density at the rows of ``x``."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        lp = prior(xg)
        grad = _grad(lp, xg, True)
        hess = _jacobian(grad, xg, False)
    return grad.detach(), hess.detach()


def _score_ode(fl, sigma, H):
    r"""Right-hand sides of the score and Hessian ODEs along :math:`\dot x = F` ({eq}`eq-score-ode`,
    {eq}`eq-hessian-ode`): :math:`\dot\sigma = -\nabla\nabla\cdot F - J^\top\sigma`,
    :math:`\dot H = -\nabla^2\nabla\cdot F - \sum_i\sigma_i\nabla^2F_i - J^\top H - HJ`."""
    J = fl["J"]
    dsigma = -fl["grad_div"] - torch.einsum("nij,ni->nj", J, sigma)
    JtH = torch.einsum("nij,nil->njl", J, H)
    dH = -fl["hess_div"] - fl["K"] - JtH - JtH.transpose(1, 2)
    return dsigma, dH


def _check_common(sde, score, x0, box):
    _check_sde(sde, "first_order_correction")
    _checks.callable_(score, "score", "score(x, t) -> tensor (n, d)")
    x = _checks.batch(x0, "x0").detach().to(torch.float64)
    if x.shape[0] == 0:
        raise ValueError("x0 must hold at least one point, got an empty batch of shape (0, d)")
    _checks.model_dim(score, x.shape[1], "score", "x0")
    if box is not None:
        box = _checks.real(box, "box", low=0.0, low_open=True)
        if bool((x.abs() > box).any()):
            raise ValueError(f"x0 has points outside the box [-{box:g}, {box:g}]^d; remove them or pass box=None")
    return x, box


def first_order_correction(sde: SDE, score, x0, *, method: str = "exact", form: str = "score",
                           rtol: float = 1e-5, atol: float = 1e-5, box: float | None = 5.0, prior_logp=None,
                           dx: float = 0.01, inner_rtol: float = 1e-5, inner_atol: float = 1e-5,
                           outer_rtol: float = 1e-3, outer_atol: float = 1e-3,
                           max_steps: int = 100_000) -> WKBResult:
    r""":math:`\partial_\hbar\log q^\hbar_{t_{\min}}(x_0)` at :math:`\hbar = 0` for every row of ``x0``
    ({eq}`eq-wkb-score-form`, {eq}`eq-wkb-dx-form`).

    Parameters
    ----------
    sde : forward SDE with noise :math:`g(t)` independent of :math:`x` (its ``t_min``, ``T``).
    score : the model :math:`s_\theta(x, t)`, twice differentiable in ``x`` (torch); an
        ``nn.Module`` is evaluated in float64 on a copy.
    x0 : points ``(n, d)``, inside the box.
    method : ``"exact"`` (score and Hessian ODEs, autograd) or ``"finite_difference"`` (the
        paper's method: inner solves, central differences of spacing ``dx``, error bound).
    form : exact method only: ``"score"`` (one backward pass; no :math:`\delta x`), ``"dx"``
        (the paper's :math:`\delta x` form, one more forward pass) or ``"both"``.
    rtol, atol : tolerances of the zeroth-order log-likelihood and of the exact method's ODEs.
    box : half-width of the box; paths that leave it are ``excluded`` (NaN), as in Chapter 4.
    prior_logp : :math:`\log\pi`, ``(n, d) -> (n,)``, differentiable; default ``sde.prior_logp``.
    dx, inner_rtol, inner_atol, outer_rtol, outer_atol : finite-difference method only (the
        paper's defaults: 0.01, 1e-5, 1e-5, 1e-3, 1e-3).

    Raises ``TypeError``/``ValueError`` naming the argument for bad input, ``RuntimeError`` when
    a solve needs more than ``max_steps`` steps (a stiff schedule near ``T``), and
    ``FloatingPointError`` if the step size underflows.
    """
    x, box = _check_common(sde, score, x0, box)
    _checks.choice(method, "method", METHODS)
    _checks.choice(form, "form", FORMS)
    if method == "finite_difference" and form != "score":
        raise ValueError("form applies to method='exact' only (the finite-difference method is the dx form)")
    rtol = _checks.tolerance(rtol, "rtol")
    atol = _checks.tolerance(atol, "atol")
    dx = _checks.real(dx, "dx", low=0.0, high=1.0, low_open=True)
    inner_rtol = _checks.tolerance(inner_rtol, "inner_rtol")
    inner_atol = _checks.tolerance(inner_atol, "inner_atol")
    outer_rtol = _checks.tolerance(outer_rtol, "outer_rtol")
    outer_atol = _checks.tolerance(outer_atol, "outer_atol")
    max_steps = _checks.positive_int(max_steps, "max_steps", high=_checks.MAX_STEPS)
    prior = sde.prior_logp if prior_logp is None else _checks.callable_(prior_logp, "prior_logp", "(n, d) -> (n,)")
    score = _float64(score)

    zeroth = log_likelihood(sde, score, x, rtol=rtol, atol=atol, box=box, prior_logp=prior, max_steps=max_steps)
    if method == "exact":
        res = _exact(sde, score, x, zeroth, prior, form, rtol, atol, box, max_steps)
    else:
        res = _finite_difference(sde, score, x, zeroth, prior, dx, inner_rtol, inner_atol,
                                 outer_rtol, outer_atol, box, max_steps)
    nan = torch.full_like(res.correction, float("nan"))
    for name in ("correction", "correction_dx", "error", "closure"):
        v = getattr(res, name)
        if v is not None:
            setattr(res, name, torch.where(res.excluded, nan, v))
    return res


def _leaves(box):
    return (lambda t, y: None) if box is None else (lambda t, y: (y[0].abs() > box).any(1))


def _exact(sde, score, x, zeroth, prior, form, rtol, atol, box, max_steps):
    n, d = x.shape
    t0, t1 = sde.t_min, sde.T
    grad_pi, hess_pi = _prior_derivatives(prior, zeroth.x_T)

    def backward_rhs(t, y):       # state (x, sigma, H, c); c accumulates the score-form integrand
        xs, sigma, H, _ = y
        fl = _fields(sde, score, xs, t, sigma)
        dsigma, dH = _score_ode(fl, sigma, H)
        e = fl["s"] - sigma
        lap = torch.diagonal(H, dim1=1, dim2=2).sum(1)
        dc = 0.5 * fl["g2"] * (fl["div_s"] - lap + (e * sigma).sum(1))
        return fl["F"], dsigma, dH, dc

    y0 = (zeroth.x_T, grad_pi, hess_pi, torch.zeros(n, dtype=torch.float64, device=x.device))
    (xb, sigma0, H0, c), st = dopri5(backward_rhs, t1, t0, y0, rtol=rtol, atol=atol, max_steps=max_steps,
                                     on_step=_leaves(box), inactive=zeroth.excluded.clone(),
                                     name="first_order_correction (backward score/Hessian pass)")
    excluded = zeroth.excluded | st.inactive
    res = WKBResult(correction=c, logp=zeroth.logp, excluded=excluded, method="exact", score=sigma0,
                    hessian=H0, closure=(xb - x).norm(dim=1), nfe=zeroth.nfe + st.nfe)
    if form in ("dx", "both"):
        def forward_rhs(t, y):    # state (x, sigma, H, dx, c)
            xs, sigma, H, dxs, _ = y
            fl = _fields(sde, score, xs, t, sigma)
            dsigma, dH = _score_ode(fl, sigma, H)
            lap = torch.diagonal(H, dim1=1, dim2=2).sum(1)
            ddx = torch.einsum("nij,nj->ni", fl["J"], dxs) - 0.5 * fl["g2"] * (fl["s"] - sigma)
            dc = (dxs * fl["grad_div"]).sum(1) - 0.5 * fl["g2"] * (fl["div_s"] - lap)
            return fl["F"], dsigma, dH, ddx, dc

        y0 = (x, sigma0, H0, torch.zeros_like(x), torch.zeros(n, dtype=torch.float64, device=x.device))
        (xT, _, _, dxT, cT), st2 = dopri5(forward_rhs, t0, t1, y0, rtol=rtol, atol=atol, max_steps=max_steps,
                                         on_step=_leaves(box), inactive=excluded.clone(),
                                         name="first_order_correction (forward delta-x pass)")
        grad_T, _ = _prior_derivatives(prior, xT)
        res.correction_dx = cT + (dxT * grad_T).sum(1)
        res.excluded = excluded | st2.inactive
        res.nfe += st2.nfe
        if form == "dx":
            res.correction_dx, res.correction = None, res.correction_dx
    return res


def _finite_difference(sde, score, x, zeroth, prior, dx, irtol, iatol, ortol, oatol, box, max_steps):
    n, d = x.shape
    t0, t1 = sde.t_min, sde.T
    offsets = torch.zeros(2 * d + 1, d, dtype=torch.float64, device=x.device)
    for i in range(d):
        offsets[1 + 2 * i, i], offsets[2 + 2 * i, i] = dx, -dx
    inner_nfe = [0]

    def inner_logq(points, t, tol_factor):
        if t1 - t <= 1e-12 * max(1.0, t1):
            return prior(points)
        r = log_likelihood(sde, score, points, t_min=t, rtol=irtol * tol_factor, atol=iatol * tol_factor,
                           box=None, prior_logp=prior, max_steps=max_steps)
        inner_nfe[0] += r.nfe
        return r.logp

    def rhs(t, y):                # state (x, dx, c, e_dx, e_c): the paper's outer solve
        xs, dxs, _, e_dx, _ = y
        stencil = (xs[:, None, :] + offsets[None]).reshape(-1, d)
        L = inner_logq(stencil, t, 1.0).reshape(n, 2 * d + 1)
        tau = (L - inner_logq(stencil, t, 1.1).reshape(n, 2 * d + 1)).abs().amax(1)
        grad_q = (L[:, 1::2] - L[:, 2::2]) / (2 * dx)
        lap_q = (L[:, 1:].sum(1) - 2 * d * L[:, 0]) / dx ** 2
        fl = _fields(sde, score, xs, t, fd_terms=True)
        g2 = fl["g2"]
        ddx = torch.einsum("nij,nj->ni", fl["J"], dxs) - 0.5 * g2 * (fl["s"] - grad_q)
        dc = (dxs * fl["grad_div"]).sum(1) - 0.5 * g2 * (fl["div_s"] - lap_q)
        e_grad = (tau[:, None] / dx + fl["C1"] * dx ** 2).abs()
        e_lap = (tau / dx ** 2 + fl["C2"] * dx ** 2).abs()
        de_dx = 0.5 * g2 * e_grad + torch.einsum("nij,nj->ni", fl["J"], e_dx).abs()
        de_c = 0.5 * g2 * e_lap + (e_dx * fl["grad_div"]).sum(1).abs()
        return fl["F"], ddx, dc, de_dx, de_c

    zeros = torch.zeros(n, dtype=torch.float64, device=x.device)
    y0 = (x, torch.zeros_like(x), zeros, torch.zeros_like(x), zeros.clone())
    (xT, dxT, cT, e_dxT, e_cT), st = dopri5(rhs, t0, t1, y0, rtol=ortol, atol=oatol, max_steps=max_steps,
                                          on_step=_leaves(box), inactive=zeroth.excluded.clone(),
                                          name="first_order_correction (finite-difference outer solve)")
    grad_T, _ = _prior_derivatives(prior, xT)
    return WKBResult(correction=cT + (dxT * grad_T).sum(1), logp=zeroth.logp,
                     excluded=zeroth.excluded | st.inactive, method="finite_difference",
                     error=(e_dxT * grad_T).sum(1).abs() + e_cT, nfe=zeroth.nfe + st.nfe, inner_nfe=inner_nfe[0])


def _rk4_affine(coef, t0: float, t1: float, steps: int, y0: torch.Tensor) -> torch.Tensor:
    r"""Classical RK4 with ``steps`` equal steps from ``t0`` to ``t1`` for a linear ODE :math:`\dot y = M(t)\,y + c(t)`,
    all steps at once. On a linear ODE each RK4 step is an affine map :math:`y \mapsto A_n y + B_n`, with
    :math:`A_n` and :math:`B_n` made of :math:`M` and :math:`c` at :math:`t_n, t_n + h/2, t_n + h` exactly as the
    four stages combine them; the maps are then composed pairwise in a binary tree (log2(steps) rounds).
    ``coef(t)``: times ``(m,)`` to ``M`` ``(m, ..., k, k)`` and ``c`` ``(m, ..., k)``; ``y0``: ``(..., k)``."""
    h = (t1 - t0) / steps
    t = t0 + h * torch.arange(steps, dtype=torch.float64)
    (M0, c0), (Mh, ch), (M1, c1) = coef(t), coef(t + h / 2), coef(t + h)
    eye = torch.eye(M0.shape[-1], dtype=torch.float64)
    mv = lambda M, v: (M @ v[..., None])[..., 0]
    K2 = Mh @ (eye + h / 2 * M0)                                       # stage 2: Mh (y + h/2 k1) + ch
    b2 = mv(Mh, h / 2 * c0) + ch
    K3 = Mh @ (eye + h / 2 * K2)                                       # stage 3: Mh (y + h/2 k2) + ch
    b3 = mv(Mh, h / 2 * b2) + ch
    K4 = M1 @ (eye + h * K3)                                           # stage 4: M1 (y + h k3) + c1
    b4 = mv(M1, h * b3) + c1
    A = eye + h / 6 * (M0 + 2 * K2 + 2 * K3 + K4)
    B = h / 6 * (c0 + 2 * b2 + 2 * b3 + b4)
    while A.shape[0] > 1:                                              # step 2j, then step 2j + 1
        if A.shape[0] % 2:
            A = torch.cat([A, eye.expand_as(A[:1])])
            B = torch.cat([B, torch.zeros_like(B[:1])])
        A, B = A[1::2] @ A[0::2], mv(A[1::2], B[0::2]) + B[1::2]
    return mv(A[0], y0) + B[0]


class GaussianModel1D:
    r"""The paper's closed-form 1-D model (§5.1): data :math:`N(0, v_0)`, constant :math:`\beta`
    (:math:`f = -\beta x/2`, :math:`g = \sqrt\beta`), score model :math:`s = -(1+\epsilon)x/v_t`,
    :math:`v_t = 1 + (v_0 - 1)e^{-\beta t}` ({eq}`eq-gauss-model`).

    The sampler's marginals are :math:`q_t^\hbar = N(0, u_t^\hbar)` with
    :math:`\dot u = -\beta u + (1+\hbar)\beta(1+\epsilon)u/v_t - \hbar\beta`, :math:`u_T = u_T^{\rm prior}`
    ({eq}`eq-gauss-variance-ode`), integrated backwards here by RK4 on a fine grid.
    """

    def __init__(self, v0: float = 0.5, eps: float = 0.1, beta: float = 2.0, T: float = 3.0,
                 t_min: float = 0.0, prior_var: float = 1.0):
        self.v0 = _checks.real(v0, "v0", low=0.0, low_open=True)
        self.eps = _checks.real(eps, "eps", low=-1.0, low_open=True)
        self.beta = _checks.real(beta, "beta", low=0.0, low_open=True)
        self.T = _checks.real(T, "T", low=0.0, low_open=True)
        self.t_min = _checks.real(t_min, "t_min", low=0.0, high=self.T, high_open=True)
        self.prior_var = _checks.scale(prior_var, "prior_var")
        from .schedules import Linear
        from .sde import VPSDE
        self.sde = VPSDE(Linear(self.beta, self.beta), T=self.T, t_min=self.t_min)

    def v(self, t):
        """Variance of the data's forward marginal :math:`p_t` (``t`` a number in ``[0, T]``)."""
        t = _checks.scalar_time(_checks.real(t, "t"), "t", low=0.0, high=self.T)
        return float(self._v_tensor(t))

    def _v_tensor(self, t: torch.Tensor) -> torch.Tensor:
        return 1.0 + (self.v0 - 1.0) * torch.exp(-self.beta * t)   # unchecked: the RK4 steps' times

    def score(self, x, t):
        r"""The model :math:`s(x, t) = -(1+\epsilon)x/v_t` (``t`` a number or a tensor)."""
        x = _checks.batch(x, "x", dim=1)
        t = _checks.time(t, "t", n=x.shape[0], low=0.0, high=self.T, like=x.to(torch.float64)).reshape(-1)
        v = 1.0 + (self.v0 - 1.0) * torch.exp(-self.beta * t)
        return -(1.0 + self.eps) * x / (v.reshape(-1, 1) if v.dim() else v)

    def prior_logp(self, x):
        """:math:`\\log N(x; 0, u_T)` of the prior, rows of ``x`` (n, 1)."""
        x = _checks.batch(x, "x", dim=1)
        return -0.5 * (x ** 2).sum(1) / self.prior_var - 0.5 * math.log(2 * math.pi * self.prior_var)

    def variance(self, hbar: float, steps: int = 20_000, order: int = 1):
        r""":math:`(u^\hbar_{t_{\min}}, \partial_\hbar u^\hbar_{t_{\min}})` by RK4 on the ODEs
        ({eq}`eq-gauss-variance-ode`) from ``T`` down to ``t_min``; ``order=2`` appends
        :math:`\partial_\hbar^2 u^\hbar_{t_{\min}}` ({eq}`eq-gauss-second-order`), ``order=0`` returns ``(u,)``."""
        hbar = _checks.hbar(hbar)
        steps = _checks.positive_int(steps, "steps", low=10, high=_checks.MAX_STEPS)
        order = _checks.positive_int(order, "order", low=0, high=2)
        b, k, o = self.beta, 1.0 + self.eps, order + 1
        _checks.memory(40 * steps * o * o, "steps")

        def coef(t):
            # u' = a u - hbar b with a = -b + (1 + hbar) b k / v, differentiated once and twice in hbar:
            # w' = a w + da u - b,  w2' = a w2 + 2 da w,  da = b k / v
            da = b * k / self._v_tensor(t)
            a = -b + (1 + hbar) * da
            M = torch.zeros(len(t), 3, 3, dtype=torch.float64)
            M[:, 0, 0] = M[:, 1, 1] = M[:, 2, 2] = a
            M[:, 1, 0], M[:, 2, 1] = da, 2 * da
            c = torch.tensor([-hbar * b, -b, 0.0], dtype=torch.float64).expand(len(t), 3)
            return M[:, :o, :o], c[:, :o]

        y0 = torch.tensor([self.prior_var, 0.0, 0.0][:o], dtype=torch.float64)
        y = tuple(_rk4_affine(coef, self.T, self.t_min, steps, y0).tolist())
        if not (all(math.isfinite(v) for v in y) and y[0] > 0):
            raise ValueError(f"the variance ODE overflowed for hbar = {hbar:g} (or too few steps = {steps}): "
                             "use a smaller hbar or more steps")
        return y

    def nll_curve(self, hbars, steps: int = 4000) -> torch.Tensor:
        r"""NLL(:math:`\hbar`) ({eq}`eq-gauss-nll`) at every :math:`\hbar` of ``hbars`` at once (a float64 tensor)."""
        u = self.variance_curve(hbars, steps)
        return self.v0 / (2 * u) + 0.5 * torch.log(2 * math.pi * u)

    def variance_curve(self, hbars, steps: int = 4000) -> torch.Tensor:
        r""":math:`u^\hbar_{t_{\min}}` at every :math:`\hbar` of ``hbars`` at once (a float64 tensor): the variance ODE
        {eq}`eq-gauss-variance-ode` integrated by RK4 with ``steps`` steps for all of them together."""
        hb = _checks.vector(hbars, "hbars")
        if hb.numel() == 0:
            raise ValueError("hbars must hold at least one hbar value")
        for h in hb.tolist():
            _checks.hbar(h, "hbars")
        steps = _checks.positive_int(steps, "steps", low=10, high=_checks.MAX_STEPS)
        b, k = self.beta, 1.0 + self.eps
        _checks.memory(40 * steps * hb.numel(), "steps")

        def coef(t):
            a = -b + (1 + hb) * b * k / self._v_tensor(t)[:, None]             # (steps, n_hbar)
            return a[..., None, None], (-hb * b).expand_as(a)[..., None]

        u = _rk4_affine(coef, self.T, self.t_min, steps, torch.full_like(hb, self.prior_var)[:, None])[:, 0]
        if not (bool(torch.isfinite(u).all()) and bool((u > 0).all())):
            raise ValueError(f"the variance ODE overflowed for the largest hbars (or too few steps = {steps}): "
                             "use smaller hbars or more steps")
        return u

    @staticmethod
    def _points(x):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor of points, got {type(x).__name__}")
        if not x.is_floating_point() or not bool(torch.isfinite(x).all()):
            raise ValueError("x must hold finite floating-point values (it contains NaN, inf or integers)")
        return x

    def log_q(self, x, hbar: float):
        r""":math:`\log q^\hbar_{t_{\min}}(x)` for a tensor of points ``x`` (any shape)."""
        x = self._points(x)
        u, _ = self.variance(hbar)
        return -0.5 * x ** 2 / u - 0.5 * math.log(2 * math.pi * u)

    def correction(self, x):
        r"""Exact :math:`\partial_\hbar\log q^\hbar_{t_{\min}}(x)` at 0:
        :math:`(x^2/(2u^2) - 1/(2u))\,\partial_\hbar u` ({eq}`eq-gauss-exact-slope`)."""
        x = self._points(x)
        u, w = self.variance(0.0)
        return (x ** 2 / (2 * u ** 2) - 1 / (2 * u)) * w

    def curvature(self, x):
        r"""Exact :math:`\partial_\hbar^2\log q^\hbar_{t_{\min}}(x)` at 0 ({eq}`eq-gauss-second-order`):
        :math:`(1/(2u^2) - x^2/u^3)(\partial_\hbar u)^2 + (x^2/(2u^2) - 1/(2u))\,\partial^2_\hbar u`."""
        x = self._points(x)
        u, w, w2 = self.variance(0.0, order=2)
        return (1 / (2 * u ** 2) - x ** 2 / u ** 3) * w ** 2 + (x ** 2 / (2 * u ** 2) - 1 / (2 * u)) * w2

    def nll(self, hbar: float) -> float:
        r"""Expected NLL of clean data :math:`x_0\sim N(0, v_0)` under :math:`q^\hbar_{t_{\min}}`:
        :math:`v_0/(2u) + \tfrac12\log(2\pi u)` with :math:`u = u^\hbar_{t_{\min}}` ({eq}`eq-gauss-nll`)."""
        u, _ = self.variance(hbar)
        return self.v0 / (2 * u) + 0.5 * math.log(2 * math.pi * u)

    def nll_slope(self, steps: int = 20_000) -> float:
        r""":math:`d\,\mathrm{NLL}/d\hbar` at :math:`\hbar = 0`, {eq}`eq-gauss-nll` differentiated:
        :math:`(u - v_0)\,\partial_\hbar u\,/\,(2u^2)` with :math:`u = u^0_{t_{\min}}`."""
        u, w = self.variance(0.0, steps)
        return (u - self.v0) * w / (2 * u * u)

    def nll_curvature(self, steps: int = 20_000) -> float:
        r""":math:`d^2\mathrm{NLL}/d\hbar^2` at :math:`\hbar = 0` ({eq}`eq-gauss-second-order`):
        :math:`(2v_0 - u)(\partial_\hbar u)^2/(2u^3) + (u - v_0)\,\partial^2_\hbar u/(2u^2)`; the
        :math:`\hbar^2` coefficient of NLL(:math:`\hbar`) is half of it."""
        u, w, w2 = self.variance(0.0, steps, order=2)
        return (2 * self.v0 - u) * w * w / (2 * u ** 3) + (u - self.v0) * w2 / (2 * u * u)

    def entropy(self) -> float:
        r"""Entropy :math:`\tfrac12\log(2\pi e v_0)` of the data :math:`N(0, v_0)`: no NLL is below it (Gibbs)."""
        return 0.5 * math.log(2 * math.pi * math.e * self.v0)


def hbar_star(hbars, exact, approx, frac: float = 0.1) -> float:
    r"""The range of validity of an approximation to NLL(:math:`\hbar`) ({eq}`eq-hbar-star`): the smallest
    :math:`\hbar` at which :math:`|\text{approx} - \text{exact}|` exceeds :math:`\text{frac}\,|\text{exact} - \text{exact}(0)|`
    (``frac`` in (0, 1]), on the curve given at ``hbars`` (increasing, starting at 0): the first grid interval where
    the excess changes sign, with the crossing interpolated linearly in it; ``inf`` if there is none."""
    hb = _checks.vector(hbars, "hbars")
    ex = _checks.vector(exact, "exact")
    ap = _checks.vector(approx, "approx")
    frac = _checks.real(frac, "frac", low=0.0, low_open=True, high=1.0)
    if hb.numel() < 2 or float(hb[0]) != 0.0 or not bool((hb[1:] > hb[:-1]).all()):
        raise ValueError("hbars must be an increasing 1-D sequence that starts at 0")
    if ex.shape != hb.shape or ap.shape != hb.shape:
        raise ValueError(f"exact and approx must have the shape of hbars {tuple(hb.shape)}, "
                         f"got {tuple(ex.shape)} and {tuple(ap.shape)}")
    excess = (ap - ex).abs() - frac * (ex - ex[0]).abs()        # > 0: the approximation has failed
    bad = torch.nonzero(excess[1:] > 0).flatten()
    if bad.numel() == 0:
        return math.inf
    i = int(bad[0]) + 1
    if i == 1:                                                  # failed already at the first grid point
        return float(hb[1])
    e0, e1 = float(excess[i - 1]), float(excess[i])
    return float(hb[i - 1] + (hb[i] - hb[i - 1]) * (-e0) / (e1 - e0))


def mixture_example(eps: float = 0.05):
    r"""The book's 1-D test case with an imperfect score (Chapter 6).

    Data :math:`p_0 = 0.4\,N(-1, 0.5^2) + 0.6\,N(1.2, 0.4^2)`, the paper's ``simple`` forward SDE
    (VP, :math:`\beta = 20t`, :math:`t \in [0.01, 1]`), and the score model
    :math:`s_\theta = (1+\epsilon)\nabla\log p_t` — the exact score, too large by the factor
    :math:`1+\epsilon`.  Returns ``(sde, mixture, score)``.
    """
    from .data import GaussianMixture
    from .nets import paper_sde

    eps = _checks.real(eps, "eps", low=-1.0, low_open=True)
    sde = paper_sde("simple")
    mixture = GaussianMixture([0.4, 0.6], [[-1.0], [1.2]], [0.5, 0.4])
    exact = mixture.score_fn(sde)
    return sde, mixture, (lambda x, t: (1.0 + eps) * exact(x, t))
