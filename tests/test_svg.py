"""labkit.svg, the static renderer's picture: the same content as the plotly figure (one shape
per bar or marker, at the right height, in the trace's colour; labels, titles, legend), every
figure a panel draws, and a clear error for what it does not draw."""
import re
import xml.etree.ElementTree as ET

import plotly.graph_objects as go
import pytest
import torch

from labkit import svg, toy, viz

NS = "{http://www.w3.org/2000/svg}"


def parse(picture: str):
    root = ET.fromstring(picture)
    assert root.tag == f"{NS}svg"
    return root


def bars_of(root):
    """The bars: rects with a tooltip (the background has none)."""
    return [r for r in root.iter(f"{NS}rect") if r.find(f"{NS}title") is not None]


def texts(root) -> list[str]:
    return [t.text for t in root.iter(f"{NS}text")]


def test_a_bar_chart_has_one_bar_per_value_in_proportion_and_in_its_colour():
    fig = viz.bars(torch.tensor([0.5, 0.3, 0.2]).log(), torch.tensor([0.8, 0.1, 0.1]).log(), k=3,
                   names=("model", "after"))
    root = parse(svg.render(fig))
    bars = bars_of(root)
    assert len(bars) == 6
    before, after = bars[:3], bars[3:]
    assert {b.get("fill") for b in before} == {viz.BEFORE_COLOR}
    assert {b.get("fill") for b in after} == {viz.AFTER_COLOR}
    heights = [float(b.get("height")) for b in bars]
    for group, probs in ((heights[:3], (0.5, 0.3, 0.2)), (heights[3:], (0.8, 0.1, 0.1))):
        ratios = [h / p for h, p in zip(group, probs)]
        assert max(ratios) - min(ratios) < 0.02 * max(ratios), ratios    # heights ∝ probability
    # the pairs sit side by side: each after bar right of its before bar, same width
    for b, a in zip(before, after):
        assert float(a.get("x")) == pytest.approx(float(b.get("x")) + float(b.get("width")), abs=0.2)
    words = texts(root)
    assert "model" in words and "after" in words                        # the legend
    assert "probability" in words and fig.layout.title.text in words
    assert before[0].find(f"{NS}title").text.startswith("model: ")      # the tooltip


def test_per_bar_colours_category_labels_and_an_escaped_token():
    fig = viz.label_bars(["<b>yes</b>", "no & maybe"], [0.9, 0.1], gold=0)
    picture = svg.render(fig)
    assert "<b>yes" not in picture and "&lt;b&gt;yes&lt;/b&gt;" in picture
    root = parse(picture)
    fills = [b.get("fill") for b in bars_of(root)]
    assert fills == [viz.AFTER_COLOR, viz.BEFORE_COLOR]
    assert "<b>yes</b>" in texts(root) and "no & maybe" in texts(root)
    ticks = [t for t in texts(root) if re.fullmatch(r"[0-9.]+", t or "")]
    assert ticks[0] == "0" and ticks[-1] == "1"                           # range=[0, 1]


def test_lines_markers_log_axis_and_error_bars():
    fig = viz.lines([0.1, 1, 10], {"a": [1, 2, 3], "b": [3, None, 1]}, log_x=True)
    root = parse(svg.render(fig))
    lines = list(root.iter(f"{NS}polyline"))
    assert len(lines) == 1           # "b" is broken by its None: two single points, no line
    assert len(list(root.iter(f"{NS}circle"))) == 5
    assert {"0.1", "1", "10"} <= set(texts(root))
    fig.data[0].error_y = dict(type="data", array=[0.5, 0.5, 0.5])
    assert len([p for p in parse(svg.render(fig)).iter(f"{NS}path")]) == 3


def test_every_panel_figure_draws():
    world = toy.make_world(vocab=("a", "b", "c"), length=3)
    d = torch.tensor([0.6, 0.3, 0.1]).log()
    points = [dict(label=f"β={b}", d=i * 0.5, proxy=float(i), gold=i - 0.3 * i * i,
                   samples=[("sun", 1.0, 0.5, 0.3), ("rain", 0.0, 0.1, 0.2)])
              for i, b in enumerate((0, 0.1, 1))]
    figures = [viz.explorer_figure(d, d, k=3), viz.boosted(d, d, k=3),
               viz.bars(d, k=3), viz.label_bars(["a", "b"], [0.4, 0.6]),
               viz.sequences(world, {"π": world.log_prob()}, k=5),
               viz.overoptimisation(points, selected=1),
               viz.loss_curves([{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}]),
               viz.tradeoff({"m": [{"x": 1, "y": 2}, {"x": 2, "y": 3}]}, "x", "y")]
    for fig in figures:
        picture = svg.render(fig)
        root = parse(picture)
        n_values = sum(len(t.y) for t in fig.data if t.type == "bar")
        assert len(bars_of(root)) == n_values, fig.layout.title.text
    over = parse(svg.render(figures[5]))
    assert "the selected policy's most likely texts" in texts(over)       # subplot titles


def test_what_it_does_not_draw_is_named():
    fig = go.Figure(go.Heatmap(z=[[1, 2]]))
    with pytest.raises(ValueError, match="bar and scatter traces, not 'heatmap' \\(trace 0\\)"):
        svg.render(fig)


def test_nice_ticks():
    assert svg.nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert svg.nice_ticks(0, 0.37) == [0, 0.1, 0.2, 0.3]
    assert svg.nice_ticks(-3, 12) == [0, 5, 10]


def test_image_displays_as_svg():
    fig = viz.label_bars(["a", "b"], [0.4, 0.6])
    assert svg.image(fig)._repr_svg_() == svg.render(fig)


def test_dashed_lines_stay_dashed():
    fig = go.Figure(go.Scatter(x=[0, 1, 2], y=[0, 1, 0], mode="lines", line=dict(dash="dash")))
    assert 'stroke-dasharray="6,4"' in svg.render(fig)
    fig.data[0].line.dash = None
    assert "stroke-dasharray" not in svg.render(fig)
