"""Draw a lab figure (a plotly `Figure` from `labkit.viz`) as an SVG picture, in pure Python.

The panels' static renderer (`lk.widgets.use("static")`, the default on Colab and in VS Code)
shows this picture in an `ipywidgets.HTML`, a core widget: no JavaScript of ours or plotly's
runs, so it draws wherever ipywidgets draws. It reads the figure's own data and layout
(`fig.to_plotly_json()`), so the picture has the same content as the plotly one: the bars or
lines of every trace, their colours and names (legend), the title, the axis titles, the tick
labels, the subplots and their titles. Hovering a bar or a marker shows its value (an SVG
`<title>`, the browser's own tooltip).

    svg = lk.svg.render(lk.viz.bars(before, after))     # an "<svg ...>...</svg>" string
    lk.svg.image(fig)                                   # displays as an image in any notebook

Drawn: `bar` traces (vertical; grouped side by side, one colour per trace or per bar) and
`scatter` traces (lines, markers, lines+markers, hollow markers, `error_y` arrays), on linear,
log and category axes (`autorange="reversed"`, `range`, `rangemode="tozero"`), in subplots laid
out by their axis domains, with `layout.annotations` in paper coordinates. Everything else
(heatmaps, 3-D, shapes, images) raises a `ValueError` naming the trace type: a panel shows it in
its error line.

Why an SVG string and not matplotlib's PNG (an `ipywidgets.Image`)? Measured by
`benchmarks/bench_panels.py` (2 cores, one torch thread): drawing the explorer's 20 bars × 2
series takes 1.6 ms as SVG and 228 ms as a PNG from matplotlib (which would also be a new
dependency); a whole static redraw of the explorer after a knob move, the figure built by
`viz` included, takes 31 ms (budget 50 ms; plotly's FigureWidget update 30 ms). And the SVG is
sharp at any zoom, 9 kB for that chart, and its bars can be inspected in a browser test.

Text widths are estimated (0.58 em per character), not measured: there is no font engine here.

Left out on purpose: hover templates (a tooltip reads "name: x, y"), horizontal bars, stacked
bars, legends placed anywhere but above the plot, and themes (the look is plotly_white's).
"""
from __future__ import annotations

import html
import math

FONT = "'Open Sans', verdana, arial, sans-serif"
INK, GRID, MUTED = "#2a3f5f", "#ebf0f8", "#506784"
CHAR_EM = 0.58                     # the estimated width of a character, in font sizes
DEFAULT_COLORS = ("#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3")
DRAWN = ("bar", "scatter")


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def _width(text: str, size: float) -> float:
    return len(str(text)) * CHAR_EM * size


def _text(x, y, s, *, size=12, anchor="start", color=INK, rotate=None, weight=None) -> str:
    transform = f' transform="rotate({rotate:g} {x:.1f} {y:.1f})"' if rotate else ""
    bold = f' font-weight="{weight}"' if weight else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{color}" '
            f'text-anchor="{anchor}"{bold}{transform}>{_esc(s)}</text>')


def _title(layout_title) -> str:
    if isinstance(layout_title, dict):
        return layout_title.get("text") or ""
    return layout_title or ""


DASHES = {"dash": "6,4", "dot": "2,3", "dashdot": "6,3,2,3", "longdash": "10,4"}


def _dash(line: dict) -> str:
    """A plotly line's `dash` ("dash", "dot", ...) as an SVG stroke-dasharray attribute."""
    dash = DASHES.get(line.get("dash") or "solid")
    return f' stroke-dasharray="{dash}"' if dash else ""


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 × 10^k apart) covering [lo, hi], about `target` of them."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / target
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    n = int(math.floor((hi - first) / step + 1e-9)) + 1
    return [round(first + i * step, 12) for i in range(n)]


def _fmt(v: float) -> str:
    return f"{v:.6g}" if abs(v) >= 1e-4 or v == 0 else f"{v:.1e}"


class _Axis:
    """One axis: its type, domain (paper fraction), range (in data units, log10 for a log
    axis) and categories; `to01(value)` maps a value to [0, 1] along the axis."""

    def __init__(self, spec: dict, values: list, bars: bool):
        self.spec = spec
        self.domain = spec.get("domain", [0.0, 1.0])
        given = spec.get("type")
        if given in (None, "-"):
            given = "category" if any(isinstance(v, str) for v in values) else "linear"
        self.type = given
        self.categories: list = []
        if self.type == "category":
            for v in values:
                if v not in self.categories:
                    self.categories.append(v)
            self.lo, self.hi = -0.5, max(len(self.categories), 1) - 0.5
        else:
            nums = [float(v) for v in values if v is not None and math.isfinite(float(v))]
            if self.type == "log":
                nums = [math.log10(v) for v in nums if v > 0]
            if spec.get("range") is not None:
                self.lo, self.hi = (float(r) for r in spec["range"])
            else:
                lo, hi = (min(nums), max(nums)) if nums else (0.0, 1.0)
                if (bars or spec.get("rangemode") == "tozero") and self.type != "log":
                    lo, hi = min(lo, 0.0), max(hi, 0.0)
                span = (hi - lo) or (abs(hi) or 1.0)
                pad = 0.05 * span
                self.lo = lo if (bars and lo == 0.0) or spec.get("rangemode") == "tozero" and lo == 0 \
                    else lo - pad
                self.hi = hi + pad
        if spec.get("autorange") == "reversed":
            self.lo, self.hi = self.hi, self.lo

    def position(self, v) -> float | None:
        """The value `v` on this axis in data units (a category's index), None if not drawable."""
        if v is None:
            return None
        if self.type == "category":
            return float(self.categories.index(v)) if v in self.categories else None
        v = float(v)
        if self.type == "log":
            return math.log10(v) if v > 0 else None
        return v if math.isfinite(v) else None

    def to01(self, pos: float) -> float:
        return (pos - self.lo) / (self.hi - self.lo) if self.hi != self.lo else 0.5

    def ticks(self) -> list[tuple[float, str]]:
        """[(position in data units, label)]."""
        if self.type == "category":
            every = max(1, math.ceil(len(self.categories) / 40))
            return [(float(i), str(c)) for i, c in enumerate(self.categories) if i % every == 0]
        lo, hi = sorted((self.lo, self.hi))
        if self.type == "log":
            return [(float(e), _fmt(10.0 ** e)) for e in range(math.ceil(lo), math.floor(hi) + 1)]
        return [(t, _fmt(t)) for t in nice_ticks(lo, hi)]


def _axis_name(ref: str, letter: str) -> str:
    """'x' -> 'xaxis', 'x2' -> 'xaxis2'."""
    return f"{letter}axis{ref[1:]}"


class _Plot:
    """The pixel frame of one subplot: the x and y axes and the plot area's box."""

    def __init__(self, x: _Axis, y: _Axis, box: tuple[float, float, float, float]):
        self.x, self.y = x, y
        left, top, right, bottom = box
        self.left = left + x.domain[0] * (right - left)
        self.right = left + x.domain[1] * (right - left)
        self.bottom = bottom - y.domain[0] * (bottom - top)
        self.top = bottom - y.domain[1] * (bottom - top)

    def px(self, pos: float) -> float:
        return self.left + self.x.to01(pos) * (self.right - self.left)

    def py(self, pos: float) -> float:
        return self.bottom - self.y.to01(pos) * (self.bottom - self.top)


def _color(value, i: int, default: str):
    if isinstance(value, (list, tuple)):
        return value[i % len(value)] if value else default
    return value or default


def _bars(trace: dict, plot: _Plot, slot: int, n_slots: int, gap: float) -> list[str]:
    marker = trace.get("marker") or {}
    name = trace.get("name") or ""
    group = 1.0 - gap
    width = group / n_slots
    out = []
    for i, (xv, yv) in enumerate(zip(trace.get("x") or [], trace.get("y") or [])):
        xp, yp = plot.x.position(xv), plot.y.position(yv)
        if xp is None or yp is None:
            continue
        x0 = xp - group / 2 + slot * width
        left, right = plot.px(x0), plot.px(x0 + width)
        base = plot.py(max(min(0.0, max(plot.y.lo, plot.y.hi)), min(plot.y.lo, plot.y.hi)))
        top = plot.py(yp)
        y0, h = min(base, top), abs(base - top)
        fill = _color(marker.get("color"), i, trace["_color"])
        tip = f"{name + ': ' if name else ''}{xv}: {float(yv):.4g}"
        out.append(f'<rect x="{min(left, right):.1f}" y="{y0:.1f}" width="{abs(right - left):.1f}"'
                   f' height="{h:.1f}" fill="{_esc(fill)}"><title>{_esc(tip)}</title></rect>')
    return out


def _scatter(trace: dict, plot: _Plot) -> list[str]:
    mode = trace.get("mode") or "lines+markers"
    line, marker = trace.get("line") or {}, trace.get("marker") or {}
    color = line.get("color") or (marker.get("color") if isinstance(marker.get("color"), str)
                                  else None) or trace["_color"]
    opacity = trace.get("opacity", 1)
    name = trace.get("name") or ""
    pts = [(plot.x.position(xv), plot.y.position(yv), xv, yv)
           for xv, yv in zip(trace.get("x") or [], trace.get("y") or [])]
    out = [f'<g opacity="{opacity:g}">']
    if "lines" in mode:
        run: list[str] = []
        for xp, yp, _, _ in pts + [(None, None, None, None)]:
            if xp is None or yp is None:
                if len(run) > 1:
                    out.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{_esc(color)}"'
                               f' stroke-width="{line.get("width", 2):g}"{_dash(line)}/>')
                run = []
            else:
                run.append(f"{plot.px(xp):.1f},{plot.py(yp):.1f}")
    err = (trace.get("error_y") or {}).get("array")
    if err is not None:
        for (xp, _, _, yv), e in zip(pts, err):
            if xp is None or yv is None or e is None:
                continue
            lo, hi = plot.y.position(float(yv) - float(e)), plot.y.position(float(yv) + float(e))
            if lo is None or hi is None:
                continue
            x = plot.px(xp)
            out.append(f'<path d="M{x:.1f},{plot.py(lo):.1f}V{plot.py(hi):.1f}M{x - 4:.1f},'
                       f'{plot.py(lo):.1f}h8M{x - 4:.1f},{plot.py(hi):.1f}h8" stroke="{_esc(color)}"'
                       ' stroke-width="1.5" fill="none"/>')
    if "markers" in mode:
        r = float(marker.get("size", 6)) / 2
        edge = marker.get("line") or {}
        for i, (xp, yp, xv, yv) in enumerate(pts):
            if xp is None or yp is None:
                continue
            fill = _color(marker.get("color"), i, color)
            stroke = (f' stroke="{_esc(edge["color"])}" stroke-width="{edge.get("width", 1):g}"'
                      if edge.get("color") else "")
            tip = f"{name + ': ' if name else ''}{xv}, {float(yv):.4g}"
            out.append(f'<circle cx="{plot.px(xp):.1f}" cy="{plot.py(yp):.1f}" r="{r:g}" '
                       f'fill="{_esc(fill)}"{stroke}><title>{_esc(tip)}</title></circle>')
    out.append("</g>")
    return out


def _axes_svg(plot: _Plot, xspec: dict, yspec: dict) -> list[str]:
    out = []
    for pos, label in plot.y.ticks():                               # y: grid lines and labels
        y = plot.py(pos)
        out.append(f'<line x1="{plot.left:.1f}" x2="{plot.right:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="{GRID}" stroke-width="{2 if pos == 0 else 1}"/>')
        out.append(_text(plot.left - 6, y + 4, label, size=11, anchor="end", color=MUTED))
    angle = xspec.get("tickangle")
    ticks = plot.x.ticks()
    slot = (plot.right - plot.left) / max(len(ticks), 1)
    if angle in (None, "auto") and any(_width(lbl, 11) > slot * 0.95 for _, lbl in ticks):
        angle = -45
    for pos, label in ticks:                                        # x: ticks below the plot
        x = plot.px(pos)
        if plot.x.type != "category":
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{plot.top:.1f}" y2="{plot.bottom:.1f}"'
                       f' stroke="{GRID}"/>')
        if angle:
            out.append(_text(x + 4, plot.bottom + 12, label, size=11, anchor="end", color=MUTED,
                             rotate=float(angle)))
        else:
            out.append(_text(x, plot.bottom + 16, label, size=11, anchor="middle", color=MUTED))
    depth = max((_width(lbl, 11) for _, lbl in ticks), default=0)
    depth = depth * abs(math.sin(math.radians(float(angle)))) + 14 if angle else 18
    xtitle, ytitle = _title(xspec.get("title")), _title(yspec.get("title"))
    mid_x, mid_y = (plot.left + plot.right) / 2, (plot.top + plot.bottom) / 2
    if xtitle:
        out.append(_text(mid_x, plot.bottom + depth + 16, xtitle, size=13, anchor="middle"))
    if ytitle:
        width = max((_width(lbl, 11) for _, lbl in plot.y.ticks()), default=0)
        x = plot.left - width - 18
        out.append(_text(x, mid_y, ytitle, size=13, anchor="middle", rotate=-90))
    return out


def _legend(traces: list[dict], right: float, y: float) -> list[str]:
    items = [t for t in traces if t.get("showlegend", True) is not False and t.get("name")]
    if len(items) < 2:
        return []
    out, x = [], right
    for t in reversed(items):
        name = str(t["name"])
        x -= _width(name, 12) + 34
        color = t["_color"]
        if t["type"] == "bar":
            c = (t.get("marker") or {}).get("color")
            color = c if isinstance(c, str) else color
            out.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="18" height="10" fill="{_esc(color)}"/>')
        else:
            out.append(f'<line x1="{x:.1f}" x2="{x + 18:.1f}" y1="{y - 4:.1f}" y2="{y - 4:.1f}" '
                       f'stroke="{_esc(color)}" stroke-width="2"/>')
        out.append(_text(x + 24, y, name, size=12))
    return out


def render(fig, *, width: int = 900) -> str:
    """The figure as one `<svg>` element (a string), `width` pixels wide at 100 % zoom and
    scaling with its container; `fig` is a plotly Figure (or its `to_plotly_json()` dict)."""
    spec = fig if isinstance(fig, dict) else fig.to_plotly_json()
    layout = spec.get("layout") or {}
    traces = [dict(t) for t in spec.get("data") or []]
    for i, t in enumerate(traces):
        t.setdefault("type", "scatter")
        if t["type"] not in DRAWN:
            raise ValueError(f"the static renderer draws {' and '.join(DRAWN)} traces, not "
                             f"{t['type']!r} (trace {i}): show this figure with plotly instead")
        t["_color"] = DEFAULT_COLORS[i % len(DEFAULT_COLORS)]
    W, H = float(layout.get("width") or width), float(layout.get("height") or 450)
    m = {"l": 80, "r": 80, "t": 100, "b": 80, **(layout.get("margin") or {})}
    box = [m["l"], m["t"], W - m["r"], H - m["b"]]

    # the axes, from the traces drawn on each
    refs = sorted({(t.get("xaxis", "x"), t.get("yaxis", "y")) for t in traces}) or [("x", "y")]
    axes = {}
    for letter, k in (("x", 0), ("y", 1)):
        for ref in {r[k] for r in refs}:
            on = [t for t in traces if t.get(f"{letter}axis", letter) == ref]
            values = [v for t in on for v in (t.get(letter) or [])]
            if letter == "y":
                values += [float(v) + s * float(e) for t in on
                           for v, e in zip(t.get("y") or [], (t.get("error_y") or {}).get("array") or [])
                           if v is not None and e is not None for s in (-1, 1)]
            bars = letter == "y" and any(t["type"] == "bar" for t in on)
            axes[ref] = _Axis(layout.get(_axis_name(ref, letter)) or {}, values, bars)
    # room for rotated category labels below the plot (plotly's automargin)
    for xref, _ in refs:
        ax = axes[xref]
        if ax.type == "category" and ax.categories:
            longest = max(_width(c, 11) for c in ax.categories)
            need = longest * 0.71 + 14 + (24 if _title(ax.spec.get("title")) else 0)
            box[3] = min(box[3], H - max(m["b"], need + 8))
    plots = {ref: _Plot(axes[ref[0]], axes[ref[1]], tuple(box)) for ref in refs}

    body = [f'<rect width="{W:g}" height="{H:g}" fill="white"/>']
    for ref, plot in plots.items():
        body += _axes_svg(plot, axes[ref[0]].spec, axes[ref[1]].spec)
    gap = float(layout.get("bargap", 0.2))
    for ref, plot in plots.items():
        bars = [t for t in traces if t["type"] == "bar" and
                (t.get("xaxis", "x"), t.get("yaxis", "y")) == ref]
        grouped = layout.get("barmode", "group") == "group"
        for t in traces:
            if (t.get("xaxis", "x"), t.get("yaxis", "y")) != ref or t.get("visible") is False:
                continue
            if t["type"] == "bar":
                slot = bars.index(t) if grouped else 0
                body += _bars(t, plot, slot, len(bars) if grouped else 1, gap)
            else:
                body += _scatter(t, plot)
    for note in layout.get("annotations") or []:                  # subplot titles and the like
        x = box[0] + float(note.get("x", 0.5)) * (box[2] - box[0])
        y = box[3] - float(note.get("y", 1.0)) * (box[3] - box[1])
        anchor = {"left": "start", "right": "end"}.get(note.get("xanchor"), "middle")
        dy = -6 if note.get("yanchor", "bottom") == "bottom" else 12
        size = (note.get("font") or {}).get("size", 13)
        body.append(_text(x, y + dy, note.get("text", ""), size=size, anchor=anchor))
    title = _title(layout.get("title"))
    if title:
        body.append(_text(m["l"], 26, title, size=16))
    titled = any(float(n.get("y", 0)) >= 1 for n in layout.get("annotations") or [])
    body += _legend(traces, box[2], box[1] - (30 if titled else 10))   # above subplot titles
    label = _esc(title or "figure")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W:g} {H:g}" width="100%" '
            f'style="max-width:{W:g}px" font-family="{FONT}" role="img" aria-label="{label}">'
            + "".join(body) + "</svg>")


class image:
    """`lk.svg.image(fig)`: the figure shown as an SVG image by any notebook front end (the
    last expression of a cell), for where plotly's JavaScript cannot run."""

    def __init__(self, fig):
        self.svg = render(fig)

    def _repr_svg_(self) -> str:
        return self.svg
