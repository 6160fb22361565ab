"""Shared figure style: one palette and size for every chapter, readable on light and dark pages."""

from __future__ import annotations

import io

import matplotlib
from matplotlib.figure import Figure

#: colours by role, used the same way in every chapter
COLORS = {
    "exact": "#222222",
    "euler_maruyama": "#d62728",
    "milstein": "#1f77b4",
    "heun": "#2ca02c",
    "data": "#7f7f7f",
    "theory": "#ff7f0e",
}

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.facecolor": "white",      # an opaque background keeps figures legible in the dark theme
    "savefig.facecolor": "white",
    "axes.facecolor": "white",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 11,
    "legend.frameon": False,
}


def figure_png(fig: Figure) -> bytes:
    """The PNG bytes of ``fig`` (tight bounding box, white background)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def _register_png_formatter() -> None:
    """In a Jupyter kernel, draw a :class:`Figure` returned from a cell as a PNG."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of ipywidgets
        return
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["image/png"].for_type(Figure, figure_png)


def apply_style() -> None:
    """Apply the book's matplotlib style (call once at the top of a notebook)."""
    matplotlib.rcParams.update(STYLE)
    _register_png_formatter()


def new_figure(ncols: int = 1, nrows: int = 1, *, width: float = 4.2, height: float = 3.2):
    """A matplotlib ``Figure`` not tracked by pyplot, and its axes (always 2-D).

    Returning such a figure from a notebook cell displays it exactly once (a pyplot
    figure would be shown a second time by the inline backend).
    """
    _register_png_formatter()
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes
