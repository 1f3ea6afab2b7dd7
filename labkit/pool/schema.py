"""JSON from a schema: a token pool whose automaton comes from a maintained library, llguidance.

`JsonSchema(tokenizer, schema)` allows exactly the tokens after which the text can still become a
JSON document that validates against `schema` (Draft 2020-12), so every complete output parses
with `json.loads` and validates. The pool is the same idea as the hand-written ones (package
docstring; Willard & Louf 2023, arXiv:2307.09702), but JSON Schema is a context-free language
(nesting) with many keywords, and its automaton is best left to a library: llguidance
(Moskal et al., github.com/guidance-ai/llguidance; an Earley parser over a lexer built from
derivatives of regular expressions, Brzozowski 1964), which computes a whole mask over a
tokenizer's token trie in Rust: ~0.02 ms a step for a small schema over 49k tokens, so the pool's
call (0.28 ms with the masking) costs what the hand-written pools' do (benchmarks/bench_pool.py).

Why llguidance and not outlines-core (both tried on SmolLM2's vocabulary, benchmarks/README.md;
tests/test_pool_oracle.py keeps the regex half): outlines-core 0.2.14 compiles a schema to one
regular expression and drops what a regex cannot say -- integer `minimum`/`maximum`,
`uniqueItems`, `contains`, `if`/`then`, `minProperties` -- without a word, so 2 of 12 sampled
bookings broke the schema's `maximum`; and its masks drop one-byte tokens right after an
accepting state (after "0" in `0(\\.5)?` it refuses "."), fixed only after 0.2.14. llguidance
validated every sample, refuses an unsupported keyword by name, and (forcing off) agrees with
`labkit.pool.Regex` token for token, up to the differences the oracle test documents.

Choices made here:

* the schema's default format is the one `json.dumps` writes: one line, ", " and ": " between
  items and keys, no other whitespace (a small model given free whitespace may write newlines
  forever). A schema's own "x-guidance" options (llguidance's) take precedence;
* llguidance's "forcing" is turned off (`no_forcing`): by default, where the grammar leaves only
  one way on (a key's name), it allows only the canonical tokenization of those bytes; off, it
  allows every token that keeps the text valid, as the hand-written pools do -- so a state is a
  function of the *text*, `restrict` and `allowed_mass` mean the same thing for every pool, and
  the masks can be compared with ours. On 18 sampled bookings, every output was valid either
  way, and the mask was no slower without forcing;
* a state is an llguidance matcher that has read the text so far (`state_after`); the processor
  keeps one per batch row and feeds it each sampled token.

Departures from the hand-written pools, on purpose: tokens that are only part of a UTF-8
character (byte pieces) *are* allowed inside strings -- llguidance works on bytes and the
character completes later -- so a string may hold any character; and the properties of an object
come in the order the schema lists them (llguidance's rule).

Bad input: a schema llguidance cannot compile is a ValueError on one line that names the feature
("unsupported JSON Schema feature: uniqueItems", or llguidance's own reason: "Unknown format:
credit-card", "look-around ... is not supported"); keywords it does not know at all (a typo,
"title") are ignored, as JSON Schema says; a schema that is not a dict, bool, JSON string or
pydantic model is a TypeError.

Left out on purpose: a library-backed `Regex` (ours is the lesson; the library is only its test
oracle), grammars (llguidance takes Lark grammars too), and fast-forwarding forced tokens.
"""
from __future__ import annotations

import json
import math

import numpy as np          # a transformers dependency
import torch

from .core import Pool, _fit

# json.dumps's layout; a schema's own "x-guidance" options win
LAYOUT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
_TOKENIZERS: dict[int, tuple[object, object]] = {}     # id(tokenizer) -> (tokenizer, LLTokenizer)


def _llguidance():
    try:
        import llguidance
        import llguidance.hf
    except ImportError as e:                # pragma: no cover - llguidance is a dependency
        raise ImportError("JsonSchema needs the llguidance package: "
                          "pip install 'llguidance>=1.9'") from e
    return llguidance


def library_tokenizer(tokenizer):
    """llguidance's view of a Hugging Face fast tokenizer (token bytes and trie; ~0.4 s for 49k
    tokens), built once per tokenizer and cached."""
    hit = _TOKENIZERS.get(id(tokenizer))
    if hit is None or hit[0] is not tokenizer:
        llg = _llguidance()
        try:
            wrapped = llg.hf.from_tokenizer(tokenizer)
        except ValueError as e:
            raise ValueError(f"JsonSchema needs a fast (Rust) Hugging Face tokenizer, got "
                             f"{type(tokenizer).__name__}: {e}") from None
        hit = _TOKENIZERS[id(tokenizer)] = (tokenizer, wrapped)
    return hit[1]


def as_schema(schema) -> dict | bool:
    """A JSON schema as a dict (or bool): a dict, a JSON string, or a pydantic model class."""
    if hasattr(schema, "model_json_schema"):            # a pydantic model (duck-typed)
        schema = schema.model_json_schema()
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError as e:
            raise ValueError(f"the schema string is not valid JSON: {e}") from None
    if isinstance(schema, bool):
        return schema
    if not isinstance(schema, dict):
        raise TypeError(f"a JSON schema is a dict (or a JSON string, or a pydantic model), got "
                        f"{type(schema).__name__}")
    return schema


def grammar(schema) -> str:
    """The llguidance grammar of `schema` in `LAYOUT`, forcing off (module docstring). Raises
    ValueError with llguidance's reason when the schema uses a feature it does not support."""
    llg = _llguidance()
    schema = as_schema(schema)
    if isinstance(schema, dict):
        schema = {**schema, "x-guidance": {**LAYOUT, **schema.get("x-guidance", {})}}
    problem = llg.LLMatcher.validate_grammar(llg.LLMatcher.grammar_from_json_schema(schema))
    if problem and not problem.startswith("WARNING"):
        raise ValueError(f"{_reason(problem)} (llguidance {llg.__version__}; what it supports: "
                         "github.com/guidance-ai/llguidance/blob/main/docs/json_schema.md)")
    return llg.LLMatcher.grammar_from_lark('%llguidance {"no_forcing": true}\nstart: %json '
                                           + json.dumps(schema))


def _reason(problem: str) -> str:
    """llguidance's complaint about a schema, as one sentence that names the feature."""
    first = problem.strip().splitlines()[0]
    if first.startswith("Unimplemented keys:"):
        try:
            keys = ", ".join(json.loads(first.split(":", 1)[1]))
        except ValueError:
            keys = first.split(":", 1)[1].strip()
        return f"unsupported JSON Schema feature: {keys} -- the schema cannot become a pool"
    lines = " ".join(line.strip() for line in problem.splitlines() if line.strip())
    return f"this schema cannot become a pool: {lines}"


class JsonSchema(Pool):
    """The output is a JSON document that validates against `schema` (a dict, a JSON string or
    a pydantic model class), written on one line as `json.dumps` writes it. A LogitsProcessor for
    `lk.generate` and `model.generate` (one matcher per batch row); `finish` raises `Incomplete`
    when the budget ran out first. A state is an llguidance matcher (`state_after(text)`)."""

    def __init__(self, tokenizer, schema):
        llg = _llguidance()
        self.schema = as_schema(schema)
        self.library = library_tokenizer(tokenizer)
        self._start = llg.LLMatcher(self.library, grammar(self.schema), log_level=0)
        if self._start.is_error():         # validated above: a limit hit with this tokenizer
            raise ValueError(f"llguidance cannot build this schema's pool: "
                             f"{self._start.get_error().splitlines()[0]}")
        self.reset()

    # the text-level view (notebook 05's helpers: allowed_mass, restrict)
    def initial(self):
        return self._start.deep_copy()

    def state_after(self, text: str):
        """The matcher after the generated `text` (any tokenization: forcing is off), or None
        if no valid document starts with it."""
        state = self._start.deep_copy()
        ok = state.consume_tokens(self.library.greedy_tokenize(text)) if text else True
        return state if ok and not state.is_error() else None

    def is_complete(self, text: str) -> bool:
        """True if `text` is a whole document that validates against the schema."""
        state = self.state_after(text)
        return state is not None and state.is_accepting()

    def removed(self, state) -> torch.Tensor:
        """Bool [vocab], True where a token is not allowed in `state` (llguidance's bitmask)."""
        bits = np.frombuffer(state.compute_bitmask(), dtype=np.uint8)
        allowed = np.unpackbits(bits, bitorder="little")[:self.library.vocab_size]
        return torch.from_numpy(allowed == 0)

    def allowed_ids(self, state) -> list[int]:
        return (~self.removed(state)).nonzero()[:, 0].tolist()

    # the processor
    def reset(self) -> None:
        """Forget the current generation: the next call's input_ids are a new prompt."""
        self._last, self._rows = None, None

    def __call__(self, input_ids, scores):
        last = self._last
        if (last is not None and input_ids.shape[0] == last.shape[0]
                and input_ids.shape[1] == last.shape[1] + 1
                and torch.equal(input_ids[:, :-1].cpu(), last)):
            for row, token in zip(self._rows, input_ids[:, -1].tolist()):
                if not row.consume_token(token):
                    raise ValueError(f"{self!r} was given a token it does not allow: is one "
                                     "instance serving two generations at once? Use one per "
                                     "generation (llguidance: "
                                     f"{row.get_error().splitlines()[0][:120]})")
        else:          # after reset(), or (model.generate) ids that do not continue the last
            self._rows = [self._start.deep_copy() for _ in range(input_ids.shape[0])]
        self._last = input_ids.cpu().clone()
        removed = torch.stack([self.removed(row) for row in self._rows])          # batch vocab
        return scores.masked_fill(_fit(removed, scores.shape[-1]).to(scores.device), -math.inf)

    def __repr__(self):
        text = json.dumps(self.schema)
        return f"JsonSchema({text if len(text) <= 60 else text[:57] + '...'})"
