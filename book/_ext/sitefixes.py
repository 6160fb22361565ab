"""Fixes to what the pinned theme stack writes into every page (zero console errors).

* sphinx-thebe's configuration ``<script>`` is added twice per page (``const THEBE_JS_URL``
  declared twice: a SyntaxError in the console); identical scripts are kept once.
* pydata-sphinx-theme starts with ``data-mode=""`` when the reader has no stored choice and
  logs "Got invalid theme mode"; ``default_mode = "auto"`` starts it in the valid mode.
* sphinx-togglebutton cannot find its button when a reader clicks the *link* inside a
  solution's title ("Solution to Exercise 1.1 (...)"): ReferenceError, nothing opens.  A click
  anywhere in the title now opens or closes the solution.
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


def _fix_page(app, pagename, templatename, context, doctree):
    if not context.get("default_mode"):
        context["default_mode"] = "auto"


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
    app.connect("build-finished", _dedupe_inline_scripts)
    app.add_js_file(None, body=_SOLUTION_TITLE_JS)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
