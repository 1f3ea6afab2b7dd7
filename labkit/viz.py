"""Plots of next-token distributions (plotly): figure factories, never `.show()`.

Every function here takes Distributions (or plain tensors) and returns a
`plotly.graph_objects.Figure`; the notebook displays it, a widget wraps it in a
`go.FigureWidget` and updates its traces in place. The data behind each figure is
a separate pure function (`bars_data`), so callbacks can refresh a live figure
without rebuilding it, and tests can check the numbers without a browser.

* `bars(before, after=None, k=20)`: the top-k tokens of `before` as bars, with
  `after` (the same distribution after some controls) beside them on the same
  tokens -- the picture of notebook 00 and of every control after it.
* `lines(x, series)`: a few curves against one knob (entropy vs temperature, ...).

Token texts are shown with their whitespace made visible: a leading space is
``␣`` (so ``' Paris'`` reads ``'␣Paris'``), a newline ``↵``, a tab ``⇥``.

Left out on purpose: themes and styling options (plotly's defaults are fine and
`fig.update_layout` is one line away), matplotlib versions, and animation.
"""
from __future__ import annotations

import torch

from .dist import Distribution

BEFORE_COLOR = "#9aa5b1"   # the model's own distribution: neutral grey
AFTER_COLOR = "#d9480f"    # after the controls: the colour the eye goes to

_VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}


def token_label(text: str) -> str:
    """A token's text with whitespace made visible: ' Paris' -> '␣Paris', '' -> '∅'."""
    if text == "":
        return "∅"
    return "".join(_VISIBLE.get(ch, ch) for ch in text)


def as_distribution(x) -> Distribution:
    """A Distribution from a Distribution, or from a 1-D tensor of probabilities (non-negative,
    summing to 1) or of logits (anything else)."""
    if isinstance(x, Distribution):
        return x
    t = torch.as_tensor(x).detach().float().flatten()
    if t.numel() and (t >= 0).all() and abs(float(t.sum()) - 1) < 1e-3:
        return Distribution.from_logits(t.log())                       # probabilities
    return Distribution.from_logits(t)                                 # logits


def _unique(labels: list[str], ids: list[int]) -> list[str]:
    """Category labels must be unique (plotly merges equal ones): suffix the id to repeats."""
    seen: dict[str, int] = {}
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
    return [f"{label} #{i}" if seen[label] > 1 else label for label, i in zip(labels, ids)]


def bars_data(before, after=None, k: int = 20, *, rank_by: str = "before"):
    """(labels, before_probs, after_probs or None) for the top-k tokens of `before` (or of
    `after`, with rank_by="after": to show what a boost brings up), most likely first; the
    other distribution's probabilities are read on the same tokens."""
    before = as_distribution(before)
    if after is None:
        ids, probs = before.top_ids(k)
        return _unique([token_label(before.token_text(i)) for i in ids], ids), probs, None
    after = as_distribution(after)
    if len(after) != len(before):
        raise ValueError(f"before and after must be over the same vocabulary, got "
                         f"{len(before)} and {len(after)} tokens")
    if rank_by not in ("before", "after"):
        raise ValueError(f"rank_by must be 'before' or 'after', got {rank_by!r}")
    ids, _ = (before if rank_by == "before" else after).top_ids(k)
    labels = _unique([token_label(before.token_text(i)) for i in ids], ids)
    return labels, before.probs[ids].tolist(), after.probs[ids].tolist()


def bars(before, after=None, k: int = 20, *, title: str | None = None,
         names: tuple[str, str] = ("model", "after controls"), rank_by: str = "before"):
    """Bar chart of the top-k tokens of `before` (or of `after`, rank_by="after"); with `after`,
    its probabilities on the same tokens as a second bar beside each (trace 0 is `before`,
    trace 1 `after`)."""
    import plotly.graph_objects as go

    labels, p_before, p_after = bars_data(before, after, k, rank_by=rank_by)
    fig = go.Figure()
    fig.add_bar(x=labels, y=p_before, name=names[0], marker_color=BEFORE_COLOR,
                hovertemplate="%{x}: %{y:.3f}<extra>" + names[0] + "</extra>")
    if p_after is not None:
        fig.add_bar(x=labels, y=p_after, name=names[1], marker_color=AFTER_COLOR,
                    hovertemplate="%{x}: %{y:.3f}<extra>" + names[1] + "</extra>")
    fig.update_layout(
        title=title or f"top {len(labels)} next tokens", barmode="group", bargap=0.15,
        xaxis=dict(title="next token (␣ = space)", type="category", tickangle=-45),
        yaxis=dict(title="probability", rangemode="tozero"),
        legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right"),
        margin=dict(l=50, r=20, t=60, b=90), height=380, template="plotly_white")
    return fig


def lines(x, series: dict, *, x_title: str = "", y_title: str = "", title: str | None = None,
          log_x: bool = False):
    """One curve per entry of `series` ({name: y values}) against the shared `x` values."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, y in series.items():
        y = y.tolist() if isinstance(y, torch.Tensor) else list(y)
        fig.add_scatter(x=list(x), y=y, mode="lines+markers", name=name)
    fig.update_layout(title=title, xaxis=dict(title=x_title, type="log" if log_x else "linear"),
                      yaxis=dict(title=y_title), height=340, template="plotly_white",
                      margin=dict(l=50, r=20, t=50, b=50))
    return fig


def explorer_figure(before, after, k: int = 20):
    """The explorer panel's figure: `bars` of the model's distribution and the one after the
    knobs (trace 0 and trace 1, which the panel's callback updates in place)."""
    return bars(before, after, k, names=("model", "after the knobs"),
                title="next-token distribution: before and after the knobs")
