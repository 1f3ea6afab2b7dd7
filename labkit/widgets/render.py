"""Which renderer draws the panels: plotly's `FigureWidget`, or the static one (core widgets only).

    lk.widgets.use("static")   # panels made after this draw an SVG picture in an ipywidgets.HTML
    lk.widgets.use("plotly")   # panels draw plotly's FigureWidget (zoom, hover)
    lk.widgets.use("auto")     # the default: static on Colab and in VS Code, plotly elsewhere
    LABKIT_PANELS=static jupyter lab        # the same choice from the environment

Why two: plotly's `FigureWidget` is a *custom* widget (an anywidget since plotly 6), and custom
widgets have a long public record of rendering nothing on Colab (googlecolab/
colab-cdn-widget-manager#51, colabtools#5889) and in VS Code (plotly.py#5027, anywidget#684): a
learner there would see sliders that move nothing. The static renderer draws the same figure
with `labkit.svg` into an `ipywidgets.HTML`, a core widget, which every front end that shows
ipywidgets at all can show. A panel's `.result`, its controls and its error line are the same
under both.

`"auto"` picks static when

* `google.colab` is imported (Colab's runtime imports it at start-up);
* the kernel runs under VS Code: its Jupyter extension starts kernels with VS Code's
  environment, which has `VSCODE_PID` (or `VSCODE_CWD`; holoviz/panel#5200 found WSL kernels
  with only the latter). A kernel VS Code merely connects to (a remote Jupyter server) cannot
  be told apart from JupyterLab: set `LABKIT_PANELS=static` for it, or call `use("static")`;
* plotly's FigureWidget cannot be built here (e.g. anywidget missing);

and plotly otherwise. `why()` says which rule decided.

`use("static")` also shows the plain figures (`lk.viz.*` as a cell's value) as SVG images
(plotly's default renderer becomes labkit's "labkit_svg"): the setting for a front end where
nothing else works. `$LABKIT_PANELS` and automatic static change the panels only and leave
plain figures to plotly, whose own renderer works on Colab (plotly picks its "colab" renderer
there) and in VS Code. `use("plotly")` or `use("auto")` gives them back to plotly's renderer.

The choice is read when a panel is made: a panel keeps its renderer, `use` affects later ones.
"""
from __future__ import annotations

import os
import sys

CHOICES = ("auto", "static", "plotly")
ENV = "LABKIT_PANELS"
FIGURES = "labkit_svg"             # the name of labkit's plotly renderer (plain figures as SVG)

_chosen: str | None = None         # set by use(); None: the environment's, else "auto"
_figures_before: str | None = None  # plotly's default renderer before use("static")


def _check(name, where: str) -> str:
    if name not in CHOICES:
        raise ValueError(f"{where}={name!r} is not a panel renderer: choose one of "
                         f"{', '.join(repr(c) for c in CHOICES)}")
    return name


def chosen() -> str:
    """What was asked for: `use(...)`'s argument, else $LABKIT_PANELS, else "auto"."""
    if _chosen is not None:
        return _chosen
    return _check(os.environ.get(ENV) or "auto", f"${ENV}")


def _figurewidget_ok() -> bool:
    try:
        import plotly.graph_objects as go
        go.FigureWidget()
    except Exception:
        return False
    return True


def why() -> tuple[str, str]:
    """(the renderer a new panel gets: "static" or "plotly", the reason, in words)."""
    asked = chosen()
    if asked != "auto":
        source = "lk.widgets.use" if _chosen is not None else f"${ENV}"
        return asked, f"{source}({asked!r})"
    if "google.colab" in sys.modules:
        return "static", "Colab (google.colab is imported)"
    if os.environ.get("VSCODE_PID") or os.environ.get("VSCODE_CWD"):
        return "static", "VS Code (the kernel's environment has VSCODE_PID or VSCODE_CWD)"
    if not _figurewidget_ok():
        return "static", "plotly's FigureWidget cannot be built here (is anywidget installed?)"
    return "plotly", "JupyterLab, Notebook or Binder: plotly's FigureWidget"


def current() -> str:
    """The renderer a panel made now gets: "static" or "plotly"."""
    return why()[0]


class _SvgRenderer:
    """A plotly renderer (`plotly.io.renderers`) that shows a figure as labkit's SVG image."""

    def to_mimebundle(self, fig_dict):
        from .. import svg
        return {"image/svg+xml": svg.render(fig_dict)}


def _plain_figures(static: bool) -> None:
    """Plain figures as SVG images (static) or back to plotly's renderer."""
    global _figures_before
    import plotly.io as pio
    from plotly.io._base_renderers import MimetypeRenderer

    if static:
        if FIGURES not in pio.renderers:
            pio.renderers[FIGURES] = type("LabkitSvg", (MimetypeRenderer,),
                                          {"to_mimebundle": _SvgRenderer.to_mimebundle})()
        if pio.renderers.default != FIGURES:
            _figures_before = pio.renderers.default
            pio.renderers.default = FIGURES
    elif _figures_before is not None and pio.renderers.default == FIGURES:
        pio.renderers.default, _figures_before = _figures_before, None


def use(name: str) -> str:
    """Choose the panels' renderer: "static", "plotly" or "auto" (see the module doc); returns
    the renderer new panels get. "static" also shows plain figures as SVG images."""
    global _chosen
    _chosen = _check(name, "use")
    _plain_figures(name == "static")
    return current()
