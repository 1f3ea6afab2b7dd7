"""labkit: the shared code of the Steering Lab, a hands-on lab on controlling language models.

    import labkit as lk
    lm = lk.load()                                   # SmolLM2-135M-Instruct, offline
    d = lk.next_token(lm, "The capital of France is")
    d.top(5); d.entropy()
    d.apply(lk.controls.Temperature(0.7), lk.controls.TopP(0.9))
    lk.generate(lm, "Once upon a time", controls=[lk.controls.TopP(0.9)], seed=0)

Importing labkit prints nothing, seeds nothing and downloads nothing; the plotting,
widget and training modules are imported on first use (`lk.viz`, `lk.widgets`, ...).
"""
import importlib

from . import controls, decoding, dist, models
from .decoding import generate
from .dist import Distribution, next_token, perplexity
from .models import LM, load

__version__ = "0.1.0"

# Imported on first use (`lk.viz`, ...): everything above the core. Only modules that exist
# are listed (tests/test_layers.py checks), so `from labkit import *` and `hasattr(lk, ...)`
# work; a module a later notebook adds joins the list in the same commit.
_LAZY = {"adapters", "bayes", "checks", "discriminator", "dpo", "exact", "instruct", "lexicon",
         "metrics", "pool", "pplm", "prompting", "rewards", "rlhf", "scoreboard", "sft", "steer",
         "stepwise", "svg", "tasks", "toy", "validate", "viz", "widgets"}


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")


__all__ = ["LM", "Distribution", "controls", "decoding", "dist", "generate", "load", "models",
           "next_token", "perplexity", *sorted(_LAZY)]
