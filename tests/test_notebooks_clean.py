"""House rules for the chapter notebooks, checked on the committed files (no execution)."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "book").glob("*.ipynb"))
CHAPTERS = [p for p in NOTEBOOKS if re.match(r"\d\d_", p.name)]


def _load(path):
    return json.loads(path.read_text())


def _source(cell):
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def test_there_are_notebooks():
    assert CHAPTERS, "no chapter notebooks found in notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    for i, cell in enumerate(_load(path)["cells"]):
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{path.name}: cell {i} stores outputs (clear them before committing)"
            assert cell.get("execution_count") is None, f"{path.name}: cell {i} stores an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_cell_has_a_unique_id(path):
    # nbformat 4.5 requires cell ids; the student edition pairs stubs with solutions by them
    ids = [cell.get("id") for cell in _load(path)["cells"]]
    missing = [i for i, cid in enumerate(ids) if not cid]
    assert not missing, f"{path.name}: cells {missing} have no id (run make strip)"
    assert len(set(ids)) == len(ids), f"{path.name}: repeated cell ids"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_structure(path):
    nb = _load(path)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    cells = nb["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    asserts = sum(len(re.findall(r"^\s*assert\b", _source(c), re.M)) for c in code)
    assert asserts >= 8, f"{path.name}: only {asserts} assert statements; every stated result needs a check"
    assert _source(cells[0]).lstrip().startswith("# "), "a chapter starts with its title"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_exercises_and_solutions_are_paired(path):
    """Every exercise has one gated solution; solution code cells sit inside it and are tagged."""
    cells = _load(path)["cells"]
    exercises, solutions = [], []
    inside = None
    tagged_inside = {}
    for i, cell in enumerate(cells):
        src = _source(cell)
        tags = cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] == "markdown":
            exercises += re.findall(r"```\{exercise\}[^\n]*\n:label: (\S+)", src)
            start = re.search(r"```\{solution-start\} (\S+)", src)
            if start:
                assert inside is None, f"{path.name}: solution-start inside another solution (cell {i})"
                inside = start.group(1)
                solutions.append(inside)
                tagged_inside[inside] = 0
            if "```{solution-end}" in src:
                assert inside is not None, f"{path.name}: solution-end without a start (cell {i})"
                inside = None
        elif "solution" in tags:
            assert inside is not None, f"{path.name}: cell {i} is tagged 'solution' outside a solution block"
            tagged_inside[inside] += 1
        else:
            assert inside is None, f"{path.name}: untagged code cell {i} inside solution {inside!r}"
    assert inside is None, f"{path.name}: solution {inside!r} is never closed"
    assert len(exercises) >= 4, f"{path.name}: {len(exercises)} exercises, at least 4 expected"
    assert sorted(exercises) == sorted(solutions), f"{path.name}: exercises {exercises} vs solutions {solutions}"
    assert all(n >= 1 for n in tagged_inside.values()), f"{path.name}: a solution without code: {tagged_inside}"


def test_toc_entries_exist():
    toc = (ROOT / "_toc.yml").read_text()
    for entry in re.findall(r"file: (\S+)", toc) + re.findall(r"root: (\S+)", toc):
        candidates = [ROOT / f"{entry}{ext}" for ext in (".md", ".ipynb")]
        assert sum(c.exists() for c in candidates) == 1, f"_toc.yml entry {entry}: need exactly one .md or .ipynb"


def _draws(cell):
    """'figure' for a cell that draws a matplotlib figure, 'explorer' for one that shows an explorer, else None."""
    src = _source(cell)
    if cell["cell_type"] != "code":
        return None
    if re.search(r"^\w+_explorer\(", src, re.M):
        return "explorer"
    if "new_figure(" in src or re.search(r"\bplt\.", src):
        return "figure"
    return None


def test_every_figure_has_a_number_a_caption_and_an_alt_text():
    """Each figure (and explorer) cell carries MyST-NB figure metadata: a `fig-` name (numbered as Fig. C.K in the
    web book), a caption of one or two sentences, and — for matplotlib figures — an alt text for screen readers
    (the explorers write theirs into their HTML)."""
    names = []
    for path in CHAPTERS:
        for cell in _load(path)["cells"]:
            kind = _draws(cell)
            if kind is None:
                continue
            meta = cell.get("metadata", {}).get("mystnb", {})
            fig = meta.get("figure", {})
            where = f"{path.name} cell {cell.get('id')}"
            assert re.fullmatch(r"fig-[a-z0-9-]+", fig.get("name", "")), f"{where}: no figure name fig-..."
            caption = fig.get("caption", "")
            assert 40 <= len(caption) <= 600 and caption.rstrip().endswith("."), f"{where}: caption {caption!r}"
            names.append(fig["name"])
            if kind == "figure":
                alt = meta.get("image", {}).get("alt", "")
                assert 30 <= len(alt) <= 300 and "$" not in alt and "\\" not in alt, f"{where}: alt text {alt!r}"
    assert len(names) == len(set(names)), "figure names must be unique across the book"
    assert len(names) >= 29


def test_the_text_refers_to_every_figure_by_its_number():
    """Every figure is cited in the prose of its chapter with {numref} (so the reader, the PDF and the student
    edition know which "Fig. C.K" a sentence means), and every {numref} names a figure of the book."""
    figures = {}
    for path in CHAPTERS:
        for cell in _load(path)["cells"]:
            fig = cell.get("metadata", {}).get("mystnb", {}).get("figure")
            if fig:
                figures[fig["name"]] = path.name
    assert len(figures) >= 29
    cited = {}
    for path in CHAPTERS:
        for cell in _load(path)["cells"]:
            if cell["cell_type"] == "markdown":
                for target in re.findall(r"\{numref\}`(?:[^`<]*<)?([^`>]+)>?`", _source(cell)):
                    cited.setdefault(target, set()).add(path.name)
    unknown = sorted(t for t in cited if t.startswith("fig-") and t not in figures)
    assert not unknown, f"{{numref}} to figures that do not exist: {unknown}"
    missing = sorted(f"{name} ({nb})" for name, nb in figures.items() if nb not in cited.get(name, ()))
    assert not missing, f"figures never cited by {{numref}} in their own chapter: {missing}"
