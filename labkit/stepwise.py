"""Per-step controls as sequence distributions, exactly: the token pool and the logit bias.

A control that acts on the next-token distribution changes each step's conditional
π(x_t | x_<t) and samples from the product of the changed conditionals. On the toy world the
joint π(x) of every sequence is known, so the conditionals are too (ratios of marginals),
and so is the exact distribution a per-step control samples from:

    π(x_t | x_<t) = π(x_≤t) / π(x_<t),   π(x_≤t) = Σ_{x_>t} π(x)        (marginals: log-sum-exp)
    π_control(x) = Π_t π̃(x_t | x_<t)

* **the token pool** allows at each step only the words after which some valid sequence is
  still reachable, and renormalises over them (Willard & Louf 2023, the pools of
  `labkit.pool`): π̃(x_t | x_<t) ∝ π(x_t | x_<t)·1[x_≤t can still become valid]. Every
  sample is valid, but this is NOT the conditional π(x | valid) = π(x)·1[valid]/π(valid):
  renormalising step by step moves mass toward the prefixes with *few* valid continuations
  (a prefix keeps its whole probability however little of it was valid), where Bayes' rule
  would shrink them. `pool` computes it; KL(pool ‖ condition) measures the gap.
* **a per-token logit bias** b(w) adds b to the logit of word w at every step and
  renormalises: π̃(x_t | x_<t) ∝ π(x_t | x_<t)·e^{b(x_t)}. The sequence-level tilt by the same
  total reward r(x) = Σ_t b(x_t), π(x)·e^{r(x)}/Z (`labkit.bayes.tilt`, β = 1), normalises
  once over whole sequences; the per-token version normalises at every step, which spends
  the boost on the next word without looking ahead. `logit_bias` computes it.

Both act on log-probabilities [N] over `world.sequences()` (lexicographic order, so the joint
reshapes to [V]*L), given as (`logp`, `n_words`, `length`). Naive version of `conditionals`:
for each prefix, sum π(x) over the sequences that start with it, and divide.

Left out on purpose: controls that look at the whole prefix in other ways (guidance, PPLM),
whose exact distribution is the same product but needs the model per prefix.
"""
from __future__ import annotations

import math

import torch


def _shape(logp: torch.Tensor, n_words: int, length: int) -> torch.Tensor:
    if logp.dim() != 1 or logp.numel() != n_words ** length:
        raise ValueError(f"logp must hold one log-probability per sequence, {n_words}^{length} = "
                         f"{n_words ** length}, got shape {tuple(logp.shape)}")
    return logp.reshape((n_words,) * length)


def _minus(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a - b in log space with -inf - -inf = -inf (a prefix of probability 0)."""
    out = a - b
    return torch.where(torch.isneginf(a), torch.full_like(out, -math.inf), out)


def conditionals(logp: torch.Tensor, n_words: int, length: int) -> list[torch.Tensor]:
    """log π(x_t | x_<t) for t = 1 .. length, each a tensor of shape [V]*t (index: the words
    x_1 .. x_t), from the joint log-probabilities logp [N]."""
    joint = _shape(logp, n_words, length)
    marginals = [joint]                                     # log π(x_≤t), t = L, L-1, ..., 0
    for _ in range(length):
        marginals.append(torch.logsumexp(marginals[-1], dim=-1))
    marginals.reverse()                                     # marginals[t]: shape [V]*t
    return [_minus(marginals[t], marginals[t - 1].unsqueeze(-1)) for t in range(1, length + 1)]


def from_conditionals(conds: list[torch.Tensor]) -> torch.Tensor:
    """The joint log π(x) = Σ_t log π(x_t | x_<t) -> [N], in `world.sequences()` order."""
    length = len(conds)
    total = conds[-1].clone()
    for t, c in enumerate(conds[:-1], start=1):
        total = total + c.reshape(c.shape + (1,) * (length - t))
    return total.reshape(-1)


def _renormalise(c: torch.Tensor) -> torch.Tensor:
    return _minus(c, torch.logsumexp(c, dim=-1, keepdim=True))


def pool(logp: torch.Tensor, valid: torch.Tensor, n_words: int, length: int) -> torch.Tensor:
    """The exact distribution [N] of sampling word by word from π with a token pool for the
    set `valid` [N] bool: at each step only words that keep a valid sequence reachable are
    allowed, and the allowed ones are renormalised."""
    mask = _shape(torch.as_tensor(valid, dtype=torch.bool), n_words, length)
    if not bool(mask.any()):
        raise ValueError("no sequence is valid: the pool would allow no word at the first step")
    reachable = [mask]                                      # can x_≤t still become valid?
    for _ in range(length - 1):
        reachable.append(reachable[-1].any(dim=-1))
    reachable.reverse()                                     # reachable[t-1]: shape [V]*t
    conds = conditionals(logp, n_words, length)
    return from_conditionals([_renormalise(c.masked_fill(~ok, -math.inf))
                              for c, ok in zip(conds, reachable)])


def logit_bias(logp: torch.Tensor, bias, n_words: int, length: int) -> torch.Tensor:
    """The exact distribution [N] of sampling word by word from π with `bias` [V] (one number
    per word, -inf to forbid it) added to the logits at every step."""
    bias = torch.as_tensor(bias, dtype=logp.dtype)
    if bias.shape != (n_words,):
        raise ValueError(f"the bias needs one number per word ({n_words}), got shape "
                         f"{tuple(bias.shape)}")
    if torch.isnan(bias).any() or torch.isposinf(bias).any():
        raise ValueError("the bias must be finite numbers or -inf (forbid a word), not NaN/+inf")
    if torch.isneginf(bias).all():
        raise ValueError("the bias forbids every word (-inf for all): nothing could be sampled")
    conds = conditionals(logp, n_words, length)
    return from_conditionals([_renormalise(c + bias) for c in conds])


def token_sum(seqs: torch.Tensor, values) -> torch.Tensor:
    """r(x) = Σ_t values[x_t] for sequences [N, length] -> [N] float64: the sequence-level
    reward that a per-token bias `values` adds up to (the tilt to compare it with)."""
    values = torch.as_tensor(values, dtype=torch.float64)
    return values[torch.as_tensor(seqs).long()].sum(-1)


__all__ = ["conditionals", "from_conditionals", "logit_bias", "pool", "token_sum"]
