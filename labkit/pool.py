"""The token pool: constrained decoding that can never leave an allowed set.

At every step keep only the tokens that can still lead to a valid text, renormalise,
sample (Deutsch et al. 2019, "A General-Purpose Algorithm for Constrained Sequential
Inference"; Willard & Louf 2023, "Efficient Guided Generation for LLMs", arXiv:2307.09702):

    π_c(x_t | x_<t) = π(x_t | x_<t) · 1[x_<t x_t is a prefix of a valid text] / Z_t

Every constraint here is a *character-level automaton* (`initial`, `advance(state, ch)`,
`accepts(state)`); `TokenPool` turns it into a transformers `LogitsProcessor`:

* the allowed tokens in a state are found by walking a `Trie` of the vocabulary's token texts
  (what each token writes mid-text, built once per tokenizer, `vocabulary`) together with the
  automaton, pruning a branch as soon as the automaton dies -- so leading spaces, a token that
  straddles the end of an option ("Paris" + "," in one token) and the several tokenizations
  of one string are all handled at the level of characters, where they are no problem;
* end-of-sequence is allowed only in an accepting state, so `lk.generate` stops exactly when
  the text is complete; each state's mask is computed once and cached;
* out of tokens before the text is complete, the pool *raises* `Incomplete` (`finish`, which
  `lk.generate` calls when the budget ran out) -- the choice made here, rather than steering
  the text to a completion before the budget ends (that needs each state's shortest completion
  and bends the distribution further); a truncated text is never returned as valid;
* `end="\\n"` lets a raw-prompt answer close with a newline token as well as with end-of-sequence
  (after it only end-of-sequence is allowed); `is_complete` accepts the text with or without it;
* the processor reads only the generated part of `input_ids`. `lk.generate` calls `reset()` at
  the start of every call: the next call's ids are the prompt, each later call adds one token.
  For callers that never reset (transformers' own `model.generate`) it guesses: ids that are
  not the previous call's plus one token start a new generation -- so there a new prompt equal
  to the last context plus one token would be read as a continuation (call `reset()` first);
* a model may have more logits than its tokenizer has tokens (Qwen2, Phi-3 pad the embedding
  matrix): those extra tokens have no text and are always masked.

Naive version, used by the tests as the reference::

    allowed = [t for t in vocab if is_prefix_of_valid(text_so_far + text(t))]

Controls: `Allowed` (a fixed set of ids), `OneOf` (exactly one of some strings), `Quote` (a
contiguous span of a source), `Regex` (a full match of a Python regular expression, through
`labkit.regex`'s automaton), `Catalogue` (free text, but after "[" one title from a list, then
"]"). `generate_constrained` is `lk.generate` with the pool first. For the notebook:
`allowed_mass` (the model's mass Z on the allowed set), `restrict` (one step, the pure function).

Known limit, kept on purpose: the mask is local, so sampling follows π(x_t | x_<t, valid prefix),
not the exact conditional π(x | x valid) of notebook 01 -- that would need look-ahead or
reweighting whole sequences (e.g. sequential Monte Carlo, Lew et al. 2023).

Left out on purpose: JSON schema (compile it to a regex, or use outlines-core / llguidance);
tokens that are only part of a UTF-8 character (byte-fallback pieces such as <0xE2>) are never
allowed, and a constraint that would need one is refused at construction.
"""
from __future__ import annotations

import math
import re

import torch
from transformers import LogitsProcessor

from .decoding import generate
from .regex import NFA
from .vocab import Trie, Vocabulary, vocabulary  # noqa: F401  (Vocabulary: re-exported)

_DONE = "<done>"          # the state after end-of-sequence (model.generate pads with it)


class Incomplete(RuntimeError):
    """The constrained text was not complete within max_new_tokens (`.text`: what was written)."""

    def __init__(self, message: str, text: str = "", max_new_tokens: int | None = None):
        super().__init__(message)
        self.text, self.max_new_tokens = text, max_new_tokens


def _fit(removed: torch.Tensor, n: int) -> torch.Tensor:
    """removed [..., vocab] cut, or padded with True (removed), to n columns: the model's logits
    may outnumber the tokenizer's tokens (padded embeddings), and those extra ids write nothing."""
    extra = n - removed.shape[-1]
    if extra > 0:
        removed = torch.cat([removed, removed.new_ones(*removed.shape[:-1], extra)], dim=-1)
    return removed[..., :n]


# --- the plain pool -------------------------------------------------------------------------


class Allowed(LogitsProcessor):
    """Keep only `token_ids` (end-of-sequence only if it is among them)."""

    def __init__(self, token_ids):
        ids = sorted({int(i) for i in token_ids})
        if not ids:
            raise ValueError("the pool is empty: Allowed() needs at least one token id")
        if ids[0] < 0:
            raise ValueError(f"token ids are ≥ 0, got {ids[0]}")
        self.token_ids = ids
        self._removed = None                   # bool [vocab], built at the first call

    def __call__(self, input_ids, scores):
        removed = self._removed
        if removed is None or removed.shape != scores.shape[-1:] or removed.device != scores.device:
            if self.token_ids[-1] >= scores.shape[-1]:
                raise ValueError(f"token id {self.token_ids[-1]} is outside the vocabulary "
                                 f"({scores.shape[-1]} tokens)")
            removed = torch.ones(scores.shape[-1], dtype=torch.bool, device=scores.device)
            removed[self.token_ids] = False
            self._removed = removed
        return scores.masked_fill(removed, -math.inf)

    def __repr__(self):
        return f"Allowed({len(self.token_ids)} tokens)"


# --- the automaton-driven pool ----------------------------------------------------------------


class TokenPool(LogitsProcessor):
    """Base class: a character automaton (subclasses define `initial`, `advance`, `accepts`)
    turned into a LogitsProcessor that allows exactly the tokens that keep it alive. When the
    token budget runs out first, `finish` raises `Incomplete` (the choice made: an error, not a
    text steered to an early end, and never a truncated text passed off as valid)."""

    def __init__(self, tokenizer, end: str | None = None):
        self.vocab = vocabulary(tokenizer)
        self.end = end or None                 # e.g. "\n": a token that may close the output
        self._end_ids = self._ids_of(end) if end else []
        if end and not self._end_ids:
            raise ValueError(f"end={end!r} is not one token of this tokenizer")
        self._masks: dict = {}                 # state -> bool [vocab], True = removed
        self._after: dict = {}                 # (state, token id) -> state
        self.reset()

    # the automaton (subclasses)
    def initial(self):
        raise NotImplementedError

    def advance(self, state, ch: str):
        """The state after reading `ch`, or None if no valid text continues this way."""
        raise NotImplementedError

    def accepts(self, state) -> bool:
        raise NotImplementedError

    # derived
    def feed(self, state, text: str):
        for ch in text:
            if state is None:
                return None
            state = self.advance(state, ch)
        return state

    def _ids_of(self, text: str) -> list[int]:
        node = self.vocab.trie.find(text)
        return [] if node is None else list(self.vocab.trie.values[node])

    def is_complete(self, text: str) -> bool:
        """True if `text` is a whole valid output (followed by `end`, if one was given)."""
        if self.end and text.endswith(self.end) and self.is_complete(text[:-len(self.end)]):
            return True
        state = self.feed(self.initial(), text)
        return state is not None and self.accepts(state)

    def is_prefix(self, text: str) -> bool:
        """True if `text` can still be continued into a valid output."""
        return self.feed(self.initial(), text) is not None

    def finish(self, text: str, *, max_new_tokens: int) -> None:
        """Called by `lk.generate` when it ran out of tokens: raises `Incomplete` unless the
        generated `text` is a whole valid output."""
        if self.is_complete(text):
            return
        raise Incomplete(f"{self!r} was not complete after max_new_tokens={max_new_tokens} "
                         f"tokens: it wrote {text!r}, only the start of a valid output. Raise "
                         "max_new_tokens -- a truncated text is not a valid output",
                         text, max_new_tokens)

    def allowed_ids(self, state) -> list[int]:
        """The tokens allowed in `state`: a walk over the vocabulary trie with the automaton."""
        if state == _DONE:
            return [self.vocab.eos_id]
        children, values = self.vocab.trie.children, self.vocab.trie.values
        out, stack = [], [(0, state)]
        while stack:
            node, s = stack.pop()
            for ch, child in children[node].items():
                s2 = self.advance(s, ch)
                if s2 is not None:
                    out.extend(values[child])
                    if children[child]:
                        stack.append((child, s2))
        if self.accepts(state):
            out.extend(self._end_ids)
            if self.vocab.eos_id is not None:
                out.append(self.vocab.eos_id)
        return sorted(set(out))

    def removed(self, state) -> torch.Tensor:
        """Bool [vocab], True where a token is not allowed in `state` (cached per state)."""
        mask = self._masks.get(state)
        if mask is None:
            mask = torch.ones(self.vocab.size, dtype=torch.bool)
            mask[self.allowed_ids(state)] = False
            self._masks[state] = mask
        return mask

    def state_after(self, text: str):
        """The automaton's state after the generated text `text` (None: not a valid prefix)."""
        return self.feed(self.initial(), text)

    def _step(self, state, token_id: int):
        key = (state, token_id)
        if key not in self._after:
            if state == _DONE or token_id == self.vocab.eos_id or (
                    token_id in self._end_ids and self.accepts(state)):
                nxt = _DONE
            else:
                text = self.vocab.texts[token_id] if token_id < self.vocab.size else None
                nxt = None if text is None else self.feed(state, text)
            self._after[key] = nxt
        return self._after[key]

    def reset(self) -> None:
        """Forget the current generation: the next call's input_ids are a new prompt
        (`lk.generate` calls this at the start of every call)."""
        self._last, self._states = None, None

    def __call__(self, input_ids, scores):
        last = self._last
        if (last is not None and input_ids.shape[0] == last.shape[0]
                and input_ids.shape[1] == last.shape[1] + 1
                and torch.equal(input_ids[:, :-1].cpu(), last)):
            states = [self._step(s, int(t)) for s, t in zip(self._states, input_ids[:, -1])]
            if any(s is None for s in states):
                raise ValueError(f"{self!r} was given a token it does not allow: is one instance "
                                 "serving two generations at once? Use one per generation")
        else:          # after reset(), or (model.generate) ids that do not continue the last
            states = [self.initial()] * input_ids.shape[0]
        self._last, self._states = input_ids.cpu().clone(), states
        removed = torch.stack([self.removed(s) for s in states])        # batch vocab
        return scores.masked_fill(_fit(removed, scores.shape[-1]).to(scores.device), -math.inf)

    def _check_chars(self, text: str, what: str) -> None:
        missing = sorted({ch for ch in text if ch not in self.vocab.single_chars})
        if missing:
            raise ValueError(f"{what} uses {missing[:5]}, which this tokenizer cannot write as "
                             "whole tokens (only as pieces of bytes): the pool cannot produce it")


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
    lazily; the automaton, its transitions and the masks are cached per (tokenizer, pattern)."""

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


# --- generating with a pool ----------------------------------------------------------------------


def generate_constrained(lm, prompt: str, pool: TokenPool, *, controls=(), max_new_tokens: int = 40,
                         seed: int | None = None, chat: bool = False, trace: bool = False):
    """`lk.generate(lm, prompt, controls=[pool, *controls], ...)`: the pool first, then e.g. a
    temperature. Like it, raises `Incomplete` (from `pool.finish`) if the text is not a complete
    valid output within `max_new_tokens`; this wrapper only checks that `pool` is a pool."""
    if not isinstance(pool, TokenPool):
        raise TypeError(f"expected a token pool (OneOf, Quote, Regex, Catalogue), got {pool!r}")
    return generate(lm, prompt, controls=[pool, *controls], max_new_tokens=max_new_tokens,
                    seed=seed, chat=chat, trace=trace)


def allowed_mass(dist, pool: TokenPool, text: str = "") -> float:
    """The model's probability mass on the tokens `pool` allows after the generated `text`:
    how much the constraint agrees with the model (1: not at all in its way)."""
    state = pool.state_after(text)
    if state is None:
        raise ValueError(f"{text!r} is not a valid start for {pool!r}")
    return dist.mass([i for i in pool.allowed_ids(state) if i < len(dist)])


# --- one step, as the pool panel shows it (labkit.widgets.PoolPanel) ----------------------


def restrict(dist, pool: TokenPool, text: str = ""):
    """(the distribution after `pool`, Z) for one step after the generated `text`: the pure
    function behind the panel. `dist` may be longer than the tokenizer (a padded vocabulary):
    the extra tokens are removed."""
    state = pool.state_after(text)
    if state is None:
        raise ValueError(f"{text!r} is not a valid start for {pool!r}")
    removed = _fit(pool.removed(state), len(dist)).to(dist.logits.device)     # vocab
    from .dist import Distribution
    after = Distribution.from_logits(dist.logits.masked_fill(removed, -math.inf),
                                     dist.tokenizer, dist.context)
    return after, dist.mass((~removed).nonzero()[:, 0])
