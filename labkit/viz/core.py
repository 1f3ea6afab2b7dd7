"""The lab's figures of distributions: token bars, curves, toy-world sequences, pool masks, labels.

The colours, the token labels and `as_distribution` (how a bare tensor is read) live here, and
every other figure module of `labkit.viz` uses them; see the package docstring.
"""
from __future__ import annotations

import torch

from ..dist import Distribution
from ..validate import whole

BEFORE_COLOR = "#9aa5b1"   # the model's own distribution: neutral grey
AFTER_COLOR = "#d9480f"    # after the controls: the colour the eye goes to
EMPTY_COLOR = "#f1f3f5"    # a cell with nothing in it (a token the pool removed)
ERROR_COLOR = "#c92a2a"    # a panel's error line
PALETTE = (AFTER_COLOR, "#1971c2", "#2f9e44", "#7048e8", "#f08c00", "#0c8599", "#c2255c")

_VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}
_LAYOUT = dict(template="plotly_white", margin=dict(l=50, r=20, t=50, b=50))
_LEGEND = dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right")


def colors(n: int, *, base: bool = False) -> list[str]:
    """`n` series colours from `PALETTE` (cycling); `base=True`: the first series is a
    reference (the base model, the prompt) and gets `BEFORE_COLOR`."""
    head = [BEFORE_COLOR] if base and n else []
    return head + [PALETTE[i % len(PALETTE)] for i in range(n - len(head))]


def token_label(text: str) -> str:
    """A token's text with whitespace made visible: ' Paris' -> '␣Paris', '' -> '∅'."""
    if text == "":
        return "∅"
    return "".join(_VISIBLE.get(ch, ch) for ch in text)


def as_distribution(x, kind: str | None = None) -> Distribution:
    """A Distribution from a Distribution, or from a 1-D tensor (or list) of probabilities
    (`kind="probs"`: non-negative, summing to 1) or of logits (`kind="logits"`).

    Without `kind`, a tensor with a negative entry is logits (no probability is negative);
    one of non-negative numbers is ambiguous and raises a ValueError that names both ways."""
    if kind not in (None, "probs", "logits"):
        raise ValueError(f"kind must be 'probs' or 'logits', got {kind!r}")
    if isinstance(x, Distribution):
        return x
    t = torch.as_tensor(x).detach().float()
    if t.dim() == 2 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 1 or t.numel() == 0:
        raise ValueError(f"a distribution is a Distribution or a non-empty 1-D tensor, got "
                         f"shape {tuple(t.shape)}")
    if torch.isnan(t).any():
        raise ValueError("the tensor contains NaN: check the model's output or the control "
                         "applied before")
    if kind is None:
        if (t < 0).any():
            kind = "logits"
        else:
            raise ValueError(
                "a tensor of non-negative numbers could be probabilities or logits (logits "
                f"may be positive, even sum to 1; this one sums to {float(t.sum()):.4g}): "
                "say which with kind='probs' or kind='logits', or pass a Distribution "
                "(lk.dist.Distribution.from_logits(logits))")
    if kind == "logits":
        return Distribution.from_logits(t)
    total = float(t.sum())
    if (t < 0).any() or abs(total - 1) > 1e-3:
        raise ValueError(f"probabilities must be non-negative and sum to 1, got a sum of "
                         f"{total:.4g}{' and negative entries' if (t < 0).any() else ''}: "
                         "renormalise them, or pass kind='logits' if they are scores")
    return Distribution.from_logits(t.log())


def _unique(labels: list[str], ids: list[int]) -> list[str]:
    """Category labels must be unique (plotly merges equal ones): suffix the id to repeats."""
    seen: dict[str, int] = {}
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
    return [f"{label} #{i}" if seen[label] > 1 else label for label, i in zip(labels, ids)]


def bars_data(before, after=None, k: int = 20, *, rank_by: str = "before",
              kind: str | None = None):
    """(labels, before_probs, after_probs or None) for the top-k tokens of `before` (or of
    `after`, with rank_by="after": to show what a boost brings up), most likely first; the
    other distribution's probabilities are read on the same tokens. `kind` says what bare
    tensors hold ('probs' or 'logits'; see `as_distribution`)."""
    k = whole("k", k, low=1)
    before = as_distribution(before, kind)
    if after is None:
        ids, probs = before.top_ids(k)
        return _unique([token_label(before.token_text(i)) for i in ids], ids), probs, None
    after = as_distribution(after, kind)
    if len(after) != len(before):
        raise ValueError(f"before and after must be over the same vocabulary, got "
                         f"{len(before)} and {len(after)} tokens")
    if rank_by not in ("before", "after"):
        raise ValueError(f"rank_by must be 'before' or 'after', got {rank_by!r}")
    ids, _ = (before if rank_by == "before" else after).top_ids(k)
    labels = _unique([token_label(before.token_text(i)) for i in ids], ids)
    return labels, before.probs[ids].tolist(), after.probs[ids].tolist()


def bars(before, after=None, k: int = 20, *, title: str | None = None,
         names: tuple[str, str] = ("model", "after controls"), rank_by: str = "before",
         kind: str | None = None):
    """Bar chart of the top-k tokens of `before` (or of `after`, rank_by="after"); with `after`,
    its probabilities on the same tokens as a second bar beside each (trace 0 is `before`,
    trace 1 `after`)."""
    import plotly.graph_objects as go

    labels, p_before, p_after = bars_data(before, after, k, rank_by=rank_by, kind=kind)
    fig = go.Figure()
    fig.add_bar(x=labels, y=p_before, name=names[0], marker_color=BEFORE_COLOR,
                hovertemplate="%{x}: %{y:.3f}<extra>" + names[0] + "</extra>")
    if p_after is not None:
        fig.add_bar(x=labels, y=p_after, name=names[1], marker_color=AFTER_COLOR,
                    hovertemplate="%{x}: %{y:.3f}<extra>" + names[1] + "</extra>")
    fig.update_layout(
        title=title or f"top {len(labels)} next tokens", barmode="group", bargap=0.15,
        xaxis=dict(title="next token (␣ = space)", type="category", tickangle=-45),
        yaxis=dict(title="probability", rangemode="tozero"), legend=_LEGEND,
        height=380, **{**_LAYOUT, "margin": dict(l=50, r=20, t=60, b=90)})
    return fig


def explorer_figure(before, after, k: int = 20):
    """The explorer panel's figure: `bars` of the model's distribution and the one after the
    knobs (trace 0 and trace 1)."""
    return bars(before, after, k, names=("model", "after the knobs"),
                title="next-token distribution: before and after the knobs")


def boosted(before, after, k: int = 15):
    """The strength panel's figure: bars of the top-k tokens *after* a boost (so the boosted
    tokens show), the model's own probability in grey beside each (trace 0 model, 1 after)."""
    return bars(before, after, k, rank_by="after", names=("model", "after the boost"),
                title="top next tokens after the boost, and the model's own probability")


def overlay(base, dists: dict, k: int = 15, *, title: str | None = None):
    """The base model's next-token distribution with each controlled one beside it ({name:
    Distribution}, over the same vocabulary): bars of the k tokens most likely on average
    over all of them, so what a control brings up shows too (trace 0 is the base)."""
    import plotly.graph_objects as go
    import torch

    k = whole("k", k, low=1)
    base = as_distribution(base)
    dists = {name: as_distribution(d) for name, d in dists.items()}
    for name, d in dists.items():
        if len(d) != len(base):
            raise ValueError(f"{name!r} is over {len(d)} tokens, the base over {len(base)}: "
                             f"compare distributions over the same vocabulary")
    mean = torch.stack([base.probs, *(d.probs for d in dists.values())]).mean(0)
    ids = mean.topk(min(k, len(base))).indices.tolist()
    labels = _unique([token_label(base.token_text(i)) for i in ids], ids)
    fig = go.Figure()
    for (name, d), color in zip({"base model": base, **dists}.items(),
                                colors(len(dists) + 1, base=True)):
        fig.add_bar(x=labels, y=d.probs[ids].tolist(), name=name, marker_color=color,
                    hovertemplate="%{x}: %{y:.3f}<extra>" + name + "</extra>")
    fig.update_layout(
        title=title or "next-token distribution under each control", barmode="group",
        bargap=0.15, xaxis=dict(title="next token (␣ = space)", type="category", tickangle=-45),
        yaxis=dict(title="probability", rangemode="tozero"), legend=_LEGEND, height=380,
        **{**_LAYOUT, "margin": dict(l=50, r=20, t=60, b=90)})
    return fig


def lines(x, series: dict, *, x_title: str = "", y_title: str = "", title: str | None = None,
          log_x: bool = False):
    """One curve per entry of `series` ({name: y values}) against the shared `x` values."""
    import plotly.graph_objects as go

    x = list(x)
    fig = go.Figure()
    for (name, y), color in zip(series.items(), colors(len(series))):
        y = y.tolist() if isinstance(y, torch.Tensor) else list(y)
        if len(y) != len(x):
            raise ValueError(f"series {name!r} has {len(y)} values for {len(x)} x values")
        fig.add_scatter(x=x, y=y, mode="lines+markers", name=name, line_color=color)
    fig.update_layout(title=title, xaxis=dict(title=x_title, type="log" if log_x else "linear"),
                      yaxis=dict(title=y_title), height=340, **_LAYOUT)
    return fig



def loss_curves(history, *, title: str | None = None):
    """A trainer's loss against the step: `history` is a list of dicts with "step", "loss"
    (the step's batch: a thin line) and, where it was evaluated, "eval_loss" (the held-out
    loss: markers), as `lk.sft.finetune` returns; or {name: history} for several runs."""
    import plotly.graph_objects as go

    runs = history if isinstance(history, dict) else {"": history}
    fig = go.Figure()
    for (name, rows), color in zip(runs.items(), colors(len(runs))):
        rows = list(rows)
        if not rows or any("step" not in r or "loss" not in r for r in rows):
            raise ValueError("a history is a non-empty list of dicts with 'step' and 'loss' "
                             "(what lk.sft.finetune returns)")
        tag = f"{name}: " if name else ""
        fig.add_scatter(x=[r["step"] for r in rows], y=[r["loss"] for r in rows], mode="lines",
                        name=f"{tag}train (batch)", line=dict(color=color, width=1),
                        opacity=0.6)
        held = [r for r in rows if r.get("eval_loss") is not None]
        if held:
            fig.add_scatter(x=[r["step"] for r in held], y=[r["eval_loss"] for r in held],
                            mode="lines+markers", name=f"{tag}held out", line_color=color)
    fig.update_layout(title=title or "loss per response token", xaxis=dict(title="step"),
                      yaxis=dict(title="cross-entropy, nats"), height=340, legend=_LEGEND,
                      **_LAYOUT)
    return fig

# --- the toy world: whole sequences (notebook 01) --------------------------------------------


def sequence_rows(logp, k: int = 12) -> torch.Tensor:
    """Rows of the k most likely sequences under log-probabilities `logp` [N], likeliest first."""
    logp = torch.as_tensor(logp)
    return logp.topk(min(whole("k", k, low=1), logp.numel())).indices


def sequences(world, dists: dict, k: int = 12, *, order_by: str | None = None, rows=None):
    """Grouped bars: the probability of whole sequences of the toy `world` in each
    distribution of `dists` ({name: log-probs [N]}, one per sequence), trace i for the i-th.
    The sequences shown are the k most likely under `order_by` (default: the first of
    `dists`), or the given `rows` (a panel keeps them fixed, so the eye sees mass move)."""
    import plotly.graph_objects as go

    if not dists:
        raise ValueError("dists is empty: give {name: log-probs [N]}, "
                         "e.g. {'π': world.log_prob()}")
    dists = {name: torch.as_tensor(lp) for name, lp in dists.items()}
    for name, lp in dists.items():
        if lp.shape != (world.n_sequences,):
            raise ValueError(f"dists[{name!r}] has shape {tuple(lp.shape)}: it must hold one "
                             f"log-probability per sequence, [{world.n_sequences}]")
    order_by = next(iter(dists)) if order_by is None else order_by
    if order_by not in dists:
        raise ValueError(f"order_by={order_by!r} is not one of {list(dists)}")
    rows = sequence_rows(dists[order_by], k) if rows is None else torch.as_tensor(rows)
    labels = [world.text(s) for s in world.sequences()[rows]]
    fig = go.Figure([go.Bar(name=name, x=labels, y=lp.exp()[rows].tolist(), marker_color=c)
                     for (name, lp), c in zip(dists.items(), colors(len(dists), base=True))])
    fig.update_layout(barmode="group", yaxis=dict(title="probability", rangemode="tozero"),
                      xaxis=dict(type="category"), legend=_LEGEND, height=360,
                      **{**_LAYOUT, "margin": dict(l=50, r=20, t=50, b=80)})
    return fig


# --- the token pool: the mask at each step (notebook 05) -------------------------------------


def pool_mask(steps, k: int = 15, title: str = "which of the model's top tokens the pool allows"):
    """Heatmap: one column per generation step (`lk.generate(..., trace=True)`: each step has
    `.before`, `.after` and `.text`), one row per rank of the model's own top-k tokens;
    coloured where the pool allowed the token."""
    import plotly.graph_objects as go

    k, steps = whole("k", k, low=1), list(steps)
    if not steps:
        raise ValueError("no steps to show: generate with trace=True to get them")
    z, text = [], []
    for step in steps:
        ids, _ = step.before.top_ids(k)
        z.append([float(torch.isfinite(step.after.logits[i])) for i in ids])
        text.append([token_label(step.before.token_text(i)) for i in ids])
    zt, tt = [list(r) for r in zip(*z)], [list(r) for r in zip(*text)]     # rank step
    cols = [f"{t}: {token_label(s.text)}" for t, s in enumerate(steps)]
    fig = go.Figure(go.Heatmap(z=zt, x=cols, y=list(range(1, len(zt) + 1)), text=tt,
                               texttemplate="%{text}", zmin=0, zmax=1, showscale=False,
                               colorscale=[[0, EMPTY_COLOR], [1, AFTER_COLOR]],
                               hovertemplate="step %{x}, rank %{y}: %{text}<extra></extra>"))
    fig.update_layout(title=title, xaxis=dict(title="step: token drawn", type="category"),
                      yaxis=dict(title="model's rank", autorange="reversed"),
                      height=120 + 28 * len(zt),
                      **{**_LAYOUT, "margin": dict(l=60, r=20, t=50, b=80)})
    return fig


# --- prompting: labels and shots (notebook 02) -----------------------------------------------


def label_colors(n: int, gold: int | None) -> list[str]:
    """The correct label in AFTER_COLOR, the others grey."""
    return [AFTER_COLOR if j == gold else BEFORE_COLOR for j in range(n)]


def label_bars(choices, probs, gold: int | None = None, title: str | None = None):
    """A bar per candidate label with its probability (a list or 1-D tensor, one per label),
    the correct one (index `gold`) highlighted."""
    import plotly.graph_objects as go

    choices = list(choices)
    probs = probs.tolist() if isinstance(probs, torch.Tensor) else [float(p) for p in probs]
    if len(probs) != len(choices):
        raise ValueError(f"{len(choices)} labels but {len(probs)} probabilities")
    if gold is not None and not 0 <= gold < len(choices):
        raise ValueError(f"gold={gold} is not the index of one of the {len(choices)} labels")
    fig = go.Figure(go.Bar(x=choices, y=probs, marker_color=label_colors(len(choices), gold),
                           hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    fig.update_layout(title=title, yaxis=dict(title="p(label | prompt)", range=[0, 1]),
                      xaxis=dict(type="category"), height=300, **_LAYOUT)
    return fig


def sweep(history: list[dict], key: str = "accuracy", title: str | None = None):
    """`key` vs number of shots from a `prompting.sweep` history, one line per format, error
    bars = std over the shots' orders."""
    import plotly.graph_objects as go

    from .. import prompting

    if not history:
        raise ValueError("the history is empty: run prompting.sweep first")
    if key not in history[0]:
        raise ValueError(f"key={key!r} is not in the history; its keys are {list(history[0])}")
    summary = prompting.summarize(history, key)
    fig = go.Figure()
    for (fmt, (ks, mean, std)), color in zip(summary.items(), colors(len(summary))):
        fig.add_scatter(x=ks, y=mean, error_y=dict(type="data", array=std), name=fmt,
                        mode="lines+markers", line_color=color)
    fig.update_layout(title=title, xaxis=dict(title="shots"),
                      yaxis=dict(title=key.replace("_", " "), range=[0, 1.05]), height=350,
                      **_LAYOUT)
    return fig
