"""Real-browser tests: each notebook with widgets, run in JupyterLab, renders live panels.

nbval proves that the notebooks run; it cannot see a widget that fails to render, a plot
that never appears or a slider that does not move the chart. Here, per notebook in
`NOTEBOOKS` and per panel renderer (plotly's FigureWidget, and the static one, `labkit.svg`
in an ipywidgets.HTML: tests/ui/conftest.py serves a copy of each notebook for each), a
headless Chromium opens it in a private JupyterLab and

1. runs all cells (`notebook:run-all-cells`; the served copy ends one cell after the last
   panel, tests/ui/conftest.py) and waits on JupyterLab's own state: the kernel
   was seen busy, the run-all command has returned, the execution indicator reads idle;
2. asserts that no output of any cell is an error and that every code cell ran;
3. finds the panels (an output holding a control and a drawn figure: a plotly graph div, or
   a static SVG picture), at least as many as the notebook is known to have, each with drawn
   bars, and each drawn by the renderer under test; the control is an ipywidgets slider, or,
   for a notebook with `type_into`, a Text box;
4. in each panel, drives the control: moves the first slider one step with the keyboard
   (falls back on typing into its readout box), or types a new value into the named Text box
   and presses Enter; then asserts that the figure changed: under plotly the traces' y values
   in the graph div *and* the drawn SVG bars, under static the picture's SVG, differ before
   and after (the kernel callback ran and the browser re-drew), and the panel shows no error;
5. saves a PNG of the notebook's first panel to tests/ui/screenshots/<notebook>-<renderer>.png.

Notebook 00 also runs in Notebook 7's page (`jupyter notebook`), under both renderers. Adding
a notebook is one line in `NOTEBOOKS`. Two last tests run generated notebooks: one nests a
panel in a `Tab` inside a `VBox` (as notebook 07's dashboard does) and drives it; the other
has two sliders (one beside a plotly figure, one beside a static picture) and a Text box
wired to nothing and a failing cell, and checks that the same helpers catch all four.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

pytestmark = pytest.mark.ui


# the control that makes an output a panel (with a plotly figure beside it)
SLIDER = ".widget-slider .noUi-handle"
TEXT_BOX = ".widget-text input[type=text]"


@dataclass(frozen=True)
class Notebook:
    path: str                  # relative to notebooks/
    panels: int                # control + plotly panels the notebook displays (at least)
    # how a panel is driven: None, move its first slider; (label, text), type `text` into the
    # Text box whose description contains `label` and press Enter
    type_into: tuple[str, str] | None = None
    run_timeout_s: int = 240   # run-all in quick mode on a loaded 2-core machine

    @property
    def control(self) -> str:
        return TEXT_BOX if self.type_into else SLIDER


NOTEBOOKS = [
    Notebook("00_next_token_distribution.ipynb", panels=1),
    Notebook("01_conditioning_as_bayes.ipynb", panels=2),
    Notebook("02_prompting.ipynb", panels=1),
    # the adapter-scale slider: the cached adapter of nbval's run, else 24 LoRA steps first
    Notebook("03_supervised_fine_tuning.ipynb", panels=1),
    # the over-optimisation explorer (toy world): the RL runs before it are nbval's cached ones
    Notebook("04_rl_from_feedback.ipynb", panels=1, run_timeout_s=420),
    # the pool panel has Text boxes, no slider; the model's own (capitalised) labels move the
    # "after the pool" bars a lot (" neutral" beside " positive| negative" moves them < 1 %)
    Notebook("05_token_pool.ipynb", panels=1,
             type_into=("options", " Positive| Negative| Neutral")),
    Notebook("06_distribution_tweaking.ipynb", panels=1),
]

OPEN_TIMEOUT_MS = 120_000      # page load, JupyterLab start-up and kernel start
RENDER_TIMEOUT_MS = 60_000     # widget views appearing after the kernel is idle
UPDATE_TIMEOUT_MS = 60_000     # slider -> kernel callback -> figure redrawn

# --- JavaScript run in the page (JupyterLab exposes itself as window.jupyterapp) ---------------

JS_FIND_NOTEBOOK = """
(name) => {
  const app = window.jupyterapp;
  if (!app || !app.shell) return null;
  const w = [...app.shell.widgets('main')].find(w => w.context && w.context.path.endsWith(name));
  return w && w.content && w.sessionContext ? w.id : null;
}"""

# the notebook panel whose path ends with `name` (inlined: an evaluated string must be one function)
JS_NB = """[...window.jupyterapp.shell.widgets('main')]
  .find(w => w.context && w.context.path.endsWith(name))"""

JS_KERNEL_READY = """
(name) => {
  const nb = __NB__;
  const k = nb && nb.sessionContext.session && nb.sessionContext.session.kernel;
  return !!(nb && nb.content.widgets.length && k && k.status === 'idle');
}""".replace("__NB__", JS_NB)

JS_RUN_ALL = """
(name) => {
  const nb = __NB__;
  window.jupyterapp.shell.activateById(nb.id);
  window.__ui = {sawBusy: false, done: null};
  nb.sessionContext.statusChanged.connect((_, s) => { if (s === 'busy') window.__ui.sawBusy = true; });
  window.jupyterapp.commands.execute('notebook:run-all-cells').then(
    ok => { window.__ui.done = {ok: ok}; },
    err => { window.__ui.done = {error: String(err)}; });
}""".replace("__NB__", JS_NB)

JS_RUN_FINISHED = """
(name) => {
  const nb = __NB__;
  const ind = nb.node.querySelector('.jp-Notebook-ExecutionIndicator')
           || document.querySelector('.jp-Notebook-ExecutionIndicator');
  const idle = ind ? ind.getAttribute('data-status') === 'idle'
                   : nb.sessionContext.session.kernel.status === 'idle';
  return window.__ui.sawBusy && window.__ui.done !== null && idle
         && nb.sessionContext.session.kernel.status === 'idle';
}""".replace("__NB__", JS_NB)

JS_CELL_REPORT = """
(name) => {
  const nb = __NB__;
  const errors = [], notRun = [];
  nb.content.widgets.forEach((cell, i) => {
    if (cell.model.type !== 'code') return;
    if (cell.model.executionCount === null) notRun.push(i);
    const outs = cell.model.outputs;
    for (let j = 0; j < outs.length; j++) {
      const o = outs.get(j).toJSON();
      if (o.output_type === 'error')
        errors.push({cell: i, ename: o.ename, evalue: o.evalue,
                     traceback: (o.traceback || []).join('\\n').replace(/\\u001b\\[[0-9;]*m/g, '')});
    }
  });
  return {errors, notRun, done: window.__ui.done};
}""".replace("__NB__", JS_NB)

# the static renderer's pictures: the SVGs inside the panel's HTML widgets
STATIC_BARS = ".widget-html svg rect"
FIGURE_DRAWN = f".js-plotly-plot .trace.bars path, {STATIC_BARS}"

JS_PICTURE = """
  const plots = [...el.querySelectorAll('.js-plotly-plot')];
  const svgs = [...el.querySelectorAll('.widget-html svg')];
  const ys = (y) => y == null ? null : (y.bdata !== undefined ? y.bdata : Array.from(y));
  const data = JSON.stringify(plots.map(p => (p.data || []).map(t => ys(t.y))));
  const bars = JSON.stringify(plots.map(p => [...p.querySelectorAll('.trace.bars path')]
                                          .map(b => b.getAttribute('d'))));
  const pictures = JSON.stringify(svgs.map(s => s.outerHTML));"""

# the numbers behind a panel's figure(s): trace y values from the plotly graph div and its drawn
# SVG bar paths, or the static renderer's SVG pictures; the controls' values (slider readouts,
# Text boxes) and the panel's text (readout, error line)
JS_PANEL_STATE = """
(el) => {""" + JS_PICTURE + """
  return {
    data, bars, pictures,
    nPlotly: plots.length, nStatic: svgs.length,
    nBars: plots.reduce((n, p) => n + p.querySelectorAll('.trace.bars path').length, 0)
           + svgs.reduce((n, s) => n + s.querySelectorAll('rect title').length, 0),
    nTraces: plots.reduce((n, p) => n + (p.data || []).length, 0) + svgs.length,
    controls: [...el.querySelectorAll('.widget-readout, .widget-text input')]
                .map(c => c.tagName === 'INPUT' ? c.value : c.textContent.trim()),
    text: el.innerText,
  };
}"""

JS_PANELS_RENDERED = """
([n, control]) => {
  const panels = [...document.querySelectorAll('.jp-OutputArea-output')].filter(o =>
    o.querySelector(control) &&
    ([...o.querySelectorAll('.js-plotly-plot')].some(
       p => (p.data || []).length && p.querySelector('.trace.bars path'))
     || o.querySelector('.widget-html svg rect title')));
  return panels.length >= n;
}"""

# changed: every plotly figure's numbers *and* drawn bars, and every static picture
JS_CHANGED = """
([el, before]) => {""" + JS_PICTURE + """
  const plotly = !plots.length || (data !== before.data && bars !== before.bars);
  const still = !svgs.length || pictures !== before.pictures;
  return plotly && still && (plots.length + svgs.length) > 0;
}"""

JS_READOUT_CHANGED = """
([el, before]) => {
  const r = el.querySelector('.widget-slider .widget-readout');
  return r && r.textContent.trim() !== before;
}"""

WIDGET_ERRORS = ("Error displaying widget", "Failed to load model class", "Error rendering")


def _open_and_run(page, lab, path: str, timeout_s: int, app: str = "lab") -> dict:
    """Open `path` (under the served root) in JupyterLab (or Notebook 7, app="notebook"), run
    all cells, wait until the run is over (kernel seen busy, run-all returned, execution
    indicator idle); the cell report."""
    name = path                       # the served path: notebooks/ and notebooks-static/ differ
    page.goto(lab.url(path, app), timeout=OPEN_TIMEOUT_MS)
    page.wait_for_function(JS_FIND_NOTEBOOK, arg=name, timeout=OPEN_TIMEOUT_MS)
    page.wait_for_function(JS_KERNEL_READY, arg=name, timeout=OPEN_TIMEOUT_MS)
    page.evaluate(JS_RUN_ALL, name)
    try:
        page.wait_for_function(JS_RUN_FINISHED, arg=name, timeout=timeout_s * 1000, polling=500)
    except Exception as e:  # say where it stood: which cells ran, what failed, the server log
        state = page.evaluate(JS_CELL_REPORT, name)
        pytest.fail(f"{path}: run-all not finished within {timeout_s} s ({type(e).__name__}); "
                    f"cells not run yet: {state['notRun']}; errors: {state['errors']}\n"
                    f"page errors: {page.console_errors}\nserver log:\n{lab.log_tail(20)}")
    return page.evaluate(JS_CELL_REPORT, name)


def _find_panels(page, path: str, expected: int, control: str = SLIDER):
    """The outputs holding a `control` (SLIDER, TEXT_BOX) and a plotly figure with drawn bars
    (at least `expected`)."""
    page.wait_for_function(JS_PANELS_RENDERED, arg=[expected, control], timeout=RENDER_TIMEOUT_MS)
    outputs = page.locator(".jp-OutputArea-output")
    for bad in WIDGET_ERRORS:
        assert outputs.filter(has_text=bad).count() == 0, f"{path}: an output reads {bad!r}"
    panels = (outputs.filter(has=page.locator(control))
                     .filter(has=page.locator(FIGURE_DRAWN)))
    n = panels.count()
    assert n >= expected, (f"{path}: {n} panels ({control} + figure) rendered, "
                           f"expected {expected}")
    return panels, n


def _move_first_slider(page, panel) -> str:
    """Move the panel's first slider one step; returns how ('ArrowRight', ..., 'typed')."""
    slider = panel.locator(".widget-slider").first
    readout = slider.locator(".widget-readout")
    start = readout.inner_text().strip()
    handle = slider.locator(".noUi-handle").first
    for key in ("ArrowRight", "ArrowLeft"):       # ArrowLeft if it already sits at its max
        handle.focus()
        handle.press(key)
        try:
            page.wait_for_function(JS_READOUT_CHANGED, arg=[panel.element_handle(), start],
                                   timeout=5_000)
            return key
        except Exception:
            continue
    # the keyboard did nothing: type a new value into the editable readout
    value = float(start) if start.replace(".", "", 1).lstrip("-").isdigit() else 0.0
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(f"{value * 0.5 if value else 1}")
    page.keyboard.press("Enter")
    page.wait_for_function(JS_READOUT_CHANGED, arg=[panel.element_handle(), start],
                           timeout=5_000)
    return "typed"


def _type_into(panel, label: str, text: str) -> str:
    """Type `text` into the panel's Text box whose description contains `label` and press
    Enter (a box with continuous_update=False sends its value on Enter or blur); returns how."""
    box = (panel.locator(".widget-text").filter(has=panel.page.locator("label", has_text=label))
                .locator("input[type=text]"))
    assert box.count() == 1, f"{box.count()} Text boxes labelled {label!r} in the panel"
    assert box.input_value() != text, f"the {label!r} box already reads {text!r}"
    box.click()
    box.press("Control+A")
    box.press_sequentially(text)
    box.press("Enter")
    assert box.input_value() == text, f"the {label!r} box reads {box.input_value()!r}"
    return f"typed {text!r} + Enter into {label!r}"


def _move_and_compare(page, panel, type_into: tuple[str, str] | None = None,
                      timeout_ms: int = UPDATE_TIMEOUT_MS):
    """Drive the panel (type into a Text box when `type_into` = (label, text) is given, else
    move its first slider); (before, after, how, changed) of the panel's figure."""
    panel.scroll_into_view_if_needed()
    el = panel.element_handle()
    before = el.evaluate(JS_PANEL_STATE)
    assert before["nTraces"] and before["nBars"], "a panel with no bars drawn"
    how = _type_into(panel, *type_into) if type_into else _move_first_slider(page, panel)
    try:
        page.wait_for_function(JS_CHANGED, arg=[el, before], timeout=timeout_ms)
        changed = True
    except Exception:
        changed = False
    return before, el.evaluate(JS_PANEL_STATE), how, changed


RENDERERS = {"plotly": "notebooks", "static": "notebooks-static"}   # as served by conftest.py


def _check_panels(page, nb: Notebook, served: str, renderer: str, screenshot=None) -> None:
    """The panels of the notebook open at `served` rendered with `renderer`, and each responds:
    drive its control, the figure's numbers and bars (plotly) or its SVG (static) change."""
    panels, n = _find_panels(page, served, nb.panels, nb.control)
    for i in range(n):
        panel = panels.nth(i)
        before, after, how, changed = _move_and_compare(page, panel, nb.type_into)
        if renderer == "static":          # drawn by the static renderer, not by plotly
            assert before["nStatic"] and not before["nPlotly"], (served, before["nPlotly"])
        else:
            assert before["nPlotly"] and not before["nStatic"], (served, before["nStatic"])
        assert changed, (f"{served} panel {i}: control changed ({how}: {before['controls']} -> "
                         f"{after['controls']}) but the figure did not change within "
                         f"{UPDATE_TIMEOUT_MS // 1000} s\npanel text: {after['text'][-500:]}\n"
                         f"page errors: {page.console_errors}")
        assert after["controls"] != before["controls"]
        if renderer == "static":
            assert after["pictures"] != before["pictures"]
        else:
            assert after["data"] != before["data"] and after["bars"] != before["bars"]
        assert "⚠" not in after["text"], f"{served} panel {i} shows an error:\n{after['text']}"
        if i == 0 and screenshot is not None:
            panel.screenshot(path=str(screenshot))


@pytest.mark.parametrize("renderer", list(RENDERERS))
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[n.path.split("_")[0] for n in NOTEBOOKS])
def test_notebook_panels_respond(nb: Notebook, renderer, page, lab, screenshots):
    served = f"{RENDERERS[renderer]}/{nb.path}"
    report = _open_and_run(page, lab, served, nb.run_timeout_s)

    # 1. no cell failed, and the run reached the end
    errors = [f"cell {e['cell']}: {e['ename']}: {e['evalue']}\n{e['traceback']}"
              for e in report["errors"]]
    assert not errors, f"{served}: error outputs in the browser run:\n" + "\n\n".join(errors)
    assert not report["notRun"], (f"{served}: code cells never ran: {report['notRun']} "
                                  f"(run-all returned {report['done']})")

    # 2. the panels rendered (control + figure with drawn bars, no widget error text), and
    # 3. every panel responds
    name = f"{nb.path.removesuffix('.ipynb')}-{renderer}.png"
    _check_panels(page, nb, served, renderer, screenshots / name)

    # 4. driving the panels raised nothing in the kernel either
    late = page.evaluate(JS_CELL_REPORT, served)["errors"]
    assert not late, f"{served}: error outputs after driving the panels: {json.dumps(late)[:2000]}"


@pytest.mark.parametrize("renderer", list(RENDERERS))
def test_a_notebook_in_notebook_7(renderer, page, lab, screenshots):
    """Notebook 00 in the classic page learners get from `jupyter notebook` (Notebook 7)."""
    nb = NOTEBOOKS[0]
    served = f"{RENDERERS[renderer]}/{nb.path}"
    report = _open_and_run(page, lab, served, nb.run_timeout_s, app="notebook")
    assert not report["errors"] and not report["notRun"], report
    assert "/notebooks/" in page.url
    _check_panels(page, nb, served, renderer, screenshots / f"notebook7-{renderer}.png")


# --- a panel nested in a Tab inside a VBox (notebook 07's dashboard) still responds ----------

NESTED_PANEL = [
    "import ipywidgets as W\n"
    "import labkit as lk\n"
    "lk.widgets.use('{renderer}')\n"
    "lm = lk.load('toy')                       # the toy world: trained in seconds, no download\n"
    "panel = lk.widgets.Explorer(lm, 'sun sun', k=6)\n"
    "tab = W.Tab(children=[panel, W.HTML('another tab')])\n"
    "W.VBox([W.HTML('<b>a dashboard</b>'), tab])",
]


def _write_notebook(lab, name: str, cells: list[str]) -> None:
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}",
                     "metadata": {}, "outputs": [], "source": src}
                    for i, src in enumerate(cells)],
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                      "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}
    (lab.root / name).write_text(json.dumps(nb))


@pytest.mark.parametrize("renderer", list(RENDERERS))
def test_a_panel_nested_in_a_tab_responds(renderer, page, lab):
    name = f"ui_nested_panel_{renderer}.ipynb"
    _write_notebook(lab, name, [c.format(renderer=renderer) for c in NESTED_PANEL])
    report = _open_and_run(page, lab, name, 180)
    assert not report["errors"], report["errors"]
    panels, n = _find_panels(page, name, 1)
    assert n == 1, f"{n} panels, expected the one in the first tab"
    before, after, how, changed = _move_and_compare(page, panels.first)
    assert before["nStatic" if renderer == "static" else "nPlotly"] == 1, before
    assert changed, (f"the nested panel's control changed ({how}: {before['controls']} -> "
                     f"{after['controls']}) but its figure did not\n{after['text'][-500:]}")
    assert "⚠" not in after["text"], after["text"]


# --- notebook 07's dashboard: a toggle and a strength change the chart and the table ---------

JS_TABLE = "(el) => [...el.querySelectorAll('table')].map(t => t.innerText).join('\\n')"

DASHBOARD = [
    "import labkit as lk\n"
    "from labkit.scoreboard import Method\n"
    "lk.widgets.use('{renderer}')\n"
    "lm = lk.load('toy')\n"
    "snow = lm.tokenizer.convert_tokens_to_ids('snow')\n"
    "choices = [lk.widgets.Choice('temperature', lambda t: Method('T', lm, controls=[\n"
    "               lk.controls.Temperature(t)]), (0.3, 2.0, 0.1, 0.7)),\n"
    "           lk.widgets.Choice('more snow', lambda b: Method('snow', lm, controls=[\n"
    "               lk.steer.LogitBias({{snow: b}})]), (0.0, 4.0, 0.5, 2.0))]\n"
    "lk.widgets.Dashboard(lm, 'sun', choices, on=['temperature'], k=6, max_new_tokens=3)",
]


@pytest.mark.parametrize("renderer", list(RENDERERS))
def test_the_dashboard_responds_to_a_toggle_and_a_strength(renderer, page, lab):
    name = f"ui_dashboard_{renderer}.ipynb"
    _write_notebook(lab, name, [c.format(renderer=renderer) for c in DASHBOARD])
    report = _open_and_run(page, lab, name, 180)
    assert not report["errors"], report["errors"]
    panels, n = _find_panels(page, name, 1)
    panel = panels.first
    el = panel.element_handle()
    before = el.evaluate(JS_PANEL_STATE)
    table = el.evaluate(JS_TABLE)
    assert "temperature" in table and "more snow" not in table, table
    panel.locator(".widget-toggle-button", has_text="more snow").click()   # switch a control on
    page.wait_for_function(JS_CHANGED, arg=[el, before], timeout=UPDATE_TIMEOUT_MS)
    page.wait_for_function(f"([el]) => ({JS_TABLE})(el).includes('more snow')", arg=[el],
                           timeout=UPDATE_TIMEOUT_MS)
    after = el.evaluate(JS_PANEL_STATE)
    assert after["nTraces"] > before["nTraces"] or after["pictures"] != before["pictures"]
    table = el.evaluate(JS_TABLE)
    before, after, how, changed = _move_and_compare(page, panel)            # a strength
    assert changed, f"the dashboard's chart did not change ({how})\n{after['text'][-500:]}"
    page.wait_for_function(f"([el, t]) => ({JS_TABLE})(el) !== t", arg=[el, table],
                           timeout=UPDATE_TIMEOUT_MS)
    assert "⚠" not in el.evaluate(JS_PANEL_STATE)["text"]


# --- the harness can fail: dead panels and an error cell are caught --------------------------

DEAD_PANELS = [
    "import ipywidgets as W\n"
    "import plotly.graph_objects as go\n"
    "bars = lambda: go.FigureWidget(go.Figure(go.Bar(x=list('abc'), y=[1, 2, 3])))\n"
    "dead = W.FloatSlider(value=1.0, min=0, max=2, step=0.1, description='dead')  # moves nothing\n"
    "W.VBox([dead, bars()])",
    "dead_box = W.Text(value='a|b', description='dead box', continuous_update=False)  # ditto\n"
    "W.VBox([dead_box, bars()])",
    "import labkit as lk\n"                     # a static picture beside a dead slider
    "picture = W.HTML(lk.svg.render(go.Figure(go.Bar(x=list('abc'), y=[1, 2, 3]))))\n"
    "W.VBox([W.FloatSlider(value=1.0, min=0, max=2, step=0.1, description='dead svg'), picture])",
    "1 / 0",
]
DEAD_TYPE_INTO = ("dead box", "a|b|c")
DEAD_WAIT_MS = 5_000   # per dead panel; a live panel's figure changes within ~1 s on a loaded machine


def test_harness_catches_dead_panels_and_an_error(page, lab):
    """Two sliders (one beside a plotly figure, one beside a static picture) and a Text box
    wired to nothing, and a failing cell: the checks above must see all four (each control
    changes, its figure does not)."""
    _write_notebook(lab, "ui_dead_panel.ipynb", DEAD_PANELS)
    report = _open_and_run(page, lab, "ui_dead_panel.ipynb", 120)
    assert [e["ename"] for e in report["errors"]] == ["ZeroDivisionError"]
    for control, type_into, expected in ((SLIDER, None, 2), (TEXT_BOX, DEAD_TYPE_INTO, 1)):
        panels, n = _find_panels(page, "ui_dead_panel.ipynb", expected, control)
        assert n == expected, f"{n} panels with {control}, expected {expected}"
        for i in range(n):
            before, after, how, changed = _move_and_compare(page, panels.nth(i), type_into,
                                                            timeout_ms=DEAD_WAIT_MS)
            assert after["controls"] != before["controls"], f"the control did not change ({how})"
            assert not changed and after["data"] == before["data"]
            assert after["bars"] == before["bars"] and after["pictures"] == before["pictures"]
