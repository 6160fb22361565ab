"""Interactive figures: a live ipywidgets version in a kernel, a kernel-free version in the web book.

The switch is explicit: when the environment variable ``DIFFEDU_STATIC`` is ``1``
(``make book`` sets it), every explorer returns a :class:`StaticExplorer` — frames
precomputed over a grid of its control values, switched in the browser by HTML controls
and inline JavaScript, with no kernel and no CDN; otherwise it returns ipywidgets
controls wired to a redrawn figure.  Each explorer's ``*_frame`` function is a pure
function of the control values, so frames can be precomputed.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
from pathlib import Path

import torch

from . import _checks
from .device import make_generator
from .data import GaussianMixture
from .plotting import COLORS, new_figure
from .schedules import Cosine, Linear
from .sde import GeometricBrownianMotion, VPSDE
from .solvers import brownian_increments, coarsen, euler_maruyama, heun, milstein, time_grid

SOLVERS = {"euler_maruyama": euler_maruyama, "milstein": milstein, "heun": heun}
_FINE = 10  # the exact path is drawn on 2**10 steps


def _live(frame, controls: dict, rows=None, on_change=None):
    """Wire ipywidgets ``controls`` (name -> widget) to ``frame(**values)``, a function returning a figure.

    Returns a ``VBox`` of the control rows (lists of names; one row by default) above an
    ``Output`` that shows the frame for the current values and is redrawn on every change.
    """
    import ipywidgets as w
    from IPython.display import display

    out = w.Output()

    def redraw(*_):
        if on_change is not None:
            on_change(controls)
        with out:
            out.clear_output(wait=True)
            display(frame(**{name: c.value for name, c in controls.items()}))

    redraw()
    for c in controls.values():
        c.observe(redraw, names="value")
    rows = rows or [list(controls)]
    return w.VBox([w.HBox([controls[name] for name in row]) for row in rows] + [out])


class StaticExplorer:
    """A kernel-free interactive figure: frames precomputed over a grid of control values,
    switched by plain HTML controls and a few lines of inline JavaScript (no CDN, no kernel).

    ``frame(**values)`` returns a figure; ``axes`` maps each control name to its list of
    values (numbers become a range slider, strings a drop-down menu); ``defaults`` picks the
    frame shown first; ``alt`` describes the figure for screen readers.  In a notebook the
    object displays as HTML, with a PNG of the first frame beside it in its MIME bundle.  When ``DIFFEDU_FRAMES_DIR`` is set (``make book`` sets it), all
    frames but the first are written to a file there, loaded when a control is first used, so
    a page does not carry every frame of every explorer.
    """

    _count = 0

    def __init__(self, frame, axes: dict, defaults: dict, labels: dict | None = None, dpi: int = 72,
                 alt: str = "interactive figure"):
        import itertools

        from .plotting import figure_png

        self.axes = {}
        for name, values in axes.items():
            values = list(values)
            if defaults[name] not in values:          # the default is always one of the frames
                values = sorted(values + [defaults[name]]) if not isinstance(defaults[name], str) else values + [defaults[name]]
            self.axes[name] = values
        self.start = {name: self.axes[name].index(defaults[name]) for name in self.axes}
        self.labels = labels or {}
        self.alt = alt
        self.frames = {}        # key: the control indices joined by "|"
        for combo in itertools.product(*(range(len(v)) for v in self.axes.values())):
            fig = frame(**{name: self.axes[name][i] for name, i in zip(self.axes, combo)})
            fig.set_dpi(dpi)
            self.frames["|".join(map(str, combo))] = base64.b64encode(figure_png(fig)).decode("ascii")
        StaticExplorer._count += 1
        self.uid = f"diffedu-static-{StaticExplorer._count}"

    def default_png(self) -> str:
        """The frame shown first, as base64-encoded PNG."""
        return self.frames["|".join(str(self.start[name]) for name in self.axes)]

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        """HTML with its controls, and a PNG of the default frame for what cannot run HTML (the PDF,
        GitHub's and nbviewer's renderers, a print): the web book shows the HTML, LaTeX the PNG."""
        return {"text/html": self._repr_html_(), "image/png": self.default_png()}

    def _repr_html_(self) -> str:
        parts = [f'<div class="diffedu-static-explorer" id="{self.uid}">']
        for name, values in self.axes.items():
            label = self.labels.get(name, name)
            start = self.start[name]
            if all(isinstance(v, str) for v in values):
                opts = "".join(f'<option value="{i}"{" selected" if i == start else ""}>{v}</option>'
                               for i, v in enumerate(values))
                parts.append(f'<label>{label} <select data-control="{name}">{opts}</select></label> ')
            else:
                parts.append(f'<label>{label} <input type="range" data-control="{name}" min="0" max="{len(values) - 1}" '
                             f'step="1" value="{start}"> <span data-value="{name}">{values[start]}</span></label> ')
        first = self.default_png()
        parts.append(f'<br><img class="diffedu-static-frame" alt="{html.escape(self.alt, quote=True)}" '
                     f'src="data:image/png;base64,{first}">')
        data = json.dumps({"axes": self.axes, "frames": self.frames})
        where = os.environ.get("DIFFEDU_FRAMES_DIR", "").strip()
        if where:
            # The web book: the frames go into a file of their own, fetched on the first use of a
            # control (a <script> tag, which also works when the site is opened from file://).
            key = hashlib.sha1(data.encode()).hexdigest()[:16]
            folder = Path(where)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{key}.js").write_text(f"(window.diffeduFrames = window.diffeduFrames || {{}})['{key}'] = {data};\n")
            source = f"{folder.name}/{key}.js"
        else:
            key, source = "", ""
            parts.append(f'<script type="application/json" class="diffedu-frames">{data}</script>')
        parts.append("""<script>(function(){
var root=document.getElementById('%s');var key='%s',src='%s';var d=null,loading=false;
var img=root.querySelector('img');
function show(){var names=Object.keys(d.axes);var k=names.map(function(n){var c=root.querySelector('[data-control="'+n+'"]');
var i=parseInt(c.value);var s=root.querySelector('[data-value="'+n+'"]');if(s){s.textContent=d.axes[n][i];}return String(i);}).join('|');
img.src='data:image/png;base64,'+d.frames[k];}
function update(){if(d){show();return;}
if(!key){d=JSON.parse(root.querySelector('.diffedu-frames').textContent);show();return;}
var have=window.diffeduFrames&&window.diffeduFrames[key];if(have){d=have;show();return;}
if(loading){return;}loading=true;var el=document.createElement('script');
el.src=(document.documentElement.dataset.content_root||'')+src;
el.onload=function(){d=window.diffeduFrames[key];show();};document.head.appendChild(el);}
root.querySelectorAll('[data-control]').forEach(function(c){c.addEventListener('input',update);c.addEventListener('change',update);});
})();</script></div>""" % (self.uid, key, source))
        return "".join(parts)


def is_static() -> bool:
    """True when figures should be static (``DIFFEDU_STATIC=1``, set by ``make book``)."""
    return os.environ.get("DIFFEDU_STATIC", "").strip().lower() in ("1", "true", "yes")


def solver_paths(method: str = "euler_maruyama", log2_steps: int = 4, *, n_paths: int = 3,
                 seed: int = 0, mu: float = 1.5, sigma: float = 1.0):
    r"""Solve geometric Brownian motion with ``method`` on :math:`2^{\text{log2\_steps}}` steps.

    All paths share their Brownian motion with the exact solution (drawn on
    :math:`2^{10}` steps).  Returns ``(ts_fine, exact, ts, approx, error)`` where
    ``error`` is the mean :math:`|X_N - X_T|` over the paths.
    """
    _checks.choice(method, "method", SOLVERS)
    log2_steps = _checks.positive_int(log2_steps, "log2_steps", low=0)
    if log2_steps > _FINE:
        raise ValueError(f"log2_steps must be in [0, {_FINE}], got {log2_steps}")
    n_paths = _checks.positive_int(n_paths, "n_paths")
    sde = GeometricBrownianMotion(mu, sigma)
    ts_fine = time_grid(0.0, 1.0, 2**_FINE)
    dw = brownian_increments(ts_fine, n_paths, 1, make_generator(seed))
    w = torch.cat([torch.zeros(1, n_paths, 1, dtype=dw.dtype), dw.cumsum(0)])
    x0 = torch.ones(n_paths, 1, dtype=torch.float64)
    exact = torch.stack([sde.exact(x0, float(t), w[k]) for k, t in enumerate(ts_fine)])
    ts = time_grid(0.0, 1.0, 2**log2_steps)
    approx = SOLVERS[method](sde, x0, ts, dw=coarsen(dw, 2 ** (_FINE - log2_steps)), return_path=True)
    error = float((approx[-1] - exact[-1]).abs().mean())
    return ts_fine, exact, ts, approx, error


def solver_figure(method: str = "euler_maruyama", log2_steps: int = 4, *, n_paths: int = 3, seed: int = 0):
    """The figure of :func:`solver_paths`: numerical against exact paths, with the error in the title."""
    ts_fine, exact, ts, approx, error = solver_paths(method, log2_steps, n_paths=n_paths, seed=seed)
    fig, axes = new_figure(width=6.0, height=3.4)
    ax = axes[0, 0]
    for i in range(exact.shape[1]):
        ax.plot(ts_fine, exact[:, i, 0], color=COLORS["exact"], lw=1.0, label="exact" if i == 0 else None)
        ax.plot(ts, approx[:, i, 0], "o-", ms=3, lw=1.2, color=COLORS[method],
                label=method.replace("_", "–").title() if i == 0 else None)
    ax.set_xlabel("$t$")
    ax.set_ylabel("$X_t$")
    ax.set_title(f"GBM, {method}, $\\Delta t = 2^{{-{log2_steps}}}$: mean $|X_N - X_T|$ = {error:.3f}")
    ax.legend(loc="upper left")
    return fig


def solver_explorer(method: str = "euler_maruyama", log2_steps: int = 4, *, n_paths: int = 3, seed: int = 0):
    """Pick a scheme and a step size; see its paths against the exact GBM solution and the error.

    Static (``DIFFEDU_STATIC=1``): returns the figure at the given defaults.
    Live: returns an ipywidgets ``VBox`` with a method menu and a step-size slider.
    """
    if is_static():
        return StaticExplorer(lambda method, log2_steps: solver_figure(method, log2_steps, n_paths=n_paths, seed=seed),
                              {"method": list(SOLVERS), "log2_steps": [2, 4, 6, 8, 10]},
                              {"method": method, "log2_steps": log2_steps}, {"log2_steps": "log₂ steps"},
                              alt="Three numerical solutions of geometric Brownian motion and the exact paths driven by "
                                  "the same Brownian motion, for the chosen scheme and number of steps")
    import ipywidgets as w

    controls = {"method": w.Dropdown(options=list(SOLVERS), value=method, description="method"),
                "log2_steps": w.IntSlider(value=log2_steps, min=1, max=_FINE, description="log₂ steps")}
    return _live(lambda method, log2_steps: solver_figure(method, log2_steps, n_paths=n_paths, seed=seed), controls)


# --- noise schedules (Chapter 2) ----------------------------------------------------------------
SCHEDULES = ("linear", "simple", "cosine", "cosine-offset")
#: the 1-D data of the schedule explorer: a bimodal mixture
EXPLORER_DATA = GaussianMixture([0.35, 0.65], [[-1.2], [0.9]], [0.15, 0.25])


def make_schedule(kind: str = "linear", beta_min: float = 0.1, beta_max: float = 20.0):
    """The schedule named ``kind``: ``linear`` (beta_min, beta_max), ``simple`` (= Linear(0, beta_max)),
    ``cosine`` (paper: s = 0, t_max = 0.999) or ``cosine-offset`` (Nichol–Dhariwal, s = 0.008)."""
    _checks.choice(kind, "kind", SCHEDULES)
    if kind == "linear":
        return Linear(beta_min, beta_max)
    if kind == "simple":
        return Linear(0.0, beta_max)
    return Cosine(s=0.0 if kind == "cosine" else 0.008, t_max=0.999)


def schedule_frame(kind: str = "linear", beta_min: float = 0.1, beta_max: float = 20.0, t: float = 0.3):
    """One frame of :func:`schedule_explorer`: alpha, sigma and log-SNR against time, and p_t of a mixture.

    A pure function of its arguments, so frames can be precomputed for a static page.
    """
    sch = make_schedule(kind, beta_min, beta_max)
    t = _checks.real(t, "t", low=0.0, high=1.0)
    sde = VPSDE(sch)
    t = min(t, sde.T)
    tg = torch.linspace(0.0, sde.T, 400, dtype=torch.float64)
    alpha, sigma = sch.alpha(tg), sch.sigma(tg)
    fig, axes = new_figure(ncols=3, width=3.6, height=3.0)
    ax = axes[0, 0]
    ax.plot(tg, alpha, color=COLORS["milstein"], label=r"$\alpha(t)$")
    ax.plot(tg, sigma, color=COLORS["euler_maruyama"], label=r"$\sigma(t)$")
    ax.axvline(t, color="gray", lw=0.8)
    ax.set_xlabel("$t$"); ax.legend(); ax.set_title(f"{kind}: mean factor and noise")
    ax = axes[0, 1]
    keep = tg > 0
    ax.plot(tg[keep], torch.log(alpha[keep] ** 2 / sigma[keep] ** 2), color=COLORS["heun"])
    ax.axvline(t, color="gray", lw=0.8)
    ax.set_xlabel("$t$"); ax.set_title(r"log-SNR $\log(\alpha^2/\sigma^2)$")
    ax = axes[0, 2]
    x = torch.linspace(-3.5, 3.5, 500, dtype=torch.float64)[:, None]
    ax.fill_between(x[:, 0], EXPLORER_DATA.log_prob(x).exp(), color=COLORS["data"], alpha=0.3, label="$p_0$")
    ax.plot(x[:, 0], EXPLORER_DATA.log_prob(x, t, sde).exp(), color=COLORS["theory"], label=f"$p_t$, t = {t:.2f}")
    ax.plot(x[:, 0], torch.exp(-0.5 * x[:, 0] ** 2) / (2 * torch.pi) ** 0.5, ":", color=COLORS["exact"],
            label="$N(0,1)$")
    ax.set_xlabel("$x$"); ax.legend(fontsize=8); ax.set_title("the data's marginal $p_t$")
    return fig


def schedule_explorer(kind: str = "linear", beta_min: float = 0.1, beta_max: float = 20.0, t: float = 0.3):
    """Slide the schedule type, beta_min, beta_max and t; see alpha, sigma, log-SNR and p_t.

    Static (``DIFFEDU_STATIC=1``): the figure at the given defaults.  Live: ipywidgets.
    """
    if is_static():
        return StaticExplorer(lambda kind, t: schedule_frame(kind, beta_min, beta_max, t),
                              {"kind": list(SCHEDULES), "t": [0.0, 0.1, 0.3, 0.6, 1.0]},
                              {"kind": kind, "t": t}, {"kind": "schedule"},
                              alt="The noise schedule's alpha, sigma and log-SNR against time, and a bimodal density "
                                  "diffused to the chosen time")
    import ipywidgets as w

    controls = {"kind": w.Dropdown(options=list(SCHEDULES), value=kind, description="schedule"),
                "t": w.FloatSlider(value=t, min=0.0, max=1.0, step=0.01, description="t"),
                "beta_min": w.FloatSlider(value=beta_min, min=0.0, max=2.0, step=0.05, description="β_min"),
                "beta_max": w.FloatSlider(value=beta_max, min=1.0, max=40.0, step=0.5, description="β_max")}

    def disable_unused(c):
        c["beta_min"].disabled = c["kind"].value != "linear"
        c["beta_max"].disabled = c["kind"].value.startswith("cosine")

    return _live(lambda kind, t, beta_min, beta_max: schedule_frame(kind, beta_min, max(beta_max, beta_min), t),
                 controls, rows=[["kind", "t"], ["beta_min", "beta_max"]], on_change=disable_unused)


# --- the score field (Chapter 3) ----------------------------------------------------------------
#: the 2-D data of the score explorer: three Gaussians
SCORE_DATA = GaussianMixture([0.45, 0.35, 0.2], [[-1.0, -0.6], [1.0, 0.4], [-0.2, 1.3]],
                             [[0.25, 0.25], [0.3, 0.2], [0.2, 0.35]])


def score_frame(t: float = 0.1, *, schedule: str = "linear", arrows: int = 21):
    r"""One frame of :func:`score_explorer`: the density :math:`p_t` of a 2-D mixture under the VP
    SDE and its score :math:`\nabla\log p_t` as arrows (the force toward high density)."""
    sde = VPSDE(make_schedule(schedule))
    t = _checks.real(t, "t", low=0.0, high=sde.T)
    arrows = _checks.positive_int(arrows, "arrows", low=3)
    g = torch.linspace(-2.5, 2.5, 200, dtype=torch.float64)
    X, Y = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([X.reshape(-1), Y.reshape(-1)], 1)
    dens = SCORE_DATA.log_prob(pts, t, sde if t > 0 else None).exp().reshape(X.shape)
    ga = torch.linspace(-2.3, 2.3, arrows, dtype=torch.float64)
    A, B = torch.meshgrid(ga, ga, indexing="ij")
    pa = torch.stack([A.reshape(-1), B.reshape(-1)], 1)
    sc = SCORE_DATA.score(pa, t, sde if t > 0 else None)
    norm = sc.norm(dim=1, keepdim=True)
    u = sc / norm.clamp_min(1e-12) * torch.log1p(norm) / torch.log1p(norm).max()     # compressed lengths
    fig, axes = new_figure(width=4.6, height=4.3)
    ax = axes[0, 0]
    ax.contourf(X, Y, dens, levels=20, cmap="Blues")
    ax.quiver(A, B, u[:, 0].reshape(A.shape), u[:, 1].reshape(A.shape), color=COLORS["euler_maruyama"],
              angles="xy", scale_units="xy", scale=4.0, width=0.004)
    ax.set_aspect("equal"); ax.set_xlim(-2.5, 2.5); ax.set_ylim(-2.5, 2.5)
    ax.set_title(f"$p_t$ and the score $\\nabla\\log p_t$, t = {t:.2f}")
    return fig


def score_explorer(t: float = 0.1, *, schedule: str = "linear"):
    """Slide t: the density and the score field of a 2-D mixture under the VP SDE.

    Static (``DIFFEDU_STATIC=1``): the figure at ``t``.  Live: an ipywidgets slider.
    """
    if is_static():
        return StaticExplorer(lambda t: score_frame(t, schedule=schedule),
                              {"t": [0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0]}, {"t": t},
                              alt="The diffused density and its score at the chosen time")
    import ipywidgets as w

    controls = {"t": w.FloatSlider(value=t, min=0.0, max=1.0, step=0.01, description="t")}
    return _live(lambda t: score_frame(t, schedule=schedule), controls)


# --- the hbar family (Chapter 4) ----------------------------------------------------------------
HBAR_FRAMES = tuple(round(0.1 * k, 1) for k in range(11))   #: the frames of the static version


def hbar_paths(hbar: float = 0.0, *, data: str = "swiss_roll", schedule: str = "simple", n: int = 1000,
               steps: int = 200, seed: int = 0):
    r"""Samples of the shipped model's :math:`\hbar` sampler from fixed :math:`x_T` and fixed noise.

    Returns ``(ts, path)`` with ``path`` of shape ``(steps + 1, n, 2)``; for every ``hbar`` the
    same prior draws and the same Brownian increments are used, so frames differ only by hbar.
    """
    from .nets import load_pretrained
    from .solvers import brownian_increments

    hbar = _checks.real(hbar, "hbar", low=0.0)
    model = load_pretrained(data, schedule)
    sde = model.sde
    gen = make_generator(seed)
    x_T = sde.prior_sample(n, 2, gen, dtype=torch.float64)
    ts = time_grid(sde.T, sde.t_min, steps)
    dw = brownian_increments(ts, n, 2, gen)
    return ts, euler_maruyama(sde.reverse(model, hbar), x_T, ts, dw=dw, return_path=True)


def hbar_frame(hbar: float = 0.0, *, data: str = "swiss_roll", schedule: str = "simple", n: int = 1000,
               steps: int = 200, seed: int = 0, paths: int = 5):
    """One frame of :func:`hbar_explorer`: trajectories from the same x_T and the final samples."""
    from .data import DATASETS

    ts, path = hbar_paths(hbar, data=data, schedule=schedule, n=n, steps=steps, seed=seed)
    paths = _checks.positive_int(paths, "paths")
    fig, axes = new_figure(ncols=2, width=4.0, height=4.0)
    ax = axes[0, 0]
    for i in range(min(paths, n)):
        ax.plot(path[:, i, 0], path[:, i, 1], lw=0.8)
        ax.plot(path[0, i, 0], path[0, i, 1], "o", ms=3, color="gray")
        ax.plot(path[-1, i, 0], path[-1, i, 1], "*", ms=6, color="black")
    ax.set_title(f"trajectories, $\\hbar$ = {hbar:.1f}")
    ax = axes[0, 1]
    ref = DATASETS[data](n, make_generator(seed + 1))
    ax.scatter(ref[:, 0], ref[:, 1], s=1, color=COLORS["data"], alpha=0.4, label="data")
    ax.scatter(path[-1, :, 0], path[-1, :, 1], s=1, color=COLORS["milstein"], label="samples")
    ax.legend(markerscale=5, loc="upper right", fontsize=8)
    ax.set_title(f"samples at $t_{{\\min}}$, $\\hbar$ = {hbar:.1f}")
    for a in axes[0]:
        a.set_xlim(-2.6, 2.6); a.set_ylim(-2.6, 2.6); a.set_aspect("equal")
    return fig


def hbar_explorer(hbar: float = 0.0, *, data: str = "swiss_roll", schedule: str = "simple", n: int = 1000,
                  steps: int = 200):
    """Slide hbar from 0 (probability-flow ODE) to 2: trajectories from the same x_T and the samples.

    Static (``DIFFEDU_STATIC=1``): the frame at ``hbar``.  Live: an ipywidgets slider.
    """
    if is_static():
        return StaticExplorer(lambda hbar: hbar_frame(hbar, data=data, schedule=schedule, n=n, steps=steps),
                              {"hbar": list(HBAR_FRAMES)}, {"hbar": hbar}, {"hbar": "ħ"},
                              alt="Sampler paths and samples of the trained model for the chosen hbar, "
                                  "from the probability-flow ODE (hbar 0) to the reverse SDE (hbar 1)")
    import ipywidgets as w

    controls = {"hbar": w.FloatSlider(value=hbar, min=0.0, max=2.0, step=0.1, description="ħ")}
    return _live(lambda hbar: hbar_frame(hbar, data=data, schedule=schedule, n=n, steps=steps), controls)


# --- the classical limit (Chapter 5) ------------------------------------------------------------
def classical_paths(hbar: float = 0.1, *, paths: int = 30, steps: int = 200, seed: int = 0,
                    start=(0.2, 0.1), data: str = "swiss_roll", schedule: str = "simple"):
    r"""``paths`` trajectories of the shipped model's :math:`\hbar` sampler from one fixed :math:`x_T`,
    and the classical (probability-flow, :math:`\hbar = 0`) path from the same point.

    Returns ``(ts, ensemble, classical)`` with shapes ``(steps+1,)``, ``(steps+1, paths, 2)``,
    ``(steps+1, 1, 2)``.  The Brownian increments are fixed by ``seed`` for every ``hbar``.
    """
    from .nets import load_pretrained
    from .solvers import brownian_increments

    hbar = _checks.real(hbar, "hbar", low=0.0)
    paths = _checks.positive_int(paths, "paths")
    model = load_pretrained(data, schedule)
    sde = model.sde
    x_T = torch.tensor([list(start)], dtype=torch.float64)
    ts = time_grid(sde.T, sde.t_min, steps)
    dw = brownian_increments(ts, paths, 2, make_generator(seed))
    ensemble = euler_maruyama(sde.reverse(model, hbar), x_T.repeat(paths, 1), ts, dw=dw, return_path=True)
    classical = euler_maruyama(sde.reverse(model, 0.0), x_T, ts, return_path=True)
    return ts, ensemble, classical


def classical_frame(hbar: float = 0.1, **kwargs):
    """One frame of :func:`classical_explorer`: the ensemble of paths around the classical path."""
    ts, ens, cl = classical_paths(hbar, **kwargs)
    fig, axes = new_figure(width=4.6, height=4.4)
    ax = axes[0, 0]
    for i in range(ens.shape[1]):
        ax.plot(ens[:, i, 0], ens[:, i, 1], lw=0.6, alpha=0.6, color=COLORS["milstein"])
    ax.plot(cl[:, 0, 0], cl[:, 0, 1], lw=2.0, color="black", label="classical path (ħ = 0)")
    ax.plot(cl[0, 0, 0], cl[0, 0, 1], "o", color="black")
    ax.set_xlim(-2.3, 2.3); ax.set_ylim(-2.3, 2.3); ax.set_aspect("equal"); ax.legend(loc="lower left", fontsize=8)
    ax.set_title(f"paths from one $x_T$, $\\hbar$ = {hbar:g}")
    return fig


def classical_explorer(hbar: float = 0.1, **kwargs):
    """Slide hbar (log scale, 1e-3 ... 1) and watch the paths collapse onto the classical path.

    Static (``DIFFEDU_STATIC=1``): the frame at ``hbar``.  Live: an ipywidgets slider.
    """
    if is_static():
        values = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]
        return StaticExplorer(lambda hbar: classical_frame(hbar, **kwargs), {"hbar": values}, {"hbar": hbar},
                              {"hbar": "ħ"}, alt="Sampler paths fluctuating around the classical (hbar = 0) path "
                                                 "for the chosen hbar")
    import ipywidgets as w

    controls = {"hbar": w.FloatLogSlider(value=hbar, base=10, min=-3, max=0, step=0.25, description="ħ")}
    return _live(lambda hbar: classical_frame(hbar, **kwargs), controls)


# --- the WKB expansion of the likelihood (Chapter 6) -------------------------------------------
WKB_HBARS = tuple(round(0.1 * k, 1) for k in range(11))
_WKB_CACHE = {}


def wkb_curve(eps: float = 0.05, cells: int = 600):
    r"""NLL(hbar) of the 1-D test case :func:`diffedu.wkb.mixture_example` for hbar = 0, 0.1, ..., 1.

    Cross-entropies :math:`-\int p_0\log q_0^\hbar\,dx` by quadrature on a grid over [-6, 6]:
    hbar > 0 from the sampler's Fokker–Planck equation, hbar = 0 and the first-order slope
    from the probability-flow ODE and :func:`diffedu.wkb.first_order_correction` at the grid
    points.  Returns a dict (cached): ``x``, ``p_data``, ``q`` (hbar -> density on the grid),
    ``hbars``, ``nll``, ``nll0``, ``slope`` (dNLL/dhbar at 0), ``entropy`` (of the data).
    """
    key = (float(eps), int(cells))
    if key in _WKB_CACHE:
        return _WKB_CACHE[key]
    from .fokker_planck import Grid, sampler_marginal
    from .wkb import first_order_correction, mixture_example

    sde, mixture, score = mixture_example(eps)
    grid = Grid(-6.0, 6.0, cells)
    x = grid.axes[0]
    p_data = mixture.log_prob(x[:, None]).exp()
    inner = p_data > 1e-5 * float(p_data.max())          # quadrature where the data live (mass outside ~1e-6)
    first = first_order_correction(sde, score, x[inner][:, None], box=10.0)
    if bool(first.excluded.any()):
        raise RuntimeError("the probability-flow path left the box for a quadrature point")
    w = p_data[inner] * grid.h[0]
    q = {0.0: torch.full_like(x, float("nan")).index_put((inner,), first.logp.exp())}
    nll = [float(-(w * first.logp).sum())]
    for hbar in WKB_HBARS[1:]:
        q[hbar] = sampler_marginal(sde, score, hbar, grid)
        nll.append(float(-(w * q[hbar][inner].clamp_min(1e-300).log()).sum()))
    entropy = float(-(w * p_data[inner].log()).sum())
    out = dict(x=x, p_data=p_data, q=q, hbars=list(WKB_HBARS), nll=nll, nll0=nll[0],
               slope=float(-(w * first.correction).sum()), entropy=entropy)
    _WKB_CACHE[key] = out
    return out


def wkb_frame(hbar: float = 0.5, eps: float = 0.05):
    """One frame of :func:`wkb_explorer`: the density q_0^hbar, and the NLL(hbar) curve with its tangent at 0."""
    c = wkb_curve(eps)
    hbar = min(c["hbars"], key=lambda h: abs(h - _checks.real(hbar, "hbar", low=0.0, high=1.0)))
    fig, axes = new_figure(ncols=2, width=4.2, height=3.3)
    ax = axes[0, 0]
    ax.plot(c["x"], c["p_data"], "--", color="gray", label="data $p_0$")
    ax.plot(c["x"], c["q"][0.0], ":", color="black", label=r"$q_0^{\hbar=0}$ (PF-ODE)")
    ax.plot(c["x"], c["q"][hbar], color=COLORS["milstein"], lw=1.8, label=fr"$q_0^\hbar$, $\hbar$ = {hbar:g}")
    ax.set_xlim(-3.2, 3.2); ax.set_xlabel("$x$"); ax.legend(fontsize=7, loc="upper left")
    ax.set_title("model density at $t_{\\min}$")
    ax = axes[0, 1]
    hs = torch.tensor(c["hbars"])
    ax.plot(hs, c["nll"], "o-", color=COLORS["milstein"], ms=3, label="exact NLL($\\hbar$)")
    ax.plot(hs, c["nll0"] + c["slope"] * hs, "--", color="black", label="first order (WKB)")
    ax.axhline(c["entropy"], color="gray", lw=0.8, label="entropy of the data")
    ax.plot([hbar], [c["nll"][c["hbars"].index(hbar)]], "o", color="red", ms=7)
    ax.set_ylim(c["entropy"] - 0.05, max(c["nll"]) + 0.05)
    ax.set_xlabel(r"$\hbar$"); ax.set_title("NLL of the data"); ax.legend(fontsize=7)
    return fig


def wkb_explorer(hbar: float = 0.5, eps: float = 0.05):
    """Slide hbar in [0, 1]: the sampler's density and where the NLL curve leaves its WKB tangent.

    Static (``DIFFEDU_STATIC=1``): frames at hbar = 0, 0.1, ..., 1.  Live: an ipywidgets slider.
    """
    if is_static():
        return StaticExplorer(lambda hbar: wkb_frame(hbar, eps), {"hbar": list(WKB_HBARS)}, {"hbar": hbar},
                              {"hbar": "ħ"}, alt="The exact log-likelihood of the hbar sampler against its first-order "
                                                 "(WKB) approximation for the chosen hbar")
    import ipywidgets as w

    controls = {"hbar": w.FloatSlider(value=hbar, min=0.0, max=1.0, step=0.1, description="ħ")}
    return _live(lambda hbar: wkb_frame(hbar, eps), controls)


# --- Schrödinger bridges (Chapter 7) --------------------------------------------------------------
BRIDGE_EPS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
_BRIDGE_CACHE = {}


def bridge_problem(eps: float = 0.1, cells: int = 200):
    r"""The Schrödinger bridge of Chapter 7's explorer: from the bimodal :math:`p_0 = 0.3\,N(-1.5, 0.3^2) +
    0.7\,N(1, 0.4^2)` to :math:`p_1 = N(0, 0.6)` with reference noise ``eps``, on ``cells`` cells of [-4, 4].
    Returns ``(grid, p0, p1, bridge, T)`` with ``T`` the monotone map (cached)."""
    import math

    from .bridges import monotone_map, sinkhorn_bridge
    from .fokker_planck import Grid

    key = (float(_checks.real(eps, "eps", low=1e-3, high=100.0)), int(cells))
    if key not in _BRIDGE_CACHE:
        grid = Grid(-4.0, 4.0, cells)
        mix = GaussianMixture([0.3, 0.7], [[-1.5], [1.0]], [0.3, 0.4])
        p0 = mix.log_prob(grid.points()).exp()
        p1 = grid.density(lambda x: -x[:, 0] ** 2 / (2 * 0.6) - 0.5 * math.log(2 * math.pi * 0.6))
        bridge = sinkhorn_bridge(p0, p1, grid, key[0], tol=1e-9)
        _BRIDGE_CACHE[key] = (grid, p0, p1, bridge, monotone_map(p0, p1, grid))
    return _BRIDGE_CACHE[key]


def bridge_frame(eps: float = 0.1, *, paths: int = 40, seed: int = 0):
    """One frame of :func:`bridge_explorer`: bridge paths with the straight optimal-transport paths, and the coupling."""
    grid, p0, p1, bridge, T = bridge_problem(eps)
    ts = torch.linspace(0.0, 1.0, 81, dtype=torch.float64)
    x = bridge.sample(paths, ts, make_generator(seed))
    xc = grid.axes[0]
    fig, axes = new_figure(ncols=2, width=4.2, height=3.4)
    ax = axes[0, 0]
    for i in range(paths):
        ax.plot(ts, x[:, i], lw=0.7, alpha=0.7, color=COLORS["milstein"])
    for x0 in (-1.8, -1.2, 0.6, 1.0, 1.5):
        j = int(torch.argmin((xc - x0).abs()))
        ax.plot([0, 1], [float(xc[j]), float(T[j])], "--", color="black", lw=1.0)
    ax.plot([], [], "--", color="black", lw=1.0, label="optimal transport (ε → 0)")
    ax.set_xlabel("$t$"); ax.set_ylabel("$x$"); ax.set_ylim(-3.2, 3.2)
    ax.legend(fontsize=9, loc="lower left"); ax.set_title(f"bridge paths, $\\varepsilon$ = {eps:g}")
    ax = axes[0, 1]
    pi = bridge.coupling / (grid.h[0] ** 2)
    ax.imshow(pi.T.numpy(), origin="lower", extent=[-4, 4, -4, 4], cmap="Blues", aspect="equal",
              vmax=float(pi.max()))
    ax.plot(xc, T, color="black", lw=1.0, label="monotone map $\\mathcal{T}$")
    ax.set_xlim(-3.2, 3.2); ax.set_ylim(-3.2, 3.2)
    ax.set_xlabel("$x_0$"); ax.set_ylabel("$x_1$"); ax.legend(fontsize=9, loc="upper left")
    ax.set_title("coupling $\\pi(x_0, x_1)$")
    return fig


def bridge_explorer(eps: float = 0.1):
    """Slide the reference noise eps (log scale, 0.01 ... 3): the bridge's paths and its coupling, from the
    optimal-transport limit to independent ends.

    Static (``DIFFEDU_STATIC=1``): frames at eps = 0.01, 0.03, 0.1, 0.3, 1, 3.  Live: an ipywidgets slider.
    """
    if is_static():
        return StaticExplorer(lambda eps: bridge_frame(eps), {"eps": list(BRIDGE_EPS)}, {"eps": eps},
                              {"eps": "ε"}, alt="Sample paths of the Schrödinger bridge between a bimodal and a "
                                                "Gaussian density, and its coupling, for the chosen noise level")
    import ipywidgets as w

    controls = {"eps": w.SelectionSlider(options=list(BRIDGE_EPS), value=eps, description="ε")}
    return _live(lambda eps: bridge_frame(eps), controls)

