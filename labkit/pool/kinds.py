"""The constraints: exactly one of some strings (`OneOf`), a span of a source (`Quote`), a
full match of a regular expression (`Regex`), titles from a catalogue inside free text
(`Catalogue`). Each is a `TokenPool` driven by an automaton over characters."""
from __future__ import annotations

import re

from ..regex import NFA
from ..vocab import Trie
from .core import TokenPool


# --- exactly one of some strings ------------------------------------------------------------


def _strings(items, what: str) -> list[str]:
    if isinstance(items, str):
        raise TypeError(f"pass a list of {what}s, not one string")
    items = list(dict.fromkeys(items))
    if not items:
        raise ValueError(f"the {what} list is empty: give at least one {what}")
    bad = [s for s in items if not isinstance(s, str) or not s]
    if bad:
        raise ValueError(f"every {what} must be a non-empty string, got {bad[0]!r}")
    return items


class OneOf(TokenPool):
    """The output is exactly one of `options` (mind the leading space: " positive" is what a
    model writes after "Sentiment:"). A state is a node of the options' `Trie`."""

    def __init__(self, tokenizer, options, *, end: str | None = None):
        super().__init__(tokenizer, end)
        self.options = _strings(options, "option")
        for s in self.options:
            self._check_chars(s, f"the option {s!r}")
        self.trie = Trie((s, i) for i, s in enumerate(self.options))

    def initial(self):
        return 0

    def advance(self, state, ch):
        return self.trie.children[state].get(ch)

    def accepts(self, state):
        return bool(self.trie.values[state])

    def __repr__(self):
        return f"OneOf({self.options!r})"


# --- a span of a source ----------------------------------------------------------------------


class Quote(TokenPool):
    """The output is a contiguous span of `source` with at least one non-space character
    (extractive: no hallucination). A state is (non-space seen?, the set of positions in
    `source` where the span written so far may end); () before the first character."""

    def __init__(self, tokenizer, source: str, *, end: str | None = None):
        super().__init__(tokenizer, end)
        if not isinstance(source, str) or not source.strip():
            raise ValueError("the source is empty: Quote needs a text to quote from")
        self._check_chars(source, "the source")
        self.source = source
        self._last_word = max(i for i, ch in enumerate(source) if not ch.isspace())
        self._by_char: dict[str, list[int]] = {}
        for j, ch in enumerate(source):
            self._by_char.setdefault(ch, []).append(j)

    def initial(self):
        return ()                               # nothing written yet

    def advance(self, state, ch):
        if state == ():
            seen, ends = False, frozenset(j + 1 for j in self._by_char.get(ch, ()))
        else:
            src = self.source
            seen = state[0]
            ends = frozenset(j + 1 for j in state[1] if j < len(src) and src[j] == ch)
        seen = seen or not ch.isspace()
        if not seen:        # only spaces so far: keep the positions a non-space still follows
            ends = frozenset(j for j in ends if j <= self._last_word)
        return (seen, ends) if ends else None

    def accepts(self, state):
        return state != () and state[0]

    def __repr__(self):
        return f"Quote({len(self.source)} characters)"


# --- a regular expression -----------------------------------------------------------------------


_COMPILED: dict = {}     # (vocabulary id, pattern, end) -> (vocab, nfa, masks, steps)


class Regex(TokenPool):
    """The output fully matches `pattern` (Python syntax: classes, groups, |, *, +, ?, {m,n};
    what is refused and why: `labkit.regex`). A state is a set of NFA states, determinised
    lazily; the automaton, its transitions and the masks are cached per (tokenizer, pattern).

    `\\d` (and `\\w`, `[^...]`, `.`) mean Python's Unicode classes, but a token that is only
    part of a UTF-8 character is never allowed, so a character the vocabulary has no whole token
    for cannot be written: with SmolLM2's vocabulary `\\d` means the ASCII digits 0-9 in
    practice (its Arabic-Indic or full-width digits exist only as byte pieces). llguidance,
    working on bytes, allows those pieces where a Unicode digit may come, so it can write
    " ٢٠٢٤-٠١-٠١" for ` ?\\d{4}-\\d{2}-\\d{2}`; apart from that (and with its "forcing" off)
    its masks and these agree token for token (tests/test_pool_oracle.py, which also lists where
    Python's \\w and \\s differ from Rust's)."""

    def __init__(self, tokenizer, pattern: str, *, end: str | None = None):
        super().__init__(tokenizer, end)
        key = (id(self.vocab), pattern, self.end)
        if key not in _COMPILED:                   # once per (tokenizer, pattern)
            nfa = NFA(pattern)
            if not nfa.writable(self.vocab.single_chars):
                raise ValueError(f"the pattern {pattern!r} needs a character that this "
                                 "tokenizer cannot write as a whole token")
            _COMPILED[key] = (self.vocab, nfa, {}, {})
        _, self.nfa, self._masks, self._after = _COMPILED[key]
        self.pattern = pattern

    def initial(self):
        return self.nfa.start

    def advance(self, state, ch):
        return self.nfa.step(state, ch)

    def accepts(self, state):
        return self.nfa.accepts(state)

    def __repr__(self):
        return f"Regex({self.pattern!r})"


# --- titles from a catalogue inside free text ------------------------------------------------


class Catalogue(TokenPool):
    """Free text, except that after `open` the model must write one of `titles` and then
    `close` ("see [Marie Curie] for ..."): a link can only point to a page that exists.
    State -1 is free text; a state ≥ 0 is a node of the titles' `Trie`."""

    def __init__(self, tokenizer, titles, open: str = "[", close: str = "]", *,
                 end: str | None = None):
        super().__init__(tokenizer, end)
        self.titles = _strings(titles, "title")
        if len(open) != 1 or len(close) != 1 or open == close:
            raise ValueError("open and close must be two different single characters")
        for t in self.titles:
            if open in t or close in t:
                raise ValueError(f"the title {t!r} contains {open!r} or {close!r}")
            self._check_chars(t, f"the title {t!r}")
        self._check_chars(open + close, "the brackets")
        self.open, self.close = open, close
        self.trie = Trie((t, i) for i, t in enumerate(self.titles))

    def initial(self):
        return -1

    def advance(self, state, ch):
        if state == -1:
            return 0 if ch == self.open else -1
        if ch == self.close and self.trie.values[state]:
            return -1
        return self.trie.children[state].get(ch)

    def accepts(self, state):
        return state == -1

    def links(self, text: str) -> list[str]:
        """The titles linked in `text`."""
        return re.findall(re.escape(self.open) + "(.*?)" + re.escape(self.close), text)

    def __repr__(self):
        return f"Catalogue({len(self.titles)} titles, {self.open}...{self.close})"
