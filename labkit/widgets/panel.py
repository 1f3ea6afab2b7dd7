"""`Panel`: the one idiom every panel of the lab follows, and `guarded`, its error line.

A panel is the third of DESIGN.md's three layers: (1) a pure function, callable without
widgets (`explore`, `pool.restrict`, `steer.boost`, `prompting.score_task`, `bayes.tilt`);
(2) a figure factory in `labkit.viz`; (3) a thin `ipywidgets.VBox` subclass that calls (1)
when a control moves and redraws (2) in place. The base class holds what they share:

* `result` -- the last result of the pure function (kept when a callback fails);
* `error` -- a `W.HTML` inside the panel: a callback's exception is shown there in red and
  cleared by the next success (`guarded`), never lost in the kernel log;
* `readout` -- a `W.HTML` line under the figure (`summary(result)`);
* `view` -- the widget that shows the figure, drawn by one of two renderers (`render.py`,
  chosen when the panel is made: `lk.widgets.use`): "plotly", a `go.FigureWidget` (then `fig`
  is that widget), or "static", an `ipywidgets.HTML` holding the figure as an SVG picture
  (`labkit.svg`; then `fig` is the last plotly figure drawn). Drawing happens in one place,
  `_draw`: it builds a fresh figure with the subclass's `figure(result)` (a `viz` factory) and
  either copies its traces into the FigureWidget inside `fig.batch_update()` (one message to
  the browser) or sets the HTML's value to its picture (`_show`). A renderer's error (a figure
  the static renderer cannot draw, say) is shown in `error`, like any callback's, from the
  first draw on;
* `refresh(fetch=None)` -- what every callback does: `fetch()` (the model call, for the one
  control that needs it: the prompt), then `compute()`, then draw; errors go to `error`.
* `watch(*controls, fetch=None)` -- `refresh` whenever one of `controls` changes value.

A subclass sets its controls as attributes, then calls `super().__init__(*rows)` (the rows of
controls, shown above the error line, the figure and the readout), then `watch`es them; it
defines `compute()` (layer 1 on the controls' values), `figure(result)` (layer 2) and,
optionally, `summary(result)`. Bad arguments raise from the constructor (the first
`compute`), as from any function; later errors land in `error`.

A panel is an ipywidgets container, so it nests: `W.VBox([a, b])`, `W.Tab(children=[a, b])`
(notebook 07's dashboard) -- its callbacks are its own and keep working there.

Left out on purpose: switching a panel's renderer after it is made (make a new panel), and
plotly's zoom and hover under the static renderer (an SVG tooltip shows each bar's value).
"""
from __future__ import annotations

import html

import ipywidgets as W

from .. import svg, viz
from . import render

STYLE = {"description_width": "110px"}      # room for "written so far", "temperature"
WIDE = dict(width="95%")                    # a control spans the panel (a fresh Layout each)


def guarded(fn, error: W.HTML) -> bool:
    """Run a panel callback's work `fn()`; its error is shown in red in the `error` widget,
    where the learner sees it (a callback's exception would otherwise vanish), and cleared
    on success. True if `fn` succeeded."""
    try:
        fn()
    except Exception as e:
        error.value = (f'<div style="color:{viz.ERROR_COLOR}">⚠ {type(e).__name__}: '
                       f'{html.escape(str(e))}</div>')
        return False
    error.value = ""
    return True


class Panel(W.VBox):
    """Controls (rows) above an error line, a live figure and a readout; see the module doc.
    Subclasses define `compute()`, `figure(result)` and optionally `summary(result)`."""

    def __init__(self, *rows, **box):
        super().__init__(**box)
        self.error, self.readout = W.HTML(), W.HTML()
        self.result = self.compute()                   # bad arguments raise here
        self.renderer = render.current()
        self.fig, self.view = self._empty_view()
        fresh = self.figure(self.result)               # ... and bad arguments to the figure
        guarded(lambda: self._show(fresh), self.error)     # a renderer's error shows in it
        self.children = [*rows, self.error, self.view, self.readout]

    # --- what a subclass defines -----------------------------------------------------------

    def compute(self):
        """Layer 1 on the controls' current values -> the new `result`."""
        raise NotImplementedError

    def figure(self, result):
        """Layer 2: a fresh plotly figure of `result` (a `viz` factory)."""
        raise NotImplementedError

    def summary(self, result) -> str:
        """The readout under the figure (HTML; escape any text)."""
        return ""

    # --- callbacks ---------------------------------------------------------------------------

    def refresh(self, fetch=None) -> bool:
        """Run `fetch()` if given (a model call), recompute `result` and redraw. An error is
        shown in `error` and the last good `result` kept. True on success."""
        def work():
            if fetch is not None:
                fetch()
            self.result = self.compute()
            self._draw()
        return guarded(work, self.error)

    def watch(self, *controls, fetch=None) -> None:
        """`refresh(fetch)` whenever one of `controls` changes value."""
        for control in controls:
            control.observe(lambda change: self.refresh(fetch), names="value")

    # --- drawing: the one place, under either renderer --------------------------------------

    def _empty_view(self):
        """(fig, view) before the first draw: an empty FigureWidget (plotly), or an empty HTML
        (static; also where a FigureWidget cannot be built, e.g. without anywidget)."""
        if self.renderer == "plotly":
            try:
                import plotly.graph_objects as go
                live = go.FigureWidget()
                return live, live
            except Exception:
                self.renderer = "static"
        return None, W.HTML(layout=W.Layout(width="100%"))

    def _draw(self) -> None:
        self._show(self.figure(self.result))

    def _show(self, fresh) -> None:
        """Draw the plotly figure `fresh` with the panel's renderer, then the readout."""
        if self.renderer == "static":
            self.view.value = svg.render(fresh)     # may raise: then fig and view stay as they were
            self.fig = fresh
        else:
            with self.fig.batch_update():
                if not self.fig.data:                                # the first draw
                    self.fig.update_layout(fresh.layout)
                if len(self.fig.data) == len(fresh.data):
                    for trace, new in zip(self.fig.data, fresh.data):
                        trace.update({key: value for key, value in new.to_plotly_json().items()
                                      if key not in ("type", "uid")})
                else:                                            # the number of series changed
                    self.fig.data = ()
                    self.fig.add_traces(fresh.data)
        self.readout.value = self.summary(self.result)


def text_box(value: str, description: str, **kw) -> W.Text:
    """A one-line Text box that sends its value on Enter or blur (continuous_update=False)."""
    return W.Text(value=value, description=description, continuous_update=False, style=STYLE,
                  layout=W.Layout(**WIDE), **kw)


def prompt_box(value: str) -> W.Textarea:
    """The prompt box: a Textarea (a few-shot prompt's newlines survive an edit in the
    browser, which a one-line Text box drops); sends on blur, so each edit is one model call."""
    return W.Textarea(value=value, description="prompt", rows=3, continuous_update=False,
                      style=STYLE, layout=W.Layout(**WIDE))
