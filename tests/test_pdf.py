"""Checks of the PDF of the book (`make pdf`, run by `make test` after the site build).

They read the PDF as a reader's tools do (poppler's pdftotext and pdfimages) and compare it
with the site: the same chapter numbers, equation numbers and figure numbers, the Japanese
glossary terms present (XeLaTeX drops a glyph its font lacks and still exits 0), a figure image
on the page of every figure caption (explorers included: their PNG frame), no object repr.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.site

ROOT = Path(__file__).resolve().parent.parent
PDF = ROOT / "_build" / "pdf" / "book.pdf"
LOG = ROOT / "_build" / "latex" / "book.log"
SITE = ROOT / "_build" / "html"
CHAPTERS = sorted((ROOT / "notebooks").glob("0[1-9]_*.ipynb"))


def _title(nb):
    import json
    first = json.loads(nb.read_text())["cells"][0]["source"]
    return "".join(first).splitlines()[0].lstrip("# ").strip()


@pytest.fixture(scope="module")
def pages():
    if not PDF.exists():
        if os.environ.get("DIFFEDU_REQUIRE_PDF") == "1" or shutil.which("xelatex"):
            pytest.fail("no PDF: run `make pdf` after `make book` (make test does both)")
        pytest.skip("no TeX Live here (README: system packages); make pdf was not run")
    if not shutil.which("pdftotext"):
        pytest.fail("pdftotext (Debian's poppler-utils) is needed to check the PDF")
    text = subprocess.run(["pdftotext", "-layout", str(PDF), "-"], capture_output=True, text=True, check=True).stdout
    return text.split("\f")


def test_the_site_serves_the_same_pdf_and_links_it(pages):
    served = SITE / "book.pdf"
    assert served.exists() and served.read_bytes() == PDF.read_bytes()
    intro = (SITE / "book" / "intro.html").read_text()
    assert 'href="../book.pdf"' in intro, "the intro page does not link the PDF"
    assert len(pages) > 100, f"only {len(pages)} pages"


def test_no_glyph_is_missing():
    if not LOG.exists():
        pytest.skip("no LaTeX log")
    missing = [line for line in LOG.read_text(errors="replace").splitlines() if "Missing character" in line]
    assert not missing, f"{len(missing)} glyphs missing, e.g. {missing[:3]}"


def test_every_chapter_carries_the_site_number_and_title(pages):
    """Running footers read "Chapter k. <title>" with k as in the site (front matter unnumbered)."""
    text = "\n".join(pages)
    for k, nb in enumerate(CHAPTERS, start=1):
        title = _title(nb)
        assert f"Chapter {k}. {title}" in re.sub(r"[ \t]+", " ", text), f"no 'Chapter {k}. {title}' in the PDF"
    assert "Chapter 0." not in text
    assert f"Chapter {len(CHAPTERS) + 1}." not in text, "a back-matter page is numbered as a chapter"


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_equation_numbers_are_those_of_the_site(pages, nb):
    k = int(nb.name[:2])
    html = (SITE / "notebooks" / f"{nb.stem}.html").read_text()
    site = sorted(int(n) for n in set(re.findall(rf'class="eqno">\({k}\.(\d+)\)', html)))
    pdf = sorted(int(n) for n in set(re.findall(rf"\({k}\.(\d+)\)[ \t]*$", "\n".join(pages), re.M)))
    assert site, f"{nb.stem}: no numbered equation in the site"
    assert pdf == site, f"{nb.stem}: equations in the PDF {pdf}, in the site {site}"


def test_every_figure_has_its_site_number_and_an_image_on_its_page(pages):
    site = []
    for nb in CHAPTERS:
        html = (SITE / "notebooks" / f"{nb.stem}.html").read_text()
        site += re.findall(r'<span class="caption-number">Fig\. (\d+\.\d+) </span>', html)
    captions = [(i + 1, m) for i, page in enumerate(pages) for m in re.findall(r"^\s*Fig\. (\d+\.\d+):", page, re.M)]
    assert [m for _, m in captions] == site, "figure numbers of the PDF differ from the site's"
    listing = subprocess.run(["pdfimages", "-list", str(PDF)], capture_output=True, text=True, check=True).stdout
    with_image = {int(row.split()[0]) for row in listing.splitlines()[2:] if row.split()[2] == "image"}
    bare = [m for p, m in captions if p not in with_image]
    assert not bare, f"figure captions with no image on their page: {bare}"


def test_japanese_terms_equations_and_bibliography_are_in_the_text(pages):
    text = "\n".join(pages)
    for term in ["確率微分方程式", "経路積分", "伊藤の補題", "スコア関数"]:
        assert term in text, f"glossary term {term} missing from the PDF"
    assert "Hirono" in text and re.search(r"^\s*BIBLIOGRAPHY\s*$", text, re.M), "no bibliography"
    for leak in ["object at 0x", "<diffedu.", "IPython.core.display"]:
        assert leak not in text, f"an output printed as a repr: {leak}"
    unresolved = [m.start() for m in re.finditer(r"\?\?", text)]
    assert not unresolved, "references printed as ??: " + "; ".join(text[max(0, i - 50):i + 10] for i in unresolved[:3])
    assert "FRONT MATTER" not in "\n".join(pages[:6]), "the contents page is titled by the first part's caption"
    assert not re.search(r"^\s*0\.\d+\s+[A-Z][a-z]", text, re.M), "front-matter sections are numbered 0.k"
    # the back matter (homework, glossary, ...) follows the last chapter: numbered, it would continue its sections
    import json
    last = json.loads(CHAPTERS[-1].read_text())
    sections = sum(len(re.findall(r"^## ", "".join(c["source"]), re.M)) for c in last["cells"] if c["cell_type"] == "markdown")
    beyond = rf"^\s*{len(CHAPTERS)}\.{sections + 1}\s+[A-Z][a-z]"
    assert not re.search(beyond, text, re.M), "back matter numbered as sections of the last chapter"
    assert re.search(r"Exercise 6\.\d", pages_text_of(pages, "Homework")), "the homework page does not number exercises"


def pages_text_of(pages, heading):
    """The text of the pages from the first one whose running head or title holds ``heading`` on."""
    start = next(i for i, p in enumerate(pages) if heading.upper() in p.upper() and i > 10)
    return "\n".join(pages[start:start + 4])
