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


class Peaked(LogitsProcessor):
    """Replace the model's scores by a fixed, peaked distribution over four tokens."""

    def __init__(self, ids, probs):
        self.ids, self.logp = torch.tensor(ids), torch.tensor(probs).log()

    def __call__(self, input_ids, scores):
        out = torch.full_like(scores, -math.inf)
        out[:, self.ids] = self.logp
        return out


def test_sampling_follows_the_controlled_distribution(tiny_lm):
    """First-token frequencies over many seeds match the nucleus of a peaked distribution:
    top-p 0.7 of (0.5, 0.3, 0.15, 0.05) keeps the first two, renormalised to (0.625, 0.375)."""
    ids = [11, 22, 33, 44]
    controls = [Peaked(ids, [0.5, 0.3, 0.15, 0.05]), TopP(0.7)]
    counts = torch.zeros(len(tiny_lm.tokenizer))
    for seed in range(400):
        _, steps = lk.generate(tiny_lm, "Hello", controls=controls, max_new_tokens=1,
                               seed=seed, trace=True)
        counts[steps[0].token_id] += 1
    assert counts[33] == counts[44] == 0                           # outside the nucleus
    assert counts.sum() == counts[11] + counts[22] == 400
    assert abs(float(counts[11]) / 400 - 0.625) < 0.08


def test_generation_stops_at_every_end_of_sequence_id(tiny_lm):
    """Llama-3- and Qwen-style models end a turn with an id listed in generation_config."""
    import copy

    paris = tiny_lm.tokenizer(" Paris", add_special_tokens=False).input_ids[0]
    model = copy.deepcopy(tiny_lm.model)
    model.generation_config.eos_token_id = [tiny_lm.tokenizer.eos_token_id, paris]
    lm = lk.LM(model=model, tokenizer=tiny_lm.tokenizer, name="two-eos")
    assert lm.eos_token_ids == {tiny_lm.tokenizer.eos_token_id, paris}
    assert lk.generate(lm, "Hello", controls=[Only(paris)], max_new_tokens=5) == ""
    assert lk.generate(lm, "Hello", controls=[Only(paris)], max_new_tokens=3,
                       stop_at_eos=False) == " Paris Paris Paris"


def test_controls_are_reset_at_the_start_of_each_generation(tiny_lm):
    class Counting(LogitsProcessor):
        def __init__(self):
            self.calls, self.resets = 0, 0

        def reset(self):
            self.calls, self.resets = 0, self.resets + 1

        def __call__(self, input_ids, scores):
            self.calls += 1
            return scores

    c = Counting()
    lk.generate(tiny_lm, "Hello", controls=[c], max_new_tokens=4, stop_at_eos=False)
    lk.generate(tiny_lm, "Hello", controls=[c], max_new_tokens=3, stop_at_eos=False)
    assert (c.resets, c.calls) == (2, 3)


def test_a_control_is_told_when_the_budget_ran_out(tiny_lm):
    class Strict(LogitsProcessor):
        finished = None

        def __call__(self, input_ids, scores):
            return scores

        def finish(self, text, *, max_new_tokens):
            self.finished = (text, max_new_tokens)
            raise RuntimeError("incomplete")

    eos = tiny_lm.tokenizer.eos_token_id
    strict = Strict()
    assert lk.generate(tiny_lm, "Hi", controls=[Only(eos), strict]) == ""   # ended at EOS
    assert strict.finished is None
    with pytest.raises(RuntimeError, match="incomplete"):
        lk.generate(tiny_lm, "Hi", controls=[strict], max_new_tokens=2, stop_at_eos=False)
    assert strict.finished[1] == 2


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
