"""Notebook 06's controls and PPLM on the tiny random model (no download); the metrics are in
tests/test_metrics.py, the Method and its row in tests/test_scoreboard.py."""
import functools
import math

import pytest
import torch
from transformers import SequenceBiasLogitsProcessor

import labkit as lk
from labkit import decoding, discriminator, pplm, steer


@pytest.fixture(scope="module")
def disc(tiny_lm):
    texts = ["a happy day", "love it so much", "great and lovely", "wonderful friends",
             "a sad day", "hate it so much", "awful and ugly", "terrible enemies"]
    d, history = discriminator.train_discriminator(tiny_lm, texts, [1, 1, 1, 1, 0, 0, 0, 0],
                                                   epochs=60)
    return d, history


class BodyCalls:
    """Counts the calls of the model body (`lm.model.base_model`) inside a `with` block."""

    def __init__(self, lm):
        self.body, self.n = lm.model.base_model, 0

    def __enter__(self):
        self.handle = self.body.register_forward_hook(lambda *_: self._count())
        return self

    def _count(self):
        self.n += 1

    def __exit__(self, *exc):
        self.handle.remove()


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


# --- the bag of words -------------------------------------------------------------------------


def test_bag_boosts_every_one_token_variant_and_completes_long_words(tokenizer):
    bow = steer.BagOfWords(tokenizer, ["happy", "xylophone"], 3.0)
    for variant in ("happy", " happy", "Happy", " Happy"):
        ids = tokenizer(variant, add_special_tokens=False).input_ids
        assert len(ids) == 1 and ids[0] in bow.token_ids.tolist(), variant
    assert bow.multi_token == ["xylophone"]
    seq = tokenizer(" xylophone", add_special_tokens=False).input_ids     # ' xyl' 'ophone'
    assert seq[0] not in bow.token_ids.tolist()                            # never started
    scores = torch.zeros(1, len(tokenizer))
    assert bow(torch.tensor([[5, 6]]), scores)[0, seq[0]] == 0.0
    after = bow(torch.tensor([[5, seq[0]]]), scores)
    assert after[0, seq[1]] == 3.0                                         # completion boosted
    assert bow(torch.tensor([[5, 6]]), scores)[0, seq[1]] == 0.0           # not out of context
    assert "xylophone" in bow.explain()
    with pytest.raises(ValueError, match="single token"):
        steer.BagOfWords(tokenizer, ["xylophone"], 1.0, multi_token="error")


def test_bag_never_boosts_the_first_piece_of_a_long_spelling(tokenizer):
    """'wonderful' = w + onder + ful, ' Fantastic' = ĠFant + astic: boosting `w` or `ĠFant` at
    every step writes 'w w w' (the regurgitated fragment of notebook 06 before the fix)."""
    bow = steer.BagOfWords(tokenizer, steer.POSITIVE_WORDS, 3.0)
    boosted = bow.token_ids.tolist()
    for piece in ["w", "ĠFant", "en", "be", "f", "ĠBr", "am"]:
        assert tokenizer.convert_tokens_to_ids(piece) not in boosted, piece
    for t in boosted:                                   # each boosted token is a whole word
        assert tokenizer.decode([t]).strip().lower() in steer.POSITIVE_WORDS
    assert "only completed" in bow.explain()
    scores = torch.zeros(1, len(tokenizer))
    out = bow(torch.zeros(1, 0, dtype=torch.long), scores)
    assert int((out[0] != 0).sum()) == len(boosted)     # nothing else at the start of a text


def test_bag_completes_a_long_word_the_model_started(tokenizer):
    bow = steer.BagOfWords(tokenizer, steer.POSITIVE_WORDS, 3.0)
    scores = torch.zeros(1, len(tokenizer))
    w, onder, ful = tokenizer("wonderful", add_special_tokens=False).input_ids
    fant, astic = tokenizer(" Fantastic", add_special_tokens=False).input_ids
    assert bow(torch.tensor([[5, w]]), scores)[0, onder] == 3.0
    assert bow(torch.tensor([[5, w, onder]]), scores)[0, ful] == 3.0
    assert bow(torch.tensor([[5, fant]]), scores)[0, astic] == 3.0
    assert bow(torch.tensor([[5, 6]]), scores)[0, [onder, astic]].tolist() == [0.0, 0.0]


def test_bag_mass_rises_monotonically_with_strength(tiny_lm):
    d = lk.next_token(tiny_lm, "The weather today is")
    bow = steer.BagOfWords(tiny_lm.tokenizer, steer.POSITIVE_WORDS, 0.0)
    masses = [d.apply(steer.BagOfWords(tiny_lm.tokenizer, steer.POSITIVE_WORDS, s))
              .mass(bow.token_ids) for s in (0, 0.5, 1, 2, 4, 8)]
    assert masses[0] == pytest.approx(d.mass(bow.token_ids), abs=1e-6)
    assert all(a < b for a, b in zip(masses, masses[1:]))
    assert masses[-1] > 0.5
    result = steer.boost(d, tiny_lm.tokenizer, steer.POSITIVE_WORDS, 4.0)   # the pure layer
    assert result.mass_after > result.mass_before and result.kl > 0


@pytest.mark.parametrize("words,strength", [([], 1.0), (["", " "], 1.0), (["happy"], float("nan")),
                                            (["happy"], -1.0), (["happy"], math.inf),
                                            (["happy"], "strong")])
def test_bag_bad_input(tokenizer, words, strength):
    with pytest.raises(ValueError):
        steer.BagOfWords(tokenizer, words, strength)


# --- the discriminator (labkit.discriminator) ---------------------------------------------------


def test_discriminator_loss_goes_down_and_comes_back_frozen(disc):
    d, history = disc
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert history[-1]["accuracy"] == 1.0
    assert not d.training and not any(p.requires_grad for p in d.parameters())
    assert steer.Discriminator is discriminator.Discriminator           # re-exported, not copied


def test_mean_hidden_batched_equals_one_text_at_a_time(tiny_lm):
    texts = ["a happy day", "love it so much, truly and deeply", "ok"]   # padded batch
    batched = discriminator.mean_hidden(tiny_lm, texts, batch_size=3)
    for text, row in zip(texts, batched):
        ids = torch.tensor([tiny_lm.ids(text, start=True)])
        with torch.inference_mode():
            h = tiny_lm.model.base_model(input_ids=ids).last_hidden_state[0].mean(0)
        assert torch.allclose(row, h, atol=1e-5), text
    with pytest.raises(ValueError, match="empty"):
        discriminator.mean_hidden(tiny_lm, ["fine", ""])


def test_discriminator_of_another_hidden_size_is_refused(tiny_lm):
    other = discriminator.Discriminator(hidden_size=tiny_lm.model.config.hidden_size + 1)
    with pytest.raises(ValueError, match="hidden size"):
        steer.ClassifierGuidance(tiny_lm, other)
    with pytest.raises(ValueError, match="hidden size"):
        pplm.generate(tiny_lm, "Hello there", discriminator=other, max_new_tokens=2)


# --- classifier guidance --------------------------------------------------------------------------


def test_guidance_gamma_zero_is_top_k_and_keeps_k_tokens(tiny_lm, disc):
    d = lk.next_token(tiny_lm, "The weather today is")
    g0 = steer.ClassifierGuidance(tiny_lm, disc[0], gamma=0.0, top_k=5)
    assert torch.allclose(d.apply(g0).probs, d.apply(lk.controls.TopK(5)).probs, atol=1e-6)
    g = steer.ClassifierGuidance(tiny_lm, disc[0], gamma=3.0, top_k=5)
    assert d.apply(g).support() == 5
    for bad in (dict(gamma=float("nan")), dict(gamma=-1.0), dict(top_k=0), dict(top_k=2.5)):
        with pytest.raises(ValueError):
            steer.ClassifierGuidance(tiny_lm, disc[0], **bad)


def test_guidance_reuses_its_cache_and_gets_what_recomputing_gets(tiny_lm, disc):
    """After a traced generation, the next context (the last step's context + the token drawn)
    extends the stored candidates by one of them: guidance runs only the k candidates (one body
    call), not the context again (two), and gets the same log-probabilities as a fresh one."""
    g = steer.ClassifierGuidance(tiny_lm, disc[0], gamma=2.0, top_k=4)
    n = 6
    with BodyCalls(tiny_lm) as calls:
        _, steps = lk.generate(tiny_lm, "The weather today is", controls=[g], max_new_tokens=n,
                               seed=1, stop_at_eos=False, trace=True)
    assert calls.n == n + (n + 1)         # the loop's n forwards; guidance: context once + n
    last = steps[-1]
    ids = torch.cat([last.after.context, torch.tensor([[last.token_id]])], dim=1)
    cands = torch.arange(10, 14)
    with BodyCalls(tiny_lm) as calls:
        reused = g.attribute_logprob(ids, cands)
    assert calls.n == 1
    fresh = steer.ClassifierGuidance(tiny_lm, disc[0], gamma=2.0, top_k=4)
    with BodyCalls(tiny_lm) as calls:
        recomputed = fresh.attribute_logprob(ids, cands)
    assert calls.n == 2
    assert torch.allclose(reused, recomputed, atol=1e-4)


def test_guidance_is_reset_at_every_generation(tiny_lm, disc):
    g = steer.ClassifierGuidance(tiny_lm, disc[0], gamma=2.0, top_k=4)
    kw = dict(max_new_tokens=5, seed=3, stop_at_eos=False)
    first = lk.generate(tiny_lm, "Once upon a time", controls=[g], **kw)
    assert g._state is not None
    g.reset()
    assert g._state is None
    other = lk.generate(tiny_lm, "The weather today is", controls=[g], **kw)
    again = lk.generate(tiny_lm, "Once upon a time", controls=[g], **kw)
    fresh = steer.ClassifierGuidance(tiny_lm, disc[0], gamma=2.0, top_k=4)
    assert again == first == lk.generate(tiny_lm, "Once upon a time", controls=[fresh], **kw)
    assert isinstance(other, str)


# --- PPLM ---------------------------------------------------------------------------------------


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


def test_pplm_same_seed_same_text_and_it_uses_the_one_loop(tiny_lm, monkeypatch):
    bow = steer.BagOfWords(tiny_lm.tokenizer, steer.POSITIVE_WORDS, 1.0)
    kw = dict(bag=bow, step_size=0.5, max_new_tokens=6, seed=4, stop_at_eos=False)
    assert pplm.generate(tiny_lm, "Once upon a time", **kw) == \
        pplm.generate(tiny_lm, "Once upon a time", **kw)
    drawn = []
    real = decoding.sample_step
    monkeypatch.setattr(decoding, "sample_step", lambda s, g: drawn.append(s) or real(s, g))
    pplm.generate(tiny_lm, "Once upon a time", **kw)
    assert len(drawn) == 6                         # every token drawn by decoding's loop


def test_pplm_moves_mass_towards_the_bag(tiny_lm):
    bow = steer.BagOfWords(tiny_lm.tokenizer, steer.POSITIVE_WORDS, 1.0)
    base = lk.next_token(tiny_lm, "Once upon a time").mass(bow.token_ids)
    steered = pplm.next_token(tiny_lm, "Once upon a time", bag=bow, step_size=0.5,
                              gm_scale=1.0).mass(bow.token_ids)
    assert steered > base


def test_pplm_normalises_the_gradient_once_per_layer():
    """Eq. 3 with γ = 1: each layer's step, keys and values together, has norm α."""
    torch.manual_seed(0)
    grads = [(torch.randn(1, 2, 3, 4), 5 * torch.randn(1, 2, 3, 4)) for _ in range(3)]
    for (sk, sv), (gk, gv) in zip(pplm.layer_steps(grads, 0.1, 1.0), grads):
        assert math.hypot(float(sk.norm()), float(sv.norm())) == pytest.approx(0.1, rel=1e-5)
        assert torch.allclose(sk / gk, sv / gv)            # one scale for the layer
    (sk, sv), = pplm.layer_steps(grads[:1], 0.1, 1.5)      # γ ≠ 1: α / ‖g‖^γ · g
    norm = math.hypot(float(grads[0][0].norm()), float(grads[0][1].norm()))
    assert float(sk.norm()) == pytest.approx(0.1 * float(grads[0][0].norm()) / norm ** 1.5,
                                             rel=1e-5)


def test_pplm_accumulates_the_unperturbed_hidden_states(tiny_lm, disc):
    """The discriminator's mean reads Σ of the *plain* hidden states of the text so far (as the
    authors' code does), not the perturbed ones, with carry=False and with carry=True."""
    for carry in (False, True):
        made = []

        class Spy(pplm.Perturbed):
            def __init__(self, *args, **kw):
                super().__init__(*args, **kw)
                made.append(self)

        cfg = pplm.PPLMConfig(step_size=1.0, num_iterations=2, carry=carry)
        step = functools.partial(Spy, cfg=cfg, disc=disc[0], target=1)
        _, steps = decoding.generate(tiny_lm, "Once upon a time", forward=step, max_new_tokens=4,
                                     seed=0, stop_at_eos=False, trace=True)
        ctx = steps[-1].after.context                    # every token the steps have read
        with torch.inference_mode():
            h = tiny_lm.model.base_model(input_ids=ctx).last_hidden_state[0].float()
        assert made[0].n == ctx.shape[1]
        assert torch.allclose(made[0].hsum, h.sum(0), atol=1e-4), carry
        plain = lk.next_token(tiny_lm, tiny_lm.tokenizer.decode(ctx[0]))
        assert torch.allclose(steps[-1].before.probs, plain.probs, atol=1e-4), carry


def test_pplm_one_token_prompt_has_a_plain_first_step_and_no_invented_bos(tiny_lm):
    bow = steer.BagOfWords(tiny_lm.tokenizer, steer.POSITIVE_WORDS, 1.0)
    assert tiny_lm.encode("Hello").shape == (1, 1)
    text, steps = pplm.generate(tiny_lm, "Hello", bag=bow, step_size=0.5, gm_scale=1.0,
                                max_new_tokens=3, seed=0, stop_at_eos=False, trace=True)
    assert steps[0].after.context.tolist() == tiny_lm.encode("Hello").tolist()
    plain = lk.next_token(tiny_lm, "Hello")
    assert torch.allclose(steps[0].after.probs, plain.probs, atol=1e-5)   # nothing to perturb
    assert steps[1].after.kl(steps[1].before) > 1e-4                      # then it steers


@pytest.mark.parametrize("kw", [dict(step_size=-0.1), dict(step_size=float("nan")),
                                dict(gm_scale=1.5), dict(num_iterations=-1), dict(kl_scale=-1),
                                dict(num_iterations=1.5), dict(carry="yes")])
def test_pplm_bad_config(kw):
    with pytest.raises(ValueError):
        pplm.PPLMConfig(**kw)


def test_pplm_needs_an_attribute_and_known_settings(tiny_lm):
    with pytest.raises(ValueError, match="attribute"):
        pplm.generate(tiny_lm, "Hello", max_new_tokens=2)
    bow = steer.BagOfWords(tiny_lm.tokenizer, ["happy"], 1.0)
    with pytest.raises(TypeError, match="step_sise"):
        pplm.generate(tiny_lm, "Hello", bag=bow, step_sise=0.1, max_new_tokens=2)


def test_pplm_carry_option_runs(tiny_lm):
    bow = steer.BagOfWords(tiny_lm.tokenizer, steer.POSITIVE_WORDS, 1.0)
    kw = dict(bag=bow, step_size=0.5, max_new_tokens=4, seed=0, stop_at_eos=False)
    text, steps = pplm.generate(tiny_lm, "Once upon a time", carry=True, trace=True, **kw)
    assert len(steps) == 4 and all(abs(float(s.after.probs.sum()) - 1) < 1e-5 for s in steps)
