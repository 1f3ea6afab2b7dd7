"""Notebook 05's checks: the token pool on one step, and one step of a trie.

References: `reference_pool_renormalise` (what `labkit.pool`'s controls do to one step's
distribution: π(x_t | x_<t, x_t ∈ pool)) and `reference_trie_step` (one step of
`labkit.pool.OneOf`, on a small vocabulary given as token texts). The trie step's output is
read as a set of ids; ids out of range are kept, so that a known mistake (1-based ids) is
still named, and are reported as a fact otherwise -- never used to index `texts`.
"""
from __future__ import annotations

import operator

import torch

from ._runner import Case, Check, Mistake, Variant, proportional, read_none, read_tensor, \
    show_vector

# --- the pool on one step -------------------------------------------------------------------


def reference_pool_renormalise(probs: torch.Tensor, allowed) -> torch.Tensor:
    """The token pool on one step: keep the probabilities of the `allowed` token ids, set every
    other token to 0, renormalise so the result sums to 1."""
    keep = torch.zeros_like(probs, dtype=torch.bool)
    keep[torch.as_tensor(sorted(set(allowed)), dtype=torch.long)] = True
    kept = probs.masked_fill(~keep, 0.0)
    return kept / kept.sum()


def _mask(probs, allowed):
    keep = torch.zeros_like(probs, dtype=torch.bool)
    keep[list(allowed)] = True
    return keep


def _counted(probs, allowed):
    """Every listed id adds its probability again: a repeated id counts twice."""
    out = torch.zeros_like(probs).index_add_(0, torch.tensor(list(allowed)), probs[list(allowed)])
    return out / out.sum()


POOL_VARIANTS = [
    Variant("uniform", "made uniform",
            "the kept tokens must keep their relative probabilities: divide each by the kept "
            "total, do not give them all the same value",
            fns=[lambda probs, allowed: _mask(probs, allowed).to(probs.dtype)
                 / _mask(probs, allowed).sum()]),
    Variant("softmax", "renormalised with softmax",
            "these are probabilities, not logits: softmax exponentiates them again -- divide "
            "the kept probabilities by their sum instead",
            fns=[lambda probs, allowed: torch.softmax(
                     probs.masked_fill(~_mask(probs, allowed), float("-inf")), 0),
                 lambda probs, allowed: torch.softmax(probs * _mask(probs, allowed), 0)]),
    Variant("minus_inf", "tokens outside the pool set to -inf",
            "a token outside the pool gets probability 0; -inf is what a masked *logit* gets",
            fns=[lambda probs, allowed: reference_pool_renormalise(probs, allowed).masked_fill(
                ~_mask(probs, allowed), float("-inf"))]),
    Variant("inverted", "the pool inverted",
            "you kept the tokens *outside* the pool: keep the allowed ids and zero every other",
            fns=[lambda probs, allowed: reference_pool_renormalise(
                probs, [i for i in range(len(probs)) if i not in set(allowed)])]),
    Variant("repeats", "a repeated id counted twice",
            "an id listed twice in `allowed` is still one token: count each allowed token once "
            "(use set(allowed), or a boolean mask)",
            fns=[_counted,
                 lambda probs, allowed: probs * _mask(probs, allowed) / probs[list(allowed)].sum()]),
    Variant("not_renormalised", "not renormalised",
            "the right tokens in the right proportions, but they do not sum to 1: after "
            "masking, divide the kept probabilities by their total",
            test=lambda got, want, *a: proportional(got, want)),
]


def _read_pool(out, probs, allowed):
    if isinstance(out, torch.Tensor) and out.dim() == 1 and out.numel() != probs.numel() \
            and out.numel() in (len(allowed), len(set(allowed))):
        raise Mistake(f"return the whole distribution, one probability per token of the "
                      f"vocabulary (shape {tuple(probs.shape)}), not only the {out.numel()} "
                      "allowed tokens' -- the others get 0", "shape")
    return read_tensor(out, probs, "probability per token")


def _pool_facts(got, want, probs, allowed):
    facts = []
    outside = [i for i in range(len(probs)) if i not in set(allowed) and got[i] != 0]
    if outside:
        facts.append(f"tokens outside the pool have probability ≠ 0: {outside}")
    if torch.isfinite(got).all() and abs(float(got.sum()) - 1) > 1e-4:
        facts.append(f"your result sums to {float(got.sum()):.4g}, not 1")
    return facts


def _pool_cases() -> list[Case]:
    f64 = lambda *xs: torch.tensor(xs, dtype=torch.float64)   # noqa: E731
    return [
        Case("probs=[0.7, 0.1, 0.1, 0.1], allowed=[3] (a pool of one token)",
             (f64(0.7, 0.1, 0.1, 0.1), [3])),
        Case("probs=[0.5, 0.2, 0.2, 0.1], allowed=[1, 3]", (f64(0.5, 0.2, 0.2, 0.1), [1, 3])),
        Case("probs=[0.1, 0.3, 0.4, 0.2], allowed=[2, 2, 0] (an id repeated)",
             (f64(0.1, 0.3, 0.4, 0.2), [2, 2, 0])),
    ]


POOL_RENORMALISE = Check("check_pool_renormalise", reference=reference_pool_renormalise,
                         cases=_pool_cases, read=_read_pool, variants=POOL_VARIANTS,
                         facts=_pool_facts,
                         show=lambda want, got, *a: (show_vector(want), show_vector(got)))


def check_pool_renormalise(fn) -> bool:
    """Check `fn(probs, allowed_ids) -> probs`: the distribution restricted to a token pool."""
    return POOL_RENORMALISE.check(fn)


# --- one step of a trie ---------------------------------------------------------------------


def reference_trie_step(prefix: str, options, texts) -> list[int]:
    """One step of `OneOf`: the ids of the tokens (`texts[i]` is token i's text) that keep
    `prefix + text` a prefix of some option (equal to it included), sorted."""
    return sorted(i for i, t in enumerate(texts)
                  if any(o.startswith(prefix + t) for o in options))


def _step(test):
    """A trie step that allows token i when test(prefix, text, option) holds for some option."""
    return lambda prefix, options, texts: sorted(
        i for i, t in enumerate(texts) if any(test(prefix, t, o) for o in options))


TRIE_VARIANTS = [
    Variant("exact_only", "only tokens that finish an option",
            "a token may write just part of an option: allow it when prefix + token is a prefix "
            "of an option, not only when it equals one",
            fns=[_step(lambda pre, t, o: pre + t == o)]),
    Variant("straddle", "tokens that run past an option allowed",
            "a token that writes past the end of an option (prefix + token longer than it) "
            "cannot lead to that option: only allow o.startswith(prefix + token)",
            fns=[_step(lambda pre, t, o: o.startswith(pre + t) or (pre + t).startswith(o))]),
    Variant("reversed", "startswith the wrong way round",
            "you tested (prefix + token).startswith(option); test option.startswith(prefix + "
            "token): the text written so far must be the start of an option",
            fns=[_step(lambda pre, t, o: (pre + t).startswith(o))]),
    Variant("ignores_prefix", "the prefix ignored",
            "test prefix + token, not the token alone: the text written so far matters",
            fns=[_step(lambda pre, t, o: o.startswith(t))]),
    Variant("strips_spaces", "spaces stripped",
            "keep leading spaces: ' Paris' and 'Paris' are different tokens, compare the texts "
            "exactly as they are (no strip())",
            fns=[_step(lambda pre, t, o: o.startswith(pre + t.strip())),
                 _step(lambda pre, t, o: o.strip().startswith((pre + t).strip())),
                 _step(lambda pre, t, o: o.startswith((pre + t).strip()))]),
    Variant("substring", "'in' instead of startswith",
            "prefix + token must be the *start* of an option: o.startswith(prefix + token), "
            "not (prefix + token) in o",
            fns=[_step(lambda pre, t, o: pre + t in o)]),
    Variant("proper_prefix", "a token that completes an option refused",
            "equal counts: a token with prefix + token == option completes it, and is allowed",
            fns=[_step(lambda pre, t, o: o.startswith(pre + t) and o != pre + t)]),
    Variant("all_options", "every option required",
            "a token is allowed when it fits *some* option (any), not every option (all)",
            fns=[lambda prefix, options, texts: sorted(
                i for i, t in enumerate(texts) if all(o.startswith(prefix + t) for o in options))]),
    Variant("one_based", "ids off by one",
            "ids are 0-based indices into texts: texts[i] is token i, so the first token is 0",
            fns=[lambda prefix, options, texts: [i + 1 for i in
                                                 reference_trie_step(prefix, options, texts)]]),
]


def _read_ids(out, prefix, options, texts):
    read_none(out)
    if isinstance(out, torch.Tensor):
        out = out.flatten().tolist()
    if isinstance(out, (str, bytes)) or not hasattr(out, "__iter__"):
        raise Mistake(f"return a list of token ids (ints), not {type(out).__name__}", "type")
    out = list(out)
    if out and all(isinstance(i, bool) for i in out):
        raise Mistake("you returned True/False per token: return the *ids* of the allowed "
                      "tokens instead, [i for i, ok in enumerate(mask) if ok]", "mask")
    if any(isinstance(i, str) for i in out):
        raise Mistake("return the ids of the tokens (their indices into texts), not their "
                      "texts", "texts")
    ids = set()
    for i in out:
        try:
            j = operator.index(i)
        except TypeError:
            try:
                j = int(i) if float(i) == int(i) else None
            except (TypeError, ValueError, OverflowError):
                j = None
        if j is None:
            raise Mistake(f"return whole-number token ids, got {i!r} ({type(i).__name__})",
                          "type")
        ids.add(j)
    return sorted(ids)


def _name(i, texts):
    return f"{i} ({texts[i]!r})" if 0 <= i < len(texts) else f"{i} (no such token)"


def _show_ids(want, got, prefix, options, texts):
    return ("[" + ", ".join(_name(i, texts) for i in want) + "]",
            "[" + ", ".join(_name(i, texts) for i in got) + "]")


def _trie_facts(got, want, prefix, options, texts):
    bad = [i for i in got if not 0 <= i < len(texts)]
    facts = [f"ids {bad} are not indices into texts (0 to {len(texts) - 1})"] if bad else []
    extra = [_name(i, texts) for i in got if i not in want and 0 <= i < len(texts)]
    missing = [_name(i, texts) for i in want if i not in got]
    facts += [f"allowed but should not be: {', '.join(extra)}"] if extra else []
    facts += [f"missing: {', '.join(missing)}"] if missing else []
    return facts


_TEXTS = ["N", "New", "New York", " York", " Y", "Ne", "w", "Paris", " Paris", "New,", "York",
          " ", "ew"]
_OPTIONS = ["New", "New York", " Paris"]


def _trie_cases() -> list[Case]:
    return [
        Case(f"prefix='', options={_OPTIONS}, texts={_TEXTS}", ("", _OPTIONS, _TEXTS)),
        Case("the same after prefix='New'", ("New", _OPTIONS, _TEXTS)),
        Case("the same after prefix='Ne'", ("Ne", _OPTIONS, _TEXTS)),
        Case("after prefix=' Pa', texts + ['ris', 'r']", (" Pa", _OPTIONS, _TEXTS + ["ris", "r"])),
        Case("after prefix='X' (no option starts so)", ("X", _OPTIONS, _TEXTS)),
    ]


TRIE_STEP = Check("check_trie_step", reference=reference_trie_step, cases=_trie_cases,
                  read=_read_ids, same=lambda got, want: got == want, variants=TRIE_VARIANTS,
                  show=_show_ids, facts=_trie_facts)


def check_trie_step(fn) -> bool:
    """Check `fn(prefix, options, texts) -> token ids`: the allowed tokens of one trie step."""
    return TRIE_STEP.check(fn)
