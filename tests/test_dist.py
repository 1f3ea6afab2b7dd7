"""Distribution and the scoring functions: sums, entropies, KL and log-probabilities."""
import math

import pytest
import torch

import labkit as lk
from labkit.dist import Distribution, entropy, kl, seq_logprob


def test_probs_sum_to_one_and_top_is_sorted():
    d = Distribution.from_logits(torch.randn(1000))
    assert math.isclose(float(d.probs.sum()), 1.0, abs_tol=1e-5)
    probs = [p for _, p in d.top(10)]
    assert probs == sorted(probs, reverse=True) and len(probs) == 10


def test_entropy_matches_direct_sum():
    p = torch.tensor([0.5, 0.25, 0.25])
    assert math.isclose(float(entropy(p.log())), -(p * p.log()).sum().item(), rel_tol=1e-6)
    assert math.isclose(Distribution.from_logits(torch.zeros(8)).entropy(), math.log(8),
                        rel_tol=1e-6)
    assert Distribution.from_logits(torch.tensor([0.0, -math.inf])).entropy() == 0.0


def test_kl_matches_direct_sum_and_handles_zeros():
    p, q = torch.tensor([0.7, 0.2, 0.1]), torch.tensor([0.2, 0.5, 0.3])
    assert math.isclose(float(kl(p.log(), q.log())), float((p * (p / q).log()).sum()),
                        rel_tol=1e-5)
    masked = torch.tensor([0.0, 0.0, -math.inf])
    assert float(kl(masked, torch.zeros(3))) == pytest.approx(math.log(3 / 2))  # p=0 adds 0
    assert math.isinf(float(kl(torch.zeros(3), masked)))                      # q=0 < p
    d = Distribution.from_logits(torch.randn(50))
    assert d.kl(d) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("bad, match", [
    (torch.tensor([1.0, float("nan")]), "NaN"),
    (torch.full((4,), -math.inf), "every token is masked"),
    (torch.tensor([0.0, math.inf]), r"\+inf"),
    (torch.zeros(2, 3), "1-D"),
    (torch.zeros(0), "1-D"),
])
def test_from_logits_rejects_what_is_not_a_distribution(bad, match):
    with pytest.raises(ValueError, match=match):
        Distribution.from_logits(bad)


def test_seq_logprob_equals_one_forward_per_position(tiny_lm):
    ids = torch.tensor([[1, 504, 3575, 282, 4649, 314]])
    fast = float(seq_logprob(tiny_lm.model, ids, start=3)[0])
    naive = 0.0
    for t in range(3, ids.shape[1]):
        with torch.no_grad():
            logits = tiny_lm.model(input_ids=ids[:, :t]).logits[0, -1]
        naive += float(torch.log_softmax(logits, -1)[ids[0, t]])
    assert fast == pytest.approx(naive, abs=1e-4)


def test_perplexity_is_exp_of_mean_negative_logprob(tiny_lm):
    lp = lk.dist.logprob(tiny_lm, "Hello there", " general Kenobi")
    n = len(tiny_lm.tokenizer(" general Kenobi", add_special_tokens=False).input_ids)
    assert lk.perplexity(tiny_lm, "Hello there", " general Kenobi") == pytest.approx(
        math.exp(-lp / n), rel=1e-5)


def test_next_token_equals_the_models_last_logits(tiny_lm):
    d = lk.next_token(tiny_lm, "The capital of France is")
    ids = tiny_lm.tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        expected = tiny_lm.model(ids).logits[0, -1]
    assert torch.allclose(d.logits, expected, atol=1e-5)
    assert len(d) == len(tiny_lm.tokenizer)


def test_next_token_applies_controls(tiny_lm):
    d = lk.next_token(tiny_lm, "Hello", controls=[lk.controls.TopK(3)])
    assert d.support() == 3


def test_bad_prompts_get_clear_errors(tiny_lm):
    with pytest.raises(ValueError, match="empty"):
        lk.next_token(tiny_lm, "")
    with pytest.raises(ValueError, match="empty"):
        lk.next_token(tiny_lm, "   ")
    with pytest.raises(ValueError, match="context window is 128"):
        lk.next_token(tiny_lm, "word " * 200)
    with pytest.raises(TypeError, match="string"):
        lk.next_token(tiny_lm, 42)
    with pytest.raises(ValueError, match="continuation is empty"):
        lk.perplexity(tiny_lm, "Hello", "")


def test_embedded_model_knows_the_capital_of_france(smol):
    d = lk.next_token(smol, "The capital of France is")
    assert d.top(1)[0][0] == " Paris"
    assert d.top(1)[0][1] > 0.5
    # instruction-tuned: the chat template makes it answer the question
    assert "Paris" in lk.generate(smol, "What is the capital of France?", chat=True,
                                  controls=[lk.controls.Greedy()], max_new_tokens=12)
    assert lk.perplexity(smol, "The capital of France is", " Paris.") < \
        lk.perplexity(smol, "The capital of France is", " a banana.")
