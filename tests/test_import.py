"""`import labkit` prints nothing, seeds nothing and loads nothing heavy (DESIGN.md rule 13)."""
import subprocess
import sys

CODE = """
import sys, torch
state = torch.random.get_rng_state()
import labkit
assert torch.equal(state, torch.random.get_rng_state()), "import labkit touched the RNG"
heavy = [m for m in ("plotly", "ipywidgets", "matplotlib", "peft") if m in sys.modules]
assert not heavy, f"import labkit imported {heavy}"
labkit.viz, labkit.widgets   # lazily importable
"""


def test_import_labkit_is_silent_and_light():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "" and out.stderr == ""
