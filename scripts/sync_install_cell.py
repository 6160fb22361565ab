"""Regenerate the hidden Colab/Binder install cell of every chapter from `_config.yml`.

The repository's URL and branch live in one place, `repository:` in `_config.yml` (the
book's launch and repository buttons read it there). This script writes the chapters'
install cell (their first code cell, tagged `remove-cell`) from it; `make strip` runs it and
`tests/test_binder.py` checks that every chapter is in step.

Usage: python scripts/sync_install_cell.py [--check] [NOTEBOOK ...]   (default: notebooks/NN_*.ipynb)
"""

import argparse
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "_config.yml"
MARKER = "# On Colab or Binder: install the companion package"
TAG = "remove-cell"

TEMPLATE = '''{marker} `diffedu` when it is missing (hidden in the web book).
# `pip install git+...` is a regular (non-editable) install: it works because the package ships its data
# files (weights, precomputed results; tests/test_wheel.py). Generated from _config.yml by
# scripts/sync_install_cell.py: edit it there, not here.
import importlib, importlib.util, subprocess, sys
if importlib.util.find_spec("diffedu") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "git+{url}@{branch}"], check=True)
    importlib.invalidate_caches()'''


def repository(config: Path = CONFIG) -> tuple[str, str]:
    """(url, branch) of `repository:` in the book's configuration."""
    repo = yaml.safe_load(config.read_text())["repository"]
    url, branch = str(repo["url"]).rstrip("/"), str(repo.get("branch", "main"))
    if not url.startswith("https://") or url.endswith(".git"):
        raise ValueError(f"{config.name}: repository.url must be an https URL without .git, got {url!r}")
    return url, branch


def install_cell_source(config: Path = CONFIG) -> str:
    url, branch = repository(config)
    return TEMPLATE.format(marker=MARKER, url=url, branch=branch)


def chapters() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def install_cell(nb):
    """The notebook's install cell (its first code cell, when that starts with MARKER), or None."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    if code and code[0].source.startswith(MARKER):
        return code[0]
    return None


def sync(path: Path, source: str, *, write: bool = True) -> bool:
    """Put `source` into the install cell of `path` (adding the cell before the first code cell
    if there is none); True if the notebook changed. Written as `scripts/strip_notebooks.py` writes."""
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    cell = install_cell(nb)
    if cell is None:
        cell = nbformat.v4.new_code_cell(source)
        first = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
        nb.cells.insert(first, cell)
    cell.source = source
    tags = cell.metadata.setdefault("tags", [])
    if TAG not in tags:
        tags.append(TAG)
    after = nbformat.writes(nb)
    if after == before:
        return False
    if write:
        path.write_text(after + ("" if after.endswith("\n") else "\n"))
    return True


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook is out of step")
    ap.add_argument("notebooks", nargs="*", type=Path)
    args = ap.parse_args()
    source = install_cell_source()
    changed = [p for p in (args.notebooks or chapters()) if sync(p, source, write=not args.check)]
    if args.check:
        if changed:
            sys.exit("install cell out of step with _config.yml: " + ", ".join(p.name for p in changed)
                     + " (run python scripts/sync_install_cell.py)")
        print("install cells in step with _config.yml")
    else:
        print("install cell updated:", ", ".join(p.name for p in changed) if changed else "nothing to do")
