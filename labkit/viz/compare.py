"""The lab's figures that compare methods: success against a cost, per method and strength.

* `tradeoff(curves, x, y)`: one line per method through its strength sweep (notebook 06);
* `pareto(scoreboard, x, y)`: every row of a scoreboard, each sweep a curve, and the Pareto
  front (`pareto_front`) (notebook 07);
* `overoptimisation(points)`: proxy and gold reward against √KL, Gao et al.'s picture (04).
"""
from __future__ import annotations

from ..validate import whole
from .core import _LAYOUT, _LEGEND, AFTER_COLOR, BEFORE_COLOR, PALETTE, colors


# --- steering: success against fluency (notebook 06) -----------------------------------------


def tradeoff(curves: dict, x: str, y: str, *, title: str | None = None, label: str = "strength"):
    """One line per method: {method: [row, ...]} (rows from `scoreboard.run`, in order of
    strength, each a dict with keys `x` and `y`; each row's `label` key, "strength" by default,
    shows on hover). A method with one row is one marker."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for (method, rows), color in zip(curves.items(), colors(len(curves))):
        missing = [key for key in (x, y) if any(key not in r for r in rows)]
        if missing:
            raise ValueError(f"the rows of {method!r} have no {missing[0]!r}; they have "
                             f"{sorted(rows[0]) if rows else 'nothing'}")
        fig.add_scatter(x=[r[x] for r in rows], y=[r[y] for r in rows], name=method,
                        mode="lines+markers" if len(rows) > 1 else "markers", line_color=color,
                        text=[str(r.get(label, "")) for r in rows],
                        hovertemplate=f"{method}<br>{label} %{{text}}<br>{x} %{{x:.3g}}"
                                      f"<br>{y} %{{y:.3g}}<extra></extra>")
    fig.update_layout(title=title or f"{y} vs {x}", xaxis=dict(title=x), yaxis=dict(title=y),
                      height=360, **_LAYOUT)
    return fig


# --- the scoreboard: every method on one picture (notebook 07) ---------------------------------


def pareto_front(xs, ys) -> list[int]:
    """Indices of the points no other point beats on both axes (x lower is better, y higher),
    in order of x: the Pareto front. NaN points are never on it. Naive version::

        [i for i in ok if not any(xs[j] <= xs[i] and ys[j] >= ys[i] and (xs[j], ys[j]) !=
                                  (xs[i], ys[i]) for j in ok)]
    """
    ok = [i for i, (x, y) in enumerate(zip(xs, ys)) if x == x and y == y]      # not NaN
    front, best = [], float("-inf")
    for i in sorted(ok, key=lambda i: (xs[i], -ys[i])):       # by x, the best y first on ties
        if ys[i] > best:
            front.append(i)
            best = ys[i]
    return front


def _number(v) -> float:
    """A strength to sort by: a number as it is, anything else (None, NaN, text) last."""
    return float(v) if isinstance(v, (int, float)) and v == v else float("inf")


def pareto(rows, x: str = "KL (MC)", y: str = "success", *, family: str = "family",
           strength: str = "strength", title: str | None = None):
    """`y` against `x` for every method of a scoreboard (`scoreboard.evaluate`'s DataFrame, or
    a list of dicts with a "method" key): the rows that share a `family` value are one strength
    sweep, drawn as a curve in order of `strength`; a row without a family is one point; the
    dashed line is the Pareto front (lower `x`, higher `y`: `pareto_front`). Rows with a NaN
    in `x` or `y` (an error row) are left out. The curves are `tradeoff`'s."""
    if hasattr(rows, "reset_index"):                          # a DataFrame indexed by method
        rows = rows.reset_index().to_dict("records")
    rows = [r for r in rows if r.get(x) == r.get(x) and r.get(y) == r.get(y)]
    missing = [key for key in (x, y) if rows and any(key not in r for r in rows)]
    if not rows or missing:
        raise ValueError(f"no rows with both {x!r} and {y!r} to draw"
                         + (f": the rows have {sorted(rows[0])}" if rows else ""))
    groups: dict = {}
    for r in rows:
        fam = r.get(family)
        key = fam if isinstance(fam, str) and fam else r.get("method", "?")
        groups.setdefault(key, []).append(r)
    curves = {name: sorted(members, key=lambda r: _number(r.get(strength)))
              for name, members in groups.items()}
    fig = tradeoff(curves, x, y, title=title or f"{y} against {x}", label="method")
    front = pareto_front([r[x] for r in rows], [r[y] for r in rows])
    fig.add_scatter(x=[rows[i][x] for i in front], y=[rows[i][y] for i in front],
                    mode="lines", name="Pareto front", hoverinfo="skip",
                    line=dict(color=BEFORE_COLOR, dash="dash", width=1.5))
    fig.update_layout(height=400)
    return fig


def overoptimisation(points: list, selected: int | None = None, *, title: str | None = None):
    """Gold and proxy reward against d = √KL (Gao et al. 2022's axes): `points` are dicts with
    `d`, `proxy`, `gold` and `samples` [(text, proxy, gold, probability)] (one point per β, or
    per training checkpoint). With `selected`, that point is marked on both curves and its
    samples' probabilities are drawn as bars on the right (the explorer's slider)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45], horizontal_spacing=0.12,
                        subplot_titles=("proxy and gold reward against √KL",
                                        "the selected policy's most likely texts"))
    labels = [str(p.get("label", "")) for p in points]
    for key, color in (("proxy", PALETTE[1]), ("gold", AFTER_COLOR)):
        fig.add_scatter(x=[p["d"] for p in points], y=[p[key] for p in points], text=labels,
                        mode="lines+markers", name=f"{key} reward", line_color=color,
                        hovertemplate="%{text}<br>√KL %{x:.3g}<br>reward %{y:.3g}<extra></extra>",
                        row=1, col=1)
    if selected is not None:
        p = points[whole("selected", selected, low=0, high=len(points) - 1)]
        fig.add_scatter(x=[p["d"], p["d"]], y=[p["proxy"], p["gold"]], mode="markers",
                        marker=dict(size=14, color="rgba(0,0,0,0)",
                                    line=dict(width=2, color="#212529")),
                        name="selected", hoverinfo="skip", row=1, col=1)
        fig.add_trace(go.Bar(x=[s[0] for s in p["samples"]], y=[s[3] for s in p["samples"]],
                             marker_color=[AFTER_COLOR if s[2] >= p["gold"] else BEFORE_COLOR
                                           for s in p["samples"]],
                             name="probability", showlegend=False,
                             customdata=[[s[1], s[2]] for s in p["samples"]],
                             hovertemplate="%{x}<br>p %{y:.3f}<br>proxy %{customdata[0]:.2f}"
                                           "<br>gold %{customdata[1]:.2f}<extra></extra>"),
                      row=1, col=2)
    fig.update_xaxes(title_text="√KL from the base", row=1, col=1)
    fig.update_yaxes(title_text="reward", row=1, col=1)
    fig.update_yaxes(title_text="probability", row=1, col=2)
    fig.update_layout(title=title, height=380, legend=_LEGEND, **_LAYOUT)
    return fig
