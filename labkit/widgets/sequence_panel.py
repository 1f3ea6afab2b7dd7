"""The sequence panel (notebook 01): a slider reshapes whole distributions of the toy world.

1. the caller's pure function `make_dists(value)` -> {name: log-probs [N]}, one number per
   sequence of the world (e.g. `{"base π": logp, "tilt": bayes.tilt(logp, reward, beta)}`);
2. `labkit.viz.sequences`: grouped bars of the likeliest sequences, one trace per name;
3. `SequencePanel`: the slider above the bars. The sequences shown are fixed by the first
   result (the k likeliest under `order_by`), so when the slider moves the eye sees mass
   move between the same bars.

    beta = W.FloatLogSlider(value=1.0, base=10, min=-1, max=1, step=0.05, description="β",
                            continuous_update=False)
    panel = lk.widgets.SequencePanel(world, lambda b: {"base π": logp,
                                                       "tilt": bayes.tilt(logp, r, b)}, beta)

The slider is the caller's (a FloatLogSlider for β, a FloatSlider for λ ...); the panel
keeps it as `panel.slider`. `make_dists` is called once per value the slider sends.

Left out on purpose: more than one slider (nest two panels, or write a `Panel` subclass).
"""
from __future__ import annotations

import ipywidgets as W

from .. import viz
from .panel import Panel


class SequencePanel(Panel):
    """`slider` above `viz.sequences(world, make_dists(slider.value), k)`; `result` is the
    last {name: log-probs [N]}; `error` shows what `make_dists` raised."""

    def __init__(self, world, make_dists, slider: W.ValueWidget, k: int = 12,
                 order_by: str | None = None):
        if not callable(make_dists):
            raise TypeError("make_dists must be a function: value -> {name: log-probs [N]}")
        if not isinstance(slider, W.ValueWidget):
            raise TypeError(f"slider must be an ipywidgets slider (W.FloatSlider(...)), "
                            f"not {type(slider).__name__}")
        self.world, self.make_dists, self.slider, self.k = world, make_dists, slider, k
        self.order_by, self.rows = order_by, None          # rows: fixed by the first result
        super().__init__(slider)
        self.watch(slider)

    def compute(self) -> dict:
        return self.make_dists(self.slider.value)

    def figure(self, result: dict):
        fig = viz.sequences(self.world, result, self.k, order_by=self.order_by, rows=self.rows)
        if self.rows is None:                    # the first figure: keep its sequences
            self.order_by = self.order_by or next(iter(result))
            self.rows = viz.sequence_rows(result[self.order_by], self.k)
        return fig
