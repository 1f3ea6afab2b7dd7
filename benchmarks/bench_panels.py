"""Redraw time of a panel under each renderer: the explorer's 20 bars after a knob move.

    .venv/bin/python benchmarks/bench_panels.py            # or --quick, --threads 1, --json F

A redraw is what moving a knob costs in the kernel: `panel.top_p.value = v` runs the panel's
callback (the knobs on the cached distribution, a fresh `viz.explorer_figure`, then the
renderer). Rows, all timed in the same interleaved rounds (`labkit.metrics.interleaved`; the
order rotates every round):

* **static**: the explorer under `lk.widgets.use("static")` (the figure drawn by `labkit.svg`
  into an `ipywidgets.HTML`). Budget: 50 ms (issue 14).
* **plotly**: the same panel under `use("plotly")`: the fresh figure's traces copied into the
  `FigureWidget` (the kernel's side; the browser then redraws). The baseline of the ratio.
* **svg.render alone**, and **matplotlib PNG**: the same 20-bar chart (two bar series, labels
  rotated, title, legend) drawn by matplotlib into a PNG for an `ipywidgets.Image`, the other
  renderer the issue allowed; reported only if matplotlib is importable (it is not a labkit
  dependency: `pip install matplotlib` to see this row).

The ratio is the median over rounds of time(row) / time(plotly) in that round. The script exits
with status 1 if the static redraw misses its budget. Front-end time (the browser drawing the
SVG or plotly.js redrawing) is not measured here; tests/ui checks that both redraw.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys

BUDGET_MS = 50.0
PROMPT = "The capital of France is"


def matplotlib_png(labels, before, after):
    """The explorer's chart as a PNG from matplotlib (None if matplotlib is not installed)."""
    try:
        import matplotlib
        matplotlib.use("agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None

    def draw():
        fig, ax = plt.subplots(figsize=(9, 3.8), dpi=100)
        x = list(range(len(labels)))
        ax.bar([i - 0.2 for i in x], before, 0.4, color="#9aa5b1", label="model")
        ax.bar([i + 0.2 for i in x], after, 0.4, color="#d9480f", label="after the knobs")
        ax.set_xticks(x, labels, rotation=45, ha="right")
        ax.set_ylabel("probability")
        ax.set_title("next-token distribution: before and after the knobs")
        ax.legend()
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        return buf.getvalue()
    return draw


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch threads")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args()
    import torch

    import labkit as lk
    from labkit import metrics, svg, viz

    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (10 if args.quick else 30)
    lm = lk.load()
    panels = {}
    for name in ("static", "plotly"):
        lk.widgets.use(name)
        panels[name] = lk.widgets.Explorer(lm, PROMPT, k=20)
    lk.widgets.use("auto")
    assert panels["static"].renderer == "static" and panels["plotly"].renderer == "plotly"

    def knob(panel):
        values = iter([0.3, 0.9] * (repeats + 2))
        return lambda: setattr(panel.top_p, "value", next(values))

    fig = viz.explorer_figure(panels["static"].result.before, panels["static"].result.after, k=20)
    labels, before, after = viz.bars_data(panels["static"].result.before,
                                          panels["static"].result.after, 20)
    rows = {"static": knob(panels["static"]), "plotly": knob(panels["plotly"]),
            "svg.render alone": lambda: svg.render(fig)}
    png = matplotlib_png(labels, before, after)
    if png is not None:
        rows["matplotlib PNG"] = png
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}; "
          f"{repeats} rounds; the explorer's {len(labels)} bars × 2 series")
    times = metrics.interleaved(rows, repeats)
    for name in ("static", "plotly"):
        assert panels[name].error.value == "", panels[name].error.value
    results = {}
    print(f"{'redraw':<20}{'median ms':>10}{'× plotly':>10}{'budget':>10}")
    for name, ts in times.items():
        ms = statistics.median(ts) * 1e3
        ratio = statistics.median(t / p for t, p in zip(ts, times["plotly"]))
        budget = BUDGET_MS if name == "static" else None
        passed = budget is None or ms <= budget
        results[name] = {"ms": ms, "ratio_to_plotly": ratio, "budget_ms": budget,
                         "passed": passed}
        shown = f"{budget:>7.0f} ms" if budget else f"{'-':>10}"
        print(f"{name:<20}{ms:>10.1f}{ratio:>9.2f}×{shown}  {'' if passed else 'OVER'}")
    if png is None:
        print("matplotlib PNG: not measured (matplotlib is not installed)")
    results["svg_bytes"] = len(svg.render(fig))
    print(f"the SVG of this chart: {results['svg_bytes'] / 1e3:.1f} kB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0 if results["static"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
