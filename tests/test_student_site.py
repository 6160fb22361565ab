"""The student edition against the built web book (`make book` first; `make test` runs these after it).

* the equation numbers of the student notebooks (`\\tag{N}` and the numbers of `{eq}` references,
  with their links) are the ones the web pages show;
* the Homework page links the student zip, and the linked file is a zip with every chapter.
"""

import html
import importlib.util
import io
import json
import re
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.site

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "_build" / "html"
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
spec = importlib.util.spec_from_file_location("make_student", ROOT / "scripts" / "make_student.py")
make_student = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_student)

EQNO = re.compile(r'<span class="eqno">\(([^)<]*)\)<a class="headerlink" href="#equation-([\w-]+)"')
EQ_LINK = re.compile(r"\[\(([^)\]]+)\)\]\((\S+?)#equation-([\w-]+)\)")


def _src(cell):
    s = cell["source"]
    return "".join(s) if isinstance(s, list) else s


@pytest.fixture(scope="module")
def site_equations():
    """label -> (page, number) and page -> numbers in order, read from every built page."""
    if not (SITE / "index.html").exists():
        pytest.fail("the book is not built: run `make book` (or `make test`) first")
    labels, pages = {}, {}
    for page in sorted(SITE.rglob("*.html")):
        rel = page.relative_to(SITE).with_suffix("").as_posix()
        if rel.startswith("_"):
            continue
        for number, label in EQNO.findall(page.read_text()):
            labels[label] = (rel, number)
            pages.setdefault(rel, []).append(number)
    assert len(labels) >= 20, "no numbered equations found in the built pages"
    return labels, pages


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_equation_numbers_match_the_web_book(path, site_equations):
    labels, pages = site_equations
    book = make_student.Book()
    student = make_student.student_notebook(json.loads(path.read_text()), path.name, book)
    text = "\n".join(_src(c) for c in student["cells"] if c["cell_type"] == "markdown")
    page = f"notebooks/{path.stem}"
    # the numbers written into the equations are those of the chapter's web page, in order
    assert re.findall(r"\\tag\{([^}]*)\}", text) == pages.get(page, [])
    links = EQ_LINK.findall(text)
    assert links, f"{path.name}: no equation references"
    for number, url, label in links:
        assert label in labels, f"{path.name}: the web book has no equation {label}"
        target, shown = labels[label]
        assert number == shown, f"{path.name}: {label} is ({shown}) in the web book, ({number}) in the student edition"
        assert url == f"{book.url}{target}.html", (url, target)


def test_same_and_cross_chapter_references_are_checked(site_equations):
    labels, _ = site_equations
    kinds = set()
    for path in CHAPTERS:
        student = make_student.student_notebook(json.loads(path.read_text()), path.name)
        for cell in student["cells"]:
            if cell["cell_type"] == "markdown":
                for _number, _url, label in EQ_LINK.findall(_src(cell)):
                    kinds.add("same" if labels[label][0] == f"notebooks/{path.stem}" else "cross")
    assert kinds == {"same", "cross"}


def test_homework_page_links_the_student_zip():
    page = SITE / "book" / "homework.html"
    if not page.exists():
        pytest.fail("the book is not built: run `make book` (or `make test`) first")
    hrefs = [html.unescape(h) for h in re.findall(r'href="([^"]+)"', page.read_text())
             if h.endswith(make_student.ZIP_NAME)]
    assert hrefs, f"the Homework page does not link {make_student.ZIP_NAME}"
    target = (page.parent / hrefs[0]).resolve()
    assert target.is_relative_to(SITE.resolve()) and target.is_file(), hrefs[0]
    data = target.read_bytes()
    assert zipfile.is_zipfile(io.BytesIO(data))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        names = set(zf.namelist())
        assert {p.name for p in CHAPTERS} | {"README.md"} <= names, names
        for path in CHAPTERS:
            nb = json.loads(zf.read(path.name))
            assert nb["nbformat"] == 4
            assert any("stub" in c.get("metadata", {}).get("tags", []) for c in nb["cells"]), path.name
            markdown = "\n".join(_src(c) for c in nb["cells"] if c["cell_type"] == "markdown")
            assert f"**Exercise {int(path.name[:2])}.1 " in markdown, path.name


FIGURE = re.compile(r'<figure class="[^"]*" id="(fig-[\w-]+)">.*?<span class="caption-number">Fig\. ([\d.]+) </span>', re.S)
NUMREF = re.compile(r'<a class="reference internal" href="([^"#]*)#(fig-[\w-]+)"><span class="std std-numref">Fig\. ([\d.]+)</span></a>')


@pytest.fixture(scope="module")
def site_figures():
    """figure id -> (page, "C.K") read from the captions of every built chapter page."""
    found = {}
    for path in CHAPTERS:
        page = SITE / "notebooks" / f"{path.stem}.html"
        if not page.exists():
            pytest.fail("the book is not built: run `make book` (or `make test`) first")
        for name, number in FIGURE.findall(page.read_text()):
            found[name] = (f"notebooks/{path.stem}", number)
    assert len(found) >= 29
    return found


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_figure_numbers_match_the_web_book(path, site_figures):
    """The student edition's captions and figure links carry the numbers the web book shows, and the web book's
    own {numref} links show the number of the figure they point at."""
    book = make_student.Book()
    student = make_student.student_notebook(json.loads(path.read_text()), path.name, book)
    text = "\n".join(_src(c) for c in student["cells"] if c["cell_type"] == "markdown")
    page = f"notebooks/{path.stem}"
    heads = re.findall(r"^\*\*Fig\. ([\d.]+)\.\*\* ", text, re.M)
    assert heads == [n for p, n in site_figures.values() if p == page], path.name
    links = re.findall(r"\[Fig\. ([\d.]+)\]\((\S+?)#(fig-[\w-]+)\)", text)
    assert links
    for number, url, name in links:
        assert (f"{book.url}{site_figures[name][0]}.html", site_figures[name][1]) == (url, number), name
    shown = NUMREF.findall((SITE / f"{page}.html").read_text())
    assert len(shown) >= len(heads), f"{path.name}: {len(shown)} figure references on the web page"
    for href, name, number in shown:
        assert site_figures[name][1] == number, (name, number)
        assert href == "" or site_figures[name][0].endswith(Path(href).stem), (name, href)
