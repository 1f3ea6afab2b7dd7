"""The plots show the right tokens and numbers; the explorer panel recomputes from cached
logits when a knob moves, calls the model once per prompt, and shows its errors."""
import contextlib
import os

import pytest
import torch

import labkit as lk
from labkit import viz, widgets

# `make test` runs every test marked `widgets` twice: with ipywidgets 8, then with the 7.7 that
# Colab ships (LABKIT_IPYWIDGETS=7, ipywidgets 7.7.1 put first on PYTHONPATH).
pytestmark = pytest.mark.widgets


def test_the_ipywidgets_version_under_test():
    import ipywidgets
    major = int(ipywidgets.__version__.split(".")[0])
    wanted = os.environ.get("LABKIT_IPYWIDGETS")
    assert major == int(wanted) if wanted else major in (7, 8), ipywidgets.__version__


@contextlib.contextmanager
def count_forward_calls(lm):
    calls = []
    handle = lm.model.register_forward_hook(lambda *args: calls.append(1))
    try:
        yield calls
    finally:
        handle.remove()


# --- viz ---------------------------------------------------------------------------------------

def test_token_labels_make_whitespace_visible():
    assert viz.token_label(" Paris") == "␣Paris"
    assert viz.token_label("\n\tx") == "↵⇥x"
    assert viz.token_label("") == "∅"


def test_bars_shows_the_top_k_tokens_most_likely_first(tokenizer):
    logits = torch.full((len(tokenizer),), -10.0)
    paris, london = (tokenizer(" Paris", add_special_tokens=False).input_ids[0],
                     tokenizer(" London", add_special_tokens=False).input_ids[0])
    logits[paris], logits[london] = 5.0, 4.0
    d = lk.Distribution.from_logits(logits, tokenizer)
    fig = viz.bars(d, k=5)
    assert len(fig.data) == 1
    bar = fig.data[0]
    assert list(bar.x[:2]) == ["␣Paris", "␣London"]
    assert list(bar.y) == pytest.approx(d.probs.topk(5).values.tolist())


def test_tokens_with_the_same_text_get_distinct_bars():
    class SameText:
        def decode(self, ids):
            return " x"

    d = lk.Distribution.from_logits(torch.tensor([3.0, 2.0, 1.0]), SameText())
    assert list(viz.bars(d, k=3).data[0].x) == ["␣x #0", "␣x #1", "␣x #2"]


def test_bars_reads_after_on_the_same_tokens():
    before = lk.Distribution.from_logits(torch.tensor([3.0, 2.0, 1.0, 0.0]))
    after = before.apply(lk.controls.TopK(2))
    fig = viz.bars(before, after, k=3)
    assert [t.name for t in fig.data] == ["model", "after controls"]
    assert list(fig.data[1].x) == list(fig.data[0].x) == ["0", "1", "2"]
    assert fig.data[1].y[2] == 0.0                                # masked token: exactly 0
    assert sum(fig.data[1].y) == pytest.approx(1.0)
    assert sum(fig.data[0].y) < 1.0


def test_bars_accepts_tensors_of_probabilities_or_logits():
    probs = torch.tensor([0.1, 0.6, 0.3])
    from_probs = viz.bars(probs, k=3).data[0]
    from_logits = viz.bars(probs.log() + 7.0, k=3).data[0]
    assert list(from_probs.x) == list(from_logits.x) == ["1", "2", "0"]
    assert from_probs.y == pytest.approx([0.6, 0.3, 0.1])
    assert from_logits.y == pytest.approx([0.6, 0.3, 0.1])


def test_bars_rejects_mismatched_vocabularies():
    with pytest.raises(ValueError, match="same vocabulary"):
        viz.bars(torch.tensor([0.5, 0.5]), torch.tensor([0.2, 0.3, 0.5]))


def test_lines_has_one_curve_per_series():
    fig = viz.lines([0.5, 1, 2], {"entropy": torch.tensor([1.0, 2.0, 3.0]), "support": [1, 2, 3]},
                    x_title="temperature", log_x=True)
    assert [t.name for t in fig.data] == ["entropy", "support"]
    assert list(fig.data[0].y) == [1.0, 2.0, 3.0]
    assert fig.layout.xaxis.type == "log"


# --- the pure function -------------------------------------------------------------------------

def test_explore_reads_out_entropy_support_and_mass():
    d = lk.Distribution.from_logits(torch.tensor([0.5, 0.3, 0.15, 0.05]).log())
    r = widgets.explore(d, temperature=1.0, top_k=None, top_p=0.7)
    assert r.support == 2
    assert r.mass_kept == pytest.approx(0.8)
    assert r.entropy_before == pytest.approx(d.entropy())
    assert r.entropy_after < r.entropy_before
    neutral = widgets.explore(d)                     # every knob off: nothing changes
    assert neutral.controls == [] and neutral.mass_kept == pytest.approx(1.0)
    assert widgets.explore(d, temperature=0.3).entropy_after < d.entropy()
    assert widgets.explore(d, top_k=1).entropy_after == 0.0


# --- the panel ---------------------------------------------------------------------------------

@pytest.fixture
def panel(tiny_lm):
    return widgets.explorer(tiny_lm, "The capital of France is", k=10)


def test_panel_is_a_displayable_widget_with_a_live_figure(panel):
    import ipywidgets
    import plotly.graph_objects as go

    assert isinstance(panel, ipywidgets.VBox)
    assert isinstance(panel.fig, go.FigureWidget) and panel.fig in panel.children
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


def test_an_empty_prompt_shows_the_error_in_the_panel_and_keeps_the_last_result(panel, tiny_lm):
    good = panel.result
    panel.set_prompt("")                                   # must not raise
    assert "ValueError" in panel.error.value and "empty" in panel.error.value
    assert panel.result is good
    panel.set_prompt("Hello")                              # recovering clears the error
    assert panel.error.value == ""
    assert panel.result is not good


def test_the_panel_works_with_a_small_vocabulary():
    from transformers import GPT2Config, GPT2LMHeadModel

    class CharTokenizer:
        eos_token_id, pad_token_id, chat_template = 0, 0, None

        def __call__(self, text, return_tensors=None, add_special_tokens=True):
            ids = torch.tensor([[1 + ord(c) % 7 for c in text]])
            return type("Enc", (), {"input_ids": ids})()

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


def test_without_figurewidget_the_panel_redraws_a_static_figure(tiny_lm, monkeypatch):
    import ipywidgets
    import plotly.graph_objects as go

    def unavailable(*args, **kwargs):
        raise ImportError("no anywidget")

    monkeypatch.setattr(go, "FigureWidget", unavailable)
    panel = widgets.explorer(tiny_lm, "Hello", k=5)
    assert isinstance(panel.fig, go.Figure) and any(
        isinstance(c, ipywidgets.Output) for c in panel.children)
    panel.top_k.value = 2
    assert sum(y > 0 for y in panel.fig.data[1].y) == 2 and panel.error.value == ""


def test_bars_can_rank_by_the_after_distribution():
    from labkit.dist import Distribution

    before = Distribution.from_logits(torch.tensor([3.0, 2.0, 1.0, 0.0]))
    after = Distribution.from_logits(torch.tensor([0.0, 1.0, 2.0, 3.0]))
    labels, p_before, p_after = lk.viz.bars_data(before, after, k=2, rank_by="after")
    assert labels == ["3", "2"]
    assert p_after == sorted(p_after, reverse=True)
    assert p_before == pytest.approx(before.probs[[3, 2]].tolist())
    with pytest.raises(ValueError, match="rank_by"):
        lk.viz.bars_data(before, after, rank_by="model")
