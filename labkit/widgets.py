"""Interactive panels: move a knob, watch the next-token distribution reshape.

Three layers, so that each can be used (and tested) without the ones above it:

1. a pure function -- `explore(dist, temperature, top_k, top_p)` -> `Explored`, the
   distribution before and after the knobs with the numbers the panel reads out;
2. a figure factory -- `labkit.viz.explorer_figure` (plotly, never shown here);
3. a thin panel -- `Explorer`, whose callbacks call layer 1 and update the traces of a
   `go.FigureWidget` inside `fig.batch_update()`.

The model is called only when the prompt changes (the prompt box has
`continuous_update=False`: on Enter or when it loses focus). The knob sliders only
re-apply controls to the cached logits, so they update live at no model cost.
A callback's error (an empty prompt, say) is shown in red inside the panel, never lost;
the panel keeps its last good result in `panel.result`.

    panel = lk.widgets.explorer(lm, "The capital of France is")
    panel                      # last expression of a cell: displays the panel
    panel.top_p.value = 0.5    # what dragging the slider does; panel.result follows

Works with ipywidgets 7.7 (Colab; there, run
`from google.colab import output; output.enable_custom_widget_manager()` once for plotly's
FigureWidget) and 8; with any `LM`, the toy world's included.

Left out on purpose: min-p and other knobs (notebook 06 builds its own panels from the
same layers), and multi-step generation in the panel (`lk.generate(..., trace=True)`).
"""
from __future__ import annotations

import html
from dataclasses import dataclass

import ipywidgets as W
import torch

from . import viz
from .controls import knobs
from .dist import Distribution, next_token

# --- layer 1: the pure function --------------------------------------------------------------


@dataclass
class Explored:
    """A distribution before and after the three knobs, with the numbers worth reading."""

    before: Distribution          # the model's own next-token distribution
    after: Distribution           # after temperature, then top-k, then top-p
    controls: list                # the LogitsProcessors that were applied
    entropy_before: float         # nats
    entropy_after: float          # nats
    support: int                  # tokens the knobs keep (not masked to -inf)
    mass_kept: float              # the model's probability of the kept tokens

    def summary(self) -> str:
        """One line: entropy before → after, tokens kept, probability mass kept."""
        return (f"entropy {self.entropy_before:.2f} → {self.entropy_after:.2f} nats · "
                f"tokens kept {self.support:,} of {len(self.before):,} · "
                f"probability mass kept {self.mass_kept:.3f}")


def explore(dist: Distribution, temperature: float = 1.0, top_k: int | None = None,
            top_p: float = 1.0) -> Explored:
    """Apply the knobs (`top_k` None or 0 is off, `top_p` 1 is off) to `dist`; no model call."""
    controls = knobs(temperature, top_k or None, top_p)
    after = dist.apply(*controls)
    kept = torch.isfinite(after.logits)       # vocab; not `probs > 0`: a low temperature
                                              # underflows tail probabilities it never removes
    return Explored(before=dist, after=after, controls=controls,
                    entropy_before=dist.entropy(), entropy_after=after.entropy(),
                    support=int(kept.sum()), mass_kept=float(dist.probs[kept].sum()))


# --- layer 3: the panel ------------------------------------------------------------------------


def guarded(fn, error: W.HTML) -> bool:
    """Run a panel callback's work `fn()`; its error is shown in red in the `error` widget,
    where the learner sees it (a callback's exception would otherwise vanish), and cleared
    on success. Every panel of the lab shows its errors through this. True if `fn` succeeded."""
    try:
        fn()
    except Exception as e:
        error.value = (f'<div style="color:#c92a2a">⚠ {type(e).__name__}: '
                       f'{html.escape(str(e))}</div>')
        return False
    error.value = ""
    return True



class Explorer(W.VBox):
    """Prompt box, temperature / top-k / top-p sliders, the top-k bar chart before and after
    the knobs, and a readout. `result` is the last `Explored`; `error` shows callback errors."""

    def __init__(self, lm, prompt: str = "The capital of France is", k: int = 20, *,
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0):
        super().__init__()
        self.lm, self.k = lm, k
        self.dist = next_token(lm, prompt)          # an invalid first prompt raises here
        self.result = explore(self.dist, temperature, top_k, top_p)
        style = {"description_width": "90px"}
        wide = W.Layout(width="95%")
        self.prompt = W.Text(value=prompt, description="prompt", continuous_update=False,
                             style=style, layout=wide)
        self.temperature = W.FloatSlider(value=temperature, min=0.05, max=3.0, step=0.05,
                                         description="temperature", readout_format=".2f",
                                         style=style, layout=wide)
        self.top_k = W.IntSlider(value=top_k or 0, min=0, max=min(100, len(self.dist)),
                                 description="top-k (0 off)", style=style, layout=wide)
        self.top_p = W.FloatSlider(value=top_p, min=0.01, max=1.0, step=0.01,
                                   description="top-p", readout_format=".2f",
                                   style=style, layout=wide)
        self.readout = W.HTML()
        self.error = W.HTML()
        self.fig, self._static = self._make_figure()
        self.children = [self.prompt, self.temperature, self.top_k, self.top_p,
                         self.error, self.fig if self._static is None else self._static,
                         self.readout]
        self.prompt.observe(self._on_prompt, names="value")
        for slider in (self.temperature, self.top_k, self.top_p):
            slider.observe(self._on_knobs, names="value")
        self._draw()

    # what a test (or a learner's code) can call instead of typing and dragging
    def set_prompt(self, prompt: str) -> None:
        self.prompt.value = prompt

    def set_knobs(self, temperature: float | None = None, top_k: int | None = None,
                  top_p: float | None = None) -> None:
        for slider, value in ((self.temperature, temperature), (self.top_k, top_k),
                              (self.top_p, top_p)):
            if value is not None:
                slider.value = value

    # callbacks: thin, and every error lands in the panel
    def _on_prompt(self, change=None) -> None:
        def update():
            self.dist = next_token(self.lm, self.prompt.value)         # the one model call
            self._recompute()
        self._guard(update)

    def _on_knobs(self, change=None) -> None:
        self._guard(self._recompute)

    def _recompute(self) -> None:
        self.result = explore(self.dist, self.temperature.value, self.top_k.value,
                              self.top_p.value)
        self._draw()

    def _guard(self, fn) -> None:
        guarded(fn, self.error)

    # drawing
    def _make_figure(self):
        """A plotly FigureWidget; where it is unavailable, an Output showing a static figure."""
        fig = viz.explorer_figure(self.result.before, self.result.after, self.k)
        try:
            import plotly.graph_objects as go
            return go.FigureWidget(fig), None
        except Exception:  # e.g. no anywidget: redraw a static figure in an Output instead
            return fig, W.Output()

    def _draw(self) -> None:
        r = self.result
        labels, p_before, p_after = viz.bars_data(r.before, r.after, self.k)
        if self._static is None:
            with self.fig.batch_update():
                self.fig.data[0].x, self.fig.data[0].y = labels, p_before
                self.fig.data[1].x, self.fig.data[1].y = labels, p_after
        else:
            from IPython.display import display

            self.fig = viz.explorer_figure(r.before, r.after, self.k)
            self._static.clear_output(wait=True)
            with self._static:
                display(self.fig)
        controls = ", ".join(map(repr, r.controls)) or "none (the model's own distribution)"
        self.readout.value = (f"<b>knobs:</b> {html.escape(controls)}<br>"
                              f"{html.escape(r.summary())}")


def explorer(lm, prompt: str = "The capital of France is", k: int = 20, **knob_values) -> Explorer:
    """The knob explorer panel for `lm` (any `LM`); display it as the last expression of a cell.

    `knob_values` sets the starting temperature, top_k (0 off) and top_p."""
    return Explorer(lm, prompt, k, **knob_values)
