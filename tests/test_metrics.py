"""The scoreboard's figures (labkit.metrics), its judge (labkit.lexicon) and the judge-labelled
data (labkit.tasks.sentiment_data), on the tiny random model (no download)."""
import copy
import math

import pytest
import torch

import labkit as lk
from labkit import lexicon, metrics, steer, tasks


@pytest.fixture(scope="module")
def other_lm(tiny_lm):
    """The tiny model with perturbed weights: a different model on the same vocabulary."""
    model = copy.deepcopy(tiny_lm.model)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return lk.LM(model=model, tokenizer=tiny_lm.tokenizer, name="tiny-perturbed")


class BodyCalls:
    def __init__(self, lm):
        self.body, self.n = lm.model.base_model, 0

    def __enter__(self):
        self.handle = self.body.register_forward_hook(lambda *_: setattr(self, "n", self.n + 1))
        return self

    def __exit__(self, *exc):
        self.handle.remove()


# --- words ---------------------------------------------------------------------------------------


def test_bag_rate_and_frequency():
    assert metrics.bag_rate(["I am Happy.", "no"], ["happy"]) == 0.5
    assert metrics.bag_frequency("happy happy joy", ["happy", "joy"]) == 1.0


def test_distinct_n_is_per_text_then_averaged():
    assert metrics.distinct_n(["a b a b"], 1) == 0.5
    assert metrics.distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    # pooled over texts it would be 0.5: the same two words in two texts are not repetition
    assert metrics.distinct_n(["a b", "a b"], 1) == 1.0
    assert metrics.distinct_n(["a b", "a a"], 1) == pytest.approx((1.0 + 0.5) / 2)
    # the figure of a row does not depend on how many (similar) texts it holds
    assert metrics.distinct_n(["the cat sat"] * 7, 2) == metrics.distinct_n(["the cat sat"], 2)


def test_distinct_n_skips_texts_without_an_n_gram_and_is_nan_if_none_has_one():
    assert metrics.distinct_n(["a", "b c d"], 2) == 1.0            # "a" has no bigram: skipped
    assert math.isnan(metrics.distinct_n(["a", ""], 2))
    assert math.isnan(metrics.distinct(" ", 1))
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError):
            metrics.distinct_n(["a"], bad)


# --- the lexicon ---------------------------------------------------------------------------------


def test_lexicon_judges_sentiment():
    assert lexicon.lexicon_positive(["What a wonderful, lovely day!", "This is awful."]) == 0.5
    assert lexicon.lexicon_label("This is awful.") == 0
    assert lexicon.lexicon_label("The box is on the table.") is None
    assert math.isnan(lexicon.lexicon_positive([]))
    assert metrics.lexicon_positive is lexicon.lexicon_positive        # imported, not copied


def test_textblob_is_a_second_lexicon_that_judges_sentiment():
    assert lexicon.polarity("What a wonderful day!") > 0.5
    assert lexicon.polarity("I hate it") < 0 and lexicon.polarity("The box") == 0.0
    assert lexicon.polarity_positive(["What a wonderful day!", "I hate it", "The box"]) == 1 / 3
    assert math.isnan(lexicon.polarity_positive([]))
    with pytest.raises(TypeError, match="string"):
        lexicon.polarity(3)


def test_repetition_is_seq_rep_4():
    assert metrics.repetition("a b c d e f") == 0.0
    assert metrics.repetition("the cat the cat the cat the cat") == pytest.approx(1 - 2 / 5)
    assert metrics.repetition(["a b c d", "x y"]) == 0.0          # "x y" has no 4-gram
    assert math.isnan(metrics.repetition(["x y"]))


# --- fluency -------------------------------------------------------------------------------------


def test_fluency_refuses_unequal_lists_and_takes_chat(tiny_lm):
    with pytest.raises(ValueError, match="one prompt per text"):
        metrics.fluency(tiny_lm, ["Hello", "Hi"], ["there"])
    assert metrics.fluency(tiny_lm, "Hello", [" there", " you"]) == pytest.approx(
        (lk.perplexity(tiny_lm, "Hello", " there") + lk.perplexity(tiny_lm, "Hello", " you")) / 2)
    chat = metrics.fluency(tiny_lm, ["Hello"], ["there"], chat=True)
    assert chat == pytest.approx(lk.perplexity(tiny_lm, "Hello", "there", chat=True))
    assert chat != pytest.approx(metrics.fluency(tiny_lm, ["Hello"], ["there"]))
    assert math.isnan(metrics.fluency(tiny_lm, ["Hello"], ["  "]))


# --- KL from the base ----------------------------------------------------------------------------


def test_mean_kl_without_base_is_the_controls_own_distance(tiny_lm):
    _, steps = lk.generate(tiny_lm, "Hello", max_new_tokens=3, seed=0, trace=True)
    assert metrics.mean_kl(steps) == pytest.approx(0.0, abs=1e-6)
    bow = steer.BagOfWords(tiny_lm.tokenizer, ["happy"], 3.0)
    _, steps = lk.generate(tiny_lm, "Hello", controls=[bow], max_new_tokens=3, seed=0, trace=True)
    assert metrics.mean_kl(steps) > 0
    assert metrics.mean_kl(steps, base=tiny_lm) == pytest.approx(metrics.mean_kl(steps), abs=1e-4)


def test_mean_kl_from_base_sees_another_model_and_a_prompt_prefix(tiny_lm, other_lm):
    kw = dict(max_new_tokens=5, seed=0, trace=True, stop_at_eos=False)
    _, same = lk.generate(tiny_lm, "Once upon a time", **kw)
    assert metrics.mean_kl(same, base=tiny_lm) == pytest.approx(0.0, abs=1e-6)   # rounding only
    _, other = lk.generate(other_lm, "Once upon a time", **kw)
    assert metrics.mean_kl(other) == pytest.approx(0.0, abs=1e-6)      # no controls: 0 ...
    assert metrics.mean_kl(other, base=tiny_lm) > 1e-4                  # ... but another model
    _, prefixed = lk.generate(tiny_lm, "Be cheerful. Once upon a time", **kw)
    assert metrics.mean_kl(prefixed, base=tiny_lm) == pytest.approx(0.0, abs=1e-6)
    # (the random model is nearly uniform, so every KL here is small: ~1e-3 vs rounding's 1e-7)
    assert metrics.mean_kl(prefixed, base=tiny_lm, prompt="Once upon a time") > 1e-4
    with pytest.raises(ValueError, match="base="):
        metrics.mean_kl(prefixed, prompt="Once upon a time")


def test_base_logits_are_one_pass_per_generation_and_match_each_step(tiny_lm, other_lm):
    kw = dict(max_new_tokens=4, seed=0, trace=True, stop_at_eos=False)
    _, a = lk.generate(other_lm, "Once upon a time", **kw)
    _, b = lk.generate(other_lm, "The weather today is", **kw)
    assert [len(g) for g in metrics.generations(a + b)] == [4, 4]
    with BodyCalls(tiny_lm) as calls:
        kls = metrics.step_kls(a + b, base=tiny_lm)
    assert calls.n == 2 and len(kls) == 8
    for step, value in zip(a + b, kls):                   # naive: the base at each context
        with torch.inference_mode():
            q = tiny_lm.model(input_ids=step.after.context).logits[0, -1]
        assert value == pytest.approx(float(lk.dist.kl(step.after.logits, q)), abs=1e-4)
    with pytest.raises(ValueError, match="one generation"):
        metrics.step_kls(a + b, base=tiny_lm, prompt="Once upon a time")


def test_against_base_is_one_pass_and_its_log_ratios_are_log_q_minus_log_p(tiny_lm, other_lm):
    kw = dict(max_new_tokens=4, seed=0, trace=True, stop_at_eos=False)
    _, steps = lk.generate(other_lm, "Once upon a time", **kw)
    with BodyCalls(tiny_lm) as calls:
        logq, logp, kls = metrics.against_base(steps, tiny_lm)
    assert calls.n == 1
    assert kls.tolist() == pytest.approx(metrics.step_kls(steps, base=tiny_lm), abs=1e-6)
    for step, lq, lp, r in zip(steps, logq, logp, metrics.log_ratios(steps, tiny_lm)):
        with torch.inference_mode():                      # naive: the base at each context
            p = torch.log_softmax(tiny_lm.model(input_ids=step.after.context).logits[0, -1], -1)
        assert float(lq) == pytest.approx(float(step.after.logprobs[step.token_id]), abs=1e-5)
        assert float(lp) == pytest.approx(float(p[step.token_id]), abs=1e-4)
        assert r == pytest.approx(float(lq - lp), abs=1e-6)
    _, more = lk.generate(other_lm, "The weather today is", **kw)
    with pytest.raises(ValueError, match="ONE generation"):
        metrics.log_ratios(steps + more, tiny_lm)
    with pytest.raises(ValueError, match="no steps"):
        metrics.against_base([], tiny_lm)


# --- cost ----------------------------------------------------------------------------------------


def test_interleaved_rotates_and_times_every_function():
    order = []
    t = metrics.interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")},
                            repeats=3)
    assert order == ["a", "b", "a", "b", "b", "a", "a", "b"]      # warm-up, then rotated rounds
    assert [len(v) for v in t.values()] == [3, 3]
    assert metrics.cost_ratio(lambda: None, lambda: None, repeats=2) > 0
    with pytest.raises(ValueError):
        metrics.interleaved({})


# --- the row --------------------------------------------------------------------------------------


def test_score_makes_one_row(tiny_lm):
    row = metrics.score(tiny_lm, "Hello", [" a happy day", " a good day"], bag_words=["happy"],
                        kls=[0.5, 1.5])
    assert row["bag rate"] == 0.5 and row["KL from base"] == 1.0
    assert set(row) >= {"positive (lexicon)", "perplexity", "distinct-1", "distinct-2",
                        "distinct-3"}


# --- the lexicon-labelled sentences -----------------------------------------------------------------


def test_sentiment_data_is_seeded_balanced_and_leaves_the_callers_rng(tiny_lm, monkeypatch):
    monkeypatch.setattr(lexicon, "sentiment", lambda text: 0.5 if len(text) % 2 else -0.5)
    state = torch.random.get_rng_state()
    texts, labels = tasks.sentiment_data(tiny_lm, n=8, max_new_tokens=4, batch_size=4, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert (texts, labels) == tasks.sentiment_data(tiny_lm, n=8, max_new_tokens=4, batch_size=4,
                                                   seed=0)
    assert len(texts) == len(labels) and set(labels) <= {0, 1}
    assert labels.count(0) == labels.count(1)


def test_peak_rss_grows_with_a_large_allocation():
    import subprocess
    import sys

    code = ("from labkit.metrics import peak_rss_gb; a = peak_rss_gb(); "
            "b = bytearray(300 * 10**6); b[::4096] = b'x' * len(b[::4096]); "
            "print(a, peak_rss_gb())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after = map(float, out.stdout.split())
    assert 0.01 < before < after and after - before == pytest.approx(0.3, abs=0.08)


def test_general_text_is_plain_prose_for_perplexity():
    assert len(tasks.GENERAL_TEXT) >= 10
    assert all(t[0].isupper() and t.endswith(".") and "\n" not in t for t in tasks.GENERAL_TEXT)
