"""Shared figure style: one palette and size for every chapter, readable on light and dark pages."""

from __future__ import annotations

import io

import matplotlib
from matplotlib.figure import Figure
from matplotlib.text import Text

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


#: width (CSS px) at which the web book shows a figure that is wider: its column on a 1280 px
#: desktop window (tests/test_browser.py measures it on every page)
PAGE_PX = 680
#: no text of a figure may be smaller than this (CSS px) as the book shows it
MIN_TEXT_PX = 9.0


def min_font_pt(fig: Figure, *, page_px: float = PAGE_PX, min_px: float = MIN_TEXT_PX) -> float:
    """The smallest font size (points) that stays ``min_px`` high when ``fig`` is shown at most
    ``page_px`` wide: a figure wider than the page is scaled down by ``page_px / width``."""
    dpi = float(matplotlib.rcParams["savefig.dpi"]) if matplotlib.rcParams["savefig.dpi"] != "figure" else fig.dpi
    width_px = fig.get_figwidth() * dpi
    scale = min(1.0, page_px / width_px)
    return min_px * 72.0 / (dpi * scale)


def make_legible(fig: Figure) -> Figure:
    """Raise every visible text of ``fig`` below :func:`min_font_pt` to that size (in place).

    A legend or title asked for at 7 pt in a four-panel figure would be 5 px high on the page;
    the book's rule is that no text is smaller than ``MIN_TEXT_PX`` where it is read.
    """
    floor = min_font_pt(fig)
    for ax in fig.get_axes():                # tick labels are re-made from the axis' settings
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            for which, ticks in (("major", axis.get_major_ticks()), ("minor", axis.get_minor_ticks())):
                if ticks and ticks[0].label1.get_fontsize() < floor:
                    ax.tick_params(axis=name, which=which, labelsize=floor)
    for text in fig.findobj(Text):
        if text.get_visible() and text.get_text().strip() and text.get_fontsize() < floor:
            text.set_fontsize(floor)
    return fig


def figure_png(fig: Figure) -> bytes:
    """The PNG bytes of ``fig`` (tight bounding box, white background, text legible: :func:`make_legible`)."""
    make_legible(fig)
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
