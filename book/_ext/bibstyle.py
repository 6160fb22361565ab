"""Bibliography labels in the book's author–year style ("Hirono et al., 2024", "Uhlenbeck and Ornstein, 1930").

The in-text citations are author–year (``bibtex_reference_style: author_year``); pybtex's
default styles label the list itself ``[HTF24]`` or ``[1]``.  This extension registers the
formatting style ``authoryear`` (pybtex's ``unsrt`` entries, sorted by author and year,
labelled like the citations), selected by ``bibtex_default_style`` in ``_config.yml``.
"""

from pathlib import Path

from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle


def _surname(person) -> str:
    text = " ".join(person.prelast_names + person.last_names)
    return text.replace("{", "").replace("}", "").replace("\\O", "Ø")


def _plain_label(entry) -> str:
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_surname(p) for p in people]
    if not names:
        who = entry.fields.get("key", entry.key)
    elif len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


def _suffixes() -> dict:
    """key -> "a", "b", ... for the entries of book/references.bib that share a plain label (two papers of
    "Song et al., 2021"), in the order of their titles: labels must be unique across every list of the book,
    and each chapter's list holds only some of the entries, so the letters come from the whole file."""
    from pybtex.database import parse_file

    bib = Path(__file__).resolve().parent.parent / "references.bib"
    entries = parse_file(str(bib)).entries
    groups: dict = {}
    for key, entry in entries.items():
        groups.setdefault(_plain_label(entry), []).append(key)
    out = {}
    for keys in groups.values():
        if len(keys) > 1:
            for k, key in enumerate(sorted(keys, key=lambda key: entries[key].fields.get("title", ""))):
                out[key] = "abcdefghijklmnopqrstuvwxyz"[k]
    return out


class AuthorYearLabels(BaseLabelStyle):
    def format_labels(self, sorted_entries):
        suffix = _suffixes()
        for entry in sorted_entries:
            yield _plain_label(entry) + suffix.get(entry.key, "")


class AuthorYearStyle(UnsrtStyle):
    default_label_style = AuthorYearLabels
    default_sorting_style = "author_year_title"


def setup(app):
    register_plugin("pybtex.style.labels", "authoryear", AuthorYearLabels)
    register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
