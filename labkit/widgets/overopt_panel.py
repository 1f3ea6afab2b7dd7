"""The over-optimisation explorer (notebook 04): slide along a run and read its samples.

Optimising a proxy reward r̂ (a reward model) first raises the gold reward it stands in for,
then lowers it (Gao, Schulman & Hilton 2022). Each point of a run -- a β of the exact proxy
tilt on the toy world, or a checkpoint of RL on the real model -- has its distance from the
base d = √KL, its mean proxy and gold rewards, and a few samples with their own rewards.

1. `overopt_point(points, i)` -> the point (validated): nothing to compute, it reads cached
   results, so the slider never calls a model;
2. `labkit.viz.overoptimisation`: proxy and gold against √KL, the selected point marked,
   and its most likely texts as bars;
3. `OveroptimisationPanel(points)`: a slider over the points; the readout lists the samples.

    panel = lk.widgets.OveroptimisationPanel(points)    # points: [{"label", "d", "proxy",
    panel.index.value = 3                               #   "gold", "samples": [(text, r̂, g, p)]}]

Left out on purpose: computing new points from the panel (a tilt per β is cheap, an RL
checkpoint is not: both are computed in the notebook and passed in).
"""
from __future__ import annotations

import html

import ipywidgets as W

from .. import viz
from .panel import STYLE, WIDE, Panel

KEYS = ("label", "d", "proxy", "gold", "samples")


def overopt_point(points: list, i: int) -> dict:
    """Layer 1: point `i` of `points`, each a dict with label, d (√KL), proxy, gold, samples."""
    if not points:
        raise ValueError("no points: give one dict per β or checkpoint")
    missing = [k for k in KEYS if k not in points[i]]
    if missing:
        raise ValueError(f"point {i} has no {missing}: each point needs {list(KEYS)}")
    if not all(len(s) == 4 for s in points[i]["samples"]):
        raise ValueError(f"point {i}: each sample must be (text, proxy, gold, probability)")
    return points[i]


class OveroptimisationPanel(Panel):
    """A slider over `points` above `viz.overoptimisation`; the readout shows the samples."""

    def __init__(self, points: list, *, index: int = 0, what: str = "β"):
        self.points = list(points)
        for i in range(len(self.points)):
            overopt_point(self.points, i)                  # bad points raise here
        self.what = what
        self.index = W.IntSlider(value=index, min=0, max=max(len(self.points) - 1, 0),
                                 description=f"{what} (index)", continuous_update=False,
                                 style=STYLE, layout=W.Layout(**WIDE))
        super().__init__(self.index)
        self.watch(self.index)

    def compute(self) -> dict:
        return overopt_point(self.points, self.index.value)

    def figure(self, result: dict):
        return viz.overoptimisation(self.points, self.index.value)

    def summary(self, result: dict) -> str:
        head = (f"<b>{html.escape(self.what)} = {html.escape(str(result['label']))}</b> · √KL "
                f"{result['d']:.2f} · proxy {result['proxy']:.3f} · gold {result['gold']:.3f}")
        rows = "".join(f"<tr><td>{html.escape(t)}</td><td>{p:.3f}</td><td>{r:.2f}</td>"
                       f"<td>{g:.2f}</td></tr>" for t, r, g, p in result["samples"])
        return (f"{head}<table><tr><th>text</th><th>probability</th><th>proxy</th>"
                f"<th>gold</th></tr>{rows}</table>")
