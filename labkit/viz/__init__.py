"""Every figure of the lab (plotly): figure factories, never `.show()`.

Each function here takes Distributions, tensors or plain data (lists, dicts, the history a
trainer returns) and returns a `plotly.graph_objects.Figure`; the notebook displays it, a
panel (`labkit.widgets`) wraps it in a `go.FigureWidget` and copies a fresh figure's traces
into it in place. The data behind the bar charts is a separate pure function (`bars_data`),
so tests can check the numbers without a browser.

* `bars(before, after=None, k=20)`: the top-k tokens of `before` as bars, with `after` (the
  same distribution after some controls) beside them on the same tokens -- the picture of
  notebook 00 and of every control after it; `explorer_figure` and `boosted` are two uses;
  `overlay(base, {name: dist})` puts several controls beside the base (07's dashboard).
* `lines(x, series)`: a few curves against one knob (entropy vs temperature, ...).
* `sequences(world, {name: log-probs})`: whole sequences of the toy world (notebook 01).
* `pool_mask(steps)`: which of the model's top tokens a token pool allowed at each step (05).
* `label_bars`, `sweep`: a distribution over labels, and accuracy vs shots (02).
* `tradeoff(curves, x, y)`: attribute success against fluency or diversity, per method (06).
* `pareto(scoreboard, x, y)`: every method of a scoreboard, each strength sweep a curve, and
  the Pareto front (07).

One set of colours, defined here: `BEFORE_COLOR` (the model's own distribution, grey),
`AFTER_COLOR` (after the controls, the colour the eye goes to), `EMPTY_COLOR`,
`ERROR_COLOR` (a panel's error line) and `PALETTE` for figures with several series.

Probabilities or logits? A bare tensor is read as logits only if that is its one possible
reading (it has a negative entry: no probability is negative). A tensor of non-negative
numbers could be either -- `[1., 0., 0.]` is a certainty as probabilities and a mild
preference as logits -- so every function that takes a distribution has `kind="probs"` or
`kind="logits"`, and without it `as_distribution` raises a ValueError naming both; it never
guesses.

Token texts are shown with their whitespace made visible: a leading space is ``␣`` (so
``' Paris'`` reads ``'␣Paris'``), a newline ``↵``, a tab ``⇥``.

Two modules: `core` (the colours, token labels, `as_distribution` and the figures of distributions)
and `compare` (figures that compare methods); every name is here, `lk.viz.bars`, `lk.viz.pareto`.

Left out on purpose: themes and styling options (plotly's defaults are fine and
`fig.update_layout` is one line away), matplotlib versions, and animation.
"""
from __future__ import annotations

from .compare import overoptimisation, pareto, pareto_front, tradeoff
from .core import (AFTER_COLOR, BEFORE_COLOR, EMPTY_COLOR, ERROR_COLOR, PALETTE,
                   as_distribution, bars, bars_data, boosted, colors, explorer_figure,
                   label_bars, label_colors, lines, loss_curves, overlay, pool_mask,
                   sequence_rows, sequences, sweep, token_label)

__all__ = ["AFTER_COLOR", "BEFORE_COLOR", "EMPTY_COLOR", "ERROR_COLOR", "PALETTE",
           "as_distribution", "bars", "bars_data", "boosted", "colors", "explorer_figure",
           "label_bars", "label_colors", "lines", "loss_curves", "overlay", "overoptimisation",
           "pareto", "pareto_front", "pool_mask", "sequence_rows", "sequences", "sweep",
           "token_label", "tradeoff"]
