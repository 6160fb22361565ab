"""The student edition: no leaked solutions, stubs paired with solutions, runs until the first stub,
every exercise statement kept, and plain Markdown (no MyST syntax) with the web book's numbers."""

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
    return nb, make_student.student_notebook(nb, path.name)


def _solution_region_lines(nb):
    """The Markdown lines from the end of each `{solution-start}` directive to its `{solution-end}`
    (an exercise shares its cell with the `{solution-start}` that follows it: its lines are not solution)."""
    lines, inside = [], False
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        src_lines, i = _src(cell).splitlines(), 0
        while i < len(src_lines):
            ln = src_lines[i]
            if re.match(r"^(`{3,}|:{3,})\{solution-start\}", ln):
                fence = re.match(r"^(`{3,}|:{3,})", ln).group(1)
                i += 1
                while i < len(src_lines) and src_lines[i].strip() != fence:
                    i += 1
                inside = True
            elif re.match(r"^(`{3,}|:{3,})\{solution-end\}", ln):
                inside = False
            elif inside:
                lines.append(ln)
            i += 1
    return lines


def _solution_prose(nb):
    return [ln.strip() for ln in _solution_region_lines(nb) if len(ln.strip()) > 25 and not ln.startswith("```")]


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


@pytest.mark.slow
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


# --- every exercise statement survives, as plain Markdown --------------------------------------

EXERCISE_OPEN = re.compile(r"^(`{3,}|:{3,})\{exercise\}[ \t]*(.*)$")


def _chapter(path):
    return int(path.name[:2])


def _exercises(nb):
    """(title, statement lines) of each `{exercise}` of an instructor notebook, read straight from
    the source: the lines after the directive's options up to its closing fence."""
    found = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        lines = _src(cell).splitlines()
        for i, ln in enumerate(lines):
            m = EXERCISE_OPEN.match(ln)
            if not m:
                continue
            j = i + 1
            while j < len(lines) and re.match(r"^:[\w-]+:", lines[j]):
                j += 1
            k = j
            while k < len(lines) and lines[k].strip() != m.group(1):
                k += 1
            assert k < len(lines), f"exercise {m.group(2)!r} is never closed"
            found.append((m.group(2).strip(), lines[j:k]))
    return found


def _visible_fragments(text, min_len=20):
    """The prose of MyST text as a reader sees it, cut at math and at roles whose visible text the
    conversion rewrites (equation numbers, citations, links): fragments of at least min_len characters."""
    text = re.sub(r"\{term\}`([^`<]*?)\s*(<[^>]*>)?`", r"\1", text)   # a term shows its text
    text = re.sub(r"\{[\w:+.-]+\}`[^`]*`", "\0", text)                # other roles: cut
    text = re.sub(r"\$\$.*?\$\$", "\0", text, flags=re.S)
    text = re.sub(r"\$[^$]*\$", "\0", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)              # a link shows its text
    return [f.strip() for f in re.split(r"[\0\n]", text) if len(f.strip()) >= min_len]


def _student_markdown(student):
    return [_src(c) for c in student["cells"] if c["cell_type"] == "markdown"]


def _exercise_sections(student, chapter):
    """{K: text} from each "**Exercise C.K" heading of the student notebook to the next one."""
    text = "\n\n".join(_student_markdown(student))
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    heads = list(re.finditer(rf"^\*\*Exercise {chapter}\.(\d+)\b[^\n]*$", text, re.M))
    return {int(h.group(1)): (h.group(0), text[h.end():heads[n + 1].start() if n + 1 < len(heads) else len(text)])
            for n, h in enumerate(heads)}


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_exercise_statement_survives(path):
    nb, student = _pair(path)
    exercises = _exercises(nb)
    assert exercises, f"{path.name} has no exercises"
    sections = _exercise_sections(student, _chapter(path))
    assert sorted(sections) == list(range(1, len(exercises) + 1)), sorted(sections)
    for k, (title, statement) in enumerate(exercises, start=1):
        heading, body = sections[k]
        assert heading.startswith(f"**Exercise {_chapter(path)}.{k} (") and heading.endswith(")**"), heading
        for frag in _visible_fragments(title, min_len=3):
            assert frag in heading, f"{path.name}: title of exercise {k} lost: {frag!r} not in {heading!r}"
        fragments = _visible_fragments("\n".join(statement))
        assert fragments, f"{path.name}: exercise {k} has no prose to compare"
        for frag in fragments:
            assert frag in body, f"{path.name}: exercise {_chapter(path)}.{k}: statement text lost: {frag!r}"


def test_exercise_headings_count_the_exercise_directives():
    directives = headings = 0
    for path in CHAPTERS:
        nb, student = _pair(path)
        directives += sum(len(re.findall(r"^(?:`{3,}|:{3,})\{exercise\}", _src(c), re.M))
                          for c in nb["cells"] if c["cell_type"] == "markdown")
        found = [m for text in _student_markdown(student) for m in re.findall(r"^\*\*Exercise (\d+)\.(\d+)", text, re.M)]
        assert all(int(c) == _chapter(path) for c, _ in found), found
        assert [int(k) for _, k in found] == list(range(1, len(found) + 1)), found
        headings += len(found)
    assert directives > 0 and headings == directives


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_headings_survive(path):
    nb, student = _pair(path)
    solution = set(_solution_region_lines(nb))
    lines = {ln for text in _student_markdown(student) for ln in text.splitlines()}
    heads = [ln for c in nb["cells"] if c["cell_type"] == "markdown" for ln in _src(c).splitlines()
             if re.match(r"#{1,6} ", ln) and ln not in solution]
    assert "## Exercises" in heads
    for ln in heads:
        assert re.sub(r"\{term\}`([^`<]*?)\s*(<[^>]*>)?`", r"\1", ln) in lines, f"{path.name}: heading lost: {ln!r}"


MYST_SYNTAX = {
    "a role {name}`...`": r"\{[\w:+.-]+\}`",
    "a directive fence": r"^[ \t]*(`{3,}|~{3,}|:{3,})[ \t]*\{",
    "a colon fence": r":::",
    "a directive option (:label:, :class:, ...)": r"^[ \t>]*:[\w-]+:([ \t]|$)",
    "an equation label after $$": r"\$\$[ \t]*\([^()\s]+\)",
    "a label in parentheses": r"\((eq|ex)-[\w-]+\)",
    "a target (label)=": r"^\([\w:.-]+\)=",
    "a MyST comment": r"^%",
    "a block break +++": r"^\+\+\+",
    "exercise or solution markup": r"\{(exercise|solution)",
    "a bibliography directive": r"\{bibliography\}",
}


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_student_markdown_has_no_myst_syntax(path):
    _, student = _pair(path)
    for cell in student["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        for what, pattern in MYST_SYNTAX.items():
            m = re.search(pattern, _src(cell), re.M)
            assert not m, f"{path.name}, cell {cell.get('id')}: {what} remains: {_src(cell)[max(0, m.start() - 60):m.end() + 40]!r}"


# --- equation numbers and links: recomputed here from the sources ------------------------------

def _site_url():
    import yaml

    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    owner, repo = re.match(r"https://github\.com/([^/]+)/([^/]+?)/?$", url).groups()
    return f"https://{owner.lower()}.github.io/{repo}/"


def _labelled_equations(nb):
    """Labels of the `$$ ... $$ (label)` equations of an instructor notebook, in order."""
    return [m.group(1) for c in nb["cells"] if c["cell_type"] == "markdown"
            for m in re.finditer(r"^\$\$[ \t]*\(([^()\s]+)\)[ \t]*$", _src(c), re.M)]


EQ_LINK = re.compile(r"\[\((\d+\.\d+)\)\]\((\S+?)notebooks/(\d\d_\w+)\.html#equation-([\w-]+)\)")


def test_equation_numbers_and_links():
    labels = {}                                  # label -> (notebook, "C.K"): Sphinx numbers per chapter, in order
    for path in CHAPTERS:
        for k, label in enumerate(_labelled_equations(json.loads(path.read_text())), start=1):
            labels[label] = (path.stem, f"{_chapter(path)}.{k}")
    assert labels
    same = cross = 0
    for path in CHAPTERS:
        nb, student = _pair(path)
        text = "\n".join(_student_markdown(student))
        tags = re.findall(r"\\tag\{([^}]*)\}", text)
        assert tags == [n for nbk, n in labels.values() if nbk == path.stem], f"{path.name}: {tags}"
        links = EQ_LINK.findall(text)
        refs = sum(len(re.findall(r"\{eq\}`", _src(c))) for c in nb["cells"] if c["cell_type"] == "markdown")
        refs += sum(len(re.findall(r"\{eq\}`", caption)) for _, caption, _ in _figures(nb))   # captions are written out too
        in_solutions = sum(len(re.findall(r"\{eq\}`", ln)) for ln in _solution_region_lines(nb))
        assert len(links) == refs - in_solutions, path.name          # every reference outside the solutions
        for number, base, page, label in links:
            assert base == _site_url()
            assert labels[label] == (page, number), (label, page, number)
            same += page == path.stem
            cross += page != path.stem
    assert same and cross


def _figures(nb):
    """(name, caption, cell id) of each figure code cell of an instructor notebook, in order: Fig. C.1, C.2, ..."""
    return [(f["name"], f["caption"], c.get("id")) for c in nb["cells"] if c["cell_type"] == "code"
            for f in [c.get("metadata", {}).get("mystnb", {}).get("figure")] if f]


FIG_LINK = re.compile(r"\[Fig\. (\d+\.\d+)\]\((\S+?)notebooks/(\d\d_\w+)\.html#(fig-[\w-]+)\)")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_figure_is_followed_by_its_numbered_caption(path):
    """Plain Jupyter does not show the web book's captions: the student edition writes each one, numbered, under
    its figure's code cell, with the caption's own markup converted."""
    nb, student = _pair(path)
    figures = _figures(nb)
    assert figures
    cells = student["cells"]
    where = {c.get("id"): i for i, c in enumerate(cells)}
    for k, (name, caption, cid) in enumerate(figures, start=1):
        nxt = cells[where[cid] + 1]
        assert nxt["cell_type"] == "markdown", f"{path.name}: no caption under {name}"
        text = _src(nxt)
        head = f"**Fig. {_chapter(path)}.{k}.** "
        assert text.startswith(head), f"{path.name}: {name} is captioned {text[:30]!r}, expected {head!r}"
        words = re.sub(r"\{\w+\}`([^`]*)`", r"\1", caption).split()
        assert text[len(head):].split()[:6] == words[:6], (name, text[:80])
        assert text.split()[-1] == words[-1], (name, text[-60:])


def test_figure_references_become_numbered_links():
    """Each {numref} of the text outside the solutions becomes "[Fig. C.K](web page#fig-name)", with the number
    counted here from the instructor notebooks (Sphinx numbers the figures of chapter C in order)."""
    numbers = {name: (path.stem, f"{_chapter(path)}.{k}") for path in CHAPTERS
               for k, (name, _c, _id) in enumerate(_figures(json.loads(path.read_text())), start=1)}
    total = 0
    for path in CHAPTERS:
        nb, student = _pair(path)
        text = "\n".join(_student_markdown(student))
        links = FIG_LINK.findall(text)
        refs = sum(len(re.findall(r"\{numref\}`", _src(c))) for c in nb["cells"] if c["cell_type"] == "markdown")
        in_solutions = sum(len(re.findall(r"\{numref\}`", ln)) for ln in _solution_region_lines(nb))
        assert len(links) == refs - in_solutions > 0, path.name
        for number, base, page, name in links:
            assert base == _site_url()
            assert numbers[name] == (page, number), (name, page, number)
        total += len(links)
    assert total >= len(numbers)


def test_a_numref_to_an_unknown_figure_is_refused():
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "id": "a", "source": "See {numref}`fig-no-such-figure`."}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    with pytest.raises(ValueError, match="fig-no-such-figure"):
        make_student.student_notebook(nb, "01_ito_processes.ipynb")


def test_chapter_numbers_follow_the_toc():
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    numbered = [ch["file"] for part in toc["parts"] if part.get("numbered") for ch in part["chapters"]]
    assert numbered == [f"notebooks/{p.stem}" for p in CHAPTERS]   # so C of the file name is the book's chapter number
    book = make_student.Book()
    assert book.url == _site_url()
    assert [n for d, n in book.docs if d.startswith("notebooks/")] == [str(_chapter(p)) for p in CHAPTERS]


def test_citations_are_author_year_with_a_reference_list():
    _, student = _pair(ROOT / "notebooks" / "01_ito_processes.ipynb")
    text = "\n".join(_student_markdown(student))
    assert "[Einstein, 1905]" in text and "Karras *et al.* [2022]" in text
    assert "[Higham, 2001, Kloeden and Platen, 1992]" in text       # sorted, as the web book lists them
    refs = text[text.index("## References"):]
    assert re.search(r"^\* \*\*Perrin, 1909\.\*\* Jean Perrin\. Mouvement brownien et réalité moléculaire", refs, re.M)
    assert "](https://" in text and "../book/" not in text and ".md)" not in text   # links point at the web book


def test_conversion_of_fences_that_do_not_occur_yet():
    """4-backtick and colon fences, text before an exercise, admonitions, math directives."""
    def md(src):
        return {"cell_type": "markdown", "metadata": {}, "source": src}

    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        md("Intro with a {term}`score <Score function>`.\n\n````{exercise} Four ticks\n:label: ex-four\n\n"
           "Write this:\n```python\nx = 1\n```\nusing Eq. {eq}`eq-fp`.\n````\n\n"
           ":::{solution-start} ex-four\n:class: dropdown\n:::\n\nThe secret solution prose.\n"),
        {"cell_type": "code", "id": "s1", "metadata": {"tags": ["solution"]}, "source": "x = 1",
         "outputs": [], "execution_count": None},
        md(":::{solution-end}\n:::\n\nAfter it.\n\n```{note}\nSee {cite:t}`hirono2024`.\n```\n\n"
           ":::{admonition} Careful\n:class: warning\nA body.\n:::\n\n$$\nb\n$$ (eq-fp)\n"),
    ]}
    student = make_student.student_notebook(nb, "09_synthetic.ipynb")
    cells = [_src(c) for c in student["cells"]]
    assert cells[0].startswith("Intro with a score.\n\n**Exercise 9.1 (Four ticks)**\n\nWrite this:\n```python\nx = 1\n```\n")
    assert "[(2.1)](" in cells[0] and "secret" not in "".join(cells)
    assert cells[1] == make_student.STUB
    assert cells[2] == ("After it.\n\n> **Note**\n>\n> See Hirono *et al.* [2024].\n\n> **Careful**\n>\n> A body.\n\n"
                        "$$\nb\n\\tag{2.1}\n$$")
