"""scripts/execute_notebooks.py (what `make book` runs before `jupyter-book build`) and the stale-cache guard
of the build (book/_ext/stalecache.py), on a tiny book in a temporary folder: one-cell notebooks, a
`_toc.yml` and a `_config.yml`."""

import importlib.util
import os
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module        # the worker processes find `execute` by its module's name
    spec.loader.exec_module(module)
    return module


execute_notebooks = _load("execute_notebooks", ROOT / "scripts" / "execute_notebooks.py")
stalecache = _load("stalecache", ROOT / "book" / "_ext" / "stalecache.py")

CONFIG = "execute:\n  execute_notebooks: {mode}\n  timeout: 60\n"


def _book(tmp_path, monkeypatch, cells, mode="cache"):
    """A book at tmp_path whose chapters are one-cell notebooks (name -> code); the script pointed at it."""
    (tmp_path / "notebooks").mkdir()
    for name, code in cells.items():
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, tmp_path / "notebooks" / f"{name}.ipynb")
    chapters = "".join(f"      - file: notebooks/{name}\n" for name in cells)
    (tmp_path / "_toc.yml").write_text(f"format: jb-book\nroot: intro\nparts:\n  - caption: Chapters\n"
                                       f"    chapters:\n{chapters}")
    (tmp_path / "_config.yml").write_text(CONFIG.format(mode=mode))
    cache = tmp_path / "_build" / ".jupyter_cache"
    monkeypatch.setattr(execute_notebooks, "ROOT", tmp_path)
    monkeypatch.setattr(execute_notebooks, "CACHE", cache)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return cache


def _cached(cache):
    from jupyter_cache import get_cache
    return {Path(record.uri).name for record in get_cache(str(cache)).list_cache_records()}


def test_a_failing_notebook_fails_the_run_and_is_not_cached(tmp_path, monkeypatch, capsys):
    cache = _book(tmp_path, monkeypatch, {"01_good": "x = 1 + 1", "02_bad": "assert 1 == 2, 'the check failed'"})
    assert execute_notebooks.main(["--jobs", "2"]) == 1
    out = capsys.readouterr().out
    assert "FAILED notebooks/02_bad.ipynb" in out
    assert "AssertionError" in out and "the check failed" in out and "assert 1 == 2" in out   # the traceback
    assert "executed notebooks/01_good.ipynb" in out
    assert _cached(cache) == {"01_good.ipynb"}
    assert not (cache / execute_notebooks.STAMP_NAME).exists()    # no stamp: a later bare build is refused
    assert stalecache.stale_cache_message(tmp_path, cache) is not None


def test_passing_notebooks_are_cached_and_stamped(tmp_path, monkeypatch, capsys):
    cache = _book(tmp_path, monkeypatch, {"01_good": "print('hello')"})
    (tmp_path / "diffedu").mkdir()
    (tmp_path / "diffedu" / "core.py").write_text("X = 1\n")
    (cache / "executed" / "old").mkdir(parents=True)                  # a previous run's leftovers are removed
    assert execute_notebooks.main(["--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "executed notebooks/01_good.ipynb" in out and "FAILED" not in out
    assert _cached(cache) == {"01_good.ipynb"}
    assert not (cache / "executed" / "old").exists()
    # the stamp the build's guard reads: nothing changed since, so the build may use the cache
    assert execute_notebooks.STAMP_NAME == stalecache.STAMP_NAME
    assert (cache / execute_notebooks.STAMP_NAME).is_file()
    assert stalecache.stale_cache_message(tmp_path, cache) is None
    future = time.time() + 5
    os.utime(tmp_path / "diffedu" / "core.py", (future, future))
    assert stalecache.stale_cache_message(tmp_path, cache).startswith("diffedu/ changed after")


@pytest.mark.parametrize("jobs", ["0", "17"])
def test_jobs_out_of_range_refused(tmp_path, monkeypatch, capsys, jobs):
    cache = _book(tmp_path, monkeypatch, {"01_good": "x = 1"})
    with pytest.raises(SystemExit) as exc:
        execute_notebooks.main(["--jobs", jobs])
    assert exc.value.code == 2
    assert "--jobs" in capsys.readouterr().err
    assert not cache.exists()


def test_config_without_cache_mode_refused(tmp_path, monkeypatch, capsys):
    cache = _book(tmp_path, monkeypatch, {"01_good": "x = 1"}, mode="force")
    (cache / "executed" / "kept").mkdir(parents=True)
    with pytest.raises(SystemExit) as exc:
        execute_notebooks.main(["--jobs", "1"])
    assert exc.value.code == 2
    assert "execute_notebooks: cache" in capsys.readouterr().err
    assert (cache / "executed" / "kept").is_dir()                     # refused before the cache is emptied


# The guard's decision, on hand-made caches: stamp time set with os.utime.

def _sources(root, when):
    """diffedu/ (code and weights) and notebooks/ under root, all modified at time ``when``."""
    files = [root / "diffedu" / "core.py", root / "diffedu" / "weights" / "model.pt",
             root / "notebooks" / "01_a.ipynb"]
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
        os.utime(path, (when, when))
    return files


def _cache(root, stamp_time=None):
    cache = root / "_build" / ".jupyter_cache"
    (cache / "executed" / "0123abcd").mkdir(parents=True)
    (cache / "executed" / "0123abcd" / "base.ipynb").write_text("{}")
    if stamp_time is not None:
        stamp = cache / stalecache.STAMP_NAME
        stamp.write_text("")
        os.utime(stamp, (stamp_time, stamp_time))
    return cache


def test_guard_passes_a_fresh_cache_and_a_missing_or_empty_one(tmp_path):
    t = time.time() - 1000
    _sources(tmp_path, t)
    cache = tmp_path / "_build" / ".jupyter_cache"
    assert stalecache.stale_cache_message(tmp_path, cache) is None          # no cache: nothing old to show
    (cache / "executed").mkdir(parents=True)
    assert stalecache.stale_cache_message(tmp_path, cache) is None          # an empty cache neither
    _cache(tmp_path, stamp_time=t + 10)
    assert stalecache.stale_cache_message(tmp_path, cache) is None
    # files the guard ignores: byte code, editor and JupyterLab folders
    for ignored in ("diffedu/__pycache__/core.cpython-311.pyc", "notebooks/.ipynb_checkpoints/01_a-checkpoint.ipynb"):
        (tmp_path / ignored).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / ignored).write_text("x")
    assert stalecache.stale_cache_message(tmp_path, cache) is None


@pytest.mark.parametrize("changed, label", [(0, "diffedu/"), (1, "diffedu/"), (2, "notebooks/")])
def test_guard_stops_a_cache_older_than_the_sources(tmp_path, changed, label):
    t = time.time() - 1000
    files = _sources(tmp_path, t)
    cache = _cache(tmp_path, stamp_time=t + 10)
    os.utime(files[changed], (t + 20, t + 20))
    message = stalecache.stale_cache_message(tmp_path, cache)
    assert message.startswith(f"{label} changed after the notebooks were executed into _build/.jupyter_cache: "
                              "run make book (or python scripts/execute_notebooks.py) first")
    assert files[changed].relative_to(tmp_path).as_posix() in message


def test_guard_stops_a_cache_without_stamp(tmp_path):
    _sources(tmp_path, time.time() - 1000)
    cache = _cache(tmp_path)
    message = stalecache.stale_cache_message(tmp_path, cache)
    assert stalecache.STAMP_NAME in message
    assert message.endswith("run make book (or python scripts/execute_notebooks.py) first")
