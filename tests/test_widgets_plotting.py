import pytest
import torch
from matplotlib.figure import Figure

from diffedu import widgets
from diffedu.plotting import figure_png, new_figure


def test_solver_paths_error_shrinks_with_steps():
    errs = [widgets.solver_paths("milstein", k, n_paths=50)[-1] for k in (2, 5, 8)]
    assert errs[0] > errs[1] > errs[2]


def test_solver_paths_exact_endpoint_matches_gbm_formula():
    ts_fine, exact, ts, approx, _ = widgets.solver_paths("heun", 10, n_paths=4)
    assert exact.shape == (2**10 + 1, 4, 1) and approx.shape == (2**10 + 1, 4, 1)
    assert float((approx[-1] - exact[-1]).abs().max()) < 0.05


def test_static_switch(monkeypatch):
    monkeypatch.setenv("DIFFEDU_STATIC", "1")
    assert widgets.is_static()
    static = widgets.solver_explorer()
    assert isinstance(static, widgets.StaticExplorer) and len(static.frames) == 3 * 5
    html = static._repr_html_()
    assert html.count("<img") == 1 and '<select data-control="method"' in html
    assert 'type="range" data-control="log2_steps"' in html and "<script" in html and "http" not in html


def test_live_widget():
    import ipywidgets

    box = widgets.solver_explorer(method="heun", log2_steps=3)
    assert isinstance(box, ipywidgets.VBox)
    menu, slider = box.children[0].children
    slider.value = 6          # triggers a redraw without error
    menu.value = "milstein"


def test_figure_png_and_new_figure():
    fig, axes = new_figure(ncols=2)
    assert axes.shape == (1, 2)
    assert figure_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("kwargs, err", [
    (dict(method="rk4"), ValueError), (dict(log2_steps=11), ValueError),
    (dict(log2_steps=2.5), TypeError), (dict(n_paths=0), ValueError)])
def test_bad_widget_arguments(kwargs, err):
    with pytest.raises(err):
        widgets.solver_paths(**kwargs)


def test_schedule_frames_for_every_kind():
    for kind in widgets.SCHEDULES:
        assert isinstance(widgets.schedule_frame(kind, t=0.5), Figure)


def test_schedule_explorer_static_and_live(monkeypatch):
    import ipywidgets

    box = widgets.schedule_explorer()
    assert isinstance(box, ipywidgets.VBox)
    menu = box.children[0].children[0]
    menu.value = "cosine"
    assert box.children[1].children[0].disabled            # beta_min is meaningless for cosine
    monkeypatch.setenv("DIFFEDU_STATIC", "1")
    static = widgets.schedule_explorer(kind="simple")
    assert isinstance(static, widgets.StaticExplorer) and static.start["kind"] == widgets.SCHEDULES.index("simple")


def test_make_schedule():
    from diffedu.schedules import Cosine, Linear

    assert isinstance(widgets.make_schedule("simple"), Linear) and widgets.make_schedule("simple").beta_min == 0
    assert widgets.make_schedule("cosine-offset").s == 0.008
    assert isinstance(widgets.make_schedule("cosine"), Cosine)
    with pytest.raises(ValueError, match="kind"):
        widgets.make_schedule("quadratic")
    with pytest.raises(ValueError, match="t must lie"):
        widgets.schedule_frame(t=1.5)


def test_score_explorer(monkeypatch):
    import ipywidgets

    assert isinstance(widgets.score_frame(0.0), Figure)
    box = widgets.score_explorer(t=0.2)
    assert isinstance(box, ipywidgets.VBox)
    box.children[0].children[0].value = 0.6
    monkeypatch.setenv("DIFFEDU_STATIC", "1")
    assert isinstance(widgets.score_explorer(), widgets.StaticExplorer)
    with pytest.raises(ValueError, match="t must lie"):
        widgets.score_frame(1.5)


def test_hbar_explorer(monkeypatch):
    import ipywidgets

    ts, path = widgets.hbar_paths(0.0, n=50, steps=20)
    ts2, path2 = widgets.hbar_paths(1.0, n=50, steps=20)
    assert path.shape == (21, 50, 2) and torch.equal(path[0], path2[0])     # same x_T for every hbar
    assert isinstance(widgets.hbar_frame(0.5, n=50, steps=20), Figure)
    box = widgets.hbar_explorer(n=50, steps=20)
    assert isinstance(box, ipywidgets.VBox)
    box.children[0].children[0].value = 1.5
    monkeypatch.setenv("DIFFEDU_STATIC", "1")
    static = widgets.hbar_explorer(n=50, steps=20)
    assert isinstance(static, widgets.StaticExplorer) and len(static.frames) == len(widgets.HBAR_FRAMES)
    assert widgets.HBAR_FRAMES == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    with pytest.raises(ValueError, match="hbar"):
        widgets.hbar_paths(-0.1)


def test_classical_explorer(monkeypatch):
    import ipywidgets

    ts, ens, cl = widgets.classical_paths(0.01, paths=5, steps=20)
    assert ens.shape == (21, 5, 2) and cl.shape == (21, 1, 2)
    assert torch.equal(ens[0], cl[0].repeat(5, 1))
    box = widgets.classical_explorer(0.01, paths=5, steps=20)
    assert isinstance(box, ipywidgets.VBox)
    box.children[0].children[0].value = 0.1
    monkeypatch.setenv("DIFFEDU_STATIC", "1")
    assert isinstance(widgets.classical_explorer(0.01, paths=5, steps=20), widgets.StaticExplorer)
    with pytest.raises(ValueError, match="paths"):
        widgets.classical_paths(0.1, paths=0)



def test_static_explorer_adds_missing_default_and_keys_frames_by_index():
    calls = []

    def frame(a, b):
        calls.append((a, b))
        fig, _ = new_figure()
        return fig

    ex = widgets.StaticExplorer(frame, {"a": [1.0, 3.0], "b": ["x", "y"]}, {"a": 2.0, "b": "y"})
    assert ex.axes["a"] == [1.0, 2.0, 3.0] and ex.start == {"a": 1, "b": 1}
    assert sorted(ex.frames) == [f"{i}|{j}" for i in range(3) for j in range(2)] and len(calls) == 6


def test_static_explorer_bundle_carries_html_and_a_png_of_the_default_frame():
    """A PDF, GitHub or nbviewer cannot run the HTML controls: they show the PNG of the frame the page starts on."""
    import base64
    import io

    import matplotlib.image
    from IPython.core.formatters import format_display_data

    def frame(a):
        fig, axes = new_figure(width=3.0, height=2.0)
        axes[0, 0].axhline(a)
        return fig

    ex = widgets.StaticExplorer(frame, {"a": [1.0, 2.0, 3.0]}, {"a": 3.0}, alt="a horizontal line at height a")
    data, _meta = format_display_data(ex)
    assert data["text/html"].startswith('<div class="diffedu-static-explorer"')
    png = base64.b64decode(data["image/png"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and matplotlib.image.imread(io.BytesIO(png)).ndim == 3
    assert data["image/png"] == ex.frames["2"] != ex.frames["0"]                 # the default (a = 3), not the first
    assert f'src="data:image/png;base64,{ex.frames["2"]}"' in data["text/html"]


def test_figure_text_is_legible_at_the_page_width():
    """Every text of a figure, as the book shows it (at most PAGE_PX wide), is at least MIN_TEXT_PX high."""
    import io

    import matplotlib.image
    from matplotlib.text import Text
    from diffedu.plotting import MIN_TEXT_PX, PAGE_PX, figure_png, min_font_pt

    fig, axes = new_figure(ncols=4, width=2.6, height=2.6)
    for ax in axes[0]:
        ax.plot([0, 1], [0, 1], label="a line")
        ax.legend(fontsize=6)
        ax.set_title("a title", fontsize=7)
        ax.tick_params(labelsize=5)
    png = figure_png(fig)
    width = matplotlib.image.imread(io.BytesIO(png)).shape[1]
    scale = min(1.0, PAGE_PX / width)
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    assert min(sizes) * 100 / 72 * scale >= 0.95 * MIN_TEXT_PX        # px on the page (tight box ~ figsize)
    assert min(sizes) == pytest.approx(min_font_pt(fig))               # the small ones were raised, not more
    small, _ = new_figure(width=3.0, height=2.0)                        # narrower than the page: no scaling
    assert min_font_pt(small) == pytest.approx(MIN_TEXT_PX * 72 / 100)
