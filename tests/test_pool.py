"""The token pool: every output is valid for every seed and temperature (or an `Incomplete` error,
never a truncated text), masks equal the naive per-token check, repeated use is safe, padded and
SentencePiece vocabularies work, and bad input fails clearly."""
import math
import random
import re

import pytest
import regex as mrab   # the third-party `regex` module (a transformers dependency): partial matches
import torch
from transformers import LlamaConfig, LlamaForCausalLM, LogitsProcessorList

import labkit as lk
from labkit import pool as P
from labkit.vocab import Trie
from labkit import steer
from labkit.models import LM
from labkit.regex import NFA

SEEDS = range(12)
TEMPS = [0.5, 1.0, 3.0]
OPTIONS = ["New", "New York", "New Delhi", " Paris", "Buenos Aires", "Rome, Italy"]
SOURCE = "Marie Curie was born in Warsaw in 1867. She won two Nobel Prizes, in 1903 and 1911."
PATTERNS = [r"\d{4}-\d{2}-\d{2}", r"-?\d{1,3}\.\d{2}", r"\(\d{3}\) \d{3}-\d{4}",
            r"(yes|no)(, because [a-z ]{1,12})?", r"[A-Z][a-z]+( [A-Z][a-z]+)?"]
TITLES = ["Marie Curie", "Warsaw", "Nobel Prize", "Paris"]


def naive_allowed(pool, text):
    """The obvious definition: every token whose text keeps `text` a valid prefix."""
    v = pool.vocab
    out = [i for i, t in enumerate(v.texts) if t is not None and pool.is_prefix(text + t)]
    if pool.is_complete(text):
        out.append(v.eos_id)
    return sorted(out)


def sample(lm, prompt, pool, n_tokens, temps=TEMPS, seeds=SEEDS, controls=()):
    """(outputs, number of Incomplete) over seeds x temperatures."""
    outs, incomplete = [], 0
    for t in temps:
        for seed in seeds:
            try:
                outs.append(P.generate_constrained(lm, prompt, pool, max_new_tokens=n_tokens,
                                                   controls=[*controls, lk.controls.Temperature(t)],
                                                   seed=seed))
            except P.Incomplete:
                incomplete += 1
    return outs, incomplete


def tiny_model(tokenizer, vocab_size=None):
    """A 2-layer random Llama over `tokenizer`, with `vocab_size` logits (default: the tokenizer's
    size; more: a padded embedding matrix, as Qwen2 and Phi-3 have)."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab_size or len(tokenizer), hidden_size=32,
                         intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=128,
                         tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id)
    return LM(model=LlamaForCausalLM(config).eval(), tokenizer=tokenizer, name="tiny")


def allowed_pieces(tokenizer, pool, text):
    """The tokens `pool` allows after the generated `text`, as the tokenizer's own pieces."""
    return set(tokenizer.convert_ids_to_tokens(pool.allowed_ids(pool.state_after(text))))


# --- the plain pool -------------------------------------------------------------------------


def test_allowed_masks_and_renormalises():
    d = lk.Distribution.from_logits(torch.tensor([1.0, 2.0, 3.0, 0.5]))
    after = d.apply(P.Allowed([0, 2]))
    assert after.probs[1] == 0 and after.probs[3] == 0
    assert math.isclose(float(after.probs.sum()), 1.0, abs_tol=1e-6)
    expected = torch.softmax(torch.tensor([1.0, 3.0]), 0)
    assert torch.allclose(after.probs[[0, 2]], expected)


def test_allowed_bad_input():
    with pytest.raises(ValueError, match="empty"):
        P.Allowed([])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        lk.Distribution.from_logits(torch.zeros(4)).apply(P.Allowed([7]))


# --- masks against the naive check -------------------------------------------------------------


@pytest.mark.parametrize("make, texts", [
    (lambda tok: P.OneOf(tok, OPTIONS), ["", "New", "New ", " Par", "Rome,"]),
    (lambda tok: P.Quote(tok, SOURCE), ["", " in", " Warsaw in 18", "1911."]),
    (lambda tok: P.Regex(tok, PATTERNS[1]), ["", "-", "12", "12.3", "12.34"]),
    (lambda tok: P.Catalogue(tok, TITLES), ["", "see [", "see [Marie", "see [Paris] and ["]),
])
def test_mask_equals_naive(tokenizer, make, texts):
    pool = make(tokenizer)
    for text in texts:
        assert pool.allowed_ids(pool.state_after(text)) == naive_allowed(pool, text), text


@pytest.mark.parametrize("pattern", PATTERNS)
def test_regex_agrees_with_the_regex_module(tokenizer, pattern):
    """Independent reference: mrab `regex` partial full-match on prefix + token text."""
    pool = P.Regex(tokenizer, pattern)
    v = pool.vocab
    compiled = mrab.compile(pattern)
    for text in ["", "1", "(555) 1", "yes, because a"]:
        state = pool.state_after(text)
        if state is None:
            assert compiled.fullmatch(text, partial=True) is None
            continue
        ref = [i for i, t in enumerate(v.texts)
               if t is not None and compiled.fullmatch(text + t, partial=True) is not None]
        if compiled.fullmatch(text) is not None:
            ref.append(v.eos_id)
        assert pool.allowed_ids(state) == sorted(ref), (pattern, text)


REGEX_CASES = {            # pattern -> alphabet of the random texts compared with re.fullmatch
    r"\d+\.\d\d": "12.", r"(ab)+c": "abc", r"[a-c]+@[a-c]+\.com": "ab@.com",
    r"a{2,4}b?|c*": "abc", r"[^ab]x|\wy|(?:\s)": "abxy 1", r"-?\d{1,3}\.\d{2}": "-1.2",
}


@pytest.mark.parametrize("pattern", REGEX_CASES)
def test_the_regex_automaton_is_a_full_match(pattern):
    """labkit.regex on its own: the automaton accepts exactly what re.fullmatch accepts, and it
    dies exactly when no continuation can match (the `regex` module's partial match)."""
    nfa, compiled, rng = NFA(pattern), mrab.compile(pattern), random.Random(0)
    alphabet, checked = REGEX_CASES[pattern], {True: 0, False: 0}
    for _ in range(400):                # random walks that mostly stay alive, then stop
        text, state = "", nfa.start
        while state is not None and rng.random() > (0.4 if nfa.accepts(state) else 0.04):
            live = [ch for ch in alphabet if nfa.step(state, ch) is not None]
            text += rng.choice(live if live and rng.random() > 0.1 else alphabet)
            state = nfa.step(state, text[-1])
        full = re.fullmatch(pattern, text) is not None
        assert nfa.fullmatch(text) == full, text
        checked[full] += 1
        state = nfa.start
        for i, ch in enumerate(text):
            state = nfa.step(state, ch)
            alive = compiled.fullmatch(text[:i + 1], partial=True) is not None
            assert (state is not None) == alive, (text, i)
            if state is None:
                break
    assert min(checked.values()) >= 5, checked                   # both answers were tested


def test_one_trie_for_the_vocabulary_and_the_options(tokenizer):
    trie = Trie([("New", 0), ("New York", 1), ("Nice", 2), ("New", 3)])
    node = trie.find("New")
    assert trie.values[node] == (0, 3) and trie.values[trie.find("New York")] == (1,)
    assert trie.find("Newt") is None and trie.values[trie.find("Ne")] == ()
    assert set(trie.children[node]) == {" "}
    v, pool = P.vocabulary(tokenizer), P.OneOf(tokenizer, OPTIONS)
    assert type(v.trie) is type(pool.trie) is Trie
    i = v.texts.index(" Paris")
    assert i in v.trie.values[v.trie.find(" Paris")]


def test_tokenization_subtleties(tokenizer):
    v = P.vocabulary(tokenizer)
    pool = P.OneOf(tokenizer, [" positive", "positive"])
    texts = {v.texts[i] for i in pool.allowed_ids(0)}
    assert " positive" in texts and "positive" in texts        # leading space: two options
    assert " pos" in texts and "pos" in texts                   # several tokenizations
    straddle = P.OneOf(tokenizer, ["Rome"])
    assert all(v.texts[i] in ("R", "Ro", "Rom", "Rome") for i in straddle.allowed_ids(0))
    after_rome = straddle.allowed_ids(straddle.state_after("Rome"))
    assert after_rome == [v.eos_id]             # "Rome," would straddle the end: not allowed


# --- every output is valid ------------------------------------------------------------------------


def test_one_of_always_an_option(tiny_lm):
    outs, incomplete = sample(tiny_lm, "The city is", P.OneOf(tiny_lm.tokenizer, OPTIONS), 12)
    assert incomplete == 0 and len(outs) == len(SEEDS) * len(TEMPS)
    assert all(o in OPTIONS for o in outs)
    assert len(set(outs)) >= 3                                  # multi-token options are reached


def test_quote_always_a_span(tiny_lm):
    outs, incomplete = sample(tiny_lm, "Where was she born?", P.Quote(tiny_lm.tokenizer, SOURCE), 8)
    assert len(outs) + incomplete == len(SEEDS) * len(TEMPS)
    assert len(outs) >= len(SEEDS) * len(TEMPS) // 2, "too few outputs to check anything"
    assert all(o.strip() and o in SOURCE for o in outs)
    assert len({o.strip() for o in outs}) >= 5                  # several different spans


@pytest.mark.parametrize("pattern", PATTERNS)
def test_regex_always_matches(tiny_lm, pattern):
    outs, incomplete = sample(tiny_lm, "Answer:", P.Regex(tiny_lm.tokenizer, pattern), 20,
                              seeds=range(8))
    assert len(outs) >= 12, f"only {len(outs)} of 24 outputs completed: too few to check"
    assert len(set(outs)) >= 4                                   # not one text over and over
    assert all(re.fullmatch(pattern, o) for o in outs), outs


def test_catalogue_links_only_existing_titles(tiny_lm):
    pool = P.Catalogue(tiny_lm.tokenizer, TITLES)
    v = pool.vocab
    # a random model almost never writes "[": bias the brackets so that links get made at all
    opens = steer.LogitBias({i: 8.0 for i, t in enumerate(v.texts) if t in ("[", " [")})
    outs, incomplete = sample(tiny_lm, "See", pool, 25, seeds=range(8), controls=[opens])
    links = [link for o in outs for link in pool.links(o)]
    assert len(outs) >= 8 and len(links) >= 5, f"too little to check: {len(outs)} outputs, {links}"
    for o in outs:          # every "[" opens a link that is closed (a stray "]" is free text)
        assert pool.is_complete(o) and o.count("[") == len(pool.links(o))
    assert all(link in TITLES for link in links) and len(set(links)) >= 2


@pytest.mark.parametrize("make, prompt, read", [
    (lambda tok: P.Catalogue(tok, TITLES), "Wiki: The physicist [", "["),
    (lambda tok: P.Regex(tok, r"\d\d\.\d\d"), "Price: 12", "12"),
])
def test_the_prompt_is_not_read(tiny_lm, make, prompt, read):
    """Only the generated text is constrained: the first step's mask is the initial state's, not
    the mask after the prompt's own text (a "[" in the prompt opens no link)."""
    pool, first = make(tiny_lm.tokenizer), Recorder()
    try:
        lk.generate(tiny_lm, prompt, controls=[pool, first], max_new_tokens=1, seed=0)
    except P.Incomplete:
        pass                                          # one token rarely completes a text
    assert torch.equal(first.masks[0], pool.removed(pool.initial()))
    assert not torch.equal(first.masks[0], pool.removed(pool.state_after(read)))   # can tell


class Recorder:
    """A control that changes nothing and keeps the mask (-inf entries) it was given."""

    def __init__(self):
        self.masks = []

    def __call__(self, input_ids, scores):
        self.masks.append(torch.isinf(scores[0]).cpu())
        return scores


# --- repeated use, composition, stopping --------------------------------------------------------


def test_repeated_use_is_safe(tiny_lm):
    pool = P.OneOf(tiny_lm.tokenizer, OPTIONS)
    prompts = ("The city is", "A", "Capital of the world, big and loud:")
    reused = [lk.generate(tiny_lm, p, controls=[pool], max_new_tokens=10, seed=s)
              for p in prompts for s in range(3)]
    fresh = [lk.generate(tiny_lm, p, controls=[P.OneOf(tiny_lm.tokenizer, OPTIONS)],
                         max_new_tokens=10, seed=s)
             for p in prompts for s in range(3)]
    assert reused == fresh and all(o in OPTIONS for o in reused)


def test_a_prompt_that_extends_the_last_context_starts_afresh(tiny_lm):
    """`lk.generate` resets the pool: a new prompt equal to the last context plus one token is a
    new generation, not a continuation (which would read "," after " New York" and fail)."""
    pool = P.OneOf(tiny_lm.tokenizer, [" New York"])
    canonical = steer.LogitBias({i: 30.0 for i in tiny_lm.ids(" New York", start=False)})
    first, steps = lk.generate(tiny_lm, "The city is:", controls=[pool, canonical],
                               max_new_tokens=6, seed=0, trace=True)
    assert first == " New York"
    context = steps[-1].after.context[0].tolist()                 # what the pool saw last
    prompt = "The city is: New York,"
    assert tiny_lm.encode(prompt)[0].tolist()[:-1] == context     # exactly one token more
    again, steps = lk.generate(tiny_lm, prompt, controls=[pool], max_new_tokens=6, seed=0,
                               trace=True)
    assert again == " New York"
    assert torch.equal(torch.isinf(steps[0].after.logits), pool.removed(pool.initial()))


def test_works_with_transformers_generate(tiny_lm):
    tok = tiny_lm.tokenizer
    pool = P.OneOf(tok, OPTIONS)
    ids = tok("The city is", return_tensors="pt").input_ids
    torch.manual_seed(0)
    out = tiny_lm.model.generate(ids, do_sample=True, max_new_tokens=10, num_return_sequences=4,
                                 logits_processor=LogitsProcessorList([pool]),
                                 pad_token_id=tok.eos_token_id)
    texts = tok.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)
    assert all(t in OPTIONS for t in texts), texts


def test_one_step_via_distribution_apply(tokenizer):
    logits = torch.randn(len(tokenizer))
    d = lk.Distribution.from_logits(logits, tokenizer).apply(P.OneOf(tokenizer, [" yes", " no"]))
    assert math.isclose(float(d.probs.sum()), 1.0, abs_tol=1e-5)
    assert {t for t, p in d.top(20) if p > 0} <= {" ", " y", " ye", " yes", " n", " no"}


def test_incomplete_is_an_error_never_a_truncated_output(tiny_lm):
    pool = P.OneOf(tiny_lm.tokenizer, ["Antidisestablishmentarianism forever and ever"])
    with pytest.raises(P.Incomplete, match="max_new_tokens=2"):
        P.generate_constrained(tiny_lm, "Say it:", pool, max_new_tokens=2, seed=0)


UNBOUNDED = {r"\d+\.\d\d": 8, r"[a-z]+@[a-z]+\.com": 16, r"(ab)+c": 4}   # pattern: budget


def test_lk_generate_never_returns_a_truncated_text(tiny_lm):
    """Through the lab's one loop, as the README shows: each call returns a complete text or
    raises Incomplete (from `pool.finish`) -- never a text that does not match."""
    done = {True: 0, False: 0}
    for pattern, budget in UNBOUNDED.items():
        pool = lk.controls.Regex(tiny_lm.tokenizer, pattern)
        for seed in range(32):
            try:
                text = lk.generate(tiny_lm, "Answer:", controls=[pool], max_new_tokens=budget,
                                   seed=seed)
            except P.Incomplete as e:
                assert pool.is_prefix(e.text) and not pool.is_complete(e.text)
                assert e.max_new_tokens == budget
                done[False] += 1
            else:
                assert pool.is_complete(text) and re.fullmatch(pattern, text), text
                done[True] += 1
    assert done[True] >= 20 and done[False] >= 20, done         # both ways were taken


def test_incomplete_names_the_pool_the_budget_and_the_text(tiny_lm):
    pattern = r"[a-z]+@[a-z]+\.com"
    pool = P.Regex(tiny_lm.tokenizer, pattern)
    with pytest.raises(P.Incomplete) as e:
        lk.generate(tiny_lm, "Mail:", controls=[pool], max_new_tokens=3, seed=0)
    message = str(e.value)
    assert f"Regex({pattern!r})" in message and "max_new_tokens=3" in message
    assert repr(e.value.text) in message and e.value.text
    pool.finish("ab@cd.com", max_new_tokens=3)                  # complete: no error
    with pytest.raises(TypeError, match="token pool"):
        P.generate_constrained(tiny_lm, "Mail:", lk.controls.Temperature(1.0))


def test_stops_at_eos_when_complete(smol):
    pool = P.OneOf(smol.tokenizer, [" positive", " negative"])
    text, steps = P.generate_constrained(smol, "Review: Awful food.\nSentiment:", pool,
                                         max_new_tokens=10, seed=0, trace=True)
    assert text in (" positive", " negative")
    assert steps[-1].token_id == smol.eos_token_id and len(steps) <= 4


def test_end_token_closes_the_output(tiny_lm):
    pool = P.Quote(tiny_lm.tokenizer, SOURCE, end="\n")
    outs, _ = sample(tiny_lm, "Quote:", pool, 10, temps=[1.0, 5.0], seeds=range(6))
    assert len(outs) >= 8 and sum(o.endswith("\n") for o in outs) >= 2, outs   # both ways end
    assert all(o.rstrip("\n") in SOURCE and o.strip() for o in outs)
    assert pool.is_complete(" Warsaw\n") and not pool.is_complete(" \n")


def test_quote_needs_more_than_whitespace(tokenizer):
    pool = P.Quote(tokenizer, SOURCE)
    assert not pool.is_complete(" ") and pool.is_prefix(" ") and pool.is_complete(" in")
    assert tokenizer.eos_token_id not in pool.allowed_ids(pool.state_after(" "))
    trailing = P.Quote(tokenizer, "ab.   ")       # spaces at the end lead nowhere: never allowed
    assert not trailing.is_prefix("   ") and trailing.is_prefix(" ") is False
    assert trailing.is_complete(".  ")


# --- vocabularies: padded (Qwen2, Phi-3) and SentencePiece-style (Llama, Mistral, Gemma) ----

PAD = 64                      # logits beyond the tokenizer: Qwen2 and Phi-3 pad the embeddings


def test_restrict_pads_the_mask_of_a_longer_vocabulary(tokenizer):
    pool, n = P.OneOf(tokenizer, [" yes", " no"]), len(tokenizer)
    logits = torch.randn(n + PAD)
    logits[n:] = 5.0                                            # the model likes the padding
    d = lk.Distribution.from_logits(logits, tokenizer)
    after, z = P.restrict(d, pool, " y")
    assert len(after) == n + PAD and (after.probs[n:] == 0).all()
    assert set(torch.nonzero(after.probs).flatten().tolist()) == set(pool.allowed_ids(
        pool.state_after(" y")))
    assert math.isclose(z, P.allowed_mass(d, pool, " y"), rel_tol=1e-6) and 0 < z < 1


def test_the_processor_pads_its_mask_too(tokenizer):
    pool, n = P.OneOf(tokenizer, [" yes", " no"]), len(tokenizer)
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    out = pool(ids, torch.zeros(2, n + PAD))
    assert out.shape == (2, n + PAD) and torch.isneginf(out[:, n:]).all()
    assert torch.equal(torch.isinf(out[:, :n]), pool.removed(0).expand(2, n))
    d = lk.Distribution.from_logits(torch.zeros(n + PAD), tokenizer).apply(pool)
    assert (d.probs[n:] == 0).all() and math.isclose(float(d.probs.sum()), 1.0, abs_tol=1e-5)


def test_generate_on_a_padded_vocabulary(tokenizer):
    lm = tiny_model(tokenizer, len(tokenizer) + PAD)
    with torch.no_grad():
        lm.model.lm_head.weight[len(tokenizer):] = lm.model.lm_head.weight[:PAD] * 50  # loud
    pool = P.Regex(tokenizer, r"(ab)+c")
    outs = [lk.generate(lm, "Say:", controls=[pool], max_new_tokens=12, seed=s) for s in range(6)]
    assert all(re.fullmatch(r"(ab)+c", o) for o in outs), outs


def sentencepiece_tokenizer():
    """A tiny Llama-style tokenizer: Unigram pieces with "▁" for a space (Metaspace) and the 256
    byte-fallback pieces <0x00>..<0xFF>, as Llama 2, Mistral and Gemma have."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pieces = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256)),
              "▁", "▁New", "New", "N", "e", "w", "▁York", "▁Y", "Y", "o", "r", "k", "▁Paris",
              "▁P", "P", "a", "i", "s", "▁a", "▁is", "▁the", "▁city", "c", "t", "y", "h"]
    model = models.Unigram([(p, -1.0 - i / 100) for i, p in enumerate(pieces)], unk_id=0,
                           byte_fallback=True)
    backend = Tokenizer(model)
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    backend.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace(
        replacement="▁", prepend_scheme="always")])
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>")


def test_sentencepiece_pieces_keep_their_leading_space():
    tok = sentencepiece_tokenizer()
    assert tok.decode(tok.convert_tokens_to_ids(["▁York"])) == "York"    # alone: space dropped
    v = P.vocabulary(tok)
    assert v.texts[tok.convert_tokens_to_ids("▁York")] == " York"      # mid-text: kept
    assert v.texts[tok.convert_tokens_to_ids("<0x20>")] == " "
    assert v.texts[tok.convert_tokens_to_ids("<0xE2>")] is None           # part of a character
    pool = P.OneOf(tok, ["New York", " Paris"])
    assert allowed_pieces(tok, pool, "") == {"N", "New", "<0x4E>", "▁", "▁P", "▁Paris", "<0x20>"}
    assert allowed_pieces(tok, pool, "New") == {"▁", "▁Y", "▁York", "<0x20>"}
    assert allowed_pieces(tok, pool, "New ") == {"Y", "<0x59>"}
    assert allowed_pieces(tok, pool, "New York") == {"</s>"}


def test_sentencepiece_restrict_and_generate_write_new_york():
    tok = sentencepiece_tokenizer()
    pool = P.OneOf(tok, ["New York", " Paris"])
    d = lk.Distribution.from_logits(torch.zeros(len(tok) + PAD), tok)
    text = ""
    for piece in ["New", "▁York"]:                   # restrict: each piece allowed in turn
        after, z = P.restrict(d, pool, text)
        assert after.probs[tok.convert_tokens_to_ids(piece)] > 0 and 0 < z < 1
        text += pool.vocab.texts[tok.convert_tokens_to_ids(piece)]
    after, z = P.restrict(d, pool, text)
    assert text == "New York" and after.support() == 1 and after.probs[tok.eos_token_id] == 1
    lm = tiny_model(tok, len(tok) + PAD)
    outs = {}
    for seed in range(24):
        out, steps = lk.generate(lm, "the city is", controls=[pool], max_new_tokens=10,
                                 seed=seed, trace=True)
        outs[out] = tok.convert_ids_to_tokens([s.token_id for s in steps])
    # lk.generate returns what the pieces write after the prompt: "▁Paris" is " Paris" there,
    # though decode() alone drops a first "▁"'s space
    assert set(outs) == {"New York", " Paris"}, outs
    assert any(p.startswith("▁") for p in outs["New York"]), outs["New York"]
    assert tok.decode(tok.convert_tokens_to_ids(["▁Paris"])) == "Paris"
    pool.finish(" Paris", max_new_tokens=10)
    with pytest.raises(P.Incomplete):
        pool.finish("New", max_new_tokens=10)


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("make, match", [
    (lambda tok: P.OneOf(tok, []), "option list is empty"),
    (lambda tok: P.OneOf(tok, ["ok", ""]), "non-empty"),
    (lambda tok: P.OneOf(tok, "yes"), "list"),
    (lambda tok: P.Quote(tok, "   "), "source is empty"),
    (lambda tok: P.Catalogue(tok, []), "title list is empty"),
    (lambda tok: P.Catalogue(tok, ["a]b"]), "contains"),
    (lambda tok: P.Regex(tok, r"(a)\1"), "backreference"),
    (lambda tok: P.Regex(tok, r"a(?=b)"), "lookahead"),
    (lambda tok: P.Regex(tok, r"(?i)abc"), "inline flags"),
    (lambda tok: P.Regex(tok, r"a\bb"), "anchor"),
    (lambda tok: P.Regex(tok, r"a{1000}"), "repeat count"),
    (lambda tok: P.Regex(tok, r"(unclosed"), "not a valid regular expression"),
    (lambda tok: P.OneOf(tok, ["\U0001d518"]), "cannot write"),
])
def test_bad_input_is_a_clear_error(tokenizer, make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make(tokenizer)


# --- the learner checks (the mask figure and the panel: tests/test_viz_widgets.py, test_panels.py)
