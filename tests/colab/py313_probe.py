"""Run by tests/test_python313.py under a bare Python 3.13 (Colab's), without labkit's dependencies.

    python3.13 -I -B -W error::DeprecationWarning tests/colab/py313_probe.py < job.json

The job (JSON on stdin): {"root": the repository, "sources": {name: Python source},
"cell": the Colab cell}. Prints one JSON object:
- "compile": {name: error} for each source that does not byte-compile, warnings counted as errors;
- "imports": {module: "ok" | "needs X" | "error: ..."} for each labkit module and package, each
  imported on its own: the packages are stubs at first, so `labkit.regex` runs regex.py and not
  labkit/__init__.py (which imports torch); each package's __init__ is run last;
- "regex": texts on which labkit.regex's automaton and `re` disagree (it reads re's parse tree);
- "cell": what the Colab cell's helpers give here (its distributions; `replaced` on a fake change).
"""
import importlib
import importlib.util
import json
import sys
import types
import warnings
from pathlib import Path

job = json.load(sys.stdin)
root = Path(job["root"])
out = {"python": sys.version.split()[0], "compile": {}, "imports": {}, "cell": {}}

with warnings.catch_warnings():
    warnings.simplefilter("error")   # SyntaxWarning (invalid escapes, 3.12), DeprecationWarning
    for name, source in job["sources"].items():
        try:
            compile(source, name, "exec", dont_inherit=True)
        except (SyntaxError, Warning) as error:
            out["compile"][name] = f"{type(error).__name__}: {error}"


def attempt(name, load):
    try:
        load()
        out["imports"][name] = "ok"
    except ModuleNotFoundError as error:
        missing = error.name or "?"
        out["imports"][name] = (f"error: {error}" if missing.startswith("labkit")
                                else f"needs {missing.split('.')[0]}")
    except Exception as error:       # noqa: BLE001 -- reported, and the test fails on it
        out["imports"][name] = f"error: {type(error).__name__}: {error}"


sys.path.insert(0, str(root))
packages = sorted((p.parent for p in (root / "labkit").rglob("__init__.py")),
                  key=lambda p: -len(p.parts))            # deepest first, labkit itself last
dotted = lambda path: ".".join(path.relative_to(root).with_suffix("").parts)  # noqa: E731
for package in packages:
    stub = types.ModuleType(dotted(package))
    stub.__path__ = [str(package)]
    sys.modules[stub.__name__] = stub
for path in sorted((root / "labkit").rglob("*.py")):
    if path.name != "__init__.py":
        attempt(dotted(path), lambda: importlib.import_module(dotted(path)))
for package in packages:
    name = dotted(package)
    spec = importlib.util.spec_from_file_location(name, package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    module, stub = importlib.util.module_from_spec(spec), sys.modules[name]
    sys.modules[name] = module

    def run(spec=spec, module=module):
        spec.loader.exec_module(module)
    attempt(name, run)
    if out["imports"][name] != "ok":
        sys.modules[name] = stub

# labkit.regex walks Python's private parse tree (re._parser), which may change between
# versions: its automaton must agree with `re` here too.
out["regex"] = []
if out["imports"].get("labkit.regex") == "ok":
    import re
    from labkit.regex import NFA
    texts = ["", "12-ab", "123-", "abcde", "cdab", "e", "colour", "grey", "gray", "x1", "yy_",
             '{"a": true}', '{"a": nope}', "a\nb"]
    for pattern in [r"\d{2,3}-[a-z]+", r"(?:ab|cd)*e?", r"[^x\s]+\w", r"colou?r|gr[ae]y",
                    r'\{"a": (true|false)\}', r"a.b", r"[A-Za-z_]\w*"]:
        nfa = NFA(pattern)
        out["regex"] += [f"{pattern!r} on {text!r}" for text in texts
                         if nfa.fullmatch(text) != bool(re.fullmatch(pattern, text))]

cell = {}
exec(job["cell"], cell)              # off Colab the cell only defines its helpers
now = cell["installed"]()
out["cell"] = {"installed": now,
               "replaced": cell["replaced"]({**now, "pip": "0"}, now, {"pip": None}),
               "unchanged": cell["replaced"](now, now, sys.modules)}
print(json.dumps(out))
