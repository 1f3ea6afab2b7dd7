"""The knob explorer (notebook 00): temperature, top-k and top-p on the next-token distribution.

1. `explore(dist, temperature, top_k, top_p)` -> `Explored`: the distribution before and after
   the knobs, with the numbers the panel reads out (pure; no model call);
2. `labkit.viz.explorer_figure`: the bars before and after;
3. `Explorer`: a prompt box (the one model call, on Enter) and three sliders that re-apply the
   knobs to the cached logits, so they update live at no model cost.

    panel = lk.widgets.Explorer(lm, "The capital of France is")
    panel                      # last expression of a cell: displays the panel
    panel.top_p.value = 0.5    # what dragging the slider does; panel.result follows

`lk.widgets.explorer(...)` is the same, as a function. Works with any `LM`, the toy world's
included.

Left out on purpose: min-p and other knobs (notebook 06 builds its own panels from the same
layers), and multi-step generation in the panel (`lk.generate(..., trace=True)`).
"""
from __future__ import annotations

import html
from dataclasses import dataclass

import ipywidgets as W
import torch

from .. import viz
from ..controls import knobs
from ..dist import Distribution, next_token
from .panel import STYLE, WIDE, Panel, text_box


@dataclass
class Explored:
    """A distribution before and after the three knobs, with the numbers worth reading."""

    before: Distribution          # the model's own next-token distribution
    after: Distribution           # after temperature, then top-k, then top-p
    controls: list                # the LogitsProcessors that were applied
    entropy_before: float         # nats
    entropy_after: float          # nats
    support: int                  # tokens the knobs keep (not masked to -inf)
    mass_kept: float              # the model's probability of the kept tokens

    def summary(self) -> str:
        """One line: entropy before → after, tokens kept, probability mass kept."""
        return (f"entropy {self.entropy_before:.2f} → {self.entropy_after:.2f} nats · "
                f"tokens kept {self.support:,} of {len(self.before):,} · "
                f"probability mass kept {self.mass_kept:.3f}")


def explore(dist: Distribution, temperature: float = 1.0, top_k: int | None = None,
            top_p: float = 1.0) -> Explored:
    """Apply the knobs (`top_k` None or 0 is off, `top_p` 1 is off) to `dist`; no model call."""
    controls = knobs(temperature, top_k or None, top_p)
    after = dist.apply(*controls)
    kept = torch.isfinite(after.logits)       # vocab; not `probs > 0`: a low temperature
                                              # underflows tail probabilities it never removes
    return Explored(before=dist, after=after, controls=controls,
                    entropy_before=dist.entropy(), entropy_after=after.entropy(),
                    support=int(kept.sum()), mass_kept=float(dist.probs[kept].sum()))


class Explorer(Panel):
    """Prompt box, temperature / top-k / top-p sliders, the top-k bar chart before and after
    the knobs, and a readout. `result` is the last `Explored`; `error` shows callback errors."""

    def __init__(self, lm, prompt: str = "The capital of France is", k: int = 20, *,
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0):
        self.lm, self.k = lm, k
        self.dist = next_token(lm, prompt)          # an invalid first prompt raises here
        self.prompt = text_box(prompt, "prompt")
        slider = dict(style=STYLE, layout=W.Layout(**WIDE))
        self.temperature = W.FloatSlider(value=temperature, min=0.05, max=3.0, step=0.05,
                                         description="temperature", readout_format=".2f",
                                         **slider)
        self.top_k = W.IntSlider(value=top_k or 0, min=0, max=min(100, len(self.dist)),
                                 description="top-k (0 off)", **slider)
        self.top_p = W.FloatSlider(value=top_p, min=0.01, max=1.0, step=0.01,
                                   description="top-p", readout_format=".2f", **slider)
        super().__init__(self.prompt, self.temperature, self.top_k, self.top_p)
        self.watch(self.prompt, fetch=self._fetch)
        self.watch(self.temperature, self.top_k, self.top_p)    # cached logits: no model call

    # what a test (or a learner's code) can call instead of typing and dragging
    def set_prompt(self, prompt: str) -> None:
        self.prompt.value = prompt

    def set_knobs(self, temperature: float | None = None, top_k: int | None = None,
                  top_p: float | None = None) -> None:
        for slider, value in ((self.temperature, temperature), (self.top_k, top_k),
                              (self.top_p, top_p)):
            if value is not None:
                slider.value = value

    def _fetch(self) -> None:
        self.dist = next_token(self.lm, self.prompt.value)          # the one model call

    def compute(self) -> Explored:
        return explore(self.dist, self.temperature.value, self.top_k.value, self.top_p.value)

    def figure(self, result: Explored):
        return viz.explorer_figure(result.before, result.after, self.k)

    def summary(self, result: Explored) -> str:
        controls = (", ".join(map(repr, result.controls))
                    or "none (the model's own distribution)")
        return (f"<b>knobs:</b> {html.escape(controls)}<br>"
                f"{html.escape(result.summary())}")


def explorer(lm, prompt: str = "The capital of France is", k: int = 20, **knob_values) -> Explorer:
    """The knob explorer panel for `lm` (any `LM`): `Explorer(lm, prompt, k, ...)`.

    `knob_values` sets the starting temperature, top_k (0 off) and top_p."""
    return Explorer(lm, prompt, k, **knob_values)
