"""The student edition: no leaked solutions, stubs paired with solutions, runs until the first stub."""

import hashlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
spec = importlib.util.spec_from_file_location("make_student", ROOT / "scripts" / "make_student.py")
make_student = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_student)


def _src(cell):
    s = cell["source"]
    return "".join(s) if isinstance(s, list) else s


def _pair(path):
    nb = json.loads(path.read_text())
    return nb, make_student.student_notebook(nb)


def _solution_prose(nb):
    lines, inside = [], False
    for cell in nb["cells"]:
        src = _src(cell)
        if cell["cell_type"] == "markdown" and "```{solution-start}" in src:
            inside = True
        if inside and cell["cell_type"] == "markdown":
            lines += [ln.strip() for ln in src.splitlines() if len(ln.strip()) > 25 and not ln.startswith("```")]
        if cell["cell_type"] == "markdown" and "```{solution-end}" in src:
            inside = False
    return lines


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_no_solution_code_or_prose_leaks(path):
    nb, student = _pair(path)
    text = "\n".join(_src(c) for c in student["cells"])
    solutions = [_src(c) for c in nb["cells"] if "solution" in c.get("metadata", {}).get("tags", [])]
    assert solutions
    # lines that also occur outside the solutions (e.g. the same set-up line in the main text) are not leaks
    elsewhere = "\n".join(_src(c) for c in nb["cells"] if "solution" not in c.get("metadata", {}).get("tags", []))
    unique = [ln.strip() for sol in solutions for ln in sol.splitlines() if len(ln.strip()) > 15 and ln.strip() not in elsewhere]
    assert unique
    for line in unique:
        assert line not in text, f"{path.name}: solution line leaked: {line!r}"
    prose = _solution_prose(nb)
    assert prose
    for line in prose:
        assert line not in text, f"{path.name}: solution prose leaked: {line!r}"
    assert "solution-start" not in text and "solution-end" not in text
    assert all(not c.get("outputs") for c in student["cells"] if c["cell_type"] == "code")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_stubs_and_solutions_pair_up(path):
    nb, student = _pair(path)
    sol_ids = [c["id"] for c in nb["cells"] if "solution" in c.get("metadata", {}).get("tags", [])]
    stub_ids = [c["id"] for c in student["cells"] if "stub" in c.get("metadata", {}).get("tags", [])]
    assert sol_ids == stub_ids
    assert all(_src(c) == make_student.STUB for c in student["cells"] if c["id"] in stub_ids)
    # putting the solutions back gives exactly the instructor's code cells (which nbval executes)
    solutions = {c["id"]: _src(c) for c in nb["cells"] if c["id"] in sol_ids}
    restored = [solutions.get(c["id"], _src(c)) for c in student["cells"] if c["cell_type"] == "code"]
    assert restored == [_src(c) for c in nb["cells"] if c["cell_type"] == "code"]
    # every exercise keeps its check cell: a diffedu.checks call right after the stub
    cells = student["cells"]
    for i, c in enumerate(cells):
        if "stub" in c.get("metadata", {}).get("tags", []):
            nxt = next(d for d in cells[i + 1:] if d["cell_type"] == "code")
            assert "de.checks.check_" in _src(nxt) or "stub" in nxt.get("metadata", {}).get("tags", [])


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_student_notebook_runs_until_its_first_stub(path, tmp_path):
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    _, student = _pair(path)
    nb = nbformat.reads(json.dumps(student), as_version=4)
    first_stub = next(i for i, c in enumerate(nb.cells) if "stub" in c.metadata.get("tags", []))
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}})
    with pytest.raises(CellExecutionError) as err:
        client.execute()
    assert err.value.ename == "NotImplementedError", err.value.ename
    executed = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.get("outputs")]
    errors = [i for i in executed if any(o.get("output_type") == "error" for o in nb.cells[i].outputs)]
    assert errors == [first_stub]


def test_make_student_is_deterministic(tmp_path):
    digests = []
    for out in (tmp_path / "a", tmp_path / "b"):
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_student.py"), "--out", str(out)], check=True,
                       capture_output=True)
        digests.append({f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(out.iterdir())})
    assert digests[0] == digests[1]
    assert "diffedu-student-notebooks.zip" in digests[0] and "README.md" in digests[0]
    assert len([n for n in digests[0] if n.endswith(".ipynb")]) == len(CHAPTERS)


def test_homework_page_lists_every_exercise():
    page = (ROOT / "book" / "homework.md").read_text()
    listed = set(re.findall(r"\{ref\}`(ex-[\w-]+)`", page))
    defined = set()
    for path in CHAPTERS:
        for cell in json.loads(path.read_text())["cells"]:
            defined |= set(re.findall(r"```\{exercise\}[^\n]*\n:label: (\S+)", _src(cell)))
    assert listed == defined
