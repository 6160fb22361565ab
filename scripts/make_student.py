"""Build the student edition of the chapter notebooks (run by `make student` and `make book`).

For every notebooks/NN_*.ipynb this writes _build/student/NN_*.ipynb in which
  * each code cell tagged `solution` becomes a stub (`# YOUR CODE HERE` + `raise NotImplementedError()`),
    keeping the cell id and tagged `stub`, so stubs and solutions can be paired;
  * the solution prose (everything from a `{solution-start}` directive to its `{solution-end}`,
    wherever in a cell they sit) is removed; the exercise statements stay;
  * all Markdown is turned into plain Markdown that JupyterLab, Colab and VS Code render without
    MyST: an exercise becomes "**Exercise C.K (title)**" and its statement, `{eq}` references
    become the web book's equation numbers linked to the web page (and labelled equations get
    `\\tag{N}`), citations become author–year text, the chapter's reference list is written out,
    other roles and directives become their visible text, links or block quotes;
  * `{numref}` references to figures become the web book's "Fig. C.K", linked to the figure on
    the web page, and every figure's caption follows its code cell as "**Fig. C.K.** caption"
    (plain Jupyter does not show the web book's captions);
  * outputs and execution counts are cleared; the check cells stay.
It also writes an instructor README and a zip of both (byte-for-byte reproducible).

The equation, figure and exercise numbers are computed from the sources the way Sphinx numbers them for
the web book (`math_numfig`, chapters numbered in `_toc.yml`); the web book's address comes from
`_config.yml` (`html.baseurl`, or the GitHub Pages site of `repository.url`).

Usage: python scripts/make_student.py [--out DIR]
"""

import argparse
import copy
import json
import re
import unicodedata
import zipfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
ZIP_NAME = "diffedu-student-notebooks.zip"


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


# ---------------------------------------------------------------------------------------------
# The book: web address, documents in table-of-contents order, equation and exercise numbers
# ---------------------------------------------------------------------------------------------

def site_url(config: dict) -> str:
    """The web book's base URL (ends with '/'): `html.baseurl`, else GitHub Pages of `repository.url`."""
    base = ((config.get("html") or {}).get("baseurl") or "").strip()
    if base:
        return base.rstrip("/") + "/"
    url = ((config.get("repository") or {}).get("url") or "").strip()
    m = re.match(r"https?://github\.com/([^/\s]+)/([^/\s]+?)(?:\.git)?/?$", url)
    if not m:
        raise ValueError(f"_config.yml: cannot derive the site address from repository.url = {url!r}")
    owner, repo = m.group(1).lower(), m.group(2)
    if repo.lower() == f"{owner}.github.io":
        return f"https://{owner}.github.io/"
    return f"https://{owner}.github.io/{repo}/"


def toc_documents(toc: dict) -> list[tuple[str, str | None]]:
    """(docname, chapter number or None) for every document of `_toc.yml`, in reading order.

    Numbered parts are numbered continuously (Jupyter Book's multitoc numbering); a section of
    a numbered chapter carries the chapter's number (`numfig_secnum_depth` 1 prefixes equations
    with the top-level number only)."""
    docs: list[tuple[str, str | None]] = []
    counter = 0

    def walk(entries, numbered, prefix):
        nonlocal counter
        for entry in entries or []:
            name = entry.get("file")
            number = prefix
            if name and numbered and prefix is None:
                counter += 1
                number = str(counter)
            if name:
                docs.append((str(Path(name).with_suffix("")), number if numbered else None))
            walk(entry.get("sections"), numbered or bool(entry.get("numbered")), number)

    docs.append((str(Path(toc["root"]).with_suffix("")), None))
    if "parts" in toc:
        for part in toc["parts"]:
            walk(part.get("chapters"), bool(part.get("numbered")), None)
    else:
        walk(toc.get("chapters"), bool((toc.get("options") or {}).get("numbered")), None)
    return docs


def _doc_path(docname: str) -> Path | None:
    for ext in (".ipynb", ".md"):
        if (ROOT / f"{docname}{ext}").exists():
            return ROOT / f"{docname}{ext}"
    return None


def _markdown_texts(path: Path) -> list[str]:
    if path.suffix == ".ipynb":
        return [_source(c) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown"]
    text = path.read_text()
    if text.startswith("---\n"):                       # YAML front matter
        end = text.find("\n---", 4)
        text = text[end + 4:] if end > 0 else text
    return [text]


DIRECTIVE_OPEN = re.compile(r"^ {0,3}(`{3,}|:{3,})\s*\{([\w:.-]+)\}([^\n]*)$")
MATH_DIRECTIVE_LABEL = re.compile(r"^ {0,3}(?:`{3,}|:{3,})\s*\{math\}[^\n]*\n(?::[\w-]+:[^\n]*\n)*?:label:[ \t]*(\S+)", re.M)
DOLLAR_LABEL = re.compile(r"[ \t]*\(([^()\s]+)\)[ \t]*(?=\n|$)")
OPTION = re.compile(r"^:([\w-]+):[ \t]*(.*)$")


def labelled_display_math(text: str):
    """(start of the opening $$, closing $$ match, label match) of each `$$ ... $$ (label)` of a text.

    The $$ are paired in order, so an unlabelled equation before a labelled one is never mistaken
    for the start of the labelled one."""
    opening = None
    for m in re.finditer(r"(?<!\\)\$\$", text):
        if opening is None:
            opening = m
            continue
        label = DOLLAR_LABEL.match(text, m.end())
        if label:
            yield opening, m, label
        opening = None


def equation_labels(text: str) -> list[str]:
    """The labels of the numbered equations of a Markdown text, in order."""
    found = [(o.start(), lab.group(1)) for o, _c, lab in labelled_display_math(text)]
    found += [(m.start(), m.group(1)) for m in MATH_DIRECTIVE_LABEL.finditer(text)]
    return [label for _pos, label in sorted(found)]


def _exercise_headers(text: str):
    """(title, options) of each `{exercise}` / `{exercise-start}` directive of a Markdown text."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = DIRECTIVE_OPEN.match(line)
        if m and m.group(2) in ("exercise", "exercise-start"):
            opts = {}
            for nxt in lines[i + 1:]:
                o = OPTION.match(nxt)
                if not o:
                    break
                opts[o.group(1)] = o.group(2).strip()
            yield m.group(3).strip(), opts


def figure_names(path: Path) -> list[str | None]:
    """The name of each numbered figure of a notebook, in order (None for a figure without one).

    Sphinx (`numfig`) numbers the figures of a chapter C as C.1, C.2, ...: here the code cells
    whose `mystnb.figure` metadata gives a caption, and the `{figure}` directives of the text."""
    if path.suffix != ".ipynb":
        return []
    names: list[str | None] = []
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            fig = cell.get("metadata", {}).get("mystnb", {}).get("figure")
            if fig and fig.get("caption"):
                names.append(fig.get("name"))
        elif cell["cell_type"] == "markdown":
            lines = _source(cell).splitlines()
            for i, line in enumerate(lines):
                m = DIRECTIVE_OPEN.match(line)
                if m and m.group(2) == "figure":
                    name = None
                    for nxt in lines[i + 1:]:
                        o = OPTION.match(nxt)
                        if not o:
                            break
                        name = o.group(2).strip() if o.group(1) == "name" else name
                    names.append(name)
    return names


def _anchor(label: str) -> str:
    """The HTML id docutils makes from a label."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def _chapter_of(name: str) -> int:
    return int(re.match(r"(\d+)_", name).group(1))


class Book:
    """Everything a conversion needs to know about the whole book."""

    def __init__(self, root: Path = ROOT):
        config = yaml.safe_load((root / "_config.yml").read_text())
        self.url = site_url(config)
        self.docs = toc_documents(yaml.safe_load((root / "_toc.yml").read_text()))
        self.equations: dict[str, tuple[str, str]] = {}     # label -> (docname, number)
        self.exercises: dict[str, str] = {}                 # label -> "C.K"
        self.figures: dict[str, tuple[str, str]] = {}       # label -> (docname, "C.K")
        self.targets: dict[str, str] = {}                   # `(label)=` -> heading text
        self.titles: dict[str, str] = {}                    # docname -> first heading
        counters: dict[str | None, int] = {}
        for docname, number in self.docs:
            path = _doc_path(docname)
            if path is None:
                continue
            texts = _markdown_texts(path)
            whole = "\n\n".join(texts)
            h = re.search(r"^# (.+)$", whole, re.M)
            self.titles[docname] = h.group(1).strip() if h else docname
            for label in (lab for text in texts for lab in equation_labels(text)):
                counters[number] = counters.get(number, 0) + 1
                n = counters[number]
                if label in self.equations:
                    raise ValueError(f"equation label {label} defined twice")
                self.equations[label] = (docname, f"{number}.{n}" if number else str(n))
            for m in re.finditer(r"^\(([^()\s]+)\)=[ \t]*\n+#+ (.+)$", whole, re.M):
                self.targets[m.group(1)] = m.group(2).strip()
            if number:
                for k, label in enumerate(figure_names(path), start=1):
                    if label is None:
                        continue
                    if label in self.figures:
                        raise ValueError(f"figure name {label} defined twice")
                    self.figures[label] = (docname, f"{number}.{k}")
            if docname.startswith("notebooks/") and re.match(r"\d+_", Path(docname).name):
                chapter, k = _chapter_of(Path(docname).name), 0
                for text in texts:
                    for _title, opts in _exercise_headers(text):
                        if "nonumber" in opts:
                            continue
                        k += 1
                        if "label" in opts:
                            self.exercises[opts["label"]] = f"{chapter}.{k}"
        self.bib = parse_bib((root / "book" / "references.bib").read_text()) \
            if (root / "book" / "references.bib").exists() else {}

    def page(self, docname: str) -> str:
        return f"{self.url}{docname}.html"


# ---------------------------------------------------------------------------------------------
# A minimal BibTeX reader and the author-year texts of the web book
# ---------------------------------------------------------------------------------------------

_ACCENTS = {'"': "\u0308", "'": "\u0301", "`": "\u0300", "^": "\u0302", "~": "\u0303", "=": "\u0304",
            ".": "\u0307", "c": "\u0327", "v": "\u030c", "u": "\u0306", "H": "\u030b", "k": "\u0328"}
_LETTERS = {"O": "Ø", "o": "ø", "ss": "ß", "ae": "æ", "AE": "Æ", "oe": "œ", "OE": "Œ", "aa": "å",
            "AA": "Å", "l": "ł", "L": "Ł", "i": "ı"}


def delatex(text: str) -> str:
    """LaTeX accents and braces of a BibTeX field to plain Unicode text."""
    def accent(m):
        return unicodedata.normalize("NFC", m.group(2) + _ACCENTS[m.group(1)])
    text = re.sub(r"\\([\"'`^~=.])\s*\{?([A-Za-z])\}?", accent, text)
    text = re.sub(r"\\([cvuHk])\s*\{([A-Za-z])\}", accent, text)
    text = re.sub(r"\\(ss|ae|AE|oe|OE|aa|AA|O|o|l|L|i)(?![A-Za-z])\s*", lambda m: _LETTERS[m.group(1)], text)
    text = text.replace("--", "–").replace("~", "\u00a0").replace("\\&", "&")
    return re.sub(r"\s+", " ", text.replace("{", "").replace("}", "")).strip()


def _braced(text: str, i: int) -> tuple[str, int]:
    """The content of the balanced group opening at text[i] ('{' or '"'), and the index after it."""
    close = "}" if text[i] == "{" else '"'
    depth, j = 0, i
    while j < len(text):
        ch = text[j]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if (close == "}" and depth == 0 and ch == "}") or (close == '"' and ch == '"' and j > i and depth == 0):
            return text[i + 1:j], j + 1
        j += 1
    raise ValueError("unbalanced braces in the bibliography")


def parse_bib(text: str) -> dict[str, dict]:
    """key -> {'type': ..., field: raw value} for every entry (no @string/@comment support)."""
    entries = {}
    for m in re.finditer(r"@(\w+)\s*\{\s*([^,\s]+)\s*,", text):
        kind = m.group(1).lower()
        if kind in ("comment", "string", "preamble"):
            continue
        fields, i = {"type": kind}, m.end()
        while i < len(text):
            f = re.compile(r"\s*(\w[\w-]*)\s*=\s*").match(text, i)
            if not f:
                break
            name, i = f.group(1).lower(), f.end()
            if text[i] in '{"':
                value, i = _braced(text, i)
            else:
                v = re.compile(r"[^,}\s]+").match(text, i)
                value, i = v.group(0), v.end()
            fields[name] = value
            c = re.compile(r"\s*,").match(text, i)
            if not c:
                break
            i = c.end()
        entries[m.group(2)] = fields
    return entries


def _split_names(value: str) -> list[str]:
    names, depth, cur = [], 0, ""
    for word in re.split(r"(\s+and\s+|[{}])", value):
        if word == "{":
            depth += 1
        elif word == "}":
            depth -= 1
        if depth == 0 and re.fullmatch(r"\s+and\s+", word or ""):
            names.append(cur)
            cur = ""
        else:
            cur += word or ""
    return [n.strip() for n in names + [cur] if n.strip()]


def _person(name: str) -> tuple[str, str]:
    """(first names, surname) of one BibTeX name ("Last, First" or "First von Last")."""
    if "," in name:
        last, first = name.split(",", 1)
        return delatex(first), delatex(last)
    words = name.split()
    i = next((k for k, w in enumerate(words[:-1]) if w[:1].islower()), len(words) - 1)
    return delatex(" ".join(words[:i])), delatex(" ".join(words[i:]))


def bib_authors(entry: dict) -> list[tuple[str, str]]:
    return [_person(n) for n in _split_names(entry.get("author") or entry.get("editor") or "")]


def bib_who(entry: dict, key: str) -> str:
    """The in-text author part as the web book writes it ("Kloeden and Platen", "Karras *et al.*")."""
    names = [last for _first, last in bib_authors(entry)]
    if not names:
        return key
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return f"{names[0]} and {names[1]}"
    return f"{names[0]} *et al.*"


def bib_sort_key(entry: dict) -> tuple:
    """Author list, year, title: the order of the web book's reference lists and citations."""
    people = "   ".join(f"{last} {first}" for first, last in bib_authors(entry)).lower()
    return people, entry.get("year", ""), delatex(entry.get("title", "")).lower()


def bib_reference(entry: dict) -> str:
    """One entry of a reference list, in the spirit of the web book's (unsrt) style."""
    people = [f"{first} {last}".strip() for first, last in bib_authors(entry)]
    if len(people) <= 1:
        who = "".join(people)
    else:
        who = ", ".join(people[:-1]) + (", and " if len(people) > 2 else " and ") + people[-1]
    parts = [who, delatex(entry.get("title", ""))]
    venue = entry.get("journal") or entry.get("booktitle") or ""
    detail = ""
    if entry.get("volume"):
        detail += delatex(entry["volume"]) + (f"({delatex(entry['number'])})" if entry.get("number") else "")
    if entry.get("pages"):
        detail += (":" if detail else "pages ") + delatex(entry["pages"])
    if venue:
        parts.append(("In " if entry.get("booktitle") and not entry.get("journal") else "")
                     + f"*{delatex(venue)}*" + (f", {detail}" if detail else ""))
    elif entry.get("publisher"):
        parts.append(delatex(entry["publisher"]))
    parts.append(delatex(entry.get("year", "n.d.")))
    text = ". ".join(p.rstrip(".") for p in parts if p) + "."
    if entry.get("doi"):
        text += f" <https://doi.org/{entry['doi']}>"
    elif entry.get("eprint") and entry.get("archiveprefix", "").lower() == "arxiv":
        text += f" <https://arxiv.org/abs/{entry['eprint']}>"
    elif entry.get("url"):
        text += f" <{entry['url']}>"
    return text


# ---------------------------------------------------------------------------------------------
# MyST Markdown -> plain Markdown
# ---------------------------------------------------------------------------------------------

FENCE_OPEN = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>[^\n]*)$")
ROLE_OR_CODE = re.compile(r"\{(?P<role>[\w:+.-]+)\}`(?P<content>[^`]*)`|(?P<code>`+)(?:.+?)(?<!`)(?P=code)(?!`)", re.S)
LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]*)\]\((?P<target><[^>]+>|[^)\s]+)\)")
ADMONITIONS = {"note", "tip", "hint", "important", "warning", "caution", "attention", "danger", "error",
               "seealso", "admonition", "margin", "sidebar", "topic", "epigraph", "pull-quote", "highlights",
               "dropdown", "card"}
DROPPED = {"toctree", "tableofcontents", "raw", "only", "index", "solution", "include", "literalinclude"}
CITE_P = {"cite", "cite:p", "cite:ps", "cite:cp", "cite:alp", "cite:text"}
CITE_T = {"cite:t", "cite:ts", "cite:ct"}


def _split_target(content: str) -> tuple[str | None, str]:
    m = re.fullmatch(r"(?s)(.*?)\s*<([^<>]+)>", content.strip())
    return (m.group(1).strip() or None, m.group(2).strip()) if m else (None, content.strip())


def _quote(lines: list[str]) -> list[str]:
    return [f"> {ln}" if ln.strip() else ">" for ln in lines]


class Converter:
    """Converts the Markdown cells of one notebook, in order (a solution may span several cells)."""

    def __init__(self, book: Book, docname: str):
        self.book, self.docname = book, docname
        self.chapter = _chapter_of(Path(docname).name)
        self.inside_solution = False
        self.exercises = 0
        self.cited: list[str] = []        # every key the notebook cites: its reference list

    # -- inline ------------------------------------------------------------------------------

    def _eq(self, content: str) -> str:
        text, label = _split_target(content)
        if label not in self.book.equations:
            raise ValueError(f"{self.docname}: {{eq}} reference to an unknown equation {label!r}")
        doc, number = self.book.equations[label]
        return f"[{text or f'({number})'}]({self.book.page(doc)}#equation-{_anchor(label)})"

    def _doc(self, content: str) -> str:
        text, target = _split_target(content)
        target = re.sub(r"\.(md|ipynb)$", "", target)
        doc = _normpath(target if target.startswith("/") else f"{Path(self.docname).parent.as_posix()}/{target}")
        return f"[{text or self.book.titles.get(doc, doc)}]({self.book.page(doc)})"

    def _ref(self, role: str, content: str, before: str) -> str:
        text, label = _split_target(content)
        if label in self.book.figures:
            doc, number = self.book.figures[label]
            shown = text.replace("{number}", number).replace("%s", number) if text else f"Fig. {number}"
            return f"[{shown}]({self.book.page(doc)}#{_anchor(label)})"
        if role == "numref" and label not in self.book.exercises:
            raise ValueError(f"{self.docname}: {{numref}} reference to an unknown figure or exercise {label!r}")
        if label in self.book.exercises:
            number = self.book.exercises[label]
            if text:
                return text.replace("{number}", number)
            return number if before.endswith("Exercise ") else f"Exercise {number}"
        if text:
            return text.replace("{number}", "")
        return self.book.targets.get(label, label)

    def _cite(self, role: str, content: str) -> str:
        keys = [k.strip() for k in content.split(",") if k.strip()]
        for key in keys:
            if key not in self.book.bib:
                raise ValueError(f"{self.docname}: citation of an unknown key {key!r}")
        entries = sorted(((self.book.bib[k], k) for k in keys), key=lambda ek: bib_sort_key(ek[0]))
        year = lambda e: delatex(e.get("year", "n.d."))  # noqa: E731
        if role in CITE_T:
            return ", ".join(f"{bib_who(e, k)} [{year(e)}]" for e, k in entries)
        if role == "cite:author":
            return ", ".join(bib_who(e, k) for e, k in entries)
        if role == "cite:year":
            return ", ".join(year(e) for e, _ in entries)
        if role in CITE_P:
            return "[" + ", ".join(f"{bib_who(e, k)}, {year(e)}" for e, k in entries) + "]"
        return ""                                        # cite:empty and other invisible citations

    def _role(self, m: re.Match) -> str:
        if m.group("code"):
            return m.group(0)                             # an inline code span: untouched
        role, content = m.group("role"), m.group("content")
        if role == "eq":
            return self._eq(content)
        if role == "doc":
            return self._doc(content)
        if role in ("ref", "numref"):
            return self._ref(role, content, m.string[:m.start()])
        if role.startswith("cite"):
            return self._cite(role, content)
        if role == "math":
            return f"${content}$"
        if role in ("sub", "sup"):
            return f"<{role}>{content}</{role}>"
        if role in ("code", "literal", "kbd", "samp", "file", "command", "program"):
            return f"`{content}`"
        if role == "download":
            text, target = _split_target(content)
            return text or Path(target).name
        text, target = _split_target(content)             # {term}, {guilabel}, ... : the visible text
        return text or target

    def _link(self, m: re.Match) -> str:
        target = m.group("target").strip("<>")
        if re.match(r"[a-z][\w+.-]*:", target) or target.startswith("#"):
            return m.group(0)
        path, _, anchor = target.partition("#")
        if not re.search(r"\.(md|ipynb)$", path):
            return m.group(0)
        doc = _normpath(str(Path(self.docname).parent / re.sub(r"\.(md|ipynb)$", "", path)))
        return f"[{m.group('text')}]({self.book.page(doc)}{'#' + anchor if anchor else ''})"

    def _display_math(self, text: str) -> str:
        """`$$ ... $$ (label)` -> `$$ ... \\tag{N} $$` (the web book's number), scanning $$ pairs in order."""
        out, i = [], 0
        for opening, closing, after in labelled_display_math(text):
            label = after.group(1)
            if label not in self.book.equations:
                raise ValueError(f"{self.docname}: equation label {label!r} not found")
            body = text[opening.end():closing.start()]
            tag = f"\\tag{{{self.book.equations[label][1]}}}"
            sep = "\n" if "\n" in body else " "
            out.append(text[i:opening.end()] + body.rstrip() + sep + tag + sep + "$$")
            i = after.end()
        out.append(text[i:])
        return "".join(out)

    def inline(self, text: str) -> str:
        text = self._display_math(text)
        text = ROLE_OR_CODE.sub(self._role, text)
        text = LINK.sub(self._link, text)
        # MyST-only lines: targets `(label)=`, comments `% ...`, block breaks `+++`
        text = re.sub(r"^(\([^()\s]+\)=|%[^\n]*|\+\+\+[^\n]*)[ \t]*(\n|$)", "", text, flags=re.M)
        return re.sub(r"[ \t]+$", "", text, flags=re.M)   # e.g. after a {cite:empty}

    # -- blocks ------------------------------------------------------------------------------

    def _blocks(self, lines: list[str]):
        """Split lines into ('text', lines) and ('fence', (indent, fence, info, body lines))."""
        i, text = 0, []
        while i < len(lines):
            m = FENCE_OPEN.match(lines[i])
            info = m.group("info") if m else ""
            is_fence = bool(m) and not (m.group("fence")[0] == "`" and "`" in info) \
                and not (m.group("fence")[0] == ":" and not info.strip().startswith("{"))
            if not is_fence:
                text.append(lines[i])
                i += 1
                continue
            if text:
                yield "text", text
                text = []
            fence = m.group("fence")
            close = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
            j = i + 1
            while j < len(lines) and not close.match(lines[j]):
                j += 1
            yield "fence", (m.group("indent"), fence, info.strip(), lines[i + 1:j])
            i = j + 1
        if text:
            yield "text", text

    def convert_lines(self, lines: list[str], top: bool = True) -> list[str]:
        out: list[str] = []
        for kind, block in self._blocks(lines):
            if kind == "text":
                if not (top and self.inside_solution):
                    out += self.inline("\n".join(block)).split("\n")
                continue
            indent, fence, info, body = block
            d = re.match(r"\{([\w:.-]+)\}\s*(.*)$", info)
            if not d:                                     # a plain code block
                if not (top and self.inside_solution):
                    out += [indent + fence + info, *body, indent + fence]
                continue
            name, arg = d.group(1), d.group(2).strip()
            if name == "solution-end":
                self.inside_solution = False
                continue
            if top and self.inside_solution:
                continue
            if name == "solution-start":
                self.inside_solution = True
                continue
            out += self.directive(name, arg, body)
        return out

    def _options(self, body: list[str]) -> tuple[dict, list[str]]:
        opts, i = {}, 0
        if body and body[0].strip() == "---":             # a YAML option block
            end = next((k for k in range(1, len(body)) if body[k].strip() == "---"), len(body))
            opts = yaml.safe_load("\n".join(body[1:end])) or {}
            i = end + 1
        else:
            while i < len(body) and OPTION.match(body[i]):
                o = OPTION.match(body[i])
                opts[o.group(1)] = o.group(2).strip()
                i += 1
        rest = body[i:]
        while rest and not rest[0].strip():
            rest = rest[1:]
        return opts, rest

    def directive(self, name: str, arg: str, body: list[str]) -> list[str]:
        opts, content = self._options(body)
        inner = lambda: self.convert_lines(content, top=False)  # noqa: E731
        if name in ("exercise", "exercise-start"):
            if "nonumber" in opts:
                head = "**Exercise" + (f" ({self.inline(arg)})" if arg else "") + "**"
            else:
                self.exercises += 1
                head = f"**Exercise {self.chapter}.{self.exercises}" + (f" ({self.inline(arg)})" if arg else "") + "**"
            return [head, "", *inner()]
        if name in ("exercise-end",) or name in DROPPED:
            return []
        if name == "math":
            label = opts.get("label")
            tag = [f"\\tag{{{self.book.equations[label][1]}}}"] if label in self.book.equations else []
            return ["$$", *content, *tag, "$$"]
        if name in ("code", "code-block", "sourcecode", "code-cell"):
            return [f"```{arg}", *content, "```"]
        if name in ("figure", "image"):
            alt = opts.get("alt", "")
            caption = inner() if name == "figure" else []
            return [f"![{alt}]({arg})", *(["", "*" + " ".join(c for c in caption if c.strip()) + "*"] if caption else [])]
        if name == "bibliography":
            keys = sorted(self.cited, key=lambda k: bib_sort_key(self.book.bib[k]))
            return [f"* **{bib_who(self.book.bib[k], k)}, {delatex(self.book.bib[k].get('year', 'n.d.'))}.** "
                    f"{bib_reference(self.book.bib[k])}" for k in keys]
        if name in ADMONITIONS:
            title = self.inline(arg) if arg else ("See also" if name == "seealso" else name.replace("-", " ").capitalize())
            return _quote([f"**{title}**", "", *inner()])
        if name == "glossary":
            return inner()
        # anything else: its argument as a bold line and its content
        return ([f"**{self.inline(arg)}**", ""] if arg else []) + inner()

    def convert_cell(self, src: str) -> str:
        lines = self.convert_lines(src.split("\n"))
        text = "\n".join(lines)
        text = re.sub(r"\n{3,}", "\n\n", text).strip("\n")
        return text


def _normpath(doc: str) -> str:
    parts: list[str] = []
    for p in doc.split("/"):
        if p == "..":
            if parts:
                parts.pop()
        elif p not in ("", "."):
            parts.append(p)
    return "/".join(parts)


def _cited_keys(cells: list[dict]) -> list[str]:
    """Every key cited in the notebook (all citation roles), in order of appearance."""
    keys: list[str] = []
    for cell in cells:
        if cell["cell_type"] == "markdown":
            for m in re.finditer(r"\{cite(?::[\w]+)?\}`([^`]*)`", _source(cell)):
                keys += [k.strip() for k in m.group(1).split(",") if k.strip() and k.strip() not in keys]
    return keys


_BOOK: Book | None = None


def _book() -> Book:
    global _BOOK
    if _BOOK is None:
        _BOOK = Book()
    return _BOOK


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _caption_cell(cell: dict, conv: Converter) -> dict | None:
    """The Markdown cell "**Fig. C.K.** caption" that follows a figure's code cell in the student edition.

    Plain Jupyter does not show the `mystnb.figure` caption of the web book, so the student edition
    writes it under the figure, with the web book's number."""
    fig = cell.get("metadata", {}).get("mystnb", {}).get("figure")
    if not fig or not fig.get("caption"):
        return None
    name = fig.get("name")
    number = conv.book.figures[name][1] if name in conv.book.figures else None
    head = f"**Fig. {number}.** " if number else ""
    return {"cell_type": "markdown", "id": f"{cell.get('id', 'figure')}-caption", "metadata": {},
            "source": _lines(head + conv.inline(fig["caption"]))}


def student_notebook(nb: dict, name: str, book: Book | None = None) -> dict:
    """The student edition of the instructor notebook `nb`, whose file name is `name` (NN_*.ipynb)."""
    book = book or _book()
    out = copy.deepcopy(nb)
    conv = Converter(book, f"notebooks/{Path(name).stem}")
    conv.cited = _cited_keys(out["cells"])
    cells = []
    for cell in out["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] == "markdown":
            text = conv.convert_cell(_source(cell))
            if text.strip():                              # cells of solution prose only disappear
                cell["source"] = _lines(text)
                cells.append(cell)
            continue
        caption = None
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
            if "solution" in tags:
                cell["source"] = STUB
                cell["metadata"]["tags"] = [t for t in tags if t != "solution"] + ["stub"]
            elif conv.inside_solution:
                raise ValueError(f"untagged code cell {cell.get('id')} inside a solution block")
            else:
                caption = _caption_cell(cell, conv)
        elif conv.inside_solution:
            continue
        cells.append(cell)
        if caption:
            cells.append(caption)
    if conv.inside_solution:
        raise ValueError("a solution block is never closed")
    out["cells"] = cells
    return out


README = """# Student edition: instructor notes

These notebooks are the chapters of *Diffusion models through stochastic calculus and path
integrals* with the exercise solutions removed:

* every solution code cell is replaced by a stub (`# YOUR CODE HERE` / `raise NotImplementedError()`);
* the written solutions are removed; every exercise statement stays, headed **Exercise C.K (title)**
  as in the web book;
* the text is plain Markdown (JupyterLab, Colab and VS Code render it): equation and figure
  numbers and citations are those of the web book, equation and figure references link to it
  ({url}), and each figure's caption is written under its code cell;
* the check cell after each exercise stays: it calls a function of `diffedu.checks`, which
  computes its own reference and tells the student whether the answer is right, with a hint
  when it is not (it never reveals the reference value).

Students need the `diffedu` package (`pip install -e .` in the book's repository, or the
hidden first cell on Colab). A notebook runs normally up to the first exercise and stops at
the first stub; after an exercise is solved, its check cell prints a line starting with ✔.

Chapters and exercises: see the Homework page of the book ({url}book/homework.html).
Rebuild with `make student`.
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=ROOT / "_build" / "student")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    book = _book()
    written, exercises = [], 0
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text())
        target = args.out / path.name
        student = student_notebook(nb, path.name, book)
        exercises += sum(_source(c).count("**Exercise ") for c in student["cells"] if c["cell_type"] == "markdown")
        target.write_text(json.dumps(student, indent=1, ensure_ascii=False) + "\n")
        written.append(target)
    readme = args.out / "README.md"
    readme.write_text(README.format(url=book.url))
    with zipfile.ZipFile(args.out / ZIP_NAME, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted([readme, *written], key=lambda p: p.name):
            info = zipfile.ZipInfo(f.name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, f.read_bytes())
    where = args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out
    print(f"student edition: {len(written)} notebooks ({exercises} exercises), README.md and {ZIP_NAME} in {where}")


if __name__ == "__main__":
    main()
