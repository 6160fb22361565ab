"""The PDF of the book (``make pdf``: Sphinx's LaTeX builder, XeLaTeX) numbered as the site is.

* The site numbers only the "Chapters" part of ``_toc.yml``: Itô processes is Chapter 1 and its
  equations are (1.1), (1.2), ...  LaTeX would count every page before it (intro, notation,
  glossary) as a chapter.  Here the document class is ``book``, ``\\frontmatter`` comes before the
  table of contents, ``\\mainmatter`` before the first chapter and ``\\backmatter`` before the first
  back-matter page, and sections are unnumbered outside the main matter, so front and back matter
  are unnumbered and the chapters (and their equations, figures) carry the site's numbers.
* A ``{ref}`` to an exercise prints the exercise's number as the site does ("Exercise 2.3").
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
    # \frontmatter comes before the table of contents (latex_elements "tableofcontents" in _config.yml);
    # outside the main matter sections are unnumbered too (secnumdepth -1), as in the site
    for name, tex in ((FIRST_CHAPTER, r"\mainmatter\setcounter{secnumdepth}{\diffedusecnumdepth}"),
                      (FIRST_BACK_MATTER, r"\backmatter\setcounter{secnumdepth}{-1}")):
        node = starts[name]
        node.parent.insert(node.parent.index(node), _raw(tex))
    _number_exercise_references(app, doctree)


def _number_exercise_references(app, doctree):
    """``{ref}`` to an exercise: LaTeX's ``\\ref`` would print the section's number or "??" (sphinx-exercise
    labels the exercise ``exercise:<label>``, not ``<doc>:<label>``); write the number the site shows."""
    numbers = app.env.toc_fignumbers
    for node in list(doctree.findall(addnodes.number_reference)):
        if node.get("refid"):
            doc, label = _docname_of(node, app.config.root_doc), node["refid"]
        else:
            doc, _, label = node.get("refuri", "").lstrip("%").partition("#")
        number = numbers.get(doc, {}).get("exercise", {}).get(label)
        if number is None:
            continue
        title = node.get("title", "%s")
        text = ".".join(map(str, number))
        text = title.replace("{number}", text) if "{number}" in title else title % text
        node.replace_self(nodes.raw("", r"\hyperref[exercise:%s]{%s}" % (label, text), format="latex"))


def _docname_of(node, root):
    while node is not None:
        if isinstance(node, addnodes.start_of_file):
            return node["docname"]
        node = node.parent
    return root


def setup(app):
    app.connect("doctree-resolved", _mark_matter)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
