"""Notebook 00's exercise, answered the way learners answer it: top-p from the exercise text.

Each entry is written from the exercise's words alone (not from the check's variants), with
the verdict key it must get.
"""
import torch

from labkit.checks._corpus import Entry


def _sorted(probs, descending=True):
    values, order = torch.sort(probs, descending=descending)
    return values, order, values.cumsum(0)


def loop(probs, p):
    """Correct: walk the tokens from the most likely, stop once the mass reaches p."""
    out = torch.zeros_like(probs)
    mass = 0.0
    for i in torch.argsort(probs, descending=True).tolist():
        out[i] = probs[i]
        mass += float(probs[i])
        if mass >= p:
            break
    return out / out.sum()


def vectorised(probs, p):
    """Correct: keep a token while the mass before it is below p; scatter back."""
    s, order, cum = _sorted(probs)
    keep = (cum - s) < p
    out = torch.zeros_like(probs)
    out[order[keep]] = s[keep]
    return out / out.sum()


def in_place(probs, p):
    """Correct, but zeroes the caller's tensor as it goes."""
    s, order, cum = _sorted(probs)
    probs[order[(cum - s) >= p]] = 0
    return probs / probs.sum()


def not_renormalised(probs, p):
    s, order, cum = _sorted(probs)
    keep = (cum - s) < p
    out = torch.zeros_like(probs)
    out[order[keep]] = s[keep]
    return out


def divided_by_p(probs, p):
    s, order, cum = _sorted(probs)
    keep = (cum - s) < p
    out = torch.zeros_like(probs)
    out[order[keep]] = s[keep]
    return out / p


def ascending(probs, p):
    s, order, cum = _sorted(probs, descending=False)
    keep = (cum - s) < p
    out = torch.zeros_like(probs)
    out[order[keep]] = s[keep]
    return out / out.sum()


def unsorted(probs, p):
    cum = torch.cumsum(probs, 0)
    out = torch.where(cum - probs < p, probs, torch.zeros_like(probs))
    return out / out.sum()


def not_scattered(probs, p):
    s, order, cum = _sorted(probs)
    keep = (cum - s) < p
    s = s * keep
    return s / s.sum()


def cum_le_p(probs, p):
    s, order, cum = _sorted(probs)
    keep = cum <= p
    out = torch.zeros_like(probs)
    out[order[keep]] = s[keep]
    return out / out.sum()


def cum_lt_p_top_kept(probs, p):
    s, order, cum = _sorted(probs)
    keep = cum < p
    keep[0] = True                              # "the top token is always kept"
    out = torch.zeros_like(probs)
    out[order[keep]] = s[keep]
    return out / out.sum()


def hf_shift(probs, p):
    """transformers' old descending version: remove cum > p, shifted right by one."""
    s, order, cum = _sorted(probs)
    remove = cum > p
    remove[1:] = remove[:-1].clone()
    remove[0] = False
    out = probs.clone()
    out[order[remove]] = 0
    return out / out.sum()


def uniform(probs, p):
    s, order, cum = _sorted(probs)
    keep = (cum - s) < p
    out = torch.zeros_like(probs)
    out[order[keep]] = 1.0 / keep.sum()
    return out


def softmax(probs, p):
    s, order, cum = _sorted(probs)
    keep = torch.zeros_like(probs, dtype=torch.bool)
    keep[order[(cum - s) < p]] = True
    return torch.softmax(probs.masked_fill(~keep, float("-inf")), dim=0)


def minus_inf(probs, p):
    s, order, cum = _sorted(probs)
    keep = torch.zeros_like(probs, dtype=torch.bool)
    keep[order[(cum - s) < p]] = True
    kept = probs / probs[keep].sum()
    return kept.masked_fill(~keep, float("-inf"))


def ascending_not_renormalised(probs, p):
    s, order, cum = _sorted(probs, descending=False)
    out = torch.zeros_like(probs)
    out[order[(cum - s) < p]] = s[(cum - s) < p]
    return out


def top_fraction(probs, p):
    """Keeps the top p-fraction of the tokens (top-k with k = p·vocab)."""
    k = max(1, int(p * len(probs)))
    out = torch.zeros_like(probs)
    top = torch.topk(probs, k).indices
    out[top] = probs[top]
    return out / out.sum()


def todo(probs, p):
    raise NotImplementedError


def raises(probs, p):
    s, order = torch.sort(probs, descending=True)
    return s[order[len(probs)]]                 # one past the end


def edits_no_return(probs, p):
    s, order, cum = _sorted(probs)
    probs[order[(cum - s) >= p]] = 0
    probs /= probs.sum()


CORPUS = {"check_top_p": [
    Entry("loop", loop, "passed", "correct"),
    Entry("vectorised", vectorised, "passed", "correct"),
    Entry("in_place", in_place, "passed", "correct, edits its input in place"),
    Entry("not_renormalised", not_renormalised, "not_renormalised", "no division by the kept mass"),
    Entry("divided_by_p", divided_by_p, "not_renormalised", "divides by p, not the kept mass"),
    Entry("ascending", ascending, "ascending", "sorts ascending"),
    Entry("unsorted", unsorted, "unsorted", "no sort: cumsum in vocabulary order"),
    Entry("not_scattered", not_scattered, "not_scattered", "returns the sorted order"),
    Entry("cum_le_p", cum_le_p, "drops_crossing", "keeps cum <= p: drops the crossing token"),
    Entry("cum_lt_p_top_kept", cum_lt_p_top_kept, "drops_crossing",
          "keeps cum < p (and the top token)"),
    Entry("hf_shift", hf_shift, "one_too_many", "removal mask shifted: one too many at a tie"),
    Entry("uniform", uniform, "uniform", "kept tokens made uniform"),
    Entry("softmax", softmax, "softmax", "softmax of the masked probabilities"),
    Entry("minus_inf", minus_inf, "minus_inf", "dropped tokens get -inf"),
    Entry("ascending_not_renormalised", ascending_not_renormalised, "unknown",
          "two mistakes at once: ascending and not renormalised"),
    Entry("top_fraction", top_fraction, "unknown", "keeps the top p-fraction of the vocabulary"),
    Entry("todo", todo, "not_attempted", "not attempted"),
    Entry("raises", raises, "raised", "indexes past the end"),
    Entry("returns_none", edits_no_return, "none", "edits in place, returns nothing"),
    Entry("returns_list", lambda probs, p: loop(probs, p).tolist(), "type", "returns a list"),
    Entry("returns_kept_only", lambda probs, p: probs[loop(probs, p) > 0], "shape",
          "returns only the kept probabilities"),
    Entry("returns_mask", lambda probs, p: loop(probs, p) > 0, "dtype", "returns the mask"),
    Entry("returns_nan", lambda probs, p: probs * float("nan"), "unknown", "NaN everywhere"),
]}
