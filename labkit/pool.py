"""The token pool: constrained decoding that can never leave an allowed set.

At every step keep only the tokens that can still lead to a valid text, renormalise,
sample (Deutsch et al. 2019, "A General-Purpose Algorithm for Constrained Sequential
Inference"; Willard & Louf 2023, "Efficient Guided Generation for LLMs", arXiv:2307.09702):

    π_c(x_t | x_<t) = π(x_t | x_<t) · 1[x_<t x_t is a prefix of a valid text] / Z_t

Every constraint here is a *character-level automaton* (`initial`, `advance(state, ch)`,
`accepts(state)`); `TokenPool` turns it into a transformers `LogitsProcessor`:

* the allowed tokens in a state are found by walking a trie of the vocabulary's token texts
  (built once per tokenizer, `vocabulary`) together with the automaton, pruning a branch as
  soon as the automaton dies -- so leading spaces, a token that straddles the end of an
  option ("Paris" + "," in one token) and the several tokenizations of one string are all
  handled at the level of characters, where they are no problem;
* end-of-sequence is allowed only in an accepting state, so `lk.generate` stops exactly when
  the text is complete; each state's mask is computed once and cached;
* `end="\\n"` lets a raw-prompt answer close with a newline token as well as with end-of-sequence
  (after it only end-of-sequence is allowed); `is_complete` accepts the text with or without it;
* the processor reads only the generated part of `input_ids`: it records the prompt length at
  the first call and starts afresh whenever the ids are not the previous ones plus one token,
  so one instance can serve many `lk.generate` calls (`reset()` forces it).

Naive version, used by the tests as the reference::

    allowed = [t for t in vocab if is_prefix_of_valid(text_so_far + text(t))]

Controls: `Allowed` (a fixed set of ids), `OneOf` (exactly one of some strings), `Quote` (a
contiguous span of a source), `Regex` (a full match of a Python regular expression; Thompson
1968's construction, determinised lazily), `Catalogue` (free text, but after "[" one title from
a list, then "]"). `generate_constrained` calls `lk.generate` and raises `Incomplete` when the
text is not complete within `max_new_tokens` -- a truncated output is never returned as valid.
For the notebook: `allowed_mass` (the model's mass Z on the allowed set), `restrict` (one step,
the pure function) and `pool_panel` (its widget), `mask_figure` (the mask at each step).

Known limit, kept on purpose: the mask is local, so sampling follows π(x_t | x_<t, valid prefix),
not the exact conditional π(x | x valid) of notebook 01 -- that would need look-ahead or
reweighting whole sequences (e.g. sequential Monte Carlo, Lew et al. 2023).

Left out on purpose: JSON schema (compile it to a regex, or use outlines-core / llguidance),
regex flags, lookaround and backreferences (not regular); tokens that are only part of a UTF-8
character (byte-fallback pieces of CJK text) are never allowed, and a constraint that would
need one is refused at construction. The regex engine is ~80 lines on top of Python's own
regex parser (`re._parser`), so no new dependency and Python's exact syntax.
"""
from __future__ import annotations

import gc
import math
import re

try:                                   # Python's own regex parser (3.11+; sre_parse before)
    import re._constants as C
    import re._parser as P
except ImportError:                    # pragma: no cover
    import sre_constants as C
    import sre_parse as P

import torch
from transformers import LogitsProcessor

_DONE = "<done>"          # the state after end-of-sequence (model.generate pads with it)


class Incomplete(RuntimeError):
    """The constrained text was not complete within max_new_tokens."""


# --- the vocabulary, once per tokenizer ---------------------------------------------------


class Vocabulary:
    """The text of every token and a character trie over them; special tokens and pieces of a
    UTF-8 character have no text (None) and are never allowed."""

    def __init__(self, tokenizer):
        special = set(tokenizer.all_special_ids) | {
            i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if t.special}
        self.size = len(tokenizer)
        self.eos_id = tokenizer.eos_token_id
        self.texts: list[str | None] = []
        self.root: list = [{}, []]                         # node = [children by char, token ids]
        for i, text in enumerate(_decode_each(tokenizer, self.size)):
            text = None if i in special else text
            if not text or "\ufffd" in text:
                text = None
            self.texts.append(text)
            if text is not None:
                node = self.root
                for ch in text:
                    child = node[0].get(ch)
                    if child is None:
                        child = node[0][ch] = [{}, []]
                    node = child
                node[1].append(i)
        self.single_chars = {ch for ch, node in self.root[0].items() if node[1]}  # whole tokens


def _decode_each(tokenizer, n: int) -> list[str]:
    """decode([i]) for every id; through the Rust backend in one batch when there is one (10x
    faster than 49k Python calls), else one by one."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and not getattr(tokenizer, "clean_up_tokenization_spaces", True):
        return backend.decode_batch([[i] for i in range(n)], skip_special_tokens=False)
    return [tokenizer.decode([i]) for i in range(n)]


_VOCABS: dict[int, tuple[object, Vocabulary]] = {}


def vocabulary(tokenizer) -> Vocabulary:
    """The `Vocabulary` of `tokenizer`, built on first use (~0.5 s for 49k tokens) and cached."""
    hit = _VOCABS.get(id(tokenizer))
    if hit is None or hit[0] is not tokenizer:
        enabled = gc.isenabled()
        gc.disable()              # ~300k small objects: the collector would rescan them all
        try:
            hit = _VOCABS[id(tokenizer)] = (tokenizer, Vocabulary(tokenizer))
        finally:
            if enabled:
                gc.enable()
    return hit[1]


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
    turned into a LogitsProcessor that allows exactly the tokens that keep it alive."""

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
        node = self.vocab.root
        for ch in text:
            node = node[0].get(ch)
            if node is None:
                return []
        return list(node[1])

    def is_complete(self, text: str) -> bool:
        """True if `text` is a whole valid output (followed by `end`, if one was given)."""
        if self.end and text.endswith(self.end) and self.is_complete(text[:-len(self.end)]):
            return True
        state = self.feed(self.initial(), text)
        return state is not None and self.accepts(state)

    def is_prefix(self, text: str) -> bool:
        """True if `text` can still be continued into a valid output."""
        return self.feed(self.initial(), text) is not None

    def allowed_ids(self, state) -> list[int]:
        """The tokens allowed in `state`: a walk over the vocabulary trie with the automaton."""
        if state == _DONE:
            return [self.vocab.eos_id]
        out, stack = [], [(self.vocab.root, state)]
        while stack:
            node, s = stack.pop()
            for ch, child in node[0].items():
                s2 = self.advance(s, ch)
                if s2 is not None:
                    out.extend(child[1])
                    if child[0]:
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
        """Forget the current generation: the next call starts a new one."""
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
        else:                                  # a new generation: read only what follows
            states = [self.initial()] * input_ids.shape[0]
        self._last, self._states = input_ids.cpu().clone(), states
        removed = torch.stack([self.removed(s) for s in states]).to(scores.device)
        if removed.shape[-1] < scores.shape[-1]:            # model rows beyond the tokenizer
            pad = removed.new_ones(removed.shape[0], scores.shape[-1] - removed.shape[-1])
            removed = torch.cat([removed, pad], dim=-1)
        return scores.masked_fill(removed[:, :scores.shape[-1]], -math.inf)

    def _check_chars(self, text: str, what: str) -> None:
        missing = sorted({ch for ch in text if ch not in self.vocab.single_chars})
        if missing:
            raise ValueError(f"{what} uses {missing[:5]}, which this tokenizer cannot write as "
                             "whole tokens (only as pieces of bytes): the pool cannot produce it")


# --- exactly one of some strings ------------------------------------------------------------


class _Trie:
    """A character trie over strings: node ids are ints, 0 is the root."""

    def __init__(self, strings):
        self.children: list[dict[str, int]] = [{}]
        self.final: list[bool] = [False]
        for s in strings:
            node = 0
            for ch in s:
                nxt = self.children[node].get(ch)
                if nxt is None:
                    nxt = self.children[node][ch] = len(self.children)
                    self.children.append({})
                    self.final.append(False)
                node = nxt
            self.final[node] = True


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
    model writes after "Sentiment:")."""

    def __init__(self, tokenizer, options, *, end: str | None = None):
        super().__init__(tokenizer, end)
        self.options = _strings(options, "option")
        for s in self.options:
            self._check_chars(s, f"the option {s!r}")
        self.trie = _Trie(self.options)

    def initial(self):
        return 0

    def advance(self, state, ch):
        return self.trie.children[state].get(ch)

    def accepts(self, state):
        return self.trie.final[state]

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

_CATEGORY = {getattr(C, name): re.compile(pat).fullmatch for name, pat in [
    ("CATEGORY_DIGIT", r"\d"), ("CATEGORY_NOT_DIGIT", r"\D"), ("CATEGORY_SPACE", r"\s"),
    ("CATEGORY_NOT_SPACE", r"\S"), ("CATEGORY_WORD", r"\w"), ("CATEGORY_NOT_WORD", r"\W")]}
_UNSUPPORTED = {C.GROUPREF: "a backreference (\\1)", C.GROUPREF_EXISTS: "a conditional group",
                C.ASSERT: "a lookahead or lookbehind", C.ASSERT_NOT: "a lookahead or lookbehind",
                getattr(C, "ATOMIC_GROUP", None): "an atomic group",
                getattr(C, "POSSESSIVE_REPEAT", None): "a possessive quantifier"}
MAX_REPEAT = 100     # {m,n} is unrolled: beyond this the automaton would get needlessly big


def _charset(items):
    """A predicate ch -> bool for an IN item of Python's regex parser."""
    negate = bool(items) and items[0][0] is C.NEGATE
    tests = []
    for op, av in items[1:] if negate else items:
        if op is C.LITERAL:
            tests.append(lambda ch, c=chr(av): ch == c)
        elif op is C.RANGE:
            tests.append(lambda ch, lo=av[0], hi=av[1]: lo <= ord(ch) <= hi)
        elif op is C.CATEGORY and av in _CATEGORY:
            tests.append(lambda ch, f=_CATEGORY[av]: f(ch) is not None)
        else:
            raise ValueError(f"unsupported feature in a character class: {op} {av}")
    return lambda ch: any(t(ch) for t in tests) != negate


class _NFA:
    """Thompson's construction from the parse tree of Python's own regex parser."""

    def __init__(self, pattern: str):
        try:
            parsed = P.parse(pattern)
        except re.error as e:
            raise ValueError(f"the pattern {pattern!r} is not a valid regular expression: {e}")
        flags = (parsed.state if hasattr(parsed, "state") else parsed.pattern).flags
        if flags & (re.IGNORECASE | re.MULTILINE | re.DOTALL | re.VERBOSE):
            raise ValueError("unsupported feature: inline flags such as (?i) -- spell the "
                             "cases out, e.g. [Aa]")
        self.eps: list[list[int]] = []
        self.edges: list[list[tuple]] = []      # (predicate, target)
        items = list(parsed)
        if items and items[0] == (C.AT, C.AT_BEGINNING):
            items = items[1:]
        if items and items[-1][0] is C.AT and items[-1][1] in (C.AT_END, C.AT_END_STRING):
            items = items[:-1]
        self.start = self._new()
        self.final = self._seq(items, self.start)

    def _new(self) -> int:
        self.eps.append([])
        self.edges.append([])
        return len(self.eps) - 1

    def _char(self, s, pred) -> int:
        t = self._new()
        self.edges[s].append((pred, t))
        return t

    def _seq(self, items, s: int) -> int:
        for op, av in items:
            s = self._item(op, av, s)
        return s

    def _item(self, op, av, s: int) -> int:
        if op in _UNSUPPORTED:
            raise ValueError(f"unsupported feature: {_UNSUPPORTED[op]} (not a regular language)")
        if op is C.LITERAL:
            return self._char(s, lambda ch, c=chr(av): ch == c)
        if op is C.NOT_LITERAL:
            return self._char(s, lambda ch, c=chr(av): ch != c)
        if op is C.ANY:
            return self._char(s, lambda ch: ch != "\n")
        if op is C.IN:
            return self._char(s, _charset(av))
        if op is C.SUBPATTERN:
            if av[1] or av[2]:
                raise ValueError("unsupported feature: inline flags inside a group")
            return self._seq(av[3], s)
        if op is C.BRANCH:
            end = self._new()
            for alt in av[1]:
                self.eps[self._seq(alt, s)].append(end)
            return end
        if op in (C.MAX_REPEAT, C.MIN_REPEAT):
            lo, hi, body = av
            if lo > MAX_REPEAT or (hi is not C.MAXREPEAT and hi > MAX_REPEAT):
                raise ValueError(f"unsupported feature: a repeat count above {MAX_REPEAT}")
            for _ in range(lo):
                s = self._seq(body, s)
            if hi is C.MAXREPEAT:                 # loop: s -> body -> s
                loop = self._new()
                self.eps[s].append(loop)
                self.eps[self._seq(body, loop)].append(loop)
                return loop
            for _ in range(hi - lo):              # optional copies
                end = self._new()
                self.eps[s].append(end)
                self.eps[self._seq(body, s)].append(end)
                s = end
            return s
        if op is C.AT:
            raise ValueError("unsupported feature: an anchor (^, $, \\b) inside the pattern -- "
                             "the whole output must match anyway")
        raise ValueError(f"unsupported feature: {op}")

    def closure(self, states) -> frozenset:
        seen, stack = set(states), list(states)
        while stack:
            for t in self.eps[stack.pop()]:
                if t not in seen:
                    seen.add(t)
                    stack.append(t)
        return frozenset(seen)


_COMPILED: dict = {}     # (vocabulary id, pattern, end) -> (vocab, nfa, transitions, masks, steps)


class Regex(TokenPool):
    """The output fully matches `pattern` (Python syntax: classes, groups, |, *, +, ?, {m,n}).
    A state is a set of NFA states (determinised lazily; transitions and masks cached)."""

    def __init__(self, tokenizer, pattern: str, *, end: str | None = None):
        super().__init__(tokenizer, end)
        if not isinstance(pattern, str) or not pattern:
            raise ValueError("the pattern is empty")
        key = (id(self.vocab), pattern, self.end)
        if key not in _COMPILED:                   # once per (tokenizer, pattern)
            nfa = _NFA(pattern)
            for edges in nfa.edges:                # each character step must be writable
                for pred, _ in edges:
                    if not any(pred(ch) for ch in self.vocab.single_chars):
                        raise ValueError(f"the pattern {pattern!r} needs a character that "
                                         "this tokenizer cannot write as a whole token")
            _COMPILED[key] = (self.vocab, nfa, {}, {}, {})
        _, self.nfa, self._delta, self._masks, self._after = _COMPILED[key]
        self.pattern = pattern
        self._start = self.nfa.closure([self.nfa.start])

    def initial(self):
        return self._start

    def advance(self, state, ch):
        key = (state, ch)
        if key not in self._delta:
            nxt = {t for s in state for pred, t in self.nfa.edges[s] if pred(ch)}
            self._delta[key] = self.nfa.closure(nxt) if nxt else None
        return self._delta[key]

    def accepts(self, state):
        return self.nfa.final in state

    def __repr__(self):
        return f"Regex({self.pattern!r})"


# --- titles from a catalogue inside free text ------------------------------------------------


class Catalogue(TokenPool):
    """Free text, except that after `open` the model must write one of `titles` and then
    `close` ("see [Marie Curie] for ..."): a link can only point to a page that exists.
    State -1 is free text; a state ≥ 0 is a node of the titles' trie."""

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
        self.trie = _Trie(self.titles)

    def initial(self):
        return -1

    def advance(self, state, ch):
        if state == -1:
            return 0 if ch == self.open else -1
        if ch == self.close and self.trie.final[state]:
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
    """`lk.generate` with `pool` applied first (then `controls`, e.g. a temperature); raises
    `Incomplete` if the text is not a complete valid output within `max_new_tokens`."""
    from .decoding import generate

    if not isinstance(pool, TokenPool):
        raise TypeError(f"expected a token pool (OneOf, Quote, Regex, Catalogue), got {pool!r}")
    pool.reset()
    out = generate(lm, prompt, controls=[pool, *controls], max_new_tokens=max_new_tokens,
                   seed=seed, chat=chat, trace=trace)
    pool.reset()
    text = out[0] if trace else out
    if not pool.is_complete(text):
        raise Incomplete(f"{pool!r} was not complete after max_new_tokens={max_new_tokens} "
                         f"tokens (got {text!r}): raise max_new_tokens -- a truncated text is "
                         "not a valid output")
    return out


def allowed_mass(dist, pool: TokenPool, text: str = "") -> float:
    """The model's probability mass on the tokens `pool` allows after the generated `text`:
    how much the constraint agrees with the model (1: not at all in its way)."""
    state = pool.state_after(text)
    if state is None:
        raise ValueError(f"{text!r} is not a valid start for {pool!r}")
    return dist.mass(pool.allowed_ids(state))


def mask_figure(steps, k: int = 15, title: str = "which of the model's top tokens the pool allows"):
    """Heatmap: one column per generation step (`lk.generate(..., trace=True)`), one row per
    rank of the model's own top-k tokens; coloured where the pool allowed the token."""
    import plotly.graph_objects as go

    from .viz import token_label

    z, text = [], []
    for step in steps:
        ids, _ = step.before.top_ids(k)
        z.append([float(torch.isfinite(step.after.logits[i])) for i in ids])
        text.append([token_label(step.before.token_text(i)) for i in ids])
    zt = [list(r) for r in zip(*z)]
    tt = [list(r) for r in zip(*text)]
    cols = [f"{t}: {token_label(s.text)}" for t, s in enumerate(steps)]
    fig = go.Figure(go.Heatmap(z=zt, x=cols, y=list(range(1, k + 1)), text=tt,
                               texttemplate="%{text}", zmin=0, zmax=1, showscale=False,
                               colorscale=[[0, "#f1f3f5"], [1, "#d9480f"]],
                               hovertemplate="step %{x}, rank %{y}: %{text}<extra></extra>"))
    fig.update_layout(title=title, xaxis=dict(title="step: token drawn", type="category"),
                      yaxis=dict(title="model's rank", autorange="reversed"),
                      height=120 + 28 * k, template="plotly_white",
                      margin=dict(l=60, r=20, t=50, b=80))
    return fig


# --- the panel: the pool on one step, live ---------------------------------------------------


def restrict(dist, pool: TokenPool, text: str = ""):
    """(the distribution after `pool`, Z) for one step after the generated `text`: the pure
    function behind the panel."""
    state = pool.state_after(text)
    if state is None:
        raise ValueError(f"{text!r} is not a valid start for {pool!r}")
    removed = pool.removed(state)[:len(dist)]
    from .dist import Distribution
    after = Distribution.from_logits(dist.logits.masked_fill(removed, -math.inf),
                                     dist.tokenizer, dist.context)
    return after, dist.mass((~removed).nonzero()[:, 0])


def pool_panel(lm, prompt: str, options: str = " positive| negative", k: int = 15):
    """A prompt box (one model call per prompt), an options box ("|"-separated, spaces kept) and
    a "written so far" box (no model call): the bars before and after `OneOf`, and Z.
    `panel.result` is the last (after, Z); errors show in the panel."""
    import ipywidgets as W
    import plotly.graph_objects as go

    from .dist import next_token
    from .viz import bars, bars_data
    from .widgets import guarded

    style, wide = {"description_width": "110px"}, W.Layout(width="95%")
    boxes = [W.Text(value=v, description=d, continuous_update=False, style=style, layout=wide)
             for v, d in ((options, "options (|)"), ("", "written so far"))]
    # the prompt may hold newlines (few-shot prompts do), which a one-line Text box would drop
    boxes.insert(0, W.Textarea(value=prompt, description="prompt", rows=3,
                               continuous_update=False, style=style, layout=wide))
    readout, error = W.HTML(), W.HTML()
    state = {"dist": next_token(lm, prompt)}
    fig = go.FigureWidget(bars(state["dist"], state["dist"], k, names=("model", "after the pool")))
    panel = W.VBox([*boxes, error, fig, readout])

    def redraw(change=None, prompt_changed=False):
        guarded(lambda: update(prompt_changed), error)

    def update(prompt_changed):
        if prompt_changed:
            state["dist"] = next_token(lm, boxes[0].value)             # the one model call
        pool = OneOf(lm.tokenizer, boxes[1].value.split("|"))
        after, z = panel.result = restrict(state["dist"], pool, boxes[2].value)
        labels, p_before, p_after = bars_data(state["dist"], after, k)
        with fig.batch_update():
            fig.data[0].x, fig.data[0].y = labels, p_before
            fig.data[1].x, fig.data[1].y = labels, p_after
        readout.value = (f"Z = {z:.4f} of the model's mass is on the {after.support()} "
                         f"allowed tokens; top after the pool: {after.top(1)[0][0]!r}")

    boxes[0].observe(lambda c: redraw(c, prompt_changed=True), names="value")
    for box in boxes[1:]:
        box.observe(redraw, names="value")
    panel.boxes = boxes
    redraw()
    return panel
