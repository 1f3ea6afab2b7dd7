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
"]"), and `JsonSchema` (a JSON document that validates against a schema: the one pool whose
automaton comes from a library, llguidance -- `labkit.pool.schema` says why). Every pool is a
`Pool`: `generate_constrained` is `lk.generate` with the pool first. For the notebook:
`allowed_mass` (the model's mass Z on the allowed set), `restrict` (one step, the pure function).

Known limit, kept on purpose: the mask is local, so sampling follows π(x_t | x_<t, valid prefix),
not the exact conditional π(x | x valid) of notebook 01 -- that would need look-ahead or
reweighting whole sequences (e.g. sequential Monte Carlo, Lew et al. 2023).

Left out on purpose, in the hand-written pools: tokens that are only part of a UTF-8 character
(byte-fallback pieces such as <0xE2>) are never allowed, and a constraint that would need one is
refused at construction -- so `Regex`'s \\d, Unicode in Python, means the ASCII digits in
practice (`Regex` says why; JsonSchema, on llguidance's bytes, allows such pieces in strings).
JSON Schema is not compiled by hand: it is a context-free language with dozens of keywords, and
a maintained library does it (tests/test_pool_oracle.py checks `Regex` against that library,
mask by mask).
"""
from ..vocab import Vocabulary, vocabulary
from .core import Allowed, Incomplete, Pool, TokenPool, allowed_mass, generate_constrained, restrict
from .kinds import Catalogue, OneOf, Quote, Regex
from .schema import JsonSchema

__all__ = ["Allowed", "Catalogue", "Incomplete", "JsonSchema", "OneOf", "Pool", "Quote", "Regex",
           "TokenPool", "Vocabulary", "allowed_mass", "generate_constrained", "restrict",
           "vocabulary"]
