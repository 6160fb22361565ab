"""Binder and Colab: the launch configuration, checked on the committed files (no network).

* `binder/requirements.txt` installs the package and exactly what the chapters import (or
  what `diffedu` declares), pinned as in the top-level `requirements.txt`, with a CPU-only
  torch, and none of the book-building or testing tools.
* The hidden install cell of every chapter (the Colab path) is what
  `scripts/sync_install_cell.py` generates from `repository:` in `_config.yml`, and the
  README and CONTRIBUTING name no other repository.
"""

import ast
import importlib.metadata
import importlib.util
import json
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
#: not imported by any notebook, but what a reader on Binder needs: MyST (equations, exercises) rendered in JupyterLab
READER_EXTENSIONS = {"jupyterlab-myst"}
# what builds or tests the book; a Binder user only runs the notebooks
EXCLUDED = {"jupyter-book", "playwright", "pytest", "pytest-playwright", "pytest-xdist", "nbval", "myst-nb",
            "myst-parser", "pydata-sphinx-theme"}

spec = importlib.util.spec_from_file_location("sync_install_cell", ROOT / "scripts" / "sync_install_cell.py")
sync_install_cell = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sync_install_cell)


def _requirement_lines(path):
    return [line.split(" #", 1)[0].strip() for line in path.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def _pins(path):
    """{canonical name: Requirement} of the `name==version` lines of a requirements file."""
    return {canonicalize_name(r.name): r for r in map(Requirement, (line for line in _requirement_lines(path)
                                                                     if not line.startswith(("-", ".", "/"))))}


def _binder():
    assert (BINDER / "requirements.txt").is_file(), "binder/requirements.txt is missing"
    return _requirement_lines(BINDER / "requirements.txt")


def _top_level_imports(source: str) -> list[str]:
    """The top-level modules that ``source`` imports, anywhere (inside functions too), absolute imports only."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.append(node.module.split(".")[0])
    return names


def _notebook_imports():
    """{top-level module imported by a chapter's code cell: first notebook that imports it}."""
    found = {}
    for path in CHAPTERS:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                for name in _top_level_imports("".join(cell["source"])):
                    found.setdefault(name, path.name)
    return found


def _package_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {canonicalize_name(Requirement(d).name) for d in project["dependencies"]}


def test_binder_installs_the_package_and_a_cpu_torch():
    lines = _binder()
    assert "." in lines, "binder/requirements.txt must install the package itself (a line `.`)"
    assert not any(line.startswith(("-e", "--editable")) for line in lines), "Binder installs the package as a wheel"
    assert f"--extra-index-url {CPU_INDEX}" in lines, "torch must come from the CPU-only index"
    assert "torch" in _pins(BINDER / "requirements.txt")


def test_binder_pins_equal_the_top_level_pins():
    binder, top = _pins(BINDER / "requirements.txt"), _pins(ROOT / "requirements.txt")
    for name, req in binder.items():
        assert len(req.specifier) == 1 and next(iter(req.specifier)).operator == "==", f"{req}: pin it exactly"
        assert name in top, f"binder/requirements.txt pins {name}, which the top-level requirements.txt does not"
        assert str(req.specifier) == str(top[name].specifier), (
            f"{name}: binder pins {req.specifier}, requirements.txt {top[name].specifier}")


def test_binder_installs_only_what_the_notebooks_need():
    binder = set(_pins(BINDER / "requirements.txt"))
    assert not binder & EXCLUDED and not any(n.startswith("sphinx") for n in binder), (
        f"book-building/testing tools in binder/requirements.txt: {sorted(binder & EXCLUDED)}")
    dists = importlib.metadata.packages_distributions()
    needed = set(_package_dependencies()) | READER_EXTENSIONS
    for module, notebook in sorted(_notebook_imports().items()):
        if module in sys.stdlib_module_names or module == "diffedu":
            continue
        assert module in dists, f"{notebook} imports {module}, which is not installed (add it to requirements.txt)"
        needed |= {canonicalize_name(d) for d in dists[module]}
    missing, extra = needed - binder, binder - needed
    assert not missing, f"the notebooks (or diffedu) need {sorted(missing)}: pin them in binder/requirements.txt"
    assert not extra, f"binder/requirements.txt installs {sorted(extra)}, which no notebook imports"


def test_every_module_diffedu_imports_is_a_declared_dependency():
    """Imports inside functions too (scipy in stats.squared_w2 was missed by Binder and pip installs once)."""
    dists = importlib.metadata.packages_distributions()
    declared, used = set(_package_dependencies()), {}
    for name in list(declared):               # and what they install (IPython comes with ipywidgets)
        for req in importlib.metadata.requires(name) or []:
            r = Requirement(req)
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                declared.add(canonicalize_name(r.name))
    for path in sorted((ROOT / "diffedu").glob("*.py")):
        for top in _top_level_imports(path.read_text()):
            if top not in sys.stdlib_module_names and top != "diffedu":
                used.setdefault(top, path.name)
    assert "torch" in used and "scipy" in used, sorted(used)
    for module, where in sorted(used.items()):
        assert module in dists, f"diffedu/{where} imports {module}, which is not installed"
        assert {canonicalize_name(d) for d in dists[module]} & declared, (
            f"diffedu/{where} imports {module}: add it to the dependencies of pyproject.toml (and binder/)")


def test_binder_python_satisfies_the_pins():
    runtime = (BINDER / "runtime.txt").read_text().strip()
    m = re.fullmatch(r"python-(\d+\.\d+)", runtime)
    assert m, f"binder/runtime.txt: expected python-X.Y, got {runtime!r}"
    version = m.group(1) + ".0"
    for name in _pins(BINDER / "requirements.txt"):
        requires = importlib.metadata.metadata(name)["Requires-Python"]
        assert not requires or SpecifierSet(requires).contains(version), f"{name} requires Python {requires}"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(requires).contains(version)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_install_cell_is_generated_from_the_config(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert nb["cells"][1] is code[0], f"{path.name}: the install cell is the chapter's second cell"
    cell = code[0]
    assert "remove-cell" in cell["metadata"].get("tags", []), f"{path.name}: the install cell must be hidden"
    assert "".join(cell["source"]) == sync_install_cell.install_cell_source(), (
        f"{path.name}: install cell out of step with _config.yml; run python scripts/sync_install_cell.py")


def test_install_cell_uses_the_configured_repository():
    url, branch = sync_install_cell.repository()
    assert url == yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    source = sync_install_cell.install_cell_source()
    assert f'"git+{url}@{branch}"' in source and 'find_spec("diffedu") is None' in source


REPO_URL = re.compile(r"(?:git\+)?https?://(?:www\.)?(?:github\.com|gitlab\.com|bitbucket\.org|codeberg\.org)"
                      r"/[\w.-]+/[\w.-]+", re.I)


@pytest.mark.parametrize("name", ["README.md", "CONTRIBUTING.md", "CITATION.cff", "CHANGELOG.md", "book/intro.md"])
def test_docs_name_no_other_repository(name):
    url, _ = sync_install_cell.repository()
    others = {u.removeprefix("git+").rstrip(".").removesuffix(".git") for u in REPO_URL.findall((ROOT / name).read_text())}
    others = sorted(u for u in others if u.rstrip("/") != url)
    assert not others, f"{name} names a repository other than _config.yml's {url}: {others}"
