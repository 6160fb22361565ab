"""Fixes to what the pinned theme stack writes into every page (zero console errors).

* sphinx-thebe's configuration ``<script>`` is added twice per page (``const THEBE_JS_URL``
  declared twice: a SyntaxError in the console); identical scripts are kept once.
* pydata-sphinx-theme starts with ``data-mode=""`` when the reader has no stored choice and
  logs "Got invalid theme mode"; ``default_mode = "auto"`` starts it in the valid mode.
* sphinx-togglebutton cannot find its button when a reader clicks the *link* inside a
  solution's title ("Solution to Exercise 1.1 (...)"): ReferenceError, nothing opens.  A click
  anywhere in the title now opens or closes the solution.
* sphinx-exercise gives the body of every exercise the id ``exercise-content`` and of every
  solution ``solution-content``: a chapter page carried each id up to seven times (invalid HTML;
  an anchor to it lands on the first). Each body is now ``<its exercise's or solution's id>-content``.
* A multi-panel figure shrinks to the column (390 px on a phone): every figure's image is now a
  link to its PNG, so one tap shows it alone, at full size, for zooming.
"""

from pathlib import Path

_SOLUTION_TITLE_JS = """document.addEventListener('DOMContentLoaded', function () {
  document.querySelectorAll('.dropdown > .admonition-title a').forEach(function (a) {
    a.addEventListener('click', function (ev) {
      var button = a.closest('.admonition-title').querySelector('.toggle-button');
      if (!button) { return; }
      ev.preventDefault(); ev.stopPropagation(); button.click();
    });
  });
});"""


_FIGURE_LINK_JS = """document.addEventListener('DOMContentLoaded', function () {
  document.querySelectorAll('article figure img, article .cell_output img').forEach(function (img) {
    if (img.closest('a') || img.classList.contains('diffedu-static-frame') || img.src.indexOf('data:') === 0) { return; }
    var a = document.createElement('a');
    a.href = img.src; a.className = 'diffedu-full-figure'; a.title = 'Open the figure alone, at full size';
    img.parentNode.insertBefore(a, img); a.appendChild(img);
  });
});"""


def _fix_page(app, pagename, templatename, context, doctree):
    if not context.get("default_mode"):
        context["default_mode"] = "auto"


def _unique_content_ids(app, doctree, docname):
    """Rename the repeated section ids of sphinx-exercise after the exercise or solution that holds them."""
    from docutils import nodes

    used = set()
    for section in doctree.findall(nodes.section):
        for fixed in ("exercise-content", "solution-content"):
            if fixed not in section["ids"]:
                continue
            owner = section.parent["ids"] if section.parent is not None and section.parent.get("ids") else []
            base = f"{owner[0]}-content" if owner else fixed
            new, k = base, 1
            while new in used:
                k += 1
                new = f"{base}-{k}"
            used.add(new)
            section["ids"] = [new if i == fixed else i for i in section["ids"]]


def _dedupe_inline_scripts(app, exception):
    """Drop the second copy of any identical one-line inline ``<script>`` in each written page
    (extensions add theirs per page, after every ``html-page-context`` handler has run)."""
    if exception is not None or app.builder.format != "html":
        return
    for page in Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        seen, out, changed = set(), [], False
        for line in text.splitlines(keepends=True):
            key = line.strip()
            if key.startswith("<script>") and key.endswith("</script>"):
                if key in seen:
                    changed = True
                    continue
                seen.add(key)
            out.append(line)
        if changed:
            page.write_text("".join(out), encoding="utf-8")


def setup(app):
    app.connect("html-page-context", _fix_page, priority=900)
    app.connect("doctree-resolved", _unique_content_ids)
    app.connect("build-finished", _dedupe_inline_scripts)
    app.add_js_file(None, body=_SOLUTION_TITLE_JS)
    app.add_js_file(None, body=_FIGURE_LINK_JS)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
