"""A regular expression as a character automaton, for `labkit.pool.Regex` to walk the vocabulary.

Thompson's construction (K. Thompson 1968, "Programming Techniques: Regular expression search
algorithm", CACM 11(6):419-422) turns the pattern into an NFA with ε-moves, one piece per
operator of the parse tree:

    literal / class / .   s --ch--> t          a | b    s -ε-> [a] -ε-> end,  s -ε-> [b] -ε-> end
    a b                   [a] then [b]         a*       s -ε-> loop,  loop -ε-> [a] -ε-> loop

and the subset construction (Rabin & Scott 1959) reads it as a DFA, *lazily*: a state is the
ε-closed frozenset of NFA states the text so far can reach, `step(state, ch)` builds (and caches)
only the transitions a walk actually takes. The pattern is matched in full (`re.fullmatch`):
`accepts(state)` is "the NFA's final state is in the set"; `step` returns None once no state is
left, i.e. once the text can no longer be continued into a match.

The parse tree is Python's own (`re._parser`), so the syntax, escapes and the exact meaning of
\\d, \\w, \\s (Unicode, as in `re`) are Python's -- no new dependency, no parser of our own.

Supported: literals and escapes, `.` (not a newline), classes `[a-z0-9_]`, `[^...]`, `\\d \\w \\s`
and their negations, groups (capturing or `(?:...)`), `|`, `*`, `+`, `?`, `{m,n}` (lazy forms
are the same language), `^` at the very start and `$`/`\\Z` at the very end (dropped: the whole
output must match anyway).

Refused with a ValueError that names the feature, on purpose: backreferences and conditional
groups (not regular languages: no finite automaton exists), lookahead/lookbehind, atomic groups
and possessive quantifiers (Thompson's construction has no piece for them: lookaround needs an
intersection of automata, atomic groups cut backtracking, which changes which texts match),
inline flags such as (?i) (spell the cases out: [Aa]), anchors or \\b inside the pattern, and
repeat counts above MAX_REPEAT ({m,n} is unrolled into copies).

Naive version, the tests' reference: the third-party `regex` module's partial match,

    alive(text) = regex.fullmatch(pattern, text, partial=True) is not None

(some continuation of `text` matches) -- a backtracking search per text; the automaton answers it
with one cached step per character, which is what lets the pool test 49k token texts per state.
"""
from __future__ import annotations

import re

try:                                   # Python's own regex parser (3.11+; sre_parse before)
    import re._constants as C
    import re._parser as P
except ImportError:                    # pragma: no cover
    import sre_constants as C
    import sre_parse as P

MAX_REPEAT = 100     # {m,n} is unrolled: beyond this the automaton would get needlessly big

_CATEGORY = {getattr(C, name): re.compile(pat).fullmatch for name, pat in [
    ("CATEGORY_DIGIT", r"\d"), ("CATEGORY_NOT_DIGIT", r"\D"), ("CATEGORY_SPACE", r"\s"),
    ("CATEGORY_NOT_SPACE", r"\S"), ("CATEGORY_WORD", r"\w"), ("CATEGORY_NOT_WORD", r"\W")]}
_REGULAR = "not a regular language"
_NO_PIECE = "Thompson's construction has no piece for it"
_UNSUPPORTED = {C.GROUPREF: f"a backreference (\\1): {_REGULAR}",
                C.GROUPREF_EXISTS: f"a conditional group: {_REGULAR}",
                C.ASSERT: f"a lookahead or lookbehind: {_NO_PIECE}",
                C.ASSERT_NOT: f"a lookahead or lookbehind: {_NO_PIECE}",
                getattr(C, "ATOMIC_GROUP", None): f"an atomic group: {_NO_PIECE}",
                getattr(C, "POSSESSIVE_REPEAT", None): f"a possessive quantifier: {_NO_PIECE}"}


def charset(items):
    """A predicate ch -> bool for an IN item (a [...] class) of Python's regex parser."""
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


class NFA:
    """Thompson's NFA of `pattern` (a full match), stepped as a lazily built DFA.

    `start` is the first state, `step(state, ch)` the next one (None: dead), `accepts(state)`
    whether the text read so far is a whole match. States are hashable (frozensets of ints)."""

    def __init__(self, pattern: str):
        if not isinstance(pattern, str) or not pattern:
            raise ValueError("the pattern is empty: give a regular expression, e.g. r'\\d{4}'")
        try:
            parsed = P.parse(pattern)
        except re.error as e:
            raise ValueError(f"the pattern {pattern!r} is not a valid regular expression: {e}")
        flags = (parsed.state if hasattr(parsed, "state") else parsed.pattern).flags
        if flags & (re.IGNORECASE | re.MULTILINE | re.DOTALL | re.VERBOSE):
            raise ValueError("unsupported feature: inline flags such as (?i) -- spell the "
                             "cases out, e.g. [Aa]")
        self.pattern = pattern
        self.eps: list[list[int]] = []          # NFA state -> ε-successors
        self.edges: list[list[tuple]] = []      # NFA state -> [(predicate ch -> bool, target)]
        items = list(parsed)
        if items and items[0] == (C.AT, C.AT_BEGINNING):
            items = items[1:]
        if items and items[-1][0] is C.AT and items[-1][1] in (C.AT_END, C.AT_END_STRING):
            items = items[:-1]
        first = self._new()
        self.final = self._seq(items, first)
        self.start = self.closure([first])
        self._delta: dict = {}                  # (state, ch) -> state | None

    # the DFA view
    def step(self, state: frozenset, ch: str) -> frozenset | None:
        key = (state, ch)
        if key not in self._delta:
            nxt = {t for s in state for pred, t in self.edges[s] if pred(ch)}
            self._delta[key] = self.closure(nxt) if nxt else None
        return self._delta[key]

    def accepts(self, state: frozenset) -> bool:
        return self.final in state

    def fullmatch(self, text: str) -> bool:
        """re.fullmatch(pattern, text) is not None, by the automaton."""
        state = self.start
        for ch in text:
            state = self.step(state, ch)
            if state is None:
                return False
        return self.accepts(state)

    def writable(self, chars) -> bool:
        """True if every character step of the automaton matches at least one of `chars`
        (a tokenizer's one-character tokens): otherwise some match could never be written."""
        return all(any(pred(ch) for ch in chars) for edges in self.edges for pred, _ in edges)

    def closure(self, states) -> frozenset:
        seen, stack = set(states), list(states)
        while stack:
            for t in self.eps[stack.pop()]:
                if t not in seen:
                    seen.add(t)
                    stack.append(t)
        return frozenset(seen)

    # Thompson's construction: each _item returns the state its piece ends in
    def _new(self) -> int:
        self.eps.append([])
        self.edges.append([])
        return len(self.eps) - 1

    def _char(self, s: int, pred) -> int:
        t = self._new()
        self.edges[s].append((pred, t))
        return t

    def _seq(self, items, s: int) -> int:
        for op, av in items:
            s = self._item(op, av, s)
        return s

    def _item(self, op, av, s: int) -> int:
        if op in _UNSUPPORTED:
            raise ValueError(f"unsupported feature: {_UNSUPPORTED[op]}")
        if op is C.LITERAL:
            return self._char(s, lambda ch, c=chr(av): ch == c)
        if op is C.NOT_LITERAL:
            return self._char(s, lambda ch, c=chr(av): ch != c)
        if op is C.ANY:
            return self._char(s, lambda ch: ch != "\n")
        if op is C.IN:
            return self._char(s, charset(av))
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
