"""The built web book in a real browser (Debian's chromium driven by playwright).

Run after `jupyter-book build` (``make test`` does).  Without a chromium the tests are
skipped with a message — unless ``DIFFEDU_REQUIRE_BROWSER=1`` (set by ``.ci/run``), which
turns the skip into a failure so that CI can never skip them silently.
"""

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

import pytest

pytestmark = pytest.mark.site

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
PAGES = sorted(str(p.relative_to(SITE)) for p in SITE.glob("**/*.html")
               if p.name not in ("genindex.html", "search.html") and "_static" not in p.parts
               and "_sources" not in p.parts) if SITE.exists() else []
#: console messages that are known and harmless (see CONTRIBUTING.md)
CONSOLE_WHITELIST = (
    "THEBE_JS_URL",                    # sphinx-thebe declares its config twice per page
    "Got invalid theme mode",          # pydata theme, before the stored mode is read
)


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def server():
    if not SITE.exists():
        pytest.fail("the book is not built: run `make book` first")
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(SITE))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    exe = _chromium()
    if exe is None:
        if os.environ.get("DIFFEDU_REQUIRE_BROWSER") == "1":
            pytest.fail("no chromium found, and DIFFEDU_REQUIRE_BROWSER=1: install it (apt-get install chromium)")
        pytest.skip("no system chromium (apt-get install chromium); browser checks skipped")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu",
                                                         "--disable-background-networking"])
        yield b
        b.close()


def _open(browser, server, rel):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    page.on("response", lambda r: errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    page.goto(f"{server}/{rel}", wait_until="load")
    page.wait_for_function("() => !window.MathJax || !MathJax.startup || MathJax.startup.document", timeout=15000)
    page.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
    return page, errors


@pytest.mark.parametrize("rel", PAGES)
def test_page_renders(browser, server, rel):
    page, errors = _open(browser, server, rel)
    try:
        n_math = page.locator(".math").count()
        if n_math:
            assert page.locator("mjx-container").count() >= n_math // 2, "math was not typeset"
        body = page.inner_text("body")
        assert "$$" not in body, "raw $$ on the page: math was not typeset"
        broken = page.evaluate("() => Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)"
                               ".map(i => i.src.slice(0, 80))")
        assert not broken, f"images that did not load: {broken}"
        bad = [e for e in errors if not any(w in e for w in CONSOLE_WHITELIST)]
        assert not bad, f"console errors: {bad}"
        if rel.startswith("notebooks/"):
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / (Path(rel).stem + ".png")))
            page.emulate_media(color_scheme="dark")          # the theme follows the system's scheme
            page.wait_for_timeout(200)
            assert page.evaluate("() => document.documentElement.dataset.theme") == "dark"
            page.screenshot(path=str(SHOTS / (Path(rel).stem + "-dark.png")))
    finally:
        page.close()


def test_internal_links_and_anchors():
    ids = {}

    def anchors(path):
        if path not in ids:
            ids[path] = set(re.findall(r'id="([^"]+)"', path.read_text()))
        return ids[path]

    problems = []
    for rel in PAGES:
        src = SITE / rel
        for href in re.findall(r'href="([^"]+)"', src.read_text()):
            if href.startswith(("http:", "https:", "mailto:", "javascript:", "data:")) or href.startswith("//"):
                continue
            target, frag = urldefrag(href)
            target = urlsplit(target).path
            path = (src.parent / unquote(target)).resolve() if target else src
            if path.is_dir():
                path = path / "index.html"
            if not path.exists():
                problems.append(f"{rel}: broken link {href}")
            elif frag and path.suffix == ".html" and frag not in anchors(path):
                problems.append(f"{rel}: missing anchor {href}")
    assert not problems, "\n".join(problems[:20])


def test_static_explorers_change_frame(browser, server):
    pages = [rel for rel in PAGES if "diffedu-static-explorer" in (SITE / rel).read_text()]
    assert len(pages) >= 5, f"expected an interactive figure in every chapter, found {pages}"
    for rel in pages:
        page, _ = _open(browser, server, rel)
        try:
            for root in page.locator(".diffedu-static-explorer").all():
                img = root.locator("img")
                before = img.get_attribute("src")
                control = root.locator("[data-control]").first
                if control.evaluate("el => el.tagName") == "SELECT":
                    n = control.locator("option").count()
                    current = int(control.input_value())
                    control.select_option(str((current + 1) % n))
                else:
                    control.evaluate("el => { el.value = (parseInt(el.value) + 1) % (parseInt(el.max) + 1);"
                                     " el.dispatchEvent(new Event('input')); }")
                assert img.get_attribute("src") != before, f"{rel}: moving the control did not change the frame"
        finally:
            page.close()


def test_root_favicon(server):
    """Browsers fetch /favicon.ico for the root redirect page, which links no icon; it must exist
    (otherwise a 404 shows in the console now and then, depending on how fast the redirect runs)."""
    from urllib.request import urlopen

    with urlopen(f"{server}/favicon.ico") as r:
        assert r.status == 200 and r.read(4) == b"\x00\x00\x01\x00", "not an .ico file"
