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


WARNINGS = """
import sys, warnings
import labkit as lk
from labkit import prompting as P
lm = lk.load()
print("--- loaded ---", file=sys.stderr, flush=True)
warnings.simplefilter("always")       # every warning is shown, not only the first
lk.next_token(lm, "The capital of France is")
lk.generate(lm, "Once upon a time", max_new_tokens=4, seed=0)
lk.generate(lm, "Hi", chat=True, max_new_tokens=3, seed=0, trace=True)
lk.perplexity(lm, "The capital of France is", " Paris.")
P.label_logprobs(lm, ["Review: Great.\\nSentiment:"], [" positive", " negative"],
                 prefix="Classify.\\n", end="\\n")
P.greedy(lm, ["Question: What is 2 + 2?\\nAnswer:"], max_new_tokens=3)
from labkit import pplm, steer
disc = steer.Discriminator(lm.model.config.hidden_size)
lk.generate(lm, "The weather is", controls=[steer.ClassifierGuidance(lm, disc, top_k=3)],
            max_new_tokens=2, seed=0)
pplm.generate(lm, "The weather is", bag=steer.BagOfWords(lm.tokenizer, ["happy"]),
              max_new_tokens=2, seed=0)
pplm.generate(lm, "The weather is", discriminator=disc, max_new_tokens=2, seed=0)
"""


def test_using_the_model_prints_no_warning():
    """transformers 5.24 deprecates `past_key_values` ("will be removed in version 5.40.0"):
    labkit passes the cache through `labkit.dist.forward`, so a learner sees no warning."""
    out = subprocess.run([sys.executable, "-c", WARNINGS], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    after_load = out.stderr.split("--- loaded ---", 1)[1].strip()
    assert after_load == "", f"a warning reached the learner:\n{after_load}"
