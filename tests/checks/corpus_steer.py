"""Notebook 06's exercise, answered the way learners answer it: bag-of-words boosting, written
from the exercise text (boost each one-token spelling of `word` and `" " + word`, once), each
with the verdict key it must get."""
import torch

from labkit.checks._corpus import Entry


def _ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False).input_ids


def one_token_set(tokenizer, words, logits, strength):
    boost = set()
    for w in words:
        for spelling in (w, " " + w):
            ids = _ids(tokenizer, spelling)
            if len(ids) == 1:
                boost.add(ids[0])
    out = logits.clone()
    out[list(boost)] += strength
    return out


def with_encode(tokenizer, words, logits, strength):
    ids = {tokenizer.encode(s, add_special_tokens=False)[0] for w in set(words)
           for s in (w, " " + w) if len(tokenizer.encode(s, add_special_tokens=False)) == 1}
    bias = torch.zeros_like(logits)
    bias[sorted(ids)] = strength
    return logits + bias


def no_clone(tokenizer, words, logits, strength):
    """Correct, but edits the caller's logits in place."""
    for i in {ids[0] for w in words for s in (w, " " + w) if len(ids := _ids(tokenizer, s)) == 1}:
        logits[i] += strength
    return logits


def first_token_of_each(tokenizer, words, logits, strength):
    """The old exercise: boost the first token of each spelling, whatever its length."""
    out = logits.clone()
    out[sorted({_ids(tokenizer, s)[0] for w in words for s in (w, " " + w)})] += strength
    return out


def every_token(tokenizer, words, logits, strength):
    out = logits.clone()
    out[sorted({i for w in words for s in (w, " " + w) for i in _ids(tokenizer, s)})] += strength
    return out


def space_only(tokenizer, words, logits, strength):
    out = logits.clone()
    for w in words:
        ids = _ids(tokenizer, " " + w)
        if len(ids) == 1:
            out[ids[0]] += strength
    return out


def bare_only(tokenizer, words, logits, strength):
    ids = [_ids(tokenizer, w) for w in words]
    out = logits.clone()
    out[sorted({i[0] for i in ids if len(i) == 1})] += strength
    return out


def capitalised_too(tokenizer, words, logits, strength):
    out = logits.clone()
    forms = {f for w in words for f in (w, " " + w, w.capitalize(), " " + w.capitalize())}
    out[sorted({_ids(tokenizer, f)[0] for f in forms if len(_ids(tokenizer, f)) == 1})] += strength
    return out


def loop_adds(tokenizer, words, logits, strength):
    out = logits.clone()
    for w in words:
        for s in (w, " " + w):
            ids = _ids(tokenizer, s)
            if len(ids) == 1:
                out[ids[0]] += strength            # a word listed twice: added twice
    return out


def multiplies(tokenizer, words, logits, strength):
    out = logits.clone()
    ids = sorted({_ids(tokenizer, s)[0] for w in words for s in (w, " " + w)
                  if len(_ids(tokenizer, s)) == 1})
    out[ids] *= strength
    return out


def assigns(tokenizer, words, logits, strength):
    out = logits.clone()
    ids = sorted({_ids(tokenizer, s)[0] for w in words for s in (w, " " + w)
                  if len(_ids(tokenizer, s)) == 1})
    out[ids] = strength
    return out


def probabilities(tokenizer, words, logits, strength):
    return torch.softmax(one_token_set(tokenizer, words, logits, strength), dim=-1)


def first_token_space_only(tokenizer, words, logits, strength):
    out = logits.clone()
    out[sorted({_ids(tokenizer, " " + w)[0] for w in words})] += strength
    return out


def skips_bos(tokenizer, words, logits, strength):
    out = logits.clone()
    for w in words:
        out[_ids(tokenizer, " " + w)[1]] += strength     # [0] taken for a start token
    return out


def todo(tokenizer, words, logits, strength):
    raise NotImplementedError


def edits_no_return(tokenizer, words, logits, strength):
    logits[one_token_set(tokenizer, words, logits, strength) != logits] += strength


CORPUS = {"check_bag_of_words": [
    Entry("one_token_set", one_token_set, "passed", "correct"),
    Entry("with_encode", with_encode, "passed", "correct, with tokenizer.encode and a bias"),
    Entry("no_clone", no_clone, "passed", "correct, edits its input in place"),
    Entry("first_token_of_each", first_token_of_each, "first_piece",
          "the old behaviour: a long word's first piece boosted"),
    Entry("every_token", every_token, "every_piece", "every piece of every spelling"),
    Entry("space_only", space_only, "space_only", "only ' word'"),
    Entry("bare_only", bare_only, "no_space_only", "only 'word'"),
    Entry("capitalised_too", capitalised_too, "capitalised", "Word and ' Word' too"),
    Entry("loop_adds", loop_adds, "twice", "a word listed twice is boosted twice"),
    Entry("multiplies", multiplies, "multiplied", "logits × strength"),
    Entry("assigns", assigns, "assigned", "logits = strength"),
    Entry("probabilities", probabilities, "probabilities", "returns softmax"),
    Entry("first_token_space_only", first_token_space_only, "unknown",
          "two mistakes: first pieces, and only ' word'"),
    Entry("todo", todo, "not_attempted", "not attempted"),
    Entry("skips_bos", skips_bos, "raised", "takes input_ids[1], as if [0] were a start token"),
    Entry("edits_no_return", edits_no_return, "none", "edits in place, returns nothing"),
    Entry("returns_list", lambda *a: one_token_set(*a).tolist(), "type", "a list"),
    Entry("returns_batch", lambda *a: one_token_set(*a)[None], "shape", "[1, vocab]"),
]}
