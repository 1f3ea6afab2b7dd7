"""The label panel (notebook 02): shots, their order and the format -> p(label | prompt).

1. `labkit.prompting.score_task(lm, task, [item], shots=, order=, chat=)` -> `Scores` (the
   pure function; it runs the model);
2. `labkit.viz.label_bars`: a bar per label, the correct one highlighted;
3. `LabelPanel`: a test item, sliders for the number of shots and their order, raw vs chat.
   Every setting costs a model call, so the sliders send on release
   (`continuous_update=False`) and scores are cached per setting: going back costs nothing,
   and the order slider at 0 or 1 shot (one order only) calls nothing.

    panel = lk.widgets.LabelPanel(lm, lk.tasks.sentiment(), max_shots=8, orders=3)
    panel.shots.value = 4               # what dragging the slider does; panel.result follows

Left out on purpose: scoring the whole test split per setting (that is `prompting.sweep`,
plotted by `viz.sweep`): a panel shows one item, fast.
"""
from __future__ import annotations

import html

import ipywidgets as W

from .. import prompting, viz
from .panel import Panel


class LabelPanel(Panel):
    """Item, shots, order and format controls above `viz.label_bars`; `result` is the last
    `prompting.Scores` (one item), `cache` every setting scored so far."""

    def __init__(self, lm, task, *, max_shots: int = 8, orders: int = 5, item: int = 0):
        if not task.test:
            raise ValueError(f"the {task.name} task has no test items to show")
        self.lm, self.task, self.cache = lm, task, {}
        self.shots = W.IntSlider(0, min=0, max=min(max_shots, len(task.train)),
                                 description="shots", continuous_update=False)
        self.order = W.IntSlider(0, min=0, max=max(orders - 1, 0), description="order",
                                 continuous_update=False)
        self.item = W.Dropdown(options=[(ex.text[:60], i) for i, ex in enumerate(task.test)],
                               value=item, description="item")
        self.chat = W.ToggleButtons(options=[("raw", False), ("chat", True)], value=False)
        super().__init__(self.item, W.HBox([self.shots, self.order, self.chat]))
        self.watch(self.shots, self.order, self.item, self.chat)

    def key(self) -> tuple:
        """(item, shots, order, chat) of the current setting; 0 or 1 shot has one order."""
        order = self.order.value if self.shots.value > 1 else 0
        return self.item.value, self.shots.value, order, self.chat.value

    def compute(self):
        key = self.key()
        if key not in self.cache:
            item, shots, order, chat = key
            self.cache[key] = prompting.score_task(self.lm, self.task, [self.task.test[item]],
                                                   shots=shots, order=order, chat=chat)
        return self.cache[key]

    def figure(self, result):
        return viz.label_bars(result.choices[0], result.probs[0], int(result.gold[0]))

    def summary(self, result) -> str:
        gold = int(result.gold[0])
        return (f"correct label <b>{html.escape(result.choices[0][gold])}</b>: "
                f"p = {float(result.probs[0, gold]):.3f}; mass on the label set "
                f"{float(result.mass[0]):.3f}; {len(self.cache)} settings cached")
