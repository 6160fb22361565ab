"""Execute the book's notebooks, several at a time, into the jupyter cache that `jupyter-book build` reads.

`make book` runs this first and then `jupyter-book build` with ``execute_notebooks: cache`` (_config.yml): every
notebook is then found in the cache and none runs twice. The cache is emptied first, every time, because it is
keyed on the notebooks' code, not on the package's: a changed `diffedu` must never meet old outputs. So each
build still executes every notebook from scratch, and a failing cell (a check cell's `assert`) fails the build.

Each notebook runs in its own kernel, in its own folder (as `run_in_temp: false`), with the per-cell timeout of
_config.yml; with ``--jobs 2`` on two cores each kernel gets one thread (``OMP_NUM_THREADS``, unless already set)
so the two do not fight over the cores. The longest notebooks start first. Exit status 1, with the traceback,
if any notebook fails.

After a run in which every notebook passed, the stamp file STAMP_NAME in the cache folder records (as its
modification time) when the execution began: book/_ext/stalecache.py stops a later bare `jupyter-book build`
if diffedu/ or a notebook changed since (or if the stamp is missing), as those outputs would be stale.

    python scripts/execute_notebooks.py [--jobs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "_build" / ".jupyter_cache"
STAMP_NAME = "execute_notebooks.stamp"   # read by book/_ext/stalecache.py


def book_notebooks() -> list[Path]:
    """The notebooks of the table of contents, the chapters in reverse order (the last ones run longest)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [ch["file"] for part in toc["parts"] for ch in part["chapters"]]
    paths = [ROOT / f"{f}.ipynb" for f in files if (ROOT / f"{f}.ipynb").exists()]
    return sorted(paths, key=lambda p: (p.parent.name == "notebooks", p.name), reverse=True)


def execute(path: str, timeout: int) -> tuple[str, str | None, float, str | None]:
    """Run one notebook in a fresh kernel in its folder: (executed notebook as JSON, error, seconds, traceback)."""
    from jupyter_cache.executors.utils import single_nb_execution

    nb = nbformat.read(path, as_version=4)
    result = single_nb_execution(nb, cwd=str(Path(path).parent), timeout=timeout, allow_errors=False)
    error = None if result.err is None else f"{type(result.err).__name__}: {result.err}"
    return nbformat.writes(nb), error, result.time, result.exc_string


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="notebooks executed at once (1-16, default 2)")
    args = parser.parse_args(argv)
    if not 1 <= args.jobs <= 16:
        parser.error(f"--jobs must be an integer in [1, 16], got {args.jobs}")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["execute"]
    if config.get("execute_notebooks") != "cache":
        parser.error("_config.yml must say execute_notebooks: cache, or the build would execute every notebook again")
    if args.jobs > 1 and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // args.jobs))   # inherited by the kernels

    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    shutil.rmtree(CACHE, ignore_errors=True)
    cache = get_cache(str(CACHE))
    notebooks = book_notebooks()
    start, started, failed = time.perf_counter(), time.time(), []
    print(f"executing {len(notebooks)} notebooks, {args.jobs} at a time, into {CACHE.relative_to(ROOT)}", flush=True)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(execute, str(p), int(config["timeout"])): p for p in notebooks}
        for future in as_completed(futures):
            path = futures[future]
            text, error, seconds, trace = future.result()
            name = path.relative_to(ROOT)
            if error is not None:
                failed.append(name)
                print(f"FAILED {name} after {seconds:.1f} s: {error}\n{trace}", flush=True)
                continue
            cache.cache_notebook_bundle(CacheBundleIn(nbformat.reads(text, as_version=4), str(path),
                                                      data={"execution_seconds": seconds}),
                                        check_validity=False, overwrite=True)
            print(f"executed {name} in {seconds:.1f} s", flush=True)
    print(f"all notebooks in {time.perf_counter() - start:.1f} s" + (f"; {len(failed)} failed" if failed else ""))
    if failed:
        return 1
    stamp = CACHE / STAMP_NAME
    stamp.write_text(f"{len(notebooks)} notebooks executed by scripts/execute_notebooks.py; the modification time "
                     "of this file is when their execution began (book/_ext/stalecache.py compares it with diffedu/)\n")
    os.utime(stamp, (started, started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
