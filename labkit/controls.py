"""Controls that act on the next-token logits, as transformers `LogitsProcessor`s.

Each control maps (input_ids [batch, seq], scores [batch, vocab]) -> scores, so they
compose with each other, with `Distribution.apply`, with `labkit.generate` and with
transformers' own `model.generate(logits_processor=...)`. A masked token gets -inf.

* `Temperature(t)`: z / t. t < 1 sharpens, t > 1 flattens; t -> 0 is greedy decoding
  (use `Greedy()`), t = 0 is not a distribution (Ackley, Hinton & Sejnowski 1985).
* `TopK(k)`: keep the k highest-scoring tokens (Fan, Lewis & Dauphin 2018, "Hierarchical
  Neural Story Generation"); ties with the k-th score are kept.
* `TopP(p)`: nucleus sampling, keep the smallest set of most likely tokens whose mass
  reaches p (Holtzman et al. 2020, "The Curious Case of Neural Text Degeneration", §3.1).
* `MinP(p)`: keep tokens with probability ≥ p · max probability (Nguyen et al. 2024,
  "Turning Up the Heat: Min-p Sampling", arXiv:2407.01082).
* `Greedy()`: keep only the most likely token (argmax), so sampling becomes greedy.

The masks are small pure functions (`top_k_mask`, `top_p_mask`, `min_p_mask`) that the
processors call; tests check them against transformers' own warpers to 1e-6.

Left out on purpose: `min_tokens_to_keep` (always 1 here) and typical/eta sampling.
"""
from __future__ import annotations

import math

import torch
from transformers import LogitsProcessor

from .validate import number, whole

# --- pure masks: True where a token is removed ----------------------------------------------


def top_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Remove every token scoring below the k-th highest score (ties with it are kept)."""
    k = min(k, scores.shape[-1])
    kth = scores.topk(k, dim=-1).values[..., -1:]                       # batch 1
    return scores < kth


def top_p_mask(scores: torch.Tensor, p: float) -> torch.Tensor:
    """Remove the tokens outside the nucleus: the smallest set of most likely tokens whose
    total probability reaches p. The most likely token is always kept.

    Naive version, one token at a time::

        kept, mass = [], 0.0
        for token in sorted(vocab, key=prob, reverse=True):
            kept.append(token); mass += prob[token]
            if mass >= p: break

    Here: sort ascending, and remove a token when the tokens no more likely than it
    (itself included) add up to at most 1 - p -- the same arithmetic as transformers'
    TopPLogitsWarper, so the two agree exactly.
    """
    sorted_scores, order = torch.sort(scores, descending=False)        # batch vocab
    cum = sorted_scores.softmax(dim=-1).cumsum(dim=-1)                 # batch vocab
    remove_sorted = cum <= (1 - p)
    remove_sorted[..., -1:] = False                                     # keep the top token
    return remove_sorted.scatter(-1, order, remove_sorted)


def min_p_mask(scores: torch.Tensor, p: float) -> torch.Tensor:
    """Remove tokens whose probability is below p times the top token's probability."""
    probs = scores.softmax(dim=-1)
    return probs < p * probs.amax(dim=-1, keepdim=True)


# --- the processors ------------------------------------------------------------------------


class Temperature(LogitsProcessor):
    """Divide the logits by `t`: p_i ∝ exp(z_i / t)."""

    def __init__(self, t: float):
        t = number("temperature", t, finite=False)
        if t <= 0:
            raise ValueError(
                f"temperature must be > 0, got {t:g}: temperature 0 is the limit of greedy "
                "decoding (always the most likely token) -- use lk.controls.Greedy() for that")
        if math.isinf(t):
            raise ValueError("temperature is infinite: that is the uniform distribution over "
                             "the vocabulary; use a large finite value such as 100")
        self.t = t

    def __call__(self, input_ids, scores):
        return scores / self.t

    def __repr__(self):
        return f"Temperature({self.t:g})"


class TopK(LogitsProcessor):
    """Keep the `k` most likely tokens."""

    def __init__(self, k: int):
        self.k = whole("top-k", k, low=1, hint=" (1 is greedy decoding)")

    def __call__(self, input_ids, scores):
        return scores.masked_fill(top_k_mask(scores, self.k), -math.inf)

    def __repr__(self):
        return f"TopK({self.k})"


class TopP(LogitsProcessor):
    """Nucleus sampling: keep the smallest set of most likely tokens with mass ≥ `p`."""

    def __init__(self, p: float):
        self.p = number("top-p", p, low=0, high=1, low_open=True, hint=" (1 keeps every token)")

    def __call__(self, input_ids, scores):
        if self.p >= 1:
            return scores
        return scores.masked_fill(top_p_mask(scores, self.p), -math.inf)

    def __repr__(self):
        return f"TopP({self.p:g})"


class MinP(LogitsProcessor):
    """Keep tokens with probability ≥ `p` × the top token's probability."""

    def __init__(self, p: float):
        self.p = number("min-p", p, low=0, high=1, hint=" (0 keeps every token)")

    def __call__(self, input_ids, scores):
        return scores.masked_fill(min_p_mask(scores, self.p), -math.inf)

    def __repr__(self):
        return f"MinP({self.p:g})"


class Greedy(LogitsProcessor):
    """Keep only the most likely token: sampling after it is greedy decoding."""

    def __call__(self, input_ids, scores):
        top = scores.argmax(dim=-1, keepdim=True)                       # batch 1
        keep = torch.zeros_like(scores, dtype=torch.bool).scatter(-1, top, True)
        return scores.masked_fill(~keep, -math.inf)

    def __repr__(self):
        return "Greedy()"


def knobs(temperature: float = 1.0, top_k: int | None = None, top_p: float = 1.0) -> list:
    """The three classic knobs as a list of controls, in transformers' order
    (temperature, then top-k, then top-p); a knob at its neutral value is left out."""
    controls = []
    if float(temperature) != 1.0:
        controls.append(Temperature(temperature))
    if top_k:
        controls.append(TopK(top_k))
    if float(top_p) < 1.0:
        controls.append(TopP(top_p))
    return controls


# The token pool (notebook 05) and the steering controls (notebook 06) live in their own
# files, above this one; they are LogitsProcessors too, so `lk.controls.OneOf` finds them here
# with the knobs -- imported on first use (PEP 562), so this module never imports upwards at
# load time (tests/test_layers.py names this as one of its two exceptions).
_ELSEWHERE = {"Allowed": "pool", "Catalogue": "pool", "OneOf": "pool", "Quote": "pool",
              "Regex": "pool", "BagOfWords": "steer", "ClassifierGuidance": "steer",
              "LogitBias": "steer"}


def __getattr__(name):
    if name in _ELSEWHERE:
        import importlib
        return getattr(importlib.import_module(f"labkit.{_ELSEWHERE[name]}"), name)
    raise AttributeError(f"module 'labkit.controls' has no attribute {name!r}")


__all__ = ["Greedy", "MinP", "Temperature", "TopK", "TopP", "knobs", "min_p_mask", "top_k_mask",
           "top_p_mask", *sorted(_ELSEWHERE)]
