"""Notebook 05's exercises, answered the way learners answer them: the pool on one step and one
step of a trie, written from the exercise text, each with the verdict key it must get."""
import torch

from labkit.checks._corpus import Entry


def todo(*args):
    raise NotImplementedError


# --- the pool on one step ---------------------------------------------------------------------

def mask_and_divide(probs, allowed):
    mask = torch.zeros_like(probs, dtype=torch.bool)
    mask[allowed] = True
    out = probs * mask
    return out / out.sum()


def set_loop(probs, allowed):
    out = torch.zeros_like(probs)
    for i in set(allowed):
        out[i] = probs[i]
    return out / out.sum()


def in_place(probs, allowed):
    keep = set(allowed)
    for i in range(len(probs)):
        if i not in keep:
            probs[i] = 0
    probs /= probs.sum()
    return probs


def not_renormalised(probs, allowed):
    out = torch.zeros_like(probs)
    out[allowed] = probs[allowed]
    return out


def divided_by_total(probs, allowed):
    out = torch.zeros_like(probs)
    out[allowed] = probs[allowed]
    return out / probs.sum()


def uniform(probs, allowed):
    out = torch.zeros_like(probs)
    out[list(set(allowed))] = 1 / len(set(allowed))
    return out


def softmax(probs, allowed):
    scores = torch.full_like(probs, float("-inf"))
    scores[allowed] = probs[allowed]
    return torch.softmax(scores, dim=0)


def minus_inf(probs, allowed):
    out = torch.full_like(probs, float("-inf"))
    out[allowed] = probs[allowed] / probs[list(set(allowed))].sum()
    return out


def zeroes_the_pool(probs, allowed):
    out = probs.clone()
    out[allowed] = 0
    return out / out.sum()


def adds_per_listed_id(probs, allowed):
    out = torch.zeros_like(probs)
    for i in allowed:
        out[i] += probs[i]
    return out / out.sum()


def divides_by_listed(probs, allowed):
    out = torch.zeros_like(probs)
    out[allowed] = probs[allowed]
    return out / probs[allowed].sum()


def zeroes_the_pool_unnormalised(probs, allowed):
    out = probs.clone()
    out[allowed] = 0
    return out


def edits_no_return(probs, allowed):
    in_place(probs, allowed)


POOL_CORPUS = [
    Entry("mask_and_divide", mask_and_divide, "passed", "correct"),
    Entry("set_loop", set_loop, "passed", "correct"),
    Entry("in_place", in_place, "passed", "correct, edits its input in place"),
    Entry("not_renormalised", not_renormalised, "not_renormalised", "no division"),
    Entry("divided_by_total", divided_by_total, "not_renormalised", "divides by the total (1)"),
    Entry("uniform", uniform, "uniform", "the pool made uniform"),
    Entry("softmax", softmax, "softmax", "softmax over the pool"),
    Entry("minus_inf", minus_inf, "minus_inf", "-inf outside the pool"),
    Entry("zeroes_the_pool", zeroes_the_pool, "inverted", "zeroes the allowed tokens"),
    Entry("adds_per_listed_id", adds_per_listed_id, "repeats", "a repeated id adds twice"),
    Entry("divides_by_listed", divides_by_listed, "repeats", "divides by the listed mass"),
    Entry("zeroes_the_pool_unnormalised", zeroes_the_pool_unnormalised, "unknown",
          "two mistakes: inverted, not renormalised"),
    Entry("todo", todo, "not_attempted", "not attempted"),
    Entry("raises", lambda probs, allowed: probs.masked_fill(allowed, 0.0), "raised",
          "masked_fill with a list"),
    Entry("zeroes_everything", lambda probs, allowed: probs.mul_(0), "unknown",
          "zeroes every token"),
    Entry("edits_no_return", edits_no_return, "none",
          "edits in place, returns nothing"),
    Entry("returns_pool_only", lambda probs, allowed: probs[allowed] / probs[allowed].sum(),
          "shape", "only the allowed tokens' probabilities"),
    Entry("returns_list", lambda probs, allowed: mask_and_divide(probs, allowed).tolist(), "type",
          "a list"),
    Entry("returns_mask", lambda probs, allowed: mask_and_divide(probs, allowed) > 0, "dtype",
          "the mask"),
]


# --- one step of a trie ---------------------------------------------------------------------------

def trie_loop(prefix, options, texts):
    ids = []
    for i, t in enumerate(texts):
        for o in options:
            if o.startswith(prefix + t):
                ids.append(i)
                break
    return ids


def trie_remainders(prefix, options, texts):
    rest = [o[len(prefix):] for o in options if o.startswith(prefix)]
    return sorted({i for i, t in enumerate(texts) for r in rest if r.startswith(t)})


def trie_tensor(prefix, options, texts):
    return torch.tensor([any(o.startswith(prefix + t) for o in options)
                         for t in texts]).nonzero().flatten()


def _ids(test):
    return lambda prefix, options, texts: [
        i for i, t in enumerate(texts) if any(test(prefix, t, o) for o in options)]


TRIE_CORPUS = [
    Entry("loop", trie_loop, "passed", "correct"),
    Entry("remainders", trie_remainders, "passed", "correct, on what is left of each option"),
    Entry("tensor", trie_tensor, "passed", "correct, returns a tensor of ids"),
    Entry("exact", _ids(lambda pre, t, o: pre + t == o), "exact_only",
          "only a token that completes an option"),
    Entry("both_ways", _ids(lambda pre, t, o: o.startswith(pre + t) or (pre + t).startswith(o)),
          "straddle", "also tokens that run past an option"),
    Entry("wrong_way_round", _ids(lambda pre, t, o: (pre + t).startswith(o)), "reversed",
          "(prefix + token).startswith(option)"),
    Entry("token_only", _ids(lambda pre, t, o: o.startswith(t)), "ignores_prefix",
          "forgets the prefix"),
    Entry("strips_token", _ids(lambda pre, t, o: o.startswith(pre + t.strip())),
          "strips_spaces", "strips the token's spaces"),
    Entry("strips_all", _ids(lambda pre, t, o: o.strip().startswith((pre + t).strip())),
          "strips_spaces", "strips both sides"),
    Entry("substring", _ids(lambda pre, t, o: pre + t in o), "substring", "'in' for startswith"),
    Entry("proper_prefix", _ids(lambda pre, t, o: o.startswith(pre + t) and len(o) > len(pre + t)),
          "proper_prefix", "refuses a token that completes an option"),
    Entry("all_options", lambda pre, options, texts: [
        i for i, t in enumerate(texts) if all(o.startswith(pre + t) for o in options)],
        "all_options", "all instead of any"),
    Entry("one_based", lambda pre, options, texts: [
        i for i, t in enumerate(texts, start=1) if any(o.startswith(pre + t) for o in options)],
        "one_based", "enumerate(texts, start=1)"),
    Entry("vocabulary_ids", lambda pre, options, texts: [
        1000 + i for i in trie_loop(pre, options, texts)], "unknown", "ids of a bigger vocabulary"),
    Entry("minus_one_for_none", lambda pre, options, texts: trie_loop(pre, options, texts) or [-1],
          "unknown", "-1 when no token fits"),
    Entry("huge_ids", lambda pre, options, texts: [10 ** 30], "unknown", "an enormous id"),
    Entry("nan_ids", lambda pre, options, texts: [float("nan")], "type", "NaN as an id"),
    Entry("texts", lambda pre, options, texts: [texts[i] for i in trie_loop(pre, options, texts)],
          "texts", "returns the token texts"),
    Entry("mask", lambda pre, options, texts: [any(o.startswith(pre + t) for o in options)
                                               for t in texts], "mask", "returns True/False"),
    Entry("todo", todo, "not_attempted", "not attempted"),
    Entry("raises", lambda pre, options, texts: [
        i for i, t in enumerate(texts) if options[i].startswith(pre + t)], "raised",
        "indexes the options by token id"),
    Entry("returns_none", lambda pre, options, texts: None, "none", "no return"),
    Entry("returns_int", lambda pre, options, texts: len(trie_loop(pre, options, texts)), "type",
          "counts the tokens"),
]

CORPUS = {"check_pool_renormalise": POOL_CORPUS, "check_trie_step": TRIE_CORPUS}
