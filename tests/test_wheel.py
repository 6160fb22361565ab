"""The Colab/Binder path: `diffedu` built as a wheel and installed normally (not editable).

`pip install git+URL` (the notebooks' hidden install cell, on Colab) and `pip install .`
(Binder) both build a wheel, so only what `pyproject.toml` declares as package data reaches
the reader. These tests build the wheel from a copy of the sources, check that it holds every
file of the package, install it into a temporary folder outside the repository and then, in a
fresh interpreter that cannot see the source tree (the editable install of `.venv` switched
off), load every shipped model and run every notebook statement that reads a file, while an
audit hook records any file opened inside the repository.
"""

import ast
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "diffedu"
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

# Calls that read a file (or select a file to execute); a notebook statement containing one is
# run against the installed wheel.
READERS = {"load_pretrained", "read_text", "read_bytes", "open", "load", "loadtxt", "genfromtxt", "read_csv",
           "spec_from_file_location", "files", "as_file"}


def _package_files():
    """Every file of the package directory (what the wheel must hold), as POSIX paths from the repository root."""
    return sorted(p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
                  and not any(part.startswith(".") for part in p.relative_to(PACKAGE).parts))


def _under(path, root):
    return Path(path).resolve().is_relative_to(Path(root).resolve())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """Build the wheel the way pip does for `pip install .` / `pip install git+URL`, from a copy.

    A copy, because building in place writes `build/` and `diffedu.egg-info/` into the tree (and a
    stale `build/lib` could smuggle files into the wheel)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    shutil.copy2(ROOT / "pyproject.toml", src)
    shutil.copy2(ROOT / "README.md", src)       # pyproject's `readme`
    shutil.copytree(PACKAGE, src / "diffedu", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))
    out = tmp / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    ".", "-w", str(out)], cwd=src, check=True, capture_output=True, text=True)
    (whl,) = out.glob("diffedu-*.whl")
    return whl


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    assert not _under(target, ROOT), "the install target must lie outside the repository"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                    str(target), str(wheel)], check=True, capture_output=True, text=True)
    return target


def test_wheel_holds_every_package_file(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = {n for n in z.namelist() if n.startswith("diffedu/")}
    files = _package_files()
    weights = [f for f in files if f.startswith("diffedu/weights/")]
    assert any(f.endswith(".json") for f in weights) and any(f.endswith(".pt") for f in weights)
    missing = [f for f in files if f not in names]
    assert not missing, (f"the wheel lacks {missing}: a non-editable install (Colab, Binder) would not have them; "
                         "add them to [tool.setuptools.package-data] in pyproject.toml")
    extra = sorted(n for n in names if n not in files and not n.endswith("/"))
    assert not extra, f"the wheel holds files that are not in diffedu/: {extra}"
    with zipfile.ZipFile(wheel) as z:
        hidden = [n for n in z.namelist() if "hidden_checks" in n or n.startswith("grading/")]
    assert not hidden, f"the instructor's hidden checks must not ship to students: {hidden}"


def _reader_names(node):
    names = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            f = n.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
            if name in READERS:
                names.add(name)
        elif isinstance(n, ast.Attribute) and n.attr in ("__file__", "WEIGHTS"):
            names.add(n.attr)
    return names


def _notebook_statements():
    """Per chapter: its imports, then every top-level statement that reads a file, as source.

    A reading statement nested in a loop or `with` is not run (it would need the loop's state):
    only `load_pretrained` may sit there, which the probe covers for every shipped model. An `if`
    is run whole (the probe sets DIFFEDU_FULL=1, so optional recomputations take their branch).
    """
    plan = {}
    for path in CHAPTERS:
        cells = json.loads(path.read_text())["cells"]
        code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        imports, reads = [], []
        for src in code[1:]:                                   # code[0] is the install cell
            for stmt in ast.parse(src).body:
                seg = ast.get_source_segment(src, stmt)
                if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                    imports.append(seg)
                elif _reader_names(stmt):
                    if isinstance(stmt, (ast.For, ast.While, ast.With, ast.AsyncFor, ast.AsyncWith, ast.Try,
                                         ast.FunctionDef, ast.ClassDef)):
                        assert _reader_names(stmt) <= {"load_pretrained"}, (
                            f"{path.name}: a file is read inside a compound statement; extend tests/test_wheel.py "
                            f"to run it from the wheel:\n{seg}")
                    else:
                        reads.append(seg)
        plan[path.name] = imports + reads
    return plan


# Runs in `python -I -S -c`: no site-packages processing (so no editable-install finder), no
# script directory or cwd on sys.path. argv[1] is a JSON file with the paths and the statements.
PROBE = r"""
import json, os, sys
cfg = json.load(open(sys.argv[1]))
sys.path[:0] = [cfg["target"]]
sys.path += cfg["site"]
root, allowed = cfg["root"], cfg["allowed"]

def inside(p):
    p = os.path.abspath(os.fsdecode(p))
    return (p == root or p.startswith(root + os.sep)) and not any(p == a or p.startswith(a + os.sep) for a in allowed)

touched = []
def audit(event, args):
    if event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes, os.PathLike)):
        if inside(args[0]):
            touched.append(os.path.abspath(os.fsdecode(args[0])))
sys.addaudithook(audit)

import diffedu as de
problems = []
if not os.path.abspath(de.__file__).startswith(cfg["target"] + os.sep):
    raise SystemExit(f"diffedu imported from {de.__file__}, not from the installed wheel")
from importlib.resources import files
shipped = sorted(p.name for p in (files("diffedu") / "weights").iterdir())
if shipped != cfg["weights"]:
    problems.append(f"diffedu/weights/ installed: {shipped}; in the repository: {cfg['weights']}")
for name in shipped:
    if name.endswith(".json"):
        json.loads((files("diffedu") / "weights" / name).read_text())
infos = {}
for data in de.nets.DATA_NAMES:
    for schedule in de.nets.SCHEDULE_NAMES:
        m = de.load_pretrained(data, schedule)
        if not (m.info and "steps" in m.info):
            problems.append(f"load_pretrained({data!r}, {schedule!r}).info = {m.info!r}")
        infos[f"{data}/{schedule}"] = m.info.get("steps")
ran = {}
for notebook, statements in cfg["notebooks"].items():
    ns = {"__name__": "__main__"}
    ran[notebook] = 0
    for src in statements:
        try:
            exec(compile(src, notebook, "exec"), ns)
        except BaseException as e:
            problems.append(f"{notebook}: {type(e).__name__}: {e}\n    in: {src}")
            break
        ran[notebook] += 1
mods = sorted(n for n, m in list(sys.modules.items())
              if isinstance(getattr(m, "__file__", None), str) and inside(m.__file__))
print(json.dumps({"diffedu": de.__file__, "infos": infos, "ran": ran, "problems": problems,
                  "touched": sorted(set(touched)), "modules": mods}))
"""


def test_installed_wheel_serves_every_chapter(installed, tmp_path):
    plan = _notebook_statements()
    assert set(plan) == {p.name for p in CHAPTERS}
    site = list(dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]))
    cfg = {
        "target": str(installed.resolve()),
        "site": site,
        "root": str(ROOT),
        # the interpreter and its site-packages may live in the repository (.venv): not the source tree
        "allowed": sorted({str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix, *site)}),
        "weights": sorted(p.name for p in (PACKAGE / "weights").iterdir() if p.is_file() and not p.name.startswith(".")),
        "notebooks": plan,
    }
    (tmp_path / "probe.json").write_text(json.dumps(cfg))
    work = tmp_path / "cwd"                   # like /content on Colab: no repository around
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "DIFFEDU_", "COVERAGE_"))}
    env.update(MPLBACKEND="Agg", DIFFEDU_FULL="1", DIFFEDU_DEVICE="cpu")
    r = subprocess.run([sys.executable, "-I", "-S", "-c", PROBE, str(tmp_path / "probe.json")], cwd=work, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"from the installed wheel:\n{r.stdout}\n{r.stderr}"
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert _under(out["diffedu"], installed)
    assert not out["problems"], "from the installed wheel:\n" + "\n".join(out["problems"])
    assert len(out["infos"]) == 4
    assert out["ran"] == {k: len(v) for k, v in plan.items()}
    assert not out["touched"], f"files opened inside the repository: {out['touched']}"
    assert not out["modules"], f"modules imported from the repository: {out['modules']}"
