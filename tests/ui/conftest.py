"""Fixtures for the real-browser tests: a private JupyterLab server and a headless Chromium.

* `lab` (session): JupyterLab on 127.0.0.1, a free port and a random token, with its config,
  workspaces, runtime and IPython dirs in a temporary directory (a saved workspace or a
  user setting can never interfere). It serves a *copy* of `notebooks/`, so running the
  notebooks in the browser never writes outputs into the repository's (output-free)
  notebooks -- each cut after its last panel (`upto_last_panel`): nbval runs every cell of
  every notebook already, the browser tests add only what nbval cannot see (that the panels
  render and respond), so the cells after the last panel would only cost time. Each notebook
  is served twice: `notebooks/` as it is (JupyterLab: the plotly renderer) and
  `notebooks-static/` with one cell put after its Colab cell, `lk.widgets.use("static")` (the
  renderer Colab and VS Code get). Kernels inherit `LABKIT_QUICK=1` and `OMP_NUM_THREADS=1`
  (far faster on a busy machine than torch's default of one thread per core). The same server
  serves Notebook 7's page too (the `notebook` package's extension), `url(path, app="notebook")`.
* `browser` (session) / `page` (per test): Debian's `/usr/bin/chromium` driven by
  playwright-python (playwright's own browser download does not work on these machines).

Every test here SKIPS, with the reason, when playwright or `/usr/bin/chromium` is missing:
`apt-get install -y chromium && .venv/bin/pip install playwright` makes them run.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("LABKIT_UI_CHROMIUM", "/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
STARTUP_TIMEOUT_S = 120          # a cold JupyterLab on a loaded 2-core machine can take a while

# JupyterLab user settings written into the temporary config dir:
# - windowingMode "none": every cell stays in the DOM (no virtualised, unrendered panels);
# - autosave off: the served copy is never rewritten behind the test's back.
USER_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}


RENDERERS = {"plotly": "notebooks", "static": "notebooks-static"}   # renderer: served folder
STATIC_CELL = ('import labkit as lk\n'
               'lk.widgets.use("static")   # added by tests/ui: the renderer of Colab and VS Code')

PANEL_MARK = re.compile(r"lk\.widgets\.[A-Z]")   # a cell that makes a panel: lk.widgets.Explorer(...


def upto_last_panel(cells: list[dict]) -> list[dict]:
    """The cells up to and including the one after the last code cell that makes a panel (the
    cell after it often drives the panel from code); all of them if none does."""
    last = max((i for i, c in enumerate(cells) if c["cell_type"] == "code"
                and PANEL_MARK.search("".join(c["source"]))), default=len(cells) - 1)
    return cells[:last + 2]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "ui: real-browser tests of the notebooks in JupyterLab (playwright + chromium)")


def _missing() -> str | None:
    """Why the UI tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return ("playwright is not installed: `.venv/bin/pip install playwright` "
                "(its browser download is not needed)")
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} not found: `apt-get install -y chromium`"
    return None


@pytest.fixture(scope="session")
def ui_requirements():
    reason = _missing()
    if reason:
        pytest.skip(f"UI tests skipped: {reason}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A running JupyterLab: `url(path)` opens a file of the served notebooks copy."""

    def __init__(self, base: str, token: str, root: Path, log: Path):
        self.base, self.token, self.root, self.log = base, token, root, log

    def url(self, path: str, app: str = "lab") -> str:
        """The page of `path` in JupyterLab (app="lab") or in Notebook 7 (app="notebook")."""
        where = "lab/tree" if app == "lab" else "notebooks"
        return f"{self.base}/{where}/{path}?token={self.token}"

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(f"{self.base}/api/{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Free the CPU for the next notebook: delete every session (and so its kernel)."""
        for s in self.api("sessions"):
            self.api(f"sessions/{s['id']}", method="DELETE")

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@pytest.fixture(scope="session")
def lab(ui_requirements, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("jupyterlab")
    root = tmp / "root"
    for renderer, folder in RENDERERS.items():
        (root / folder).mkdir(parents=True)
        for path in sorted(NOTEBOOKS.glob("*.ipynb")):
            nb = json.loads(path.read_text())
            cells = upto_last_panel(nb["cells"])
            if renderer == "static":          # after the title and the Colab cell
                first = next(i for i, c in enumerate(cells) if c["cell_type"] == "code")
                cells.insert(first + 1, {"cell_type": "code", "execution_count": None,
                                         "id": "ui-static", "metadata": {}, "outputs": [],
                                         "source": STATIC_CELL})
            nb["cells"] = cells
            (root / folder / path.name).write_text(json.dumps(nb))
    config = tmp / "config"
    for name, value in USER_SETTINGS.items():
        f = config / "lab" / "user-settings" / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ,
               JUPYTER_CONFIG_DIR=str(config),
               JUPYTERLAB_SETTINGS_DIR=str(config / "lab" / "user-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
               JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               IPYTHONDIR=str(tmp / "ipython"),
               LABKIT_QUICK="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.pop("JUPYTER_PATH", None)
    log = tmp / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--LabApp.news_url=None", "--LabApp.expose_app_in_browser=True",
           "--JupyterNotebookApp.expose_app_in_browser=True"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=out, stderr=subprocess.STDOUT)
    server = Lab(f"http://127.0.0.1:{port}", token, root, log)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{server.log_tail()}")
            try:
                server.api("status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer within {STARTUP_TIMEOUT_S} s:\n"
                                f"{server.log_tail()}")
                time.sleep(0.5)          # polling interval of the readiness probe, not a wait
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def browser(ui_requirements):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, lab):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.console_errors = []           # JS errors of the page, reported when a test fails
    pg.on("pageerror", lambda e: pg.console_errors.append(str(e)))
    try:
        yield pg
    finally:
        context.close()
        try:
            lab.shutdown_kernels()
        except OSError:
            pass


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
