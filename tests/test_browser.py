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
PHONE = {"width": 390, "height": 844}
#: what unrendered MyST or LaTeX looks like in a page's visible text (outside math and code)
RAW_MARKUP = ("$", "\\hbar", "\\frac", "\\mathrm", "{doc}", "{eq}", "{term}", "{cite", "{ref}", "{numref}",
              "```", ":label:", ":class:", "{exercise}", "{solution")


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


def _open(browser, server, rel, viewport=None):
    page = browser.new_page(viewport=viewport or {"width": 1280, "height": 900})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    page.on("response", lambda r: errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    page.goto(f"{server}/{rel}", wait_until="load")
    # Jupyter Book's root index.html is a meta-refresh page: wait for the page it sends us to, or the checks below
    # would count that page's math before its MathJax has run (the failure seen in clean-clone CI on index.html)
    redirect = (SITE / rel).read_text(errors="replace") if (SITE / rel).exists() else ""
    target = re.search(r'http-equiv="Refresh" content="0; url=([^"]+)"', redirect, re.I)
    if target:
        page.wait_for_url(f"**/{target.group(1)}", timeout=30000)
        page.wait_for_load_state("load")
    # MathJax loads asynchronously: on a page with math, wait until it exists and has typeset (checking only
    # "no MathJax yet" let a loaded CI machine test the index page before MathJax arrived)
    page.wait_for_function("() => document.querySelectorAll('.math').length === 0 || "
                           "(window.MathJax && MathJax.startup && MathJax.startup.document && "
                           "document.querySelectorAll('mjx-container').length > 0)", timeout=30000)
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
        assert not errors, f"console errors: {errors}"
        # figures are drawn so that their text is legible when shown min(natural width, PAGE_PX) wide
        # (diffedu.plotting.make_legible); a narrower column would shrink that text below MIN_TEXT_PX
        from diffedu.plotting import PAGE_PX
        shrunk = page.evaluate("""(px) => Array.from(document.querySelectorAll('article img'))
            .filter(i => i.complete && i.naturalWidth > 0 && i.offsetParent !== null)
            .filter(i => i.getBoundingClientRect().width < 0.97 * Math.min(i.naturalWidth, px))
            .map(i => [i.src.slice(-40), i.naturalWidth, Math.round(i.getBoundingClientRect().width)])""", PAGE_PX)
        assert not shrunk, f"figures shown narrower than min(natural width, {PAGE_PX} px): {shrunk}"
        text = page.evaluate("""() => { const a = (document.querySelector('article') || document.body).cloneNode(true);
            a.querySelectorAll('mjx-container, .math, pre, code, script, style, .MathJax').forEach(e => e.remove());
            return a.innerText; }""")
        raw = [m for m in RAW_MARKUP if m in text]
        assert not raw, f"unrendered markup in the visible text: {raw}: " + "; ".join(
            text[max(0, text.index(m) - 60):text.index(m) + 40].replace("\n", " ") for m in raw)
        if rel.startswith("notebooks/"):
            _check_equation_numbers(page, rel, {"width": 1280, "height": 900})
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / (Path(rel).stem + ".png")))
            page.emulate_media(color_scheme="dark")          # a reader whose system is dark opens the page
            page.reload(wait_until="load")
            page.wait_for_timeout(300)
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
        page, errors = _open(browser, server, rel)
        frames = []
        page.on("request", lambda r: frames.append(r.url) if "explorer-frames/" in r.url else None)
        try:
            page.wait_for_timeout(300)
            assert not frames, f"{rel}: explorer frames were loaded before any control was used: {frames}"
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
                for _ in range(50):                       # the frames file loads on first use
                    if img.get_attribute("src") != before:
                        break
                    page.wait_for_timeout(100)
                assert img.get_attribute("src") != before, f"{rel}: moving the control did not change the frame"
            assert frames, f"{rel}: the frames were not loaded from their own file"
            assert not errors, f"console errors: {errors}"
        finally:
            page.close()


#: the most a chapter page (its HTML, without images and scripts) may weigh
PAGE_BYTES_MAX = 1_500_000


def test_page_weight():
    """Explorer frames are not inlined: a chapter page carries only each explorer's first frame."""
    sizes = {rel: (SITE / rel).stat().st_size for rel in PAGES if rel.startswith("notebooks/")}
    print("page bytes:", sizes)
    heavy = {rel: n for rel, n in sizes.items() if n > PAGE_BYTES_MAX}
    assert not heavy, f"pages over {PAGE_BYTES_MAX} bytes: {heavy}"
    assert list((SITE / "explorer-frames").glob("*.js")), "no explorer frame files in the site"


def test_root_favicon(server):
    """Browsers fetch /favicon.ico for the root redirect page, which links no icon; it must exist
    (otherwise a 404 shows in the console now and then, depending on how fast the redirect runs)."""
    from urllib.request import urlopen

    with urlopen(f"{server}/favicon.ico") as r:
        assert r.status == 200 and r.read(4) == b"\x00\x00\x01\x00", "not an .ico file"


def _in_view(page, selector):
    """True when the element is displayed and its box lies (mostly) inside the viewport."""
    return page.evaluate("""(sel) => { const el = document.querySelector(sel); if (!el) return false;
        const r = el.getBoundingClientRect(); const st = getComputedStyle(el);
        return st.visibility !== 'hidden' && st.display !== 'none' && r.width > 50 &&
               r.right > 50 && r.left < window.innerWidth - 50; }""", selector)


def _visible_toggle(page, cls):
    for b in page.locator(f"button.{cls}").all():
        if b.is_visible():
            return b
    raise AssertionError(f"no visible button.{cls}")


@pytest.mark.parametrize("rel", ["notebooks/02_fokker_planck.html", "book/intro.html"])
def test_phone_menus_open(browser, server, rel):
    """At phone width the chapter-list button opens the drawer with the table of contents, and the
    page-contents button opens the page's outline (pydata-sphinx-theme 0.17 broke both)."""
    page, errors = _open(browser, server, rel, PHONE)
    try:
        assert not _in_view(page, ".bd-sidebar-primary"), "the drawer is open before the tap"
        _visible_toggle(page, "primary-toggle").click()
        page.wait_for_timeout(600)
        assert _in_view(page, ".bd-sidebar-primary"), "tapping the menu button did not open the drawer"
        toc = page.locator(".bd-sidebar-primary a[href*='03_reverse_sde']").first
        assert toc.is_visible(), "the drawer shows no table of contents"
        page.keyboard.press("Escape")
        page.wait_for_timeout(400)
        if rel.startswith("notebooks/"):
            _visible_toggle(page, "secondary-toggle").click()
            page.wait_for_timeout(600)
            assert _in_view(page, ".bd-sidebar-secondary"), "the page-contents button did not open the outline"
            assert page.locator(".bd-sidebar-secondary a.nav-link").first.is_visible()
        assert not errors, f"console errors: {errors}"
    finally:
        page.close()


@pytest.mark.parametrize("rel", [p for p in PAGES if p.startswith(("notebooks/", "book/"))])
def test_phone_layout_no_overflow(browser, server, rel):
    """At 390 px the page body never scrolls sideways; wide tables and equations scroll in their own box."""
    page, _ = _open(browser, server, rel, PHONE)
    try:
        width = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert width <= 1, f"{rel}: the page is {width} px wider than the phone screen"
        bad = page.evaluate("""() => Array.from(document.querySelectorAll('article table')).filter(t => {
              if (t.getBoundingClientRect().width <= window.innerWidth) return false;
              for (let e = t.parentElement; e && e.tagName !== 'ARTICLE'; e = e.parentElement) {
                const o = getComputedStyle(e).overflowX; if (o === 'auto' || o === 'scroll') return false; }
              return true; }).length""")
        assert bad == 0, f"{rel}: {bad} wide table(s) not in a scrolling box"
        if rel.startswith("notebooks/"):
            _check_equation_numbers(page, rel, PHONE)
            # an inline formula wider than what is left of its line is clipped by the theme (span.math hides
            # overflow): the chapters set such formulas as display math or split them (API docstrings scroll)
            cut = page.evaluate("""() => { const art = document.querySelector('article').getBoundingClientRect();
                  return Array.from(document.querySelectorAll('article mjx-container:not([display="true"])'))
                  .filter(m => m.offsetParent !== null).filter(m => {
                    for (let e = m.parentElement; e && e.tagName !== 'ARTICLE'; e = e.parentElement) {
                      const o = getComputedStyle(e).overflowX; if (o === 'auto' || o === 'scroll') return false; }
                    const block = m.closest('p, li, dd, dt, figcaption, td, th, h1, h2, h3, h4') || m.parentElement;
                    return m.getBoundingClientRect().right > Math.min(block.getBoundingClientRect().right, art.right) + 2; })
                  .map(m => (m.textContent || '').slice(0, 40)); }""")
            assert not cut, f"{rel} at 390 px: {len(cut)} inline formula(s) wider than the column: {cut[:5]}"
    finally:
        page.close()



def _check_equation_numbers(page, rel, viewport):
    """Every numbered display equation: its number "(C.K)" is visible and its box does not overlap
    the typeset equation (on a phone the number gets its own line above it, book/_static/diffedu.css).
    Run on the chapter pages by test_page_renders (desktop) and test_phone_layout_no_overflow (phone),
    which have the page open already."""
    found = page.evaluate("""() => Array.from(document.querySelectorAll('div.math')).filter(d => d.querySelector(':scope > span.eqno'))
        .map(d => { const n = d.querySelector(':scope > span.eqno').getBoundingClientRect();
                    const m = d.querySelector('mjx-container'); if (!m) return [d.id, -1, n.width, true];
                    const e = m.getBoundingClientRect();
                    const w = Math.min(n.right, e.right) - Math.max(n.left, e.left);
                    const h = Math.min(n.bottom, e.bottom) - Math.max(n.top, e.top);
                    return [d.id, (w > 0 && h > 0) ? w * h : 0, n.width, n.bottom <= e.top + 1]; })""")
    assert found, f"{rel}: no numbered equation found"
    if viewport["width"] < 720:       # on a phone the number sits above the equation, which keeps the full width
        beside = [i for i, _, _, above in found if not above]
        assert not beside, f"{rel} at {viewport['width']} px: numbers beside their equation, not above: {beside}"
    untypeset = [i for i, area, _, _ in found if area < 0]
    hidden = [i for i, _, width, _ in found if width < 5]
    covered = [(i, round(area)) for i, area, _, _ in found if area > 1]
    assert not untypeset and not hidden, f"{rel}: equations not typeset {untypeset} or numbers invisible {hidden}"
    assert not covered, f"{rel} at {viewport['width']} px: equation numbers overlap their equation (px^2): {covered}"


def test_desktop_menu_button_collapses_sidebar(browser, server):
    page, errors = _open(browser, server, "notebooks/01_ito_processes.html")
    try:
        assert _in_view(page, ".bd-sidebar-primary")
        _visible_toggle(page, "primary-toggle").click()
        page.wait_for_timeout(600)
        assert not _in_view(page, ".bd-sidebar-primary"), "the menu button did not collapse the sidebar"
        _visible_toggle(page, "primary-toggle").click()
        page.wait_for_timeout(600)
        assert _in_view(page, ".bd-sidebar-primary"), "the menu button did not bring the sidebar back"
        assert not errors, f"console errors: {errors}"
    finally:
        page.close()


def test_phone_figures_open_at_full_size(browser, server):
    """At phone width every figure's image links to its PNG (one tap shows it alone, zoomable);
    the explorers' frames are not links (their controls swap the image)."""
    page, errors = _open(browser, server, "notebooks/02_fokker_planck.html", PHONE)
    try:
        links = page.evaluate("""() => Array.from(document.querySelectorAll('article figure img'))
              .filter(i => !i.closest('.diffedu-static-explorer'))
              .map(i => { const a = i.closest('a'); return a ? a.href : null; })""")
        assert len(links) >= 3 and all(links), links
        assert all(href.split("?")[0].endswith(".png") for href in links), links
        first = links[0].split("/_images/")[-1]
        assert (SITE / "_images" / first).stat().st_size > 5000
        assert page.locator(".diffedu-static-explorer a img").count() == 0
        assert not errors, f"console errors: {errors}"
    finally:
        page.close()


def test_solution_title_link_opens_solution(browser, server):
    """Clicking the exercise link inside a collapsed solution's title opens the solution (the
    toggle script used to throw `ReferenceError: button is not defined`)."""
    page, errors = _open(browser, server, "notebooks/01_ito_processes.html")
    try:
        solution = page.locator(".solution.dropdown").first
        body = solution.locator("section").first
        assert not body.is_visible(), "the solution is not collapsed to start with"
        solution.locator(".admonition-title a").first.click()
        page.wait_for_timeout(300)
        assert body.is_visible(), "clicking the title's link did not open the solution"
        solution.locator(".admonition-title").first.click(position={"x": 5, "y": 5})
        page.wait_for_timeout(300)
        assert not body.is_visible(), "clicking the title again did not close the solution"
        assert not errors, f"console errors: {errors}"
    finally:
        page.close()

