"""The token pool's machinery: the plain pool `Allowed`, `Pool` (what every pool offers), the
automaton-driven `TokenPool` the hand-written constraints subclass, `Incomplete`, and generating
and one step with a pool. The constraints themselves are in `labkit.pool.kinds` (and the
library-backed `JsonSchema` in `labkit.pool.schema`); the package docstring has the idea."""
from __future__ import annotations

import math

import torch
from transformers import LogitsProcessor

from ..decoding import generate
from ..vocab import vocabulary

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


# --- what every pool offers ------------------------------------------------------------------


class Pool(LogitsProcessor):
    """A LogitsProcessor that allows exactly the tokens after which the text can still become a
    valid output. A *state* is what the pool knows about the text so far; `state_after(text)`
    (None: not a valid start), `allowed_ids(state)`, `removed(state)` (bool [vocab]) and
    `is_complete(text)` are what `allowed_mass`, `restrict` and `finish` use. Subclasses:
    `TokenPool` (a character automaton of ours) and `JsonSchema` (a library's parser)."""

    def reset(self) -> None:
        """Forget the current generation (`lk.generate` calls this at the start of each call)."""

    def state_after(self, text: str):
        raise NotImplementedError

    def allowed_ids(self, state) -> list[int]:
        raise NotImplementedError

    def removed(self, state) -> torch.Tensor:
        raise NotImplementedError

    def is_complete(self, text: str) -> bool:
        raise NotImplementedError

    def is_prefix(self, text: str) -> bool:
        """True if `text` can still be continued into a valid output."""
        return self.state_after(text) is not None

    def finish(self, text: str, *, max_new_tokens: int) -> None:
        """Called by `lk.generate` when it ran out of tokens: raises `Incomplete` unless the
        generated `text` is a whole valid output."""
        if self.is_complete(text):
            return
        raise Incomplete(f"{self!r} was not complete after max_new_tokens={max_new_tokens} "
                         f"tokens: it wrote {text!r}, only the start of a valid output. Raise "
                         "max_new_tokens -- a truncated text is not a valid output",
                         text, max_new_tokens)


# --- the automaton-driven pool ----------------------------------------------------------------


class TokenPool(Pool):
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


# --- generating with a pool ----------------------------------------------------------------------


def generate_constrained(lm, prompt: str, pool: Pool, *, controls=(), max_new_tokens: int = 40,
                         seed: int | None = None, chat: bool = False, trace: bool = False):
    """`lk.generate(lm, prompt, controls=[pool, *controls], ...)`: the pool first, then e.g. a
    temperature. Like it, raises `Incomplete` (from `pool.finish`) if the text is not a complete
    valid output within `max_new_tokens`; this wrapper only checks that `pool` is a pool."""
    if not isinstance(pool, Pool):
        raise TypeError("expected a token pool (OneOf, Quote, Regex, Catalogue, JsonSchema), "
                        f"got {pool!r}")
    return generate(lm, prompt, controls=[pool, *controls], max_new_tokens=max_new_tokens,
                    seed=seed, chat=chat, trace=trace)


def allowed_mass(dist, pool: Pool, text: str = "") -> float:
    """The model's probability mass on the tokens `pool` allows after the generated `text`:
    how much the constraint agrees with the model (1: not at all in its way)."""
    state = pool.state_after(text)
    if state is None:
        raise ValueError(f"{text!r} is not a valid start for {pool!r}")
    return dist.mass([i for i in pool.allowed_ids(state) if i < len(dist)])


# --- one step, as the pool panel shows it (labkit.widgets.PoolPanel) ----------------------


def restrict(dist, pool: Pool, text: str = ""):
    """(the distribution after `pool`, Z) for one step after the generated `text`: the pure
    function behind the panel. `dist` may be longer than the tokenizer (a padded vocabulary):
    the extra tokens are removed."""
    state = pool.state_after(text)
    if state is None:
        raise ValueError(f"{text!r} is not a valid start for {pool!r}")
    removed = _fit(pool.removed(state), len(dist)).to(dist.logits.device)     # vocab
    from ..dist import Distribution
    after = Distribution.from_logits(dist.logits.masked_fill(removed, -math.inf),
                                     dist.tokenizer, dist.context)
    return after, dist.mass((~removed).nonzero()[:, 0])
