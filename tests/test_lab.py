"""Class use: Chapter 4 run in a real JupyterLab, driven through its UI (Debian's chromium, playwright).

A JupyterLab from this environment serves a temporary copy of ``notebooks/``, with its own runtime,
config, data, settings and workspace folders (the user's settings do not matter) and a random token;
it is stopped at the end, whatever happened.  The test opens Chapter 4, runs all cells from the Run
menu, waits for the last cell, and checks that no cell shows an error, that the live ħ explorer
(ipywidgets) is drawn and redraws its figure when its slider is moved with the keyboard, and that
MyST (jupyterlab-myst) renders ``{eq}`` references, ``{exercise}`` directives and math.

Marker ``lab`` (``make lab-check``).  Without chromium: skipped, or failed under
``DIFFEDU_REQUIRE_BROWSER=1`` (as in tests/test_browser.py).  About 1.5 minutes on 2 idle cores.
"""

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.error import URLError
from urllib.request import Request, urlopen

import pytest

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "_build" / "screenshots"
CHAPTER = "04_probability_flow_ode.ipynb"
RUN_TIMEOUT_S = 600                     # Chapter 4 takes about 50 s alone on 2 idle cores
ERROR_TEXT = re.compile(r"Traceback|Error\b")
#: user settings of the temporary JupyterLab: every cell in the DOM (no windowing), no news/update checks
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                         "checkForUpdates": False},
}


def _chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("DIFFEDU_REQUIRE_BROWSER") == "1":
            pytest.fail("no chromium found, and DIFFEDU_REQUIRE_BROWSER=1: install it (apt-get install chromium)")
        pytest.skip("no system chromium (apt-get install chromium); JupyterLab checks skipped")
    return exe


def _lab_env(tmp: Path) -> dict:
    env = os.environ.copy()
    for name in ("DIFFEDU_STATIC", "DIFFEDU_FRAMES_DIR", "JUPYTER_PATH", "JUPYTER_CONFIG_PATH"):
        env.pop(name, None)
    for name, sub in [("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTER_CONFIG_DIR", "config"),
                      ("JUPYTER_DATA_DIR", "data"), ("JUPYTERLAB_SETTINGS_DIR", "settings"),
                      ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"), ("IPYTHONDIR", "ipython")]:
        (tmp / sub).mkdir(parents=True, exist_ok=True)
        env[name] = str(tmp / sub)
    for rel, value in SETTINGS.items():
        path = tmp / "settings" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base, token, path, method="GET"):
    req = Request(f"{base}{path}", method=method, headers={"Authorization": f"token {token}"})
    with urlopen(req, timeout=10) as r:
        body = r.read()
    return json.loads(body) if body else None


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(base url, token) of a JupyterLab on a temporary copy of notebooks/; stopped at the end."""
    tmp = tmp_path_factory.mktemp("lab")
    shutil.copytree(ROOT / "notebooks", tmp / "notebooks")
    env = _lab_env(tmp)
    port, token = _free_port(), secrets.token_hex(16)
    base = f"http://127.0.0.1:{port}"
    log = open(tmp / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.port_retries=0",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp / 'notebooks'}",
         "--ServerApp.open_browser=False", "--LabApp.extension_manager=readonly"]
        + (["--allow-root"] if os.geteuid() == 0 else []),
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for _ in range(240):
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{(tmp / 'lab.log').read_text()[-3000:]}")
            try:
                _api(base, token, "/api/status")
                break
            except (URLError, ConnectionError, TimeoutError):
                time.sleep(0.25)
        else:
            pytest.fail(f"JupyterLab did not answer in 60 s:\n{(tmp / 'lab.log').read_text()[-3000:]}")
        yield base, token
    finally:
        try:                                         # shut every kernel down, then the server
            for k in _api(base, token, "/api/kernels") or []:
                _api(base, token, f"/api/kernels/{k['id']}", method="DELETE")
            _api(base, token, "/api/shutdown", method="POST")
            proc.wait(timeout=30)
        except Exception:
            pass
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser():
    exe = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu",
                                                         "--disable-background-networking"])
        yield b
        b.close()


def test_myst_extension_enabled(tmp_path):
    """jupyterlab-myst is installed and enabled in this environment's JupyterLab."""
    out = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], env=_lab_env(tmp_path),
                         capture_output=True, text=True, timeout=120)
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)
    line = next((ln for ln in text.splitlines() if ln.strip().startswith("jupyterlab-myst ")), None)
    assert line is not None, f"jupyterlab-myst is not installed:\n{text}"
    assert " enabled" in line, f"jupyterlab-myst is not enabled: {line}"


def _cell_with_code(page, needle):
    for cell in page.locator(".jp-Notebook .jp-CodeCell").all():
        if needle in cell.locator(".jp-InputArea-editor").inner_text():
            return cell
    raise AssertionError(f"no code cell contains {needle!r}")


def _errors_shown(page):
    return [t[:600] for t in page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
            .all_inner_texts() if ERROR_TEXT.search(t)]


def _wait_for_all_cells(page, timeout_s):
    """Wait until every code cell has an execution count and no cell is queued or running."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        errors = _errors_shown(page)
        assert not errors, "a cell shows an error:\n" + "\n---\n".join(errors)
        prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt").all_inner_texts()
        status = page.locator(".jp-Notebook-ExecutionIndicator").first.get_attribute("data-status")
        if prompts and all(re.fullmatch(r"\s*\[\d+\]:\s*", p) for p in prompts) and status == "idle":
            return prompts
        page.wait_for_timeout(1000)
    raise AssertionError(f"the notebook did not finish in {timeout_s} s: prompts {prompts}, kernel {status}")


def test_chapter4_runs_in_lab(lab, browser):
    base, token = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page_errors = []
    page.on("pageerror", lambda e: page_errors.append(str(e)))
    try:
        page.goto(f"{base}/lab/tree/{CHAPTER}?reset&token={token}", wait_until="load")
        page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=120_000)
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=120_000)

        # MyST (jupyterlab-myst): an {eq} reference, an {exercise} directive and math are rendered
        md = page.locator(".jp-Notebook .jp-MarkdownCell")
        eq_cell = md.filter(has_text="{eq}`eq-hbar-family`").first           # matched by its source
        ex_cell = md.filter(has_text=":label: ex-hbar-gaussian").first
        for cell in (eq_cell, ex_cell):
            cell.locator(".myst .katex").first.wait_for(timeout=30_000)
            text = cell.locator(".myst").inner_text()
            raw = [m for m in ("{eq}", "{exercise}", "`", ":label:", "$", "\\hbar", "\\frac") if m in text]
            assert not raw, f"raw MyST in a rendered Markdown cell: {raw}: {text[:300]!r}"
        ref = eq_cell.locator(".myst a[href='#eq-hbar-family']").first
        assert re.fullmatch(r"\(\d+\)", ref.inner_text()), "the {eq} reference is not a numbered link"
        title = ex_cell.locator(".myst aside.myst-exercise .myst-exercise-title").inner_text()
        assert re.match(r"Exercise \d+ \(Same marginals, by hand\)", title), f"exercise title: {title!r}"

        # Run menu -> Run All Cells, as a person would
        t0 = time.monotonic()
        page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-item:not(.lm-mod-hidden) .lm-Menu-itemLabel",
                     has_text=re.compile(r"^Run All Cells$")).click()
        page.wait_for_timeout(2000)
        _wait_for_all_cells(page, RUN_TIMEOUT_S)
        print(f"Chapter 4 ran in JupyterLab in {time.monotonic() - t0:.0f} s")

        # the live ħ explorer: a slider above a figure that is redrawn when the slider moves
        cell = _cell_with_code(page, "hbar_explorer(")
        slider = cell.locator(".widget-slider").filter(has=page.locator(".widget-label", has_text="ħ")).first
        slider.wait_for(timeout=30_000)
        img = cell.locator(".widget-output img").first
        img.wait_for(timeout=30_000)
        readout = slider.locator(".widget-readout")
        before_value, before_src = readout.inner_text().strip(), img.get_attribute("src")
        assert before_src and before_src.startswith("data:image/png"), "the explorer shows no figure"
        slider.locator(".noUi-handle").first.focus()
        page.keyboard.press("ArrowRight")            # one step: ħ 0.0 -> 0.1
        after_value = readout.inner_text().strip()
        assert float(after_value) > float(before_value), f"the slider did not move: {before_value} -> {after_value}"
        deadline, quiet = time.monotonic() + 60, 0   # wait for the new figure and an idle kernel
        while time.monotonic() < deadline and quiet < 4:
            now = cell.locator(".widget-output img")
            changed = now.count() == 1 and now.get_attribute("src") != before_src
            idle = page.locator(".jp-Notebook-ExecutionIndicator").first.get_attribute("data-status") == "idle"
            quiet = quiet + 1 if changed and idle else 0
            page.wait_for_timeout(250)
        after_src = cell.locator(".widget-output img").first.get_attribute("src")
        assert after_src != before_src, "moving the ħ slider did not change the figure"
        errors = _errors_shown(page)
        assert not errors, "an error after moving the slider:\n" + "\n---\n".join(errors)

        SHOTS.mkdir(parents=True, exist_ok=True)
        cell.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "lab-ch4.png"))
        assert not page_errors, f"JavaScript errors in JupyterLab: {page_errors}"
    finally:
        page.close()
