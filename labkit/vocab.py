"""The vocabulary as text: what every token writes, and a character trie over it.

A token pool (labkit.pool) decides which tokens may come next by walking the characters each
token would write, alongside its automaton. This file turns a tokenizer into that view once:
`Vocabulary.texts[i]` is what token i writes *in the middle of a text* -- which is not always
`decode([i])`: SentencePiece-style tokenizers (Metaspace `▁`, byte fallback) drop the leading
space of a text's first token, so each id is decoded after a reference token instead -- and
`Vocabulary.trie` is a `Trie` over those texts. The same `Trie` holds a pool's options or
titles (labkit.pool's one trie).

Special tokens and byte pieces that are only part of a UTF-8 character (`<0xE2>`) have no
text (None) and are never allowed. `vocabulary(tokenizer)` builds it on first use (~0.2 s for
49k tokens) and caches it per tokenizer.

Left out on purpose: tokenizers without a fast (Rust) backend are decoded one id at a time
(correct, ~10x slower to build); and normalisers that change text (lower-casing) are not
undone -- a pool sees what the tokens write.
"""
from __future__ import annotations

import gc


class Trie:
    """A character trie over strings: the vocabulary's token texts (value: the token id) and an
    option or title list (value: its index). Node ids are ints, 0 is the root; `children[node]`
    maps a character to a node, `values[node]` is the tuple of values whose string ends there.
    Only ints, strings and dicts/tuples of them, which CPython's garbage collector does not
    track: its 100k nodes add nothing to a collection (with a [dict, list] per node, collections
    made a process's first mask ~10x slower; `benchmarks/bench_pool.py`)."""

    def __init__(self, items=()):
        self.children: list[dict[str, int]] = [{}]
        self.values: list[tuple] = [()]
        for key, value in items:
            self.add(key, value)

    def add(self, key: str, value) -> None:
        node, children, values = 0, self.children, self.values
        for ch in key:
            nxt = children[node].get(ch)
            if nxt is None:
                nxt = children[node][ch] = len(children)
                children.append({})
                values.append(())
            node = nxt
        values[node] += (value,)

    def find(self, key: str) -> int | None:
        """The node `key` leads to, or None."""
        node = 0
        for ch in key:
            node = self.children[node].get(ch)
            if node is None:
                return None
        return node


class Vocabulary:
    """What each token writes in the middle of a text (`texts`; None for special tokens and for
    pieces of a UTF-8 character, which are never allowed) and the `Trie` over those texts."""

    def __init__(self, tokenizer):
        special = set(tokenizer.all_special_ids) | {
            i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if t.special}
        self.size = len(tokenizer)
        self.eos_id = tokenizer.eos_token_id
        texts = _token_texts(tokenizer, self.size)
        self.texts: list[str | None] = [None if i in special or not t or "\ufffd" in t else t
                                        for i, t in enumerate(texts)]
        self.trie = Trie((t, i) for i, t in enumerate(self.texts) if t is not None)
        kids, values = self.trie.children[0], self.trie.values
        self.single_chars = {ch for ch, node in kids.items() if values[node]}   # whole tokens


def _token_texts(tokenizer, n: int) -> list:
    """What each id writes mid-text, which differs from what decode([id]) gives alone for
    SentencePiece-style tokenizers (Metaspace `▁`, byte fallback), whose decoder drops the leading
    space of a text's first token, so each id is decoded after a reference token ("a") whose
    own text is then cut off. Through the Rust backend in one batch when there is one (10x faster
    than 49k Python calls), and without transformers' clean-up of spaces around punctuation."""
    backend = getattr(tokenizer, "backend_tokenizer", None)

    def decode(seqs):
        if backend is not None:
            return backend.decode_batch(seqs, skip_special_tokens=False)
        return [tokenizer.decode(s, clean_up_tokenization_spaces=False) for s in seqs]
    alone = decode([[i] for i in range(n)])
    letters = [i for i, t in enumerate(alone) if len(t) == 1 and t.isascii() and t.isalnum()]
    if not letters:                                     # no plain one-letter token to lean on
        return alone
    ref = alone.index("a") if "a" in alone else letters[0]
    prefix = alone[ref]
    pairs = decode([[ref, i] for i in range(n)])
    return [p[len(prefix):] if p.startswith(prefix) else None for p in pairs]


_VOCABS: dict[int, tuple[object, Vocabulary]] = {}


def vocabulary(tokenizer) -> Vocabulary:
    """The `Vocabulary` of `tokenizer`, built on first use (~0.2 s for 49k tokens) and cached."""
    hit = _VOCABS.get(id(tokenizer))
    if hit is None or hit[0] is not tokenizer:
        enabled = gc.isenabled()
        gc.disable()        # 100k short-lived lists (the decode batches): each collection they
        try:                # would trigger rescans every object of the process (the model's)
            hit = _VOCABS[id(tokenizer)] = (tokenizer, Vocabulary(tokenizer))
        finally:
            if enabled:
                gc.enable()
    return hit[1]
