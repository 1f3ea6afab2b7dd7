"""The strength panel (notebook 06): a bag-of-words boost on the next-token distribution.

1. `labkit.steer.boost(dist, tokenizer, words, strength)` -> `steer.Boosted` (the
   distribution before and after, the bag's mass, KL from the model): pure, no model call;
2. `labkit.viz.boosted`: bars of the top tokens after the boost, the model's own beside them;
3. `StrengthPanel`: a prompt box (the one model call, on Enter) and a strength slider that
   re-applies the boost to the cached logits.

    panel = lk.widgets.StrengthPanel(lm, "The weather today is", lk.steer.POSITIVE_WORDS)
    panel.strength.value = 6.0          # what dragging the slider does; panel.result follows

Left out on purpose: the other steering controls (logit bias, classifier guidance, PPLM):
they cost a model call per setting, which a slider should not hide.
"""
from __future__ import annotations

import html

import ipywidgets as W

from .. import steer, viz
from ..dist import next_token
from .panel import STYLE, WIDE, Panel, text_box


class StrengthPanel(Panel):
    """Prompt box and strength slider above `viz.boosted`; `result` is the last
    `steer.Boosted`; `error` shows callback errors."""

    def __init__(self, lm, prompt: str, words, strength: float = 2.0, k: int = 15):
        self.lm, self.words, self.k = lm, list(words), k
        self.dist = next_token(lm, prompt)              # an invalid first prompt raises here
        self.prompt = text_box(prompt, "prompt")
        self.strength = W.FloatSlider(value=strength, min=0.0, max=max(15.0, strength), step=0.5,
                                      description="strength", continuous_update=False,
                                      style=STYLE, layout=W.Layout(**WIDE))
        super().__init__(self.prompt, self.strength)
        self.watch(self.prompt, fetch=self._fetch)
        self.watch(self.strength)                       # cached logits: no model call

    def _fetch(self) -> None:
        self.dist = next_token(self.lm, self.prompt.value)          # the one model call

    def compute(self):
        return steer.boost(self.dist, self.lm.tokenizer, self.words, self.strength.value)

    def figure(self, result):
        return viz.boosted(result.before, result.after, self.k)

    def summary(self, result) -> str:
        return html.escape(result.summary())
