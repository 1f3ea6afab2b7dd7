"""labkit on Python 3.13, Colab's version (issue 14): what can be checked without its dependencies.

Everywhere, with no Python 3.13 needed: no module of labkit, tools, benchmarks, the tests or a
notebook imports a module that Python 3.12 or 3.13 removed (PEP 594's cgi, imp, pipes,
telnetlib, ..., distutils), nor a removed name, counting imports inside functions.

Under a bare CPython 3.13 (pyenv's, or `python3.13` on PATH; the tests skip, saying so, when
there is none), in a fresh `-I` interpreter with none of our site-packages:
- every .py of labkit/, tools/ and benchmarks/ and every notebook code cell byte-compiles with
  warnings as errors (3.12 made an invalid escape such as "\\d" in a plain string a warning);
- each labkit module that needs only the standard library imports, DeprecationWarning as an
  error (labkit.regex, labkit.svg, labkit.validate, labkit.vocab, labkit.tasks, labkit.instruct,
  labkit.widgets.render, ...); every other one stops at its first third-party import (torch,
  ipywidgets, ...), which the test checks is not a module 3.13 lacks; labkit.regex, which
  reads Python's private regex parse tree, must agree with `re` on a few patterns;
- the Colab cell's helpers read 3.13's importlib.metadata.

Not run under 3.13: everything that imports torch, transformers, ipywidgets or plotly at import
time (the core, the trainers, viz, the panels), the tests, and the notebooks. That needs torch
for 3.13, which is not on this machine's disk; the registry has it (torch 2.11.0 for cp313 is a
506 MB wheel, and pip adds some 2.5 GB of CUDA wheels: PyPI has no CPU-only build), too much for
every CI run. A 3.13 environment with only the pure-Python dependencies (ipywidgets, plotly)
would not get further: viz and the panels import labkit.dist, hence torch.
"""
import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
PROBE = ROOT / "tests" / "colab" / "py313_probe.py"
FILES = sorted({*ROOT.glob("labkit/**/*.py"), *ROOT.glob("tools/*.py"),
                *ROOT.glob("benchmarks/*.py")})
CHECKED = sorted({*FILES, *ROOT.glob("tests/**/*.py"), ROOT / "conftest.py"})
NOTEBOOKS = sorted(ROOT.glob("notebooks/*.ipynb"))
# module -> the Python that removed it: PEP 594 (3.13), PEP 632 (distutils), imp, asyncore, ...
REMOVED = {**dict.fromkeys(["aifc", "audioop", "cgi", "cgitb", "chunk", "crypt", "imghdr",
                            "mailcap", "msilib", "nis", "nntplib", "ossaudiodev", "pipes",
                            "sndhdr", "spwd", "sunau", "telnetlib", "uu", "xdrlib", "lib2to3",
                            "tkinter.tix"], "3.13"),
           **dict.fromkeys(["distutils", "imp", "asynchat", "asyncore", "smtpd"], "3.12")}
REMOVED_NAMES = {("locale", "resetlocale"): "3.13", ("unittest", "makeSuite"): "3.13",
                 ("unittest", "findTestCases"): "3.13", ("unittest", "getTestCaseNames"): "3.13",
                 ("configparser", "SafeConfigParser"): "3.12", ("inspect", "getargspec"): "3.11",
                 ("typing", "io"): "3.13", ("typing", "re"): "3.13"}


def sources() -> dict[str, str]:
    """{name: Python source}: the files above and each notebook code cell."""
    out = {str(path.relative_to(ROOT)): path.read_text(encoding="utf-8") for path in FILES}
    for path in NOTEBOOKS:
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type == "code":
                out[f"{path.relative_to(ROOT)} cell {i}"] = cell.source
    return out


def removed_uses(name: str, source: str) -> list[str]:
    """Imports of modules (and uses of names) that Python 3.12 or 3.13 removed."""
    found = []
    for node in ast.walk(ast.parse(source, name)):
        modules, names = [], []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            names = [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            names = [(node.value.id, node.attr)]
        hit = next((m for module in modules for m in REMOVED
                    if module == m or module.startswith(m + ".")), None)
        if hit:
            found.append(f"{name}:{node.lineno}: {hit} (removed in Python {REMOVED[hit]})")
        found += [f"{name}:{node.lineno}: {'.'.join(n)} (removed in Python {REMOVED_NAMES[n]})"
                  for n in names if n in REMOVED_NAMES]
    return found


def test_nothing_imports_what_python_3_12_or_3_13_removed():
    found = [hit for path in CHECKED
             for hit in removed_uses(str(path.relative_to(ROOT)), path.read_text(encoding="utf-8"))]
    found += [hit for name, source in sources().items() if " cell " in name
              for hit in removed_uses(name, source)]
    assert not found, "\n".join(found)


def test_the_removed_module_check_can_fail():
    source = ("import cgi\nfrom distutils.util import strtobool\n"
              "def f():\n    import imp\n    locale.resetlocale()\n")
    assert len(removed_uses("x.py", source)) == 4
    assert removed_uses("x.py", "import cgitbx, pipes2\nfrom imp0 import y\n") == []


def python313() -> str:
    """A working CPython 3.13: pyenv's (its shim fails unless 3.13 is selected), else PATH's."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [*sorted(pyenv.glob("versions/3.13*/bin/python3.13"), reverse=True),
                  shutil.which("python3.13")]
    for exe in filter(None, candidates):
        try:
            run = subprocess.run([str(exe), "-I", "-c", "import sys; print(sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if run.returncode == 0 and run.stdout.strip() == "(3, 13)":
            return str(exe)
    pytest.skip("no Python 3.13 here: `pyenv install 3.13`, or put python3.13 on PATH")


@pytest.fixture(scope="module")
def probe():
    """What tests/colab/py313_probe.py found under Python 3.13 (one run, a few seconds)."""
    spec = importlib.util.spec_from_file_location("headers", ROOT / "tools" / "headers.py")
    headers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(headers)
    job = {"root": str(ROOT), "sources": sources(), "cell": headers.colab_cell(headers.config())}
    run = subprocess.run([python313(), "-I", "-B", "-W", "error::DeprecationWarning", str(PROBE)],
                         input=json.dumps(job), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_every_file_and_notebook_cell_compiles_under_3_13(probe):
    assert probe["python"].startswith("3.13.")
    assert not probe["compile"], "\n".join(f"{k}: {v}" for k, v in probe["compile"].items())


def test_the_standard_library_modules_import_under_3_13(probe):
    imports = probe["imports"]
    errors = {m: r for m, r in imports.items() if r.startswith("error")}
    assert not errors, errors
    missing = {r.removeprefix("needs ") for r in imports.values() if r.startswith("needs ")}
    lost = sorted(missing & set(sys.stdlib_module_names))   # stdlib here, gone in 3.13
    assert not lost, f"labkit imports {lost}, which Python 3.13 does not have"
    ok = sorted(m for m, r in imports.items() if r == "ok")
    assert {"labkit.regex", "labkit.validate"} <= set(ok) and len(ok) >= 5, ok
    assert not probe["regex"], f"labkit.regex and re disagree under 3.13: {probe['regex']}"


def test_the_colab_cells_helpers_run_under_3_13(probe):
    cell = probe["cell"]
    assert "pip" in cell["installed"]                        # 3.13's bundled pip, as a distribution
    assert cell["replaced"] == [f"pip 0 -> {cell['installed']['pip']}"] and cell["unchanged"] == []
