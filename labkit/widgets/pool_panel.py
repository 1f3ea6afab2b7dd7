"""The pool panel (notebook 05): one generation step under `OneOf`, live.

1. `labkit.pool.restrict(dist, pool.OneOf(tokenizer, options), written)` -> (the distribution
   after the pool, Z): the pure function (no model call);
2. `labkit.viz.bars`: the model's top tokens and their probabilities after the pool;
3. `PoolPanel`: a prompt box (the one model call, on blur), an options box ("|"-separated,
   spaces kept: " positive| negative") and a "written so far" box (no model call; on Enter).

    panel = lk.widgets.PoolPanel(lm, "Review: great!\\nSentiment:", " positive| negative")
    panel.written.value = " pos"        # what typing does; panel.result follows
    after, z = panel.result

Left out on purpose: the other pools (Quote, Regex, Catalogue) -- each is a one-line change
of `compute` in a subclass -- and sampling in the panel (`pool.generate_constrained`).
"""
from __future__ import annotations

import html

from .. import pool, viz
from ..dist import next_token
from .panel import Panel, prompt_box, text_box


class PoolPanel(Panel):
    """Prompt, options and "written so far" boxes above the bars before and after the pool;
    `result` is the last (after, Z) of `pool.restrict`; `error` shows callback errors.
    The bars are the model's top-k tokens (`rank_by="after"`: the pool's, the allowed ones)."""

    def __init__(self, lm, prompt: str, options: str = " positive| negative", k: int = 15, *,
                 rank_by: str = "before"):
        self.lm, self.k, self.rank_by = lm, k, rank_by
        self.dist = next_token(lm, prompt)              # an invalid first prompt raises here
        self.prompt = prompt_box(prompt)
        self.options = text_box(options, "options (|)")
        self.written = text_box("", "written so far")
        super().__init__(self.prompt, self.options, self.written)
        self.watch(self.prompt, fetch=self._fetch)
        self.watch(self.options, self.written)          # the stored distribution: no model call

    def _fetch(self) -> None:
        self.dist = next_token(self.lm, self.prompt.value)          # the one model call

    def compute(self):
        one_of = pool.OneOf(self.lm.tokenizer, self.options.value.split("|"))
        return pool.restrict(self.dist, one_of, self.written.value)

    def figure(self, result):
        after, _ = result
        return viz.bars(self.dist, after, self.k, names=("model", "after the pool"),
                        rank_by=self.rank_by, title="the next token, before and after the pool")

    def summary(self, result) -> str:
        after, z = result
        return html.escape(f"Z = {z:.4f} of the model's mass is on the {after.support()} "
                           f"allowed tokens; top after the pool: {after.top(1)[0][0]!r}")
