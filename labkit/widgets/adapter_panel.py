"""The adapter panel (notebook 03): scale a fine-tune's update from 0 (the base) to 1 and beyond.

LoRA adds B·A·x·α/r to a frozen layer's output (Hu et al. 2021, eq. 3); multiplying that
update by s walks the model from the base (s = 0) to the tuned one (s = 1), and past it.

1. `adapter_step(tuned, base_dist, prompt, scale)` -> `Scaled`: the next-token distribution
   of the tuned LM with its adapter scaled by `scale`, beside the base's (one model call);
2. `labkit.viz.bars`: the base's top tokens, the scaled model's probabilities beside them;
3. `AdapterPanel`: a prompt box (two model calls: the base and the scaled model) and a scale
   slider (one model call per release: `continuous_update=False`, so dragging calls nothing).

    panel = lk.widgets.AdapterPanel(tuned, "Instruction: Name a colour.\\nResponse:")
    panel.scale.value = 0.5            # what releasing the slider does; panel.result follows

Left out on purpose: several adapters at once (notebook 07 mixes them), and caching each
scale's distribution (a slider stop is one forward pass, ~70 ms here).
"""
from __future__ import annotations

import html
from dataclasses import dataclass

import ipywidgets as W

from .. import viz
from ..adapters import AdapterView, scaled
from ..dist import Distribution, next_token
from .panel import STYLE, WIDE, Panel, prompt_box


@dataclass
class Scaled:
    """The tuned LM's next-token distribution at one adapter scale, and the base's."""

    scale: float
    base: Distribution              # the base model's own distribution
    after: Distribution             # the tuned model's, its update multiplied by `scale`

    @property
    def kl(self) -> float:
        """KL(after ‖ base) in nats: how far the scaled adapter moved this step."""
        return self.after.kl(self.base)

    def summary(self) -> str:
        (top, p), = self.after.top(1)
        return (f"scale {self.scale:g} · KL(tuned ‖ base) {self.kl:.3f} nats · most likely "
                f"next token {top!r} ({p:.2f})")


def adapter_step(tuned, base_dist: Distribution, prompt: str, scale: float, *,
                 chat: bool = False) -> Scaled:
    """Layer 1: `tuned`'s next-token distribution after `prompt` with its adapter's update
    scaled by `scale` (0 = the base, 1 = as trained), beside `base_dist`."""
    if not isinstance(tuned.model, AdapterView):
        raise TypeError("the adapter panel scales a LoRA adapter: give an LM tuned by "
                        "lk.sft.finetune (or another lab trainer) with LoRA, not "
                        f"{type(tuned.model).__name__}")
    with scaled(tuned.model, scale):
        after = next_token(tuned, prompt, chat=chat)
    return Scaled(float(scale), base_dist, after)


class AdapterPanel(Panel):
    """Prompt box and adapter-scale slider above `viz.bars` (base vs scaled tuned model);
    `result` is the last `Scaled`; `error` shows callback errors."""

    def __init__(self, tuned, prompt: str, *, base=None, scale: float = 1.0,
                 max_scale: float = 1.5, k: int = 15, chat: bool = False):
        if not isinstance(tuned.model, AdapterView):
            raise TypeError("AdapterPanel needs an LM tuned with a LoRA adapter "
                            "(lk.sft.finetune with lora_r set)")
        self.tuned, self.k, self.chat = tuned, k, chat
        self.base = base if base is not None else _base_lm(tuned)
        self.base_dist = next_token(self.base, prompt, chat=chat)   # a bad first prompt raises
        self.prompt = prompt_box(prompt)
        self.scale = W.FloatSlider(value=scale, min=0.0, max=max(max_scale, scale), step=0.05,
                                   description="adapter scale", readout_format=".2f",
                                   continuous_update=False, style=STYLE,
                                   layout=W.Layout(**WIDE))
        super().__init__(self.prompt, self.scale)
        self.watch(self.prompt, fetch=self._fetch)
        self.watch(self.scale)               # one model call per release (compute)

    def _fetch(self) -> None:
        self.base_dist = next_token(self.base, self.prompt.value, chat=self.chat)

    def compute(self) -> Scaled:
        return adapter_step(self.tuned, self.base_dist, self.prompt.value, self.scale.value,
                            chat=self.chat)

    def figure(self, result: Scaled):
        return viz.bars(result.base, result.after, self.k,
                        names=("base", f"adapter × {result.scale:g}"),
                        title="next token: the base and the tuned model at this scale")

    def summary(self, result: Scaled) -> str:
        return html.escape(result.summary())


def _base_lm(tuned):
    """The base LM under a tuned one: the same weights with no adapter on."""
    import dataclasses

    return dataclasses.replace(tuned, model=tuned.model.base, name=f"{tuned.name} (base)")
