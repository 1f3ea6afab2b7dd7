"""Every panel of `labkit.widgets`, one idiom: built on the tiny models, nested in a `VBox` and in a
`Tab` (notebook 07's dashboard), driven through its controls; `.result` follows, the figure's
traces change, errors show in `.error` and keep the last result, and a control that needs no
model call makes none (forward passes counted with a hook).

Every test here runs under both renderers (`lk.widgets.use("plotly")` and `use("static")`, the
`renderer` fixture): the results and the figure's traces (`panel.fig`) must be the same, and the
drawn picture (`picture(panel)`: the FigureWidget's traces, or the static SVG) must change
whenever the traces do."""
import contextlib
import dataclasses
import os

import ipywidgets as W
import pytest
import torch

import labkit as lk
from labkit import bayes, tasks, toy, widgets

# `make test` runs every test marked `widgets` twice: with ipywidgets 8, then with the 7.7 that
# Colab ships (LABKIT_IPYWIDGETS=7, ipywidgets 7.7.1 put first on PYTHONPATH).
pytestmark = pytest.mark.widgets


def test_the_ipywidgets_version_under_test():
    major = int(W.__version__.split(".")[0])
    wanted = os.environ.get("LABKIT_IPYWIDGETS")
    assert major == int(wanted) if wanted else major in (7, 8), W.__version__


@contextlib.contextmanager
def count_forward_calls(lm):
    """Every forward pass of `lm`'s model goes through its input embeddings (the fast label
    scorer runs the base model without the head, so a hook on the head would miss it)."""
    calls = []
    handle = lm.model.get_input_embeddings().register_forward_hook(lambda *a: calls.append(1))
    try:
        yield calls
    finally:
        handle.remove()


def ys(panel) -> list:
    return [tuple(trace.y) for trace in panel.fig.data]


@pytest.fixture(autouse=True, params=["plotly", "static"])
def renderer(request):
    """Every test once per renderer; the choice is put back to "auto" after."""
    got = widgets.use(request.param)
    assert request.param == "auto" or got == request.param
    yield got
    widgets.use("auto")


def picture(panel):
    """What the learner sees: the live FigureWidget's traces, or the static renderer's SVG."""
    import plotly.graph_objects as go

    if panel.renderer == "static":
        assert isinstance(panel.view, W.HTML) and panel.view.value.startswith("<svg")
        return panel.view.value
    assert isinstance(panel.view, go.FigureWidget) and panel.view is panel.fig
    return ys(panel)


# --- every panel, one table: how to build it, what costs a model call, what breaks it ----------

@pytest.fixture(scope="module")
def world():
    """A 3-word × 3-day toy world (27 sequences), trained in about a second."""
    return toy.make_world(vocab=("a", "b", "c"), length=3)


class Case:
    """How a test drives one panel: `costly` changes an input that needs the model (None: the
    panel has none), `cheap` a knob that must not call it, `bad` breaks it (returns the error
    text expected), `good` recovers."""

    def __init__(self, build, cheap, bad, good, costly=None, calls=1):
        self.build, self.cheap, self.bad, self.good = build, cheap, bad, good
        self.costly, self.calls = costly, calls


def sequence_panel(world):
    logp = world.log_prob()
    reward = bayes.world_reward(world, lambda x: (x == 0).double().sum(-1))

    def make(beta):
        if beta > 5:
            raise ValueError("too hot")
        return {"base": logp, "tilt": bayes.tilt(logp, reward, beta)}

    slider = W.FloatSlider(value=1.0, min=0.1, max=10, continuous_update=False)
    return widgets.SequencePanel(world, make, slider, k=5)


def set_value(attr, value):
    def act(panel):
        getattr(panel, attr).value = value
    return act


def broken(attr, value, message):
    def act(panel):
        getattr(panel, attr).value = value
        return message
    return act


def no_train(panel):
    panel.task = dataclasses.replace(panel.task, train=[])
    panel.shots.value = 3                                   # a setting not in the cache
    return "only 0 training examples"


def restore(panel):
    panel.task = tasks.sentiment()
    panel.shots.value = 1


def dashboard(lm, world=None, **kw):
    from labkit.scoreboard import Method
    choices = [
        widgets.Choice("temperature", lambda t: Method("T", lm, controls=[lk.controls.Temperature(t)]),
                       (0.2, 2.0, 0.1, 0.5)),
        widgets.Choice("framed", lambda s: Method("framed", lm, template="Be kind. {prompt}")),
        widgets.Choice("no token", lambda s: Method("none", lm, controls=[
            lambda ids, scores: torch.full_like(scores, float("-inf"))])),
    ]
    return widgets.Dashboard(lm, "The weather today is", choices, on=["temperature"], k=6,
                             seeds=(0,), max_new_tokens=3, **kw)


def set_slider(name, value):
    def act(panel):
        panel.sliders[name].value = value
    return act


CASES = {
    # a new strength is a model call (its distribution and scoreboard row); one seen before is free
    "dashboard": Case(dashboard, costly=set_slider("temperature", 1.5),
                      cheap=set_slider("temperature", 0.5), bad=broken("prompt", "", "empty"),
                      good=set_value("prompt", "Hello"), calls=None),
    "explorer": Case(lambda lm, w: widgets.Explorer(lm, "The capital of France is", k=8),
                     costly=set_value("prompt", "Once upon a time"), cheap=set_value("top_k", 3),
                     bad=broken("prompt", "", "empty"), good=set_value("prompt", "Hello")),
    "sequences": Case(lambda lm, w: sequence_panel(w), cheap=set_value("slider", 0.3),
                      bad=broken("slider", 8.0, "too hot"), good=set_value("slider", 2.0)),
    "pool": Case(lambda lm, w: widgets.PoolPanel(lm, "The city is", " Paris| Rome", k=8,
                                                      rank_by="after"),
                 costly=set_value("prompt", "My favourite city is"),
                 cheap=set_value("written", " R"), bad=broken("options", "", "empty"),
                 good=set_value("options", " Paris| Rome| Oslo")),
    "strength": Case(lambda lm, w: widgets.StrengthPanel(lm, "The weather today is", ["happy"],
                                                         strength=1.0, k=8),
                     costly=set_value("prompt", "Once upon a time"),
                     cheap=set_value("strength", 6.0), bad=broken("prompt", "   ", "empty"),
                     good=set_value("prompt", "It was")),
    # the label panel calls the model for every new setting; going back to one is free
    "labels": Case(lambda lm, w: widgets.LabelPanel(lm, tasks.sentiment(), max_shots=4,
                                                    orders=2),
                   costly=set_value("shots", 2), cheap=set_value("shots", 0), bad=no_train,
                   good=restore, calls=None),
}


@pytest.fixture(params=list(CASES))
def case(request):
    return request.param, CASES[request.param]


@pytest.mark.parametrize("container", ["VBox", "Tab"])
def test_every_panel_works_nested(case, container, tiny_lm, world, renderer):
    name, c = case
    panel = c.build(tiny_lm, world)
    box = W.VBox([panel]) if container == "VBox" else W.Tab(children=[panel])
    assert box.children == (panel,) and isinstance(panel, (widgets.Panel, W.VBox))
    assert panel.error in panel.children and panel.readout in panel.children
    assert panel.view in panel.children and panel.renderer == renderer
    assert panel.error.value == "" and panel.result is not None

    if c.costly is not None:                                # an input that needs the model
        first, drawn, seen = panel.result, ys(panel), picture(panel)
        with count_forward_calls(tiny_lm) as calls:
            c.costly(panel)
        assert panel.error.value == "", panel.error.value
        assert calls and (c.calls is None or len(calls) == c.calls), calls
        assert panel.result is not first and ys(panel) != drawn and picture(panel) != seen

    first, drawn, seen = panel.result, ys(panel), picture(panel)    # a knob: no model call
    with count_forward_calls(tiny_lm) as calls:
        c.cheap(panel)
    assert calls == [], f"{name}: a knob called the model {len(calls)} times"
    assert panel.error.value == "", panel.error.value
    assert panel.result is not first and ys(panel) != drawn and picture(panel) != seen

    good, drawn, seen = panel.result, ys(panel), picture(panel)   # an error: shown, result kept
    message = c.bad(panel)
    assert "⚠" in panel.error.value and message in panel.error.value, panel.error.value
    assert panel.result is good and ys(panel) == drawn and picture(panel) == seen

    c.good(panel)                                           # recovering clears the error
    assert panel.error.value == "" and panel.result is not good


def test_every_panel_is_exported_and_follows_the_idiom():
    for name in ("Explorer", "SequencePanel", "PoolPanel", "StrengthPanel", "LabelPanel",
                 "AdapterPanel", "OveroptimisationPanel", "Dashboard"):
        cls = getattr(lk.widgets, name)
        assert issubclass(cls, widgets.Panel) and issubclass(cls, W.VBox), name
        for method in ("compute", "figure"):
            assert getattr(cls, method) is not getattr(widgets.Panel, method), (name, method)


# --- the explorer (notebook 00) ---------------------------------------------------------------

@pytest.fixture
def panel(tiny_lm):
    return widgets.explorer(tiny_lm, "The capital of France is", k=10)


def test_explorer_is_a_displayable_widget_with_a_live_figure(panel, renderer):
    import plotly.graph_objects as go

    live = isinstance(panel.fig, go.FigureWidget)
    assert isinstance(panel, widgets.Explorer) and live == (renderer == "plotly")
    assert panel.view in panel.children and picture(panel)
    assert panel.prompt.continuous_update is False
    assert len(panel.fig.data[0].x) == 10
    assert "entropy" in panel.readout.value and panel.error.value == ""


def test_moving_a_knob_updates_result_and_figure_without_calling_the_model(panel, tiny_lm):
    first = panel.result
    with count_forward_calls(tiny_lm) as calls:
        panel.top_k.value = 3
        after_top_k = panel.result
        panel.temperature.value = 0.5
        panel.top_p.value = 0.3
    assert calls == []                                    # cached logits, no forward pass
    assert after_top_k is not first and after_top_k.support == 3
    assert panel.result.entropy_after < first.entropy_after
    assert panel.result.before is first.before            # the same cached distribution
    assert list(panel.fig.data[1].y) == pytest.approx(
        panel.result.after.probs[panel.result.before.top_ids(10)[0]].tolist())
    assert sum(y > 0 for y in panel.fig.data[1].y) <= 3
    assert "TopK(3)" in panel.readout.value


def test_set_knobs_is_what_the_sliders_do(panel):
    panel.set_knobs(temperature=2.0, top_k=0, top_p=1.0)
    assert [repr(c) for c in panel.result.controls] == ["Temperature(2)"]
    assert panel.result.entropy_after > panel.result.entropy_before


def test_a_new_prompt_calls_the_model_once(panel, tiny_lm):
    old_labels = list(panel.fig.data[0].x)
    with count_forward_calls(tiny_lm) as calls:
        panel.set_prompt("Once upon a time there was")
    assert len(calls) == 1
    want = lk.next_token(tiny_lm, "Once upon a time there was")
    torch.testing.assert_close(panel.result.before.probs, want.probs)
    assert list(panel.fig.data[0].x) != old_labels


def test_the_explorer_works_with_a_small_vocabulary():
    from transformers import GPT2Config, GPT2LMHeadModel

    class CharTokenizer:
        eos_token_id, pad_token_id, chat_template = 0, 0, None

        def __call__(self, text, return_tensors=None, add_special_tokens=True):
            return type("Enc", (), {"input_ids": [1 + ord(c) % 7 for c in text]})()

        def decode(self, ids, skip_special_tokens=False):
            return "".join("abcdefgh"[i] for i in ids)

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=8, n_embd=16, n_layer=1, n_head=2,
                                       n_positions=32)).eval()
    lm = lk.LM(model=model, tokenizer=CharTokenizer(), name="chars")
    panel = widgets.explorer(lm, "abc")
    assert len(panel.fig.data[0].x) == 8 and panel.top_k.max == 8
    panel.top_k.value = 2
    assert panel.result.support == 2 and panel.error.value == ""


@pytest.mark.parametrize("renderer", ["auto"], indirect=True)
def test_without_figurewidget_auto_draws_every_panel_static(tiny_lm, monkeypatch, renderer):
    import plotly.graph_objects as go

    def unavailable(*args, **kwargs):
        raise ImportError("no anywidget")

    monkeypatch.setattr(go, "FigureWidget", unavailable)
    assert widgets.why() == ("static", "plotly's FigureWidget cannot be built here "
                                       "(is anywidget installed?)")
    panel = widgets.explorer(tiny_lm, "Hello", k=5)
    assert panel.renderer == "static" and isinstance(panel.fig, go.Figure)
    seen = picture(panel)
    panel.top_k.value = 2
    assert sum(y > 0 for y in panel.fig.data[1].y) == 2 and panel.error.value == ""
    assert picture(panel) != seen
    strength = widgets.StrengthPanel(tiny_lm, "Hello", ["happy"], k=5)   # every panel: one path
    before = picture(strength)
    strength.strength.value = 8.0
    assert picture(strength) != before and strength.error.value == ""


# --- choosing the renderer ---------------------------------------------------------------------

@pytest.mark.parametrize("renderer", ["auto"], indirect=True)
def test_auto_is_static_on_colab_and_in_vs_code_and_plotly_elsewhere(monkeypatch, renderer):
    import sys
    import types

    for var in ("LABKIT_PANELS", "VSCODE_PID", "VSCODE_CWD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert widgets.why()[0] == "plotly"
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert widgets.why() == ("static", "Colab (google.colab is imported)")
    monkeypatch.delitem(sys.modules, "google.colab")
    monkeypatch.setenv("VSCODE_PID", "4242")
    assert widgets.why()[0] == "static" and "VS Code" in widgets.why()[1]
    monkeypatch.setattr(widgets.render, "_chosen", None)      # as in a fresh kernel:
    monkeypatch.setenv("LABKIT_PANELS", "plotly")             # the environment overrides auto
    assert widgets.why() == ("plotly", "$LABKIT_PANELS('plotly')")
    assert widgets.use("static") == "static"                  # and use() the environment
    monkeypatch.setenv("LABKIT_PANELS", "svg")
    assert widgets.use("static") == "static"                  # a bad variable is not read then
    monkeypatch.setattr(widgets.render, "_chosen", None)
    with pytest.raises(ValueError, match=r"\$LABKIT_PANELS='svg'.*'auto', 'static', 'plotly'"):
        widgets.why()


def test_use_names_the_valid_choices():
    with pytest.raises(ValueError, match="'nonsense' is not a panel renderer: choose one of "
                                         "'auto', 'static', 'plotly'"):
        widgets.use("nonsense")


def test_static_also_draws_plain_figures_as_images_and_plotly_gives_them_back(renderer):
    import plotly.graph_objects as go
    import plotly.io as pio

    fig = go.Figure(go.Bar(x=["a", "b"], y=[0.25, 0.75]))
    bundle = fig._repr_mimebundle_()
    if renderer == "static":
        assert pio.renderers.default == "labkit_svg" and list(bundle) == ["image/svg+xml"]
        assert bundle["image/svg+xml"].count("<rect") == 3                # background + 2 bars
    else:
        assert pio.renderers.default != "labkit_svg" and "image/svg+xml" not in bundle
    widgets.use("plotly")
    assert pio.renderers.default != "labkit_svg"


class _Knob(widgets.Panel):
    """The smallest panel: one slider, two bars."""

    def __init__(self, value):
        self.knob = W.FloatSlider(value=value, min=0, max=2)
        super().__init__(self.knob)
        self.watch(self.knob)

    def compute(self):
        return self.knob.value

    def figure(self, result):
        return lk.viz.label_bars(["a", "b"], [result / 2, 1 - result / 2])


def test_a_renderer_that_fails_to_draw_shows_its_error_in_the_panel(renderer, monkeypatch):
    import plotly.graph_objects as go

    def broken(*args, **kwargs):
        raise RuntimeError("the renderer broke")

    if renderer == "static":
        monkeypatch.setattr(widgets.panel.svg, "render", broken)
    else:
        monkeypatch.setattr(go.FigureWidget, "add_traces", broken)
    panel = _Knob(0.5)                              # the constructor does not raise
    assert "⚠ RuntimeError: the renderer broke" in panel.error.value
    assert panel.view in panel.children and panel.result == 0.5
    monkeypatch.undo()
    panel.knob.value = 0.8                          # it draws again: the error is cleared
    assert panel.error.value == "" and panel.fig.data[0].y == pytest.approx((0.4, 0.6))
    seen = picture(panel)
    if renderer == "static":
        monkeypatch.setattr(widgets.panel.svg, "render", broken)
    else:
        monkeypatch.setattr(go.FigureWidget, "update", broken)
        monkeypatch.setattr(type(panel.fig.data[0]), "update", broken)
    panel.knob.value = 1.2                          # the last picture stays, the error shows
    assert "the renderer broke" in panel.error.value and picture(panel) == seen


def test_a_figure_the_static_renderer_cannot_draw_is_an_error_in_the_panel(renderer):
    class Heat(_Knob):
        def figure(self, result):
            import plotly.graph_objects as go
            return go.Figure(go.Heatmap(z=[[result, 1.0]]))

    panel = Heat(0.5)
    if renderer == "static":
        assert "bar and scatter traces, not &#x27;heatmap&#x27;" in panel.error.value
    else:
        assert panel.error.value == "" and panel.fig.data[0].type == "heatmap"


def test_sequence_panel_keeps_its_sequences_and_calls_make_dists_once_per_value(world):
    logp = world.log_prob()
    reward = bayes.world_reward(world, lambda x: (x == 2).double().sum(-1))
    calls = []

    def make(beta):
        calls.append(beta)
        return {"base": logp, "tilt": bayes.tilt(logp, reward, beta)}

    slider = W.FloatLogSlider(value=1.0, base=10, min=-1, max=1, step=0.05,
                              continuous_update=False)
    panel = widgets.SequencePanel(world, make, slider, k=5, order_by="tilt")
    labels, base_y = list(panel.fig.data[0].x), list(panel.fig.data[0].y)
    assert calls == [1.0] and panel.slider is slider and len(labels) == 5
    rows = lk.viz.sequence_rows(bayes.tilt(logp, reward, 1.0), 5)     # the first tilt's top 5
    assert panel.rows.tolist() == rows.tolist()
    slider.value = 0.1
    assert calls == [1.0, 0.1]
    assert torch.equal(panel.result["tilt"], bayes.tilt(logp, reward, 0.1))
    moved = lk.viz.sequence_rows(panel.result["tilt"], 5)
    assert moved.tolist() != rows.tolist()                # the top 5 changed, the bars did not:
    assert list(panel.fig.data[0].x) == list(panel.fig.data[1].x) == labels
    assert list(panel.fig.data[0].y) == base_y            # the base did not move, the tilt did
    assert list(panel.fig.data[1].y) == pytest.approx(panel.result["tilt"].exp()[rows].tolist())
    slider.value = 0.2
    assert list(panel.fig.data[1].x) == labels and panel.rows.tolist() == rows.tolist()


def test_a_panel_redraws_when_the_number_of_series_changes(world):
    logp = world.log_prob()
    uniform = torch.full_like(logp, -float(torch.log(torch.tensor(float(logp.numel())))))
    slider = W.IntSlider(value=1, min=1, max=2)
    panel = widgets.SequencePanel(world, lambda n: dict(list(
        {"π": logp, "uniform": uniform}.items())[:n]), slider, k=4)
    assert [t.name for t in panel.fig.data] == ["π"]
    slider.value = 2
    assert [t.name for t in panel.fig.data] == ["π", "uniform"] and panel.error.value == ""
    assert list(panel.fig.data[1].x) == list(panel.fig.data[0].x)


def test_sequence_panel_rejects_bad_arguments(world):
    logp = world.log_prob()
    with pytest.raises(TypeError, match="slider"):
        widgets.SequencePanel(world, lambda v: {"π": logp}, 1.0)
    with pytest.raises(ValueError, match="order_by='x' is not one of"):
        widgets.SequencePanel(world, lambda v: {"π": logp}, W.FloatSlider(), order_by="x")


# --- the pool panel (notebook 05) -------------------------------------------------------------

def test_pool_panel_restricts_to_the_options(tiny_lm):
    panel = widgets.PoolPanel(tiny_lm, "The city is", " Paris| Rome")
    after, z = panel.result
    assert 0 < z <= 1 and abs(float(after.probs.sum()) - 1) < 1e-5
    assert isinstance(panel.prompt, W.Textarea)          # a few-shot prompt keeps its newlines
    assert "Z = " in panel.readout.value
    with count_forward_calls(tiny_lm) as calls:
        panel.written.value = " Par"                      # written so far: no model call
    assert calls == []
    after, _ = panel.result
    assert {t for t, p in after.top(5) if p > 0} <= {"i", "is", "r"}
    assert list(panel.fig.data[1].y) == pytest.approx(
        after.probs[panel.dist.top_ids(15)[0]].tolist())


# --- the strength panel (notebook 06) ---------------------------------------------------------

def test_strength_panel_boosts_the_bag_and_keeps_its_result_on_error(tiny_lm):
    panel = widgets.StrengthPanel(tiny_lm, "The weather today is", ["happy"], strength=1.0)
    assert panel.strength.continuous_update is False
    panel.strength.value = 5.0
    assert panel.result.bag.strength == 5.0 and panel.result.mass_after > panel.result.mass_before
    top_after = panel.result.after.top_ids(15)[0]                 # ranked by the boosted one
    assert list(panel.fig.data[1].y) == pytest.approx(panel.result.after.probs[top_after].tolist())
    assert "KL" in panel.readout.value
    panel.prompt.value = "   "                                    # an empty prompt: shown
    assert "empty" in panel.error.value
    assert panel.result.bag.strength == 5.0                       # the last good result is kept
    panel.prompt.value = "Once upon a time"
    assert panel.error.value == ""


# --- the label panel (notebook 02) ------------------------------------------------------------

def test_label_panel_caches_settings_and_shows_errors(tiny_lm):
    panel = widgets.LabelPanel(tiny_lm, tasks.sentiment(), max_shots=4, orders=2)
    assert len(panel.cache) == 1 and panel.shots.continuous_update is False
    with count_forward_calls(tiny_lm) as calls:
        panel.order.value = 1                          # 0 shots have one order: nothing to do
    assert calls == [] and len(panel.cache) == 1
    panel.shots.value = 2
    panel.order.value = 0
    assert len(panel.cache) == 3
    with count_forward_calls(tiny_lm) as calls:
        panel.shots.value = 0                          # back to a cached setting: free
    assert calls == [] and panel.result is panel.cache[(0, 0, 0, False)]
    assert list(panel.fig.data[0].x) == ["positive", "negative"]
    assert list(panel.fig.data[0].y) == pytest.approx(panel.result.probs[0].tolist())
    gold = int(panel.result.gold[0])
    assert panel.fig.data[0].marker.color[gold] == lk.viz.AFTER_COLOR
    panel.chat.value = True
    assert panel.result is panel.cache[(0, 0, 0, True)] and panel.error.value == ""
    panel.task = dataclasses.replace(panel.task, train=[])
    panel.shots.value = 3
    assert "only 0 training examples" in panel.error.value


# --- the adapter panel (notebook 03): its slider costs one model call per release -----------

@pytest.fixture(scope="module")
def own_lm(tiny_lm):
    """A private copy of the tiny model: the adapter injected here reaches no other test."""
    import copy
    import dataclasses

    return dataclasses.replace(tiny_lm, model=copy.deepcopy(tiny_lm.model))


@pytest.fixture(scope="module")
def tuned(own_lm):
    from labkit import sft

    pairs = [("Instruction: Name a colour.\nResponse:", " Blue.")] * 4
    cfg = sft.SFTConfig(max_steps=3, batch_size=4, learning_rate=5e-2, seed=0)
    model, _ = sft.finetune(own_lm, pairs, cfg, chat=False, progress=False)
    return model


def test_the_adapter_panel_scales_the_update_from_the_base_to_beyond(tuned, own_lm):
    tiny_lm = own_lm
    prompt = "Instruction: Name a colour.\nResponse:"
    panel = widgets.AdapterPanel(tuned, prompt, base=tiny_lm, scale=1.0)
    box = W.Tab(children=[W.VBox([panel])])                    # nested, as in a dashboard
    assert box.children[0].children[0] is panel and panel.scale.continuous_update is False
    base = lk.next_token(tiny_lm, prompt)
    kls = {}
    for s in (0.0, 0.5, 1.0, 1.5):
        with count_forward_calls(tiny_lm) as calls:
            panel.scale.value = s
        assert len(calls) == 1, f"scale {s}: {len(calls)} model calls"
        kls[s] = panel.result.kl
        assert panel.error.value == "" and f"scale {s:g}" in panel.readout.value
    torch.testing.assert_close(panel.result.base.probs, base.probs)
    assert kls[0.0] < 1e-9 < kls[0.5] < kls[1.0] < kls[1.5]         # 0 is exactly the base
    with lk.adapters.scaled(tuned.model, 1.0):
        torch.testing.assert_close(lk.next_token(tuned, prompt).probs,
                                   widgets.adapter_step(tuned, base, prompt, 1.0).after.probs)
    before = ys(panel)
    panel.scale.value = 0.5
    assert ys(panel) != before                                  # the figure follows
    good = panel.result
    panel.prompt.value = "   "                                  # an empty prompt: shown, kept
    assert "empty" in panel.error.value and panel.result is good
    with count_forward_calls(tiny_lm) as calls:
        panel.prompt.value = "Instruction: Name an animal.\nResponse:"
    assert panel.error.value == "" and len(calls) == 2          # the base, and the scaled model
    with pytest.raises(TypeError, match="LoRA"):
        widgets.AdapterPanel(tiny_lm, prompt)


# --- the over-optimisation explorer (notebook 04) ----------------------------------------------

def overopt_points(n=5):
    return [{"label": f"{0.5 ** i:g}", "d": float(i), "proxy": float(i), "gold": float(i * (4 - i)),
             "samples": [(f"text {i}", float(i), float(i * (4 - i)), 0.5 / (i + 1)),
                         ("other", 0.0, 0.0, 0.1)]} for i in range(n)]


def test_the_overoptimisation_panel_reads_its_points_and_marks_the_selected_one():
    points = overopt_points()
    panel = widgets.OveroptimisationPanel(points, index=1)
    box = W.Tab(children=[W.VBox([panel])])
    assert box.children[0].children[0] is panel and panel.index.max == 4
    assert len(panel.fig.data) == 4                    # proxy, gold, the marker, the texts' bars
    assert list(panel.fig.data[1].y) == [p["gold"] for p in points]
    bars = list(panel.fig.data[3].y)
    panel.index.value = 3
    assert panel.result is points[3] and panel.error.value == ""
    assert list(panel.fig.data[2].x) == [3.0, 3.0] and "text 3" in panel.readout.value
    assert list(panel.fig.data[3].y) == [0.125, 0.1] != bars
    assert "<td>text 3</td>" in panel.readout.value            # escaped, in a table
    with pytest.raises(ValueError, match="no \\['samples'\\]"):
        widgets.OveroptimisationPanel([{k: v for k, v in points[0].items() if k != "samples"}])
    with pytest.raises(ValueError, match="probability"):
        widgets.OveroptimisationPanel([dict(points[0], samples=[("a", 1.0, 2.0)])])
    with pytest.raises(ValueError, match="no points"):
        widgets.OveroptimisationPanel([])


# --- the dashboard (notebook 07) ----------------------------------------------------------------


def test_the_dashboard_shows_each_control_its_row_and_caches_every_setting(tiny_lm):
    panel = dashboard(tiny_lm)
    assert list(panel.result.rows.index) == ["plain", "temperature"]
    assert list(panel.result.dists) == ["temperature"] and len(panel.fig.data) == 2
    assert "success judged by TextBlob" in panel.readout.value
    panel.toggles["framed"].value = True
    assert list(panel.result.rows.index) == ["plain", "temperature", "framed"]
    assert panel.result.rows.loc["framed", "KL (exact)"] > 0 and len(panel.fig.data) == 3
    panel.toggles["no token"].value = True              # a failing method: its row says why
    assert "masked every token" in panel.result.rows.loc["no token", "error"]
    assert "no token" not in panel.result.dists and panel.error.value == ""
    with count_forward_calls(tiny_lm) as calls:         # every one of these was seen before
        panel.toggles["framed"].value = False
        panel.toggles["framed"].value = True
    assert calls == [] and list(panel.result.rows.index)[-2:] == ["framed", "no token"]
    first = panel.result.dists["temperature"]
    panel.sliders["temperature"].value = 1.5
    assert panel.result.dists["temperature"].entropy() > first.entropy()   # hotter: flatter


def test_the_dashboard_refuses_bad_choices(tiny_lm):
    with pytest.raises(TypeError, match="Choice"):
        widgets.Dashboard(tiny_lm, "Hi", ["temperature"])
    with pytest.raises(ValueError, match="no control named"):
        widgets.dashboard_step(tiny_lm, "Hi", [], {"nope": None}, {})
    bad = widgets.Choice("bad", lambda s: "not a method")
    panel = widgets.Dashboard(tiny_lm, "Hi", [bad], on=["bad"], seeds=(0,), max_new_tokens=2)
    assert "make() must return a scoreboard.Method" in panel.result.rows.loc["bad", "error"]
