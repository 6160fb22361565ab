import pytest
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
    assert isinstance(widgets.solver_explorer(), Figure)


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
