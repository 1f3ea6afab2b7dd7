"""Interactive panels: move a control, watch a distribution reshape -- every panel of the lab.

Each panel has three layers, so that each can be used (and tested) without the ones above:
a pure function (callable without widgets) -> a figure factory in `labkit.viz` (returns a
plotly figure, never shows it) -> a thin panel, an `ipywidgets.VBox` subclass that calls the
pure function when a control moves and updates its figure's traces inside
`fig.batch_update()`. One idiom (`Panel`, in panel.py): the controls are attributes,
`panel.result` is the last result of the pure function, `panel.error` (inside the panel)
shows a callback's error in red and keeps the last result, and a control that calls the
model sends its value on Enter or release (`continuous_update=False`), only when it changes.

| panel | notebook | pure function | figure |
|---|---|---|---|
| `Explorer(lm, prompt)` (`explorer(...)`) | 00 | `explore` | `viz.explorer_figure` |
| `SequencePanel(world, make_dists, slider)` | 01 | the caller's `make_dists` | `viz.sequences` |
| `LabelPanel(lm, task)` | 02 | `prompting.score_task` | `viz.label_bars` |
| `AdapterPanel(tuned, prompt)` | 03 | `adapter_step` (the adapter's update × a scale) | `viz.bars` |
| `PoolPanel(lm, prompt, options)` | 05 | `pool.restrict` | `viz.bars` |
| `StrengthPanel(lm, prompt, words)` | 06 | `steer.boost` | `viz.boosted` |
| `Dashboard(lm, prompt, choices)` | 07 | `dashboard_step` (`scoreboard.evaluate`) | `viz.overlay` |

A panel nests: `W.VBox([a, b])` or `W.Tab(children=[a, b])` (notebook 07's dashboard).

    panel = lk.widgets.Explorer(lm, "The capital of France is")
    panel                      # last expression of a cell: displays the panel
    panel.top_p.value = 0.5    # what dragging the slider does; panel.result follows

Two renderers draw every panel (render.py): plotly's `FigureWidget` (live: zoom, hover), or the
static one, core widgets only -- an `ipywidgets.HTML` holding the same figure as an SVG picture
(`labkit.svg`), which draws wherever ipywidgets does. It is chosen when a panel is made:

    lk.widgets.use("static")   # or "plotly", or "auto" (the default); LABKIT_PANELS=static too
    lk.widgets.why()           # ('static', 'Colab (google.colab is imported)')

"auto" is static on Colab and in VS Code (where custom widgets such as FigureWidget have a long
record of rendering nothing), plotly elsewhere. Works with ipywidgets 7.7 (Colab) and 8; on
Colab no custom-widget manager is needed.
"""
from .adapter_panel import AdapterPanel, Scaled, adapter_step
from .dashboard import Choice, Dashboard, Dashboarded, dashboard_step
from .knob_panel import Explored, Explorer, explore, explorer
from .label_panel import LabelPanel
from .overopt_panel import OveroptimisationPanel, overopt_point
from .panel import Panel, guarded
from .pool_panel import PoolPanel
from .render import use, why
from .sequence_panel import SequencePanel
from .strength_panel import StrengthPanel

__all__ = ["AdapterPanel", "Choice", "Dashboard", "Dashboarded", "Explored", "Explorer",
           "LabelPanel", "OveroptimisationPanel", "Panel", "PoolPanel", "Scaled", "SequencePanel",
           "StrengthPanel", "adapter_step", "dashboard_step", "explore", "explorer", "guarded",
           "overopt_point", "use", "why"]
