"""Refuse to build the book from notebook outputs older than the package (a bare ``jupyter-book build .``).

The jupyter cache (``execute_notebooks: cache`` in _config.yml) is keyed on the notebooks' code only: after
a change to ``diffedu`` the build would still show the outputs computed with the old package.  ``make book``
empties the cache and executes every notebook again (scripts/execute_notebooks.py), and at the end of a
successful run writes a stamp into the cache folder whose modification time is the moment that execution
began.  When the build starts (``builder-inited``) and the cache holds executed notebooks, any file of
``diffedu/`` (code or shipped weights) or any notebook of ``notebooks/`` modified after the stamp, or a
missing stamp, stops the build with a message saying what to run.  ``make book`` and the ``make pdf`` right
after it pass: nothing changed since their own execution.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from sphinx.errors import SphinxError

# Written by scripts/execute_notebooks.py (the same name there; tests/test_execute_notebooks.py checks it).
STAMP_NAME = "execute_notebooks.stamp"
ADVICE = "run make book (or python scripts/execute_notebooks.py) first"


class StaleCacheError(SphinxError):
    category = "Stale notebook outputs"


def _files(folder: Path, pattern: str):
    """Files under ``folder`` matching ``pattern``, outside hidden folders and __pycache__."""
    if not folder.is_dir():
        return
    for path in folder.rglob(pattern):
        parts = path.relative_to(folder).parts
        if path.is_file() and not any(p.startswith(".") or p == "__pycache__" for p in parts):
            yield path


def _when(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")


def stale_cache_message(root: Path, cache: Path) -> str | None:
    """Why the notebook outputs in ``cache`` may be older than the sources under ``root``, or None if not.

    None when the cache holds no executed notebook (nothing old can be shown); otherwise a message when the
    stamp is missing or when a file of ``root/diffedu`` or a notebook under ``root/notebooks`` is newer.
    """
    root, cache = Path(root), Path(cache)
    executed = cache / "executed"
    if not executed.is_dir() or not any(executed.iterdir()):
        return None
    try:
        shown = cache.relative_to(root).as_posix()
    except ValueError:
        shown = str(cache)
    stamp = cache / STAMP_NAME
    if not stamp.is_file():
        return (f"{shown} holds executed notebooks but no record ({STAMP_NAME}) of a finished "
                f"scripts/execute_notebooks.py run, so diffedu/ may have changed after the notebooks were "
                f"executed into {shown}: {ADVICE}")
    filled = stamp.stat().st_mtime
    sources = (("diffedu/", root / "diffedu", "*"), ("notebooks/", root / "notebooks", "*.ipynb"))
    for label, folder, pattern in sources:
        newest = max(_files(folder, pattern), key=lambda p: p.stat().st_mtime, default=None)
        if newest is not None and newest.stat().st_mtime > filled:
            return (f"{label} changed after the notebooks were executed into {shown}: {ADVICE} "
                    f"({newest.relative_to(root).as_posix()} modified {_when(newest.stat().st_mtime)}, "
                    f"notebooks executed from {_when(filled)})")
    return None


def _check_cache(app):
    config = app.config
    if getattr(config, "nb_execution_mode", None) != "cache":
        return
    cache = getattr(config, "nb_execution_cache_path", "") or Path(app.outdir).parent / ".jupyter_cache"
    message = stale_cache_message(Path(app.srcdir).resolve(), Path(cache).resolve())
    if message is not None:
        raise StaleCacheError(message)


def setup(app):
    app.connect("builder-inited", _check_cache)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
