"""`Panel`: the one idiom every panel of the lab follows, and `guarded`, its error line.

A panel is the third of DESIGN.md's three layers: (1) a pure function, callable without
widgets (`explore`, `pool.restrict`, `steer.boost`, `prompting.score_task`, `bayes.tilt`);
(2) a figure factory in `labkit.viz`; (3) a thin `ipywidgets.VBox` subclass that calls (1)
when a control moves and redraws (2) in place. The base class holds what they share:

* `result` -- the last result of the pure function (kept when a callback fails);
* `error` -- a `W.HTML` inside the panel: a callback's exception is shown there in red and
  cleared by the next success (`guarded`), never lost in the kernel log;
* `readout` -- a `W.HTML` line under the figure (`summary(result)`);
* `fig` -- a `go.FigureWidget`. Drawing happens in one place, `_draw`: it builds a fresh
  figure with the subclass's `figure(result)` (a `viz` factory) and copies its traces into
  `fig` inside `fig.batch_update()` (one message to the browser). Where FigureWidget is
  unavailable (no anywidget), `fig` is a plain figure shown, and redrawn, in an `Output`.
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

Left out on purpose: the second renderer (core widgets only -- an `Image` or `HTML` chart --
for Colab and VS Code), chosen by `lk.widgets.use("static" | "plotly")`, comes with a later
issue; `_view` (what is shown) and `_draw` (how it is updated) are the two methods it changes.
"""
from __future__ import annotations

import html

import ipywidgets as W

from .. import viz

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
        self.fig, self._shown = self._view(self.figure(self.result))
        self.children = [*rows, self.error, self._shown, self.readout]
        self.readout.value = self.summary(self.result)

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

    # --- drawing: the one place (a second renderer changes these two methods) ---------------

    def _view(self, figure):
        """(fig, the widget that shows it): a FigureWidget shows itself; without one (e.g. no
        anywidget) an Output shows the static figure."""
        try:
            import plotly.graph_objects as go
            live = go.FigureWidget(figure)
        except Exception:
            from IPython.display import display

            out = W.Output()
            with out:
                display(figure)
            return figure, out
        return live, live

    def _draw(self) -> None:
        fresh = self.figure(self.result)
        if self._shown is self.fig:                              # a live FigureWidget
            with self.fig.batch_update():
                if len(self.fig.data) == len(fresh.data):
                    for trace, new in zip(self.fig.data, fresh.data):
                        trace.update({key: value for key, value in new.to_plotly_json().items()
                                      if key not in ("type", "uid")})
                else:                                            # the number of series changed
                    self.fig.data = ()
                    self.fig.add_traces(fresh.data)
        else:                                                    # static: show the new figure
            from IPython.display import display

            self.fig = fresh
            self._shown.clear_output(wait=True)
            with self._shown:
                display(fresh)
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
