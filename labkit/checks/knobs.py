"""Notebook 00's check: top-p (nucleus) filtering written by the learner.

The reference is `reference_top_p`, built on `labkit.controls.top_p_mask` (Holtzman et al.
2020, "The Curious Case of Neural Text Degeneration", §3.1: the smallest set of most likely
tokens whose mass reaches p). Every known mistake is a variant of `_nucleus` below, and each
is written both ways round for ties (`_either_tie`), since the exercise lets ties at the
boundary be broken either way.
"""
from __future__ import annotations

import torch

from ..controls import top_p_mask
from ._runner import Case, Check, Variant, proportional, read_tensor, show_vector


def reference_top_p(probs: torch.Tensor, p: float) -> torch.Tensor:
    """The nucleus distribution: keep the smallest set of most likely tokens whose mass
    reaches p, zero the rest, renormalise. Built on `labkit.controls.top_p_mask`."""
    if p >= 1:
        return probs / probs.sum()
    removed = top_p_mask(probs.log()[None], p)[0]                      # vocab
    kept = probs.masked_fill(removed, 0.0)
    return kept / kept.sum()


def _nucleus(probs, p, *, descending=True, keep=lambda cum, s, p: cum - s < p, scatter=True,
             fill=0.0, renormalise=lambda kept, mask: kept / kept.sum()):
    """Top-p with its parts replaceable, each replacement a known mistake. Ties: lower index first."""
    s, order = torch.sort(probs, descending=descending, stable=True)   # vocab (sorted)
    mask = keep(s.cumsum(0), s, p)                                      # vocab (sorted)
    kept = renormalise(torch.where(mask, s, torch.zeros_like(s)), mask)
    if fill != 0:
        kept = torch.where(mask, kept, torch.full_like(kept, fill))
    if not scatter:
        return kept
    return torch.empty_like(kept).scatter_(0, order, kept)             # vocab


def _either_tie(f):
    """f, and f with ties broken the other way (the later token first)."""
    return (f, lambda probs, p: f(probs.flip(0), p).flip(0))


def _in_vocab_order(probs, p):
    cum = probs.cumsum(0)
    out = torch.where(cum - probs < p, probs, torch.zeros_like(probs))
    return out / out.sum()


def _keep_top(keep):
    def kept(cum, s, p):
        m = keep(cum, s, p)
        m[0] = True
        return m
    return kept


_DROPS = [lambda cum, s, p: cum <= p, lambda cum, s, p: cum < p]

VARIANTS = [
    Variant("ascending", "sorted ascending",
            "you accumulated the *least* likely tokens first: sort with descending=True, so the "
            "nucleus is built from the most likely tokens",
            fns=_either_tie(lambda probs, p: _nucleus(probs, p, descending=False))),
    Variant("unsorted", "not sorted",
            "you accumulated the probabilities in vocabulary order: sort them in descending "
            "order first, then take the cumulative sum",
            fns=_either_tie(_in_vocab_order)),
    Variant("not_scattered", "not scattered back",
            "the right probabilities, but in sorted order: put each kept probability back at "
            "its token's index (out[order] = kept, or kept.scatter(0, order, kept))",
            fns=_either_tie(lambda probs, p: _nucleus(probs, p, scatter=False))),
    Variant("drops_crossing", "the crossing token dropped",
            "you dropped the token whose probability takes the mass past p: keep every token "
            "whose cumulative mass *before* it is still below p (the nucleus is the smallest "
            "set whose mass reaches p, so that token is in it)",
            fns=[g for k in _DROPS for kk in (k, _keep_top(k))
                 for g in _either_tie(lambda probs, p, kk=kk: _nucleus(probs, p, keep=kk))]),
    Variant("one_too_many", "one token too many at an exact boundary",
            "when the kept mass reaches p exactly, you kept one more token: keep a token while "
            "the mass before it is *strictly* below p (cum - probs < p)",
            fns=_either_tie(lambda probs, p: _nucleus(probs, p,
                                                      keep=lambda cum, s, p: cum - s <= p))),
    Variant("uniform", "made uniform",
            "the kept tokens must keep their relative probabilities: divide each by the kept "
            "mass, do not give them all the same value",
            fns=_either_tie(lambda probs, p: _nucleus(
                probs, p, renormalise=lambda kept, mask: mask.to(kept.dtype) / mask.sum()))),
    Variant("softmax", "renormalised with softmax",
            "these are probabilities, not logits: softmax exponentiates them again -- divide "
            "the kept probabilities by their sum instead",
            fns=[g for fill in (float("-inf"), 0.0) for g in _either_tie(
                lambda probs, p, fill=fill: _nucleus(probs, p, renormalise=lambda kept, mask:
                    torch.softmax(torch.where(mask, kept, torch.full_like(kept, fill)), 0)))]),
    Variant("minus_inf", "dropped tokens set to -inf",
            "a dropped token gets probability 0; -inf is what a masked *logit* gets",
            fns=_either_tie(lambda probs, p: _nucleus(probs, p, fill=float("-inf")))),
    Variant("not_renormalised", "not renormalised",
            "the right tokens in the right proportions, but they do not sum to 1: after "
            "masking, divide the kept probabilities by their total (the kept mass)",
            test=lambda got, want, probs, p: proportional(got, want)),
]


def _read(out, probs, p):
    return read_tensor(out, probs, "probability per token")


def _facts(got, want, probs, p) -> list[str]:
    facts = []
    if torch.isnan(got).any():
        facts.append("your result contains NaN (a division by zero?)")
    elif abs(float(got.sum()) - 1) > 1e-4:
        facts.append(f"your result sums to {float(got.sum()):.4g}, not 1")
    if (got < 0).any():
        facts.append("your result has negative entries")
    return facts


def _show(want, got, probs, p):
    return show_vector(want), show_vector(got)


def _cases() -> list[Case]:
    def t(*xs):
        return torch.tensor(xs, dtype=torch.float32)

    gen = torch.Generator().manual_seed(0)
    rand = torch.softmax(torch.randn(50, generator=gen) * 2, dim=0)    # vocab = 50, unsorted
    cum = rand.sort(descending=True).values.cumsum(0)
    p_mid = round(float(cum[6] + cum[7]) / 2, 3)     # far from any boundary: keeps 8 tokens
    # dyadic probabilities add up exactly in float, so "mass reaches p exactly" is exact
    return [
        Case("probs=[0.25, 0.6, 0.15], p=0.1 (only the top token)", (t(0.25, 0.6, 0.15), 0.1)),
        Case("probs=[0.1, 0.5, 0.15, 0.25], p=0.7", (t(0.1, 0.5, 0.15, 0.25), 0.7)),
        Case("probs=[0.125, 0.5, 0.125, 0.25], p=0.75 (the mass reaches p exactly)",
             (t(0.125, 0.5, 0.125, 0.25), 0.75)),
        Case("probs=[0.25, 0.375, 0.125, 0.25], p=0.5 (a tie at the boundary)",
             (t(0.25, 0.375, 0.125, 0.25), 0.5)),
        Case("probs=[0.125, 0.5, 0.0, 0.375], p=1 (keep every token)",
             (t(0.125, 0.5, 0.0, 0.375), 1.0)),
        Case(f"a 50-token distribution, p={p_mid}", (rand, p_mid)),
    ]


TOP_P = Check("check_top_p", reference=reference_top_p, cases=_cases, read=_read,
              variants=VARIANTS, also_correct=_either_tie(_nucleus), show=_show, facts=_facts)


def check_top_p(fn) -> bool:
    """Check `fn(probs, p) -> probs'`: the nucleus (top-p) distribution, renormalised.

    Ties at the boundary may be broken either way, as long as the kept tokens are a
    smallest set of most likely tokens whose mass reaches p.
    """
    return TOP_P.check(fn)
