"""The PDF of the book (``make pdf``: Sphinx's LaTeX builder, XeLaTeX) numbered as the site is.

* The site numbers only the "Chapters" part of ``_toc.yml``: Itô processes is Chapter 1 and its
  equations are (1.1), (1.2), ...  LaTeX would count every page before it (intro, notation,
  glossary) as a chapter.  Here the document class is ``book`` and the assembled document gets
  ``\\frontmatter`` at its start, ``\\mainmatter`` before the first chapter and ``\\backmatter``
  before the first back-matter page, so front and back matter are unnumbered and the chapters
  (and their equations, figures) carry the site's numbers.
* The Japanese and Chinese terms of the glossary need a CJK font: xeCJK with Noto CJK
  (Debian's fonts-noto-cjk); without it XeLaTeX drops them and still exits 0.
"""

from docutils import nodes
from sphinx import addnodes

# The first page of each numbered / unnumbered run in _toc.yml.
FIRST_CHAPTER = "notebooks/01_ito_processes"
FIRST_BACK_MATTER = "book/homework"


def _raw(tex):
    return nodes.raw("", tex + "\n", format="latex")


def _mark_matter(app, doctree, docname):
    """Insert the book class's matter switches into the assembled LaTeX document."""
    if app.builder.name != "latex" or docname != app.config.root_doc:
        return
    starts = {n["docname"]: n for n in doctree.findall(addnodes.start_of_file)}
    missing = [d for d in (FIRST_CHAPTER, FIRST_BACK_MATTER) if d not in starts]
    if missing:
        raise RuntimeError(f"latexbook: {missing} not in the assembled document; update FIRST_* to _toc.yml")
    for name, tex in ((FIRST_CHAPTER, r"\mainmatter"), (FIRST_BACK_MATTER, r"\backmatter")):
        node = starts[name]
        node.parent.insert(node.parent.index(node), _raw(tex))
    doctree.insert(0, _raw(r"\frontmatter"))


def setup(app):
    app.connect("doctree-resolved", _mark_matter)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
