"""The one sampling loop: seeds, EOS, traces, and agreement with transformers."""
import math

import pytest
import torch
from transformers import LogitsProcessor

import labkit as lk
from labkit.controls import Greedy, Temperature, TopK, TopP


class Only(LogitsProcessor):
    """Allow a single token id (a tiny token pool, for tests)."""

    def __init__(self, token_id):
        self.token_id = token_id

    def __call__(self, input_ids, scores):
        out = torch.full_like(scores, -math.inf)
        out[:, self.token_id] = 0.0
        return out


def test_same_seed_same_text_and_seeds_differ(tiny_lm):
    a = lk.generate(tiny_lm, "Once upon a time", seed=1, max_new_tokens=15)
    b = lk.generate(tiny_lm, "Once upon a time", seed=1, max_new_tokens=15)
    others = {lk.generate(tiny_lm, "Once upon a time", seed=s, max_new_tokens=15)
              for s in range(2, 6)}
    assert a == b
    assert len(others | {a}) > 1


def test_generation_does_not_touch_the_global_random_state(tiny_lm):
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    lk.generate(tiny_lm, "Hi", seed=0, max_new_tokens=5)
    assert torch.equal(torch.rand(1), before)


def test_stops_at_eos_and_returns_only_the_continuation(tiny_lm):
    eos = tiny_lm.tokenizer.eos_token_id
    assert lk.generate(tiny_lm, "Hello", controls=[Only(eos)], max_new_tokens=10) == ""
    paris = tiny_lm.tokenizer(" Paris", add_special_tokens=False).input_ids[0]
    text = lk.generate(tiny_lm, "Hello", controls=[Only(paris)], max_new_tokens=3)
    assert text == " Paris Paris Paris"


def test_greedy_equals_transformers_greedy(tiny_lm):
    ids = tiny_lm.encode("The capital of France is")
    theirs = tiny_lm.model.generate(ids, do_sample=False, max_new_tokens=12,
                                    min_new_tokens=12, pad_token_id=0)
    theirs = tiny_lm.tokenizer.decode(theirs[0, ids.shape[1]:], skip_special_tokens=True)
    ours = lk.generate(tiny_lm, "The capital of France is", controls=[Greedy()],
                       max_new_tokens=12, stop_at_eos=False)
    assert ours == theirs


def test_trace_records_before_and_after_each_step(tiny_lm):
    text, steps = lk.generate(tiny_lm, "Hello", controls=[Temperature(0.8), TopK(5)],
                              max_new_tokens=6, seed=0, trace=True, stop_at_eos=False)
    assert len(steps) == 6
    assert "".join(s.text for s in steps) == text
    for s in steps:
        assert s.before.support() == len(tiny_lm.tokenizer)
        assert s.after.support() == 5
        assert s.after.probs[s.token_id] > 0
        assert s.prob == pytest.approx(float(s.after.probs[s.token_id]))
        assert math.isclose(float(s.after.probs.sum()), 1.0, abs_tol=1e-5)


def test_sampling_follows_the_controlled_distribution(tiny_lm):
    """Empirical first-token frequencies over many seeds match the nucleus distribution."""
    d = lk.next_token(tiny_lm, "Hello", controls=[TopP(0.05)])
    counts = torch.zeros(len(d))
    for seed in range(200):
        _, steps = lk.generate(tiny_lm, "Hello", controls=[TopP(0.05)], max_new_tokens=1,
                               seed=seed, trace=True)
        counts[steps[0].token_id] += 1
    assert set(counts.nonzero().flatten().tolist()) <= set(d.probs.nonzero().flatten().tolist())
    assert (counts / 200 - d.probs).abs().max() < 0.15


def test_bad_input_gets_clear_errors(tiny_lm):
    with pytest.raises(ValueError, match="empty"):
        lk.generate(tiny_lm, "")
    with pytest.raises(ValueError, match="max_new_tokens"):
        lk.generate(tiny_lm, "Hi", max_new_tokens=0)
    with pytest.raises(ValueError, match="context window"):
        lk.generate(tiny_lm, "Hi " * 100, max_new_tokens=40)

    class MaskAll(LogitsProcessor):
        def __call__(self, input_ids, scores):
            return torch.full_like(scores, -math.inf)

    with pytest.raises(ValueError, match="no token is allowed"):
        lk.generate(tiny_lm, "Hi", controls=[MaskAll()])
