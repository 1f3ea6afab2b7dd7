"""The figure factories of `labkit.viz` show the right tokens and numbers, in the lab's one set
of colours; a bare tensor that could be probabilities or logits is a ValueError, never a guess;
`widgets.explore` (the explorer's pure function) reads out what the knobs did. The panels
themselves are tested in test_panels.py."""
import pytest
import torch

import labkit as lk
from labkit import viz, widgets
from labkit.dist import Distribution

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


def test_bars_accepts_tensors_of_probabilities_or_logits_when_told_which():
    probs = torch.tensor([0.1, 0.6, 0.3])
    from_probs = viz.bars(probs, k=3, kind="probs").data[0]
    from_logits = viz.bars(probs.log() + 7.0, k=3, kind="logits").data[0]   # all positive
    from_negative = viz.bars(probs.log(), k=3).data[0]     # a negative entry: only logits fit
    assert list(from_probs.x) == list(from_logits.x) == list(from_negative.x) == ["1", "2", "0"]
    for bar in (from_probs, from_logits, from_negative):
        assert bar.y == pytest.approx([0.6, 0.3, 0.1])


@pytest.mark.parametrize("x", [[0.1, 0.6, 0.3], [1.0, 0.0, 0.0], [0.5, 0.5], [3.0, 1.0]])
def test_a_tensor_that_could_be_probabilities_or_logits_is_a_value_error(x):
    with pytest.raises(ValueError, match="kind='probs' or kind='logits'"):
        viz.as_distribution(torch.tensor(x))
    with pytest.raises(ValueError, match="kind='probs' or kind='logits'"):
        viz.bars(torch.tensor(x))


def test_the_two_readings_of_one_tensor_differ():
    x = torch.tensor([1.0, 0.0, 0.0])                 # logits that happen to sum to 1
    assert viz.as_distribution(x, kind="probs").probs.tolist() == [1.0, 0.0, 0.0]
    assert float(viz.as_distribution(x, kind="logits").probs[0]) == pytest.approx(
        float(torch.softmax(x, 0)[0]))                # 0.58: a mild preference


def test_as_distribution_checks_probabilities_and_its_arguments():
    d = lk.Distribution.from_logits(torch.tensor([1.0, 2.0]))
    assert viz.as_distribution(d) is d and viz.as_distribution(d, kind="probs") is d
    with pytest.raises(ValueError, match="sum to 1.*kind='logits'"):
        viz.as_distribution(torch.tensor([0.2, 0.3]), kind="probs")
    with pytest.raises(ValueError, match="negative"):
        viz.as_distribution(torch.tensor([-0.5, 1.5]), kind="probs")
    with pytest.raises(ValueError, match="kind must be"):
        viz.as_distribution(torch.tensor([-1.0, 0.0]), kind="logprobs")
    with pytest.raises(ValueError, match="1-D"):
        viz.as_distribution(torch.zeros(2, 3) - 1)
    with pytest.raises(ValueError, match="NaN"):
        viz.as_distribution(torch.tensor([float("nan"), -1.0]))


def test_bars_rejects_mismatched_vocabularies():
    with pytest.raises(ValueError, match="same vocabulary"):
        viz.bars(torch.tensor([0.5, 0.5]), torch.tensor([0.2, 0.3, 0.5]), kind="probs")
    with pytest.raises(ValueError, match="k must be"):
        viz.bars(torch.tensor([-1.0, 0.0]), k=0)


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




def test_bars_can_rank_by_the_after_distribution():
    before = Distribution.from_logits(torch.tensor([3.0, 2.0, 1.0, 0.0]))
    after = Distribution.from_logits(torch.tensor([0.0, 1.0, 2.0, 3.0]))
    labels, p_before, p_after = viz.bars_data(before, after, k=2, rank_by="after")
    assert labels == ["3", "2"]
    assert p_after == sorted(p_after, reverse=True)
    assert p_before == pytest.approx(before.probs[[3, 2]].tolist())
    with pytest.raises(ValueError, match="rank_by"):
        viz.bars_data(before, after, rank_by="model")


# --- one set of colours ------------------------------------------------------------------------

def test_figures_use_the_one_palette():
    assert viz.colors(3) == list(viz.PALETTE[:3])
    assert viz.colors(2, base=True) == [viz.BEFORE_COLOR, viz.PALETTE[0]]
    assert len(viz.colors(len(viz.PALETTE) + 2)) == len(viz.PALETTE) + 2      # cycles
    d = Distribution.from_logits(torch.tensor([2.0, 1.0, 0.0]))
    fig = viz.bars(d, d.apply(lk.controls.TopK(1)), k=3)
    assert [t.marker.color for t in fig.data] == [viz.BEFORE_COLOR, viz.AFTER_COLOR]
    assert [t.line.color for t in viz.lines([1, 2], {"a": [1, 2], "b": [2, 1]}).data] == \
        viz.colors(2)


# --- the toy world's sequences (notebook 01) ---------------------------------------------------

class ThreeWords:
    """A duck-typed world: 3 words × 2 positions = 9 sequences (what viz.sequences reads)."""
    vocab, n_sequences = ["a", "b", "c"], 9

    def sequences(self):
        return torch.tensor([[i, j] for i in range(3) for j in range(3)])

    def text(self, seq):
        return " ".join(self.vocab[int(i)] for i in seq)


def test_sequences_shows_the_likeliest_under_order_by_in_every_distribution():
    world = ThreeWords()
    p = torch.tensor([0.3, 0.05, 0.05, 0.2, 0.1, 0.05, 0.1, 0.1, 0.05]).double()
    q = torch.full((9,), 1 / 9).double()
    fig = viz.sequences(world, {"model": p.log(), "uniform": q.log()}, k=3)
    assert [t.name for t in fig.data] == ["model", "uniform"]
    assert list(fig.data[0].x) == ["a a", "b a", "b b"]                # model's top 3
    assert list(fig.data[0].y) == pytest.approx([0.3, 0.2, 0.1])
    assert list(fig.data[1].y) == pytest.approx([1 / 9] * 3)           # read on the same rows
    assert [t.marker.color for t in fig.data] == viz.colors(2, base=True)
    fixed = viz.sequences(world, {"model": q.log()}, k=3, rows=viz.sequence_rows(p.log(), 3))
    assert list(fixed.data[0].x) == ["a a", "b a", "b b"]              # rows kept as given
    by_q = viz.sequences(world, {"model": p.log(), "uniform": q.log()}, k=2, order_by="uniform")
    assert len(by_q.data[0].x) == 2


def test_sequences_rejects_bad_input():
    world = ThreeWords()
    with pytest.raises(ValueError, match=r"one log-probability per sequence, \[9\]"):
        viz.sequences(world, {"model": torch.zeros(8)})
    with pytest.raises(ValueError, match="order_by='grammar' is not one of"):
        viz.sequences(world, {"model": torch.zeros(9)}, order_by="grammar")
    with pytest.raises(ValueError, match="empty"):
        viz.sequences(world, {})


# --- the token pool's mask (notebook 05) -------------------------------------------------------

def test_pool_mask_marks_what_the_pool_allowed(tiny_lm):
    from labkit import pool

    price = pool.Regex(tiny_lm.tokenizer, r"\d{2}\.\d{2}")
    _, steps = pool.generate_constrained(tiny_lm, "The price is", price, max_new_tokens=8,
                                         seed=0, trace=True)
    fig = viz.pool_mask(steps, k=5)
    heat = fig.data[0]
    assert len(heat.z) == 5 and len(heat.z[0]) == len(steps)           # rank step
    for t, step in enumerate(steps):
        ids, _ = step.before.top_ids(5)
        assert [row[t] for row in heat.z] == [
            float(torch.isfinite(step.after.logits[i])) for i in ids]
    assert fig.data[0].colorscale[-1][1] == viz.AFTER_COLOR
    with pytest.raises(ValueError, match="trace=True"):
        viz.pool_mask([])


# --- prompting (notebook 02) -------------------------------------------------------------------

def test_label_bars_highlights_the_correct_label():
    fig = viz.label_bars(["positive", "negative"], torch.tensor([0.7, 0.3]), gold=1)
    assert list(fig.data[0].x) == ["positive", "negative"]
    assert list(fig.data[0].y) == pytest.approx([0.7, 0.3])
    assert list(fig.data[0].marker.color) == [viz.BEFORE_COLOR, viz.AFTER_COLOR]
    with pytest.raises(ValueError, match="2 labels but 3"):
        viz.label_bars(["a", "b"], [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="gold=2"):
        viz.label_bars(["a", "b"], [0.2, 0.8], gold=2)


HISTORY = [dict(format=f, shots=k, order=o, accuracy=a, p_correct=a, mass=0.5)
           for f, k, o, a in [("raw", 0, 0, 0.5), ("raw", 2, 0, 0.6), ("raw", 2, 1, 0.8),
                              ("chat", 0, 0, 0.7), ("chat", 2, 0, 0.9), ("chat", 2, 1, 0.9)]]


def test_sweep_draws_one_line_per_format_with_the_spread_over_orders():
    fig = viz.sweep(HISTORY, "accuracy")
    assert [t.name for t in fig.data] == ["raw", "chat"]
    raw = fig.data[0]
    assert list(raw.x) == [0, 2] and list(raw.y) == pytest.approx([0.5, 0.7])
    assert list(raw.error_y.array) == pytest.approx([0.0, 0.1])        # std over the 2 orders
    assert fig.layout.yaxis.title.text == "accuracy"
    with pytest.raises(ValueError, match="'acc' is not in the history"):
        viz.sweep(HISTORY, "acc")
    with pytest.raises(ValueError, match="empty"):
        viz.sweep([])


# --- steering trade-offs (notebook 06) ---------------------------------------------------------

def test_tradeoff_draws_one_line_per_method_in_order_of_strength():
    base = {"strength": 0, "ppl": 10.0, "pos": 0.2}
    curves = {"bag": [base, {"strength": 4, "ppl": 30.0, "pos": 0.6}],
              "guided": [base, {"strength": 3, "ppl": 12.0, "pos": 0.5}]}
    fig = viz.tradeoff(curves, "ppl", "pos")
    assert [t.name for t in fig.data] == ["bag", "guided"]
    assert list(fig.data[0].x) == [10.0, 30.0] and list(fig.data[1].y) == [0.2, 0.5]
    assert list(fig.data[0].text) == ["0", "4"]
    assert fig.layout.title.text == "pos vs ppl"
    with pytest.raises(ValueError, match="have no 'fluency'"):
        viz.tradeoff(curves, "fluency", "pos")


def test_loss_curves_draw_train_and_held_out_of_each_run():
    h = [{"step": 1, "loss": 2.0, "eval_loss": 2.5}, {"step": 2, "loss": 1.5},
         {"step": 3, "loss": 1.2, "eval_loss": 1.9}]
    fig = viz.loss_curves(h)
    train, held = fig.data
    assert list(train.y) == [2.0, 1.5, 1.2] and list(held.x) == [1, 3]
    assert list(held.y) == [2.5, 1.9]
    two = viz.loss_curves({"a": h, "b": [{"step": 1, "loss": 1.0}]})
    assert [t.name for t in two.data] == ["a: train (batch)", "a: held out", "b: train (batch)"]
    with pytest.raises(ValueError, match="'step' and 'loss'"):
        viz.loss_curves([{"loss": 1.0}])


# --- the scoreboard's picture -------------------------------------------------------------------


def test_pareto_front_is_the_non_dominated_points_in_order_of_x():
    xs, ys = [0.0, 1.0, 2.0, 0.5, 3.0, float("nan")], [0.1, 0.5, 0.4, 0.1, 0.9, 1.0]
    assert viz.pareto_front(xs, ys) == [0, 1, 4]          # (0.5, 0.1) and (2, 0.4) are beaten
    naive = [i for i in range(5) if not any(xs[j] <= xs[i] and ys[j] >= ys[i]
                                            and (xs[j], ys[j]) != (xs[i], ys[i]) for j in range(5))]
    assert viz.pareto_front(xs, ys) == naive
    assert viz.pareto_front([1.0, 1.0], [0.2, 0.3]) == [1]  # a tie on x: the better y


def test_pareto_draws_each_family_as_a_curve_and_the_front():
    import pandas as pd
    df = pd.DataFrame([
        {"method": "plain", "family": None, "strength": None, "KL (MC)": 0.0, "success": 0.3},
        {"method": "bag 2", "family": "bag", "strength": 2.0, "KL (MC)": 0.4, "success": 0.6},
        {"method": "bag 1", "family": "bag", "strength": 1.0, "KL (MC)": 0.1, "success": 0.4},
        {"method": "broken", "family": None, "strength": None, "KL (MC)": float("nan"),
         "success": float("nan")},
    ]).set_index("method")
    fig = viz.pareto(df)
    names = [t.name for t in fig.data]
    assert names == ["plain", "bag", "Pareto front"]        # the NaN row is left out
    bag = fig.data[1]
    assert list(bag.x) == [0.1, 0.4] and list(bag.text) == ["bag 1", "bag 2"]   # by strength
    assert fig.data[1].mode == "lines+markers" and fig.data[0].mode == "markers"
    assert list(fig.data[2].x) == [0.0, 0.1, 0.4]
    with pytest.raises(ValueError, match="perplexity"):
        viz.pareto(df, x="perplexity")
