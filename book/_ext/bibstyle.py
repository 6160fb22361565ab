"""Bibliography labels in the book's author–year style ("Hirono et al., 2024", "Uhlenbeck and Ornstein, 1930").

The in-text citations are author–year (``bibtex_reference_style: author_year``); pybtex's
default styles label the list itself ``[HTF24]`` or ``[1]``.  This extension registers the
formatting style ``authoryear`` (pybtex's ``unsrt`` entries, sorted by author and year,
labelled like the citations), selected by ``bibtex_default_style`` in ``_config.yml``.

Two entries with the same authors' label and year (two "Song et al., 2021") carry year letters in
``references.bib`` (``year = {2021a}``, ``{2021b}``), so that the in-text citations, which print the year
field, and the list agree; without them Sphinx stops on a duplicate label.
"""

from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle


def _surname(person) -> str:
    text = " ".join(person.prelast_names + person.last_names)
    return text.replace("{", "").replace("}", "").replace("\\O", "Ø")


class AuthorYearLabels(BaseLabelStyle):
    def format_labels(self, sorted_entries):
        for entry in sorted_entries:
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
            yield f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearStyle(UnsrtStyle):
    default_label_style = AuthorYearLabels
    default_sorting_style = "author_year_title"


def setup(app):
    register_plugin("pybtex.style.labels", "authoryear", AuthorYearLabels)
    register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
