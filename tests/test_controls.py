"""The knobs equal transformers' own warpers, and bad values get clear errors."""
import math

import pytest
import torch
from transformers import (MinPLogitsWarper, TemperatureLogitsWarper, TopKLogitsWarper,
                          TopPLogitsWarper)

from labkit import controls as C
from labkit.dist import Distribution

SEEDS = range(8)


def random_scores(seed, batch=3, vocab=500):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, vocab, generator=g) * (1 + seed)   # flat to very peaked


def same(a, b):
    """Equal to 1e-6, with -inf in the same places."""
    assert torch.equal(torch.isneginf(a), torch.isneginf(b))
    fin = torch.isfinite(a)
    assert torch.allclose(a[fin], b[fin], atol=1e-6, rtol=0)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("t", [0.1, 0.7, 1.0, 2.5])
def test_temperature_matches_transformers(seed, t):
    s, ids = random_scores(seed), torch.zeros(3, 1, dtype=torch.long)
    same(C.Temperature(t)(ids, s), TemperatureLogitsWarper(t)(ids, s.clone()))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", [1, 5, 50, 499, 500, 10_000])
def test_top_k_matches_transformers(seed, k):
    s, ids = random_scores(seed), torch.zeros(3, 1, dtype=torch.long)
    same(C.TopK(k)(ids, s), TopKLogitsWarper(k)(ids, s.clone()))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("p", [0.01, 0.3, 0.9, 0.999, 1.0])
def test_top_p_matches_transformers(seed, p):
    s, ids = random_scores(seed), torch.zeros(3, 1, dtype=torch.long)
    same(C.TopP(p)(ids, s), TopPLogitsWarper(p)(ids, s.clone()))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("p", [0.0, 0.05, 0.5, 1.0])
def test_min_p_matches_transformers(seed, p):
    s, ids = random_scores(seed), torch.zeros(3, 1, dtype=torch.long)
    if p in (0.0, 1.0):   # transformers refuses the endpoints; check our meaning directly
        out = C.MinP(p)(ids, s)
        kept = torch.isfinite(out).sum(-1)
        assert (kept == (s.shape[-1] if p == 0 else 1)).all()
        return
    same(C.MinP(p)(ids, s), MinPLogitsWarper(p)(ids, s.clone()))


def test_top_p_keeps_the_token_that_crosses_p():
    d = Distribution.from_logits(torch.tensor([0.5, 0.3, 0.2]).log())
    kept = d.apply(C.TopP(0.6)).probs
    assert torch.allclose(kept, torch.tensor([0.5 / 0.8, 0.3 / 0.8, 0.0]))
    assert d.apply(C.TopP(0.5)).support() == 1           # 0.5 reaches p exactly


def test_greedy_keeps_only_the_argmax():
    s = random_scores(0)
    out = C.Greedy()(None, s)
    assert (torch.isfinite(out).sum(-1) == 1).all()
    assert torch.equal(out.argmax(-1), s.argmax(-1))


def test_masked_tokens_get_exactly_zero_probability():
    d = Distribution.from_logits(random_scores(1)[0])
    after = d.apply(C.TopK(7))
    assert (after.probs > 0).sum() == 7
    assert math.isclose(float(after.probs.sum()), 1.0, abs_tol=1e-6)


def test_knobs_builds_the_non_neutral_controls_in_order():
    assert C.knobs() == []
    ks = C.knobs(temperature=0.5, top_k=10, top_p=0.9)
    assert [type(k) for k in ks] == [C.Temperature, C.TopK, C.TopP]


@pytest.mark.parametrize("make, match", [
    (lambda: C.Temperature(0), "Greedy"),
    (lambda: C.Temperature(-1), "greedy"),
    (lambda: C.Temperature(float("nan")), "NaN"),
    (lambda: C.Temperature("hot"), "number"),
    (lambda: C.TopP(0), r"\(0, 1\]"),
    (lambda: C.TopP(1.5), r"\(0, 1\]"),
    (lambda: C.TopK(0), "≥ 1"),
    (lambda: C.TopK(2.5), "whole number"),
    (lambda: C.MinP(-0.1), r"\[0, 1\]"),
])
def test_invalid_knob_values_get_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()
