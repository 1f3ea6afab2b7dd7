"""Notebook 06's controls, PPLM and metrics, on the tiny random model (no download)."""
import math

import pytest
import torch
from transformers import SequenceBiasLogitsProcessor

import labkit as lk
from labkit import metrics, pplm, steer


@pytest.fixture(scope="module")
def disc(tiny_lm):
    texts = ["a happy day", "love it so much", "great and lovely", "wonderful friends",
             "a sad day", "hate it so much", "awful and ugly", "terrible enemies"]
    d, history = steer.train_discriminator(tiny_lm, texts, [1, 1, 1, 1, 0, 0, 0, 0], epochs=60)
    return d, history


def test_logit_bias_equals_transformers_sequence_bias():
    torch.manual_seed(0)
    scores, ids = torch.randn(2, 50), torch.randint(0, 50, (2, 7))
    bias = {3: 2.5, 17: -1.0, 42: 0.75}
    want = SequenceBiasLogitsProcessor([[[t], b] for t, b in bias.items()])(ids, scores.clone())
    assert torch.allclose(steer.LogitBias(bias)(ids, scores.clone()), want, atol=1e-6)


@pytest.mark.parametrize("bad", [{}, {3: float("nan")}, {3: math.inf}, {-1: 1.0}, {"a": 1.0}])
def test_logit_bias_bad_input(bad):
    with pytest.raises(ValueError):
        steer.LogitBias(bad)


def test_bag_boosts_every_variant_and_completes_long_words(tokenizer):
    bow = steer.BagOfWords(tokenizer, ["happy", "xylophone"], 3.0)
    for variant in ("happy", " happy", "Happy", " Happy"):
        first = tokenizer(variant, add_special_tokens=False).input_ids[0]
        assert first in bow.token_ids.tolist(), variant
    assert bow.multi_token == ["xylophone"]
    seq = tokenizer(" xylophone", add_special_tokens=False).input_ids     # ' xyl' 'ophone'
    scores = torch.zeros(1, len(tokenizer))
    after = bow(torch.tensor([[5, seq[0]]]), scores)
    assert after[0, seq[1]] == 3.0                                         # completion boosted
    assert bow(torch.tensor([[5, 6]]), scores)[0, seq[1]] == 0.0           # not out of context
    assert "xylophone" in bow.explain()
    with pytest.raises(ValueError, match="single token"):
        steer.BagOfWords(tokenizer, ["xylophone"], 1.0, multi_token="error")


def test_bag_mass_rises_monotonically_with_strength(tiny_lm):
    d = lk.next_token(tiny_lm, "The weather today is")
    bow = steer.BagOfWords(tiny_lm.tokenizer, steer.POSITIVE_WORDS, 0.0)
    masses = [d.apply(steer.BagOfWords(tiny_lm.tokenizer, steer.POSITIVE_WORDS, s))
              .mass(bow.token_ids) for s in (0, 0.5, 1, 2, 4, 8)]
    assert masses[0] == pytest.approx(d.mass(bow.token_ids), abs=1e-6)
    assert all(a < b for a, b in zip(masses, masses[1:]))
    assert masses[-1] > 0.5


@pytest.mark.parametrize("words,strength", [([], 1.0), (["", " "], 1.0), (["happy"], float("nan")),
                                            (["happy"], -1.0), (["happy"], math.inf)])
def test_bag_bad_input(tokenizer, words, strength):
    with pytest.raises(ValueError):
        steer.BagOfWords(tokenizer, words, strength)


def test_discriminator_loss_goes_down(disc):
    _, history = disc
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert history[-1]["accuracy"] == 1.0


def test_discriminator_of_another_hidden_size_is_refused(tiny_lm):
    other = steer.Discriminator(hidden_size=tiny_lm.model.config.hidden_size + 1)
    with pytest.raises(ValueError, match="hidden size"):
        steer.ClassifierGuidance(tiny_lm, other)
    with pytest.raises(ValueError, match="hidden size"):
        pplm.generate(tiny_lm, "Hello there", discriminator=other, max_new_tokens=2)


def test_guidance_gamma_zero_is_top_k_and_keeps_k_tokens(tiny_lm, disc):
    d = lk.next_token(tiny_lm, "The weather today is")
    g0 = steer.ClassifierGuidance(tiny_lm, disc[0], gamma=0.0, top_k=5)
    assert torch.allclose(d.apply(g0).probs, d.apply(lk.controls.TopK(5)).probs, atol=1e-6)
    g = steer.ClassifierGuidance(tiny_lm, disc[0], gamma=3.0, top_k=5)
    assert d.apply(g).support() == 5
    with pytest.raises(ValueError):
        steer.ClassifierGuidance(tiny_lm, disc[0], gamma=float("nan"))


def test_guidance_cache_reuse_matches_recomputation(tiny_lm, disc):
    g = steer.ClassifierGuidance(tiny_lm, disc[0], gamma=2.0, top_k=4)
    text = lk.generate(tiny_lm, "The weather today is", controls=[g], max_new_tokens=6, seed=1,
                       stop_at_eos=False)
    ids = tiny_lm.encode("The weather today is" + text)
    cands = torch.arange(10, 14)
    fresh = steer.ClassifierGuidance(tiny_lm, disc[0], gamma=2.0, top_k=4)
    assert torch.allclose(g.attribute_logprob(ids, cands), fresh.attribute_logprob(ids, cands),
                          atol=1e-4)


def test_pplm_step_size_zero_is_plain_decoding(tiny_lm, disc):
    bow = steer.BagOfWords(tiny_lm.tokenizer, ["happy"], 1.0)
    for seed in (0, 1):
        plain = lk.generate(tiny_lm, "Once upon a time", max_new_tokens=8, seed=seed)
        assert pplm.generate(tiny_lm, "Once upon a time", bag=bow, step_size=0.0,
                             max_new_tokens=8, seed=seed) == plain
        assert pplm.generate(tiny_lm, "Once upon a time", discriminator=disc[0], step_size=0.0,
                             max_new_tokens=8, seed=seed) == plain
    d_plain = lk.next_token(tiny_lm, "Once upon a time")
    d_pplm = pplm.next_token(tiny_lm, "Once upon a time", bag=bow, step_size=0.0)
    assert torch.allclose(d_plain.probs, d_pplm.probs, atol=1e-5)


def test_pplm_moves_mass_towards_the_bag(tiny_lm):
    bow = steer.BagOfWords(tiny_lm.tokenizer, steer.POSITIVE_WORDS, 1.0)
    base = lk.next_token(tiny_lm, "Once upon a time").mass(bow.token_ids)
    steered = pplm.next_token(tiny_lm, "Once upon a time", bag=bow, step_size=0.5,
                              gm_scale=1.0).mass(bow.token_ids)
    assert steered > base


@pytest.mark.parametrize("kw", [dict(step_size=-0.1), dict(step_size=float("nan")),
                                dict(gm_scale=1.5), dict(num_iterations=-1), dict(kl_scale=-1)])
def test_pplm_bad_config(kw):
    with pytest.raises(ValueError):
        pplm.PPLMConfig(**kw)


def test_pplm_needs_an_attribute(tiny_lm):
    with pytest.raises(ValueError, match="attribute"):
        pplm.generate(tiny_lm, "Hello", max_new_tokens=2)


def test_metrics():
    assert metrics.distinct_n(["a b a b"], 1) == 0.5
    assert metrics.distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert metrics.bag_rate(["I am Happy.", "no"], ["happy"]) == 0.5
    assert metrics.bag_frequency("happy happy joy", ["happy", "joy"]) == 1.0
    assert metrics.lexicon_positive(["What a wonderful, lovely day!", "This is awful."]) == 0.5
    with pytest.raises(ValueError):
        metrics.distinct_n(["a"], 0)


def test_mean_kl_is_zero_without_controls_and_positive_with_a_bag(tiny_lm):
    _, steps = lk.generate(tiny_lm, "Hello", max_new_tokens=3, seed=0, trace=True)
    assert metrics.mean_kl(steps) == pytest.approx(0.0, abs=1e-6)
    bow = steer.BagOfWords(tiny_lm.tokenizer, ["happy"], 3.0)
    _, steps = lk.generate(tiny_lm, "Hello", controls=[bow], max_new_tokens=3, seed=0, trace=True)
    assert metrics.mean_kl(steps) > 0


def test_check_bag_of_words_passes_reference_and_catches_space_only(capsys):
    from labkit import checks
    assert checks.check_bag_of_words(checks.reference_bag_of_words)

    def space_only(tokenizer, words, logits, strength):
        ids = [tokenizer(" " + w, add_special_tokens=False).input_ids[0] for w in words]
        out = logits.clone()
        out[ids] += strength
        return out

    assert not checks.check_bag_of_words(space_only)
    assert "leading-space" in capsys.readouterr().out

    def todo(tokenizer, words, logits, strength):
        raise NotImplementedError

    assert not checks.check_bag_of_words(todo)
    assert "not attempted" in capsys.readouterr().out


def test_pplm_carry_option_runs(tiny_lm):
    bow = steer.BagOfWords(tiny_lm.tokenizer, steer.POSITIVE_WORDS, 1.0)
    kw = dict(bag=bow, step_size=0.5, max_new_tokens=4, seed=0, stop_at_eos=False)
    text, steps = pplm.generate(tiny_lm, "Once upon a time", carry=True, trace=True, **kw)
    assert len(steps) == 4 and all(abs(float(s.after.probs.sum()) - 1) < 1e-5 for s in steps)


@pytest.mark.widgets
def test_strength_panel_shows_errors_and_keeps_its_result(tiny_lm):
    panel = steer.strength_panel(tiny_lm, "The weather today is", ["happy"], strength=1.0)
    panel.strength.value = 5.0
    assert panel.result.bag.strength == 5.0 and panel.result.mass_after > panel.result.mass_before
    panel.prompt.value = "   "                                   # an empty prompt: shown, not raised
    assert "empty" in panel.error.value
    assert panel.result.bag.strength == 5.0                       # the last good result is kept
    panel.prompt.value = "Once upon a time"
    assert panel.error.value == ""


def _first(tokenizer, text):
    return tokenizer(text, add_special_tokens=False).input_ids[0]


@pytest.mark.parametrize("mistake,hint", [
    (lambda tok, ws, x, s: x.index_add(0, torch.tensor([_first(tok, w) for w in ws]),
                                       torch.full((len(ws),), float(s))), "without a space"),
    (lambda tok, ws, x, s: x.index_add(
        0, torch.tensor(sorted({t for w in ws for v in (w, " " + w)
                                for t in tok(v, add_special_tokens=False).input_ids})),
        torch.full((len({t for w in ws for v in (w, " " + w)
                         for t in tok(v, add_special_tokens=False).input_ids}),), float(s))),
     "every token"),
])
def test_check_bag_of_words_names_other_mistakes(tokenizer, mistake, hint, capsys):
    from labkit import checks
    assert not checks.check_bag_of_words(mistake, tokenizer)
    assert hint in capsys.readouterr().out
