"""Notebook 06's check: bag-of-words boosting on one step's logits.

The reference adds `strength` to the logit of every token that spells a whole word of the bag
by itself -- the one-token spellings among `word` and `" " + word`, each token boosted once
-- as PPLM's bag of words does (Dathathri et al. 2020, "Plug and Play Language Models", §3.2:
the bag keeps only words that are one token). A word of several tokens is never started by
boosting its first piece: that piece also starts unrelated words. `labkit.steer.BagOfWords`
boosts these tokens and the capitalised spellings too.
"""
from __future__ import annotations

import torch

from ._runner import Case, Check, Variant, read_tensor


def _spellings(tokenizer, words, forms=(lambda w: w, lambda w: " " + w)):
    """[(word, token ids of the spelling)] for every word and spelling, repeats kept."""
    return [(w, list(tokenizer(f(w), add_special_tokens=False).input_ids))
            for w in words for f in forms]


def one_token_ids(tokenizer, words) -> list[int]:
    """The tokens that spell a word of the bag by themselves (`word` or `" " + word`), sorted."""
    return sorted({ids[0] for _, ids in _spellings(tokenizer, words) if len(ids) == 1})


def reference_bag_of_words(tokenizer, words, logits: torch.Tensor, strength: float) -> torch.Tensor:
    """logits [vocab] + strength on every one-token spelling of each word (`word`, `" " + word`);
    each such token boosted once, every other logit unchanged."""
    out = logits.clone()
    out[one_token_ids(tokenizer, words)] += strength
    return out


def _boost(ids):
    """A bag variant that adds strength to each token of ids(tokenizer, words): once, and in
    the loop flavour, once per listing (so a word listed twice gets it twice as well)."""
    def once(tokenizer, words, logits, strength):
        out = logits.clone()
        out[sorted(set(ids(tokenizer, words)))] += strength
        return out

    def per_listing(tokenizer, words, logits, strength):
        found = torch.tensor(ids(tokenizer, words), dtype=torch.long)
        return logits.index_add(0, found, torch.full((len(found),), float(strength),
                                                     dtype=logits.dtype))
    return [once, per_listing]


def _one(tokenizer, words, forms):
    return [ids[0] for _, ids in _spellings(tokenizer, words, forms) if len(ids) == 1]


def _twice(tokenizer, words, logits, strength):
    ids = [ids[0] for _, ids in _spellings(tokenizer, words) if len(ids) == 1]
    return logits.index_add(0, torch.tensor(ids, dtype=torch.long),
                            torch.full((len(ids),), float(strength), dtype=logits.dtype))


def _edit(edit):
    def variant(tokenizer, words, logits, strength):
        out = logits.clone()
        ids = one_token_ids(tokenizer, words)
        out[ids] = edit(out[ids], strength)
        return out
    return variant


BAG_VARIANTS = [
    Variant("first_piece", "the first piece of a long word boosted",
            "a word of several tokens (' xyl' + 'ophone') is not boosted at all: its first "
            "piece also starts unrelated words -- boost a token only when it spells the whole "
            "word by itself (len(ids) == 1)",
            fns=_boost(lambda tok, ws: [ids[0] for _, ids in _spellings(tok, ws) if ids])),
    Variant("every_piece", "every piece of a long word boosted",
            "the pieces of a word of several tokens are not boosted: they also start or end "
            "unrelated words -- boost a token only when it spells the whole word by itself",
            fns=_boost(lambda tok, ws: [i for _, ids in _spellings(tok, ws) for i in ids])),
    Variant("space_only", "only the ' word' spelling",
            "a word at the start of a line or after a quote is the token without the space: "
            "boost the one-token spellings of both `word` and `' ' + word`",
            fns=_boost(lambda tok, ws: _one(tok, ws, [lambda w: " " + w]))),
    Variant("no_space_only", "only the spelling without a space",
            "inside a sentence words come as ' word' (space included), a different token: "
            "boost the one-token spellings of both `word` and `' ' + word`",
            fns=_boost(lambda tok, ws: _one(tok, ws, [lambda w: w]))),
    Variant("capitalised", "capitalised spellings boosted too",
            "the exercise boosts only `word` and `' ' + word` (BagOfWords adds 'Word' and "
            "' Word'; here, leave them unchanged)",
            fns=_boost(lambda tok, ws: _one(tok, ws, [lambda w: w, lambda w: " " + w,
                                                       lambda w: w[:1].upper() + w[1:],
                                                       lambda w: " " + w[:1].upper() + w[1:]]))),
    Variant("twice", "a token boosted twice",
            "a word listed twice is still one word: boost each token once (collect the ids "
            "in a set first)", fns=[_twice]),
    Variant("multiplied", "logits multiplied by the strength",
            "add the strength to the logit: a boost of s multiplies the token's *probability* "
            "by e^s, which is adding s to its logit",
            fns=[_edit(lambda z, s: z * s)]),
    Variant("assigned", "logits set to the strength",
            "add the strength to the token's logit (+=), do not replace the logit with it",
            fns=[_edit(lambda z, s: torch.full_like(z, float(s)))]),
    Variant("probabilities", "probabilities returned",
            "return the boosted *logits*, not softmax of them",
            fns=[lambda *a: torch.softmax(reference_bag_of_words(*a), -1)]),
]


def _read_bag(out, tokenizer, words, logits, strength):
    return read_tensor(out, logits, "logit per token of the vocabulary")


def _changes(v, tokenizer, logits, limit=6):
    moved = (~torch.isclose(v, logits.double(), atol=1e-5, equal_nan=True)).nonzero().flatten()
    if len(moved) == 0:
        return "no logit changed"
    if len(moved) > limit:
        return f"{len(moved)} logits changed"
    parts = [f"{tokenizer.decode([i])!r} (id {i}) {float(v[i] - logits[i]):+.3g}"
             for i in moved.tolist()]
    return "{" + ", ".join(parts) + "}"


def _show_bag(want, got, tokenizer, words, logits, strength):
    return _changes(want, tokenizer, logits), _changes(got, tokenizer, logits)


def _bag_cases(tokenizer) -> list[Case]:
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(len(tokenizer), generator=gen)                     # vocab
    return [
        Case("words=['happy'], strength 2", (tokenizer, ["happy"], z, 2.0)),
        Case("words=['enjoy'], strength 3 (' enjoy' is one token, 'enjoy' is 'en' + 'joy')",
             (tokenizer, ["enjoy"], z, 3.0)),
        Case("words=['xylophone'], strength 3 (no spelling is one token: nothing changes)",
             (tokenizer, ["xylophone"], z, 3.0)),
        Case("words=['love', 'joy', 'great'], strength 5", (tokenizer, ["love", "joy", "great"],
                                                            z, 5.0)),
        Case("words=['joy', 'love', 'joy'] (a word listed twice), strength 1.5",
             (tokenizer, ["joy", "love", "joy"], z, 1.5)),
        Case("words=['happy'], strength 0 (nothing changes)", (tokenizer, ["happy"], z, 0.0)),
    ]


BAG_OF_WORDS = Check("check_bag_of_words", reference=reference_bag_of_words, cases=_bag_cases,
                     read=_read_bag, variants=BAG_VARIANTS, show=_show_bag)


def check_bag_of_words(fn, tokenizer=None) -> bool:
    """Check `fn(tokenizer, words, logits, strength) -> logits'`: bag-of-words boosting
    (reference: `reference_bag_of_words`). `tokenizer` defaults to lk.load()'s."""
    if tokenizer is None:
        from ..models import load
        tokenizer = load().tokenizer
    return BAG_OF_WORDS.check(fn, tokenizer=tokenizer)
