"""labkit's layers point one way (DESIGN.md): each module imports only from modules below it.

The test reads every module's source (AST), so an import inside a function counts as much
as one at the top. Two things are allowed on purpose, and named here:

* `models.load("toy")` imports `toy`, the one named upward import: the toy world is built
  from labkit's own pieces and `load("toy")` is its public door;
* the PEP 562 `__getattr__`s of `labkit/__init__.py` and `labkit/controls.py`, which import
  on first use (`lk.viz`, `lk.controls.OneOf`); they are the only dynamic imports.
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

import labkit as lk

PACKAGE = Path(lk.__file__).resolve().parent

# Bottom first. A module may import only from a strictly lower rank; the modules of one
# package (labkit/checks/...) may import each other.
LAYERS = [
    ["validate"],
    ["dist"],
    ["adapters", "pairs"],   # LoRA adapters on one shared base; (prompt, response) pairs as batches
    ["models"],
    ["controls"],
    ["decoding"],
    ["regex", "vocab", "lexicon", "discriminator"],  # the pool's automaton and vocabulary;
                                                     # a sentiment lexicon; an attribute model
    ["pool", "steer"],
    ["pplm"],
    ["tasks"],
    ["instruct"],        # the Instruction/Response data of notebook 03
    ["prompting"],
    ["toy"],
    ["dpo"],             # the one dpo_loss, and DPO on an LM (bayes runs it on the toy world)
    ["bayes", "stepwise"],  # the exact math; per-step controls as sequence distributions
    ["sft", "rewards", "exact"],  # SFT; rewards and the reward model; the toy world's table
    ["rlhf"],            # RL from feedback (RLOO), with rewards' checks
    ["metrics"],
    ["scoreboard"],
    ["viz", "svg"],      # figures (plotly); a figure drawn as an SVG picture (the static renderer)
    ["widgets", "panels"],
    ["checks"],
    ["__init__", "__main__"],
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}
ALLOWED_UPWARD = {("models", "toy", "load")}
DYNAMIC_OK = {("__init__", "__getattr__"), ("controls", "__getattr__")}


def modules():
    """{dotted name under labkit ('pool', 'checks.knobs'): path}."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def top(name: str) -> str:
    return name.split(".")[0]


def imports(name: str, path: Path):
    """[(imported labkit module, enclosing function or None, line)] of one module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    if name == "__init__":
        package = []
    found = []

    def visit(node, func):
        for child in ast.iter_child_nodes(node):
            f = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package[:len(package) - (child.level - 1)] if child.level > 1 else package
                    mod = ".".join([*base, *(child.module.split(".") if child.module else [])])
                    targets = [mod] if child.module else [".".join([*base, a.name]) for a in child.names]
                elif child.module and child.module.split(".")[0] == "labkit":
                    targets = [".".join(child.module.split(".")[1:])]
                else:
                    targets = []
                for t in targets:
                    if t:
                        found.append((t, f, child.lineno))
            elif isinstance(child, ast.Import):
                for a in child.names:
                    if a.name.split(".")[0] == "labkit" and "." in a.name:
                        found.append((".".join(a.name.split(".")[1:]), f, child.lineno))
            elif (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute)
                  and child.func.attr == "import_module"):
                found.append(("<dynamic>", f, child.lineno))
            visit(child, f)

    visit(tree, None)
    return found


def test_every_module_has_a_layer():
    missing = sorted(n for n in modules() if top(n) not in RANK)
    assert not missing, f"add {missing} to LAYERS in {__file__}"


def test_imports_point_down():
    upward = []
    for name, path in modules().items():
        me = top(name) if "." in name else name
        for target, func, line in imports(name, path):
            if target == "<dynamic>":
                if (me, func) not in DYNAMIC_OK:
                    upward.append(f"labkit/{path.relative_to(PACKAGE)}:{line} imports dynamically")
                continue
            other = top(target)
            if other == me and ("." in name or path.name == "__init__.py"):  # one package
                continue
            if other not in RANK:
                upward.append(f"labkit/{path.relative_to(PACKAGE)}:{line}: unknown {target}")
            elif RANK[other] >= RANK[me] and (me, other, func) not in ALLOWED_UPWARD:
                upward.append(f"labkit/{path.relative_to(PACKAGE)}:{line}: {me} (layer "
                              f"{RANK[me]}) imports {other} (layer {RANK[other]})"
                              + (f" in {func}()" if func else ""))
    assert not upward, "imports that point up the layers:\n  " + "\n  ".join(upward)


def test_the_walker_sees_an_upward_import_inside_a_function(tmp_path):
    src = tmp_path / "dist.py"
    src.write_text("def f():\n    from .widgets import Explorer\n    from . import viz\n")
    assert [(t, f) for t, f, _ in imports("dist", src)] == [("widgets", "f"), ("viz", "f")]


def test_import_labkit_loads_only_the_core():
    code = ("import sys, labkit; print(' '.join(sorted(m for m in sys.modules "
            "if m.startswith('labkit'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.split() == ["labkit", "labkit.controls", "labkit.decoding", "labkit.dist",
                                  "labkit.models", "labkit.validate"]


def test_controls_re_exports_the_pool_and_steering_controls_lazily():
    from labkit import pool, steer
    assert lk.controls.OneOf is pool.OneOf and lk.controls.Regex is pool.Regex
    assert lk.controls.BagOfWords is steer.BagOfWords
    with pytest.raises(AttributeError, match="no attribute"):
        lk.controls.NotAControl


def test_lazy_names_are_modules_that_exist_and_star_import_works():
    for name in lk._LAZY:
        assert (PACKAGE / f"{name}.py").exists() or (PACKAGE / name / "__init__.py").exists(), name
    namespace = {}
    exec("from labkit import *", namespace)
    assert set(lk.__all__) <= set(namespace)
    assert not hasattr(lk, "no_such_module")
    assert hasattr(lk, "pool") and hasattr(lk, "toy")
