"""One version number for the book and the package, a citation file, a changelog.

``diffedu.__version__`` is the version; ``pyproject.toml``, ``CITATION.cff``, the newest release in
``CHANGELOG.md``, the front page's BibTeX entry and the ``version`` substitution the front page shows
(``_config.yml``) must all say the same, so that tagging ``vX.Y.Z`` needs one edit per file and a test
catches the one forgotten.
"""

import re
import tomllib
from pathlib import Path

import yaml

import diffedu as de

ROOT = Path(__file__).resolve().parent.parent
SEMVER = re.compile(r"\d+\.\d+\.\d+")


def test_version_is_semantic():
    assert SEMVER.fullmatch(de.__version__), de.__version__


def test_pyproject_has_the_package_version():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["version"] == de.__version__


def test_citation_file_is_complete_and_current():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    for key in ("cff-version", "message", "title", "authors", "version", "repository-code", "license"):
        assert cff.get(key), f"CITATION.cff lacks {key}"
    assert cff["version"] == de.__version__
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cff["title"] == config["title"]
    assert cff["repository-code"] == config["repository"]["url"]


def test_changelog_names_the_version_as_its_newest_release():
    text = (ROOT / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## (\d+\.\d+\.\d+) — (\d{4}-\d{2}-\d{2})$", text, re.M)
    assert releases, "CHANGELOG.md has no '## X.Y.Z — YYYY-MM-DD' release heading"
    assert releases[0][0] == de.__version__


def test_front_page_shows_and_cites_the_version():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["parse"]["myst_substitutions"]["version"] == de.__version__
    intro = (ROOT / "book" / "intro.md").read_text()
    assert "{{ version }}" in intro
    bib = re.search(r"```bibtex\n(.*?)```", intro, re.S)
    assert bib, "the front page has no BibTeX box"
    assert f"version = {{{de.__version__}}}" in bib.group(1)
    assert f"url     = {{{config['repository']['url']}}}" in bib.group(1)


def test_readers_can_report_errata_from_every_page():
    assert yaml.safe_load((ROOT / "_config.yml").read_text())["html"]["use_issues_button"] is True
