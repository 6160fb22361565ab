"""Docstrings for the API page (book/api.md): equation references and "Parameters" sections.

Docstrings refer to the book's equations as MyST does, ``{eq}`label```; reStructuredText, in which
autodoc reads them, spells the same reference ``:eq:`label```, so this hook rewrites it (and drops the
parentheses around a reference, which ``:eq:`` prints itself).

``diffedu`` writes parameters as a NumPy-style section whose entries are ``name : description``
(a description, not a type). Sphinx's napoleon would read the description as a type and try to
cross-reference it, so this hook turns each entry into ``:param name: description`` instead.
"""

import re

_ENTRY = re.compile(r"^(\w+(?:,\s*\w+)*)\s+:\s*(.*)$")
_EQ = re.compile(r"\{eq\}`([^`]+)`")
#: "({eq}`a`)" or "({eq}`a`, {eq}`b`)": :eq: prints its own parentheses, so the outer ones go
_EQ_IN_PARENS = re.compile(r"\((\{eq\}`[^`]+`(?:(?:, | and )\{eq\}`[^`]+`)*)\)")


def _parameters_to_fields(app, what, name, obj, options, lines):
    out, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "Parameters" and i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}:
            i += 2
            fields = []
            while i < len(lines) and lines[i].strip():
                m = _ENTRY.match(lines[i])
                if m and not lines[i].startswith(" "):
                    fields.append([m.group(1), m.group(2)])
                elif fields:
                    fields[-1][1] += " " + lines[i].strip()
                i += 1
            for names, text in fields:
                out.append(f":param {names.replace(' ', '')}: {text}")
            out.append("")
            continue
        out.append(lines[i])
        i += 1
    lines[:] = [_EQ.sub(r":eq:`\1`", _EQ_IN_PARENS.sub(r"\1", line)) for line in out]


def setup(app):
    app.connect("autodoc-process-docstring", _parameters_to_fields)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
