"""The token pool: every output is valid for every seed and temperature, masks equal the naive
per-token check, repeated use is safe, and bad input fails clearly."""
import math
import re

import pytest
import regex as mrab   # the third-party `regex` module (a transformers dependency): partial matches
import torch
from transformers import LogitsProcessorList

import labkit as lk
from labkit import pool as P

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


def sample(lm, prompt, pool, n_tokens, temps=TEMPS, seeds=SEEDS):
    """(outputs, number of Incomplete) over seeds x temperatures."""
    outs, incomplete = [], 0
    for t in temps:
        for seed in seeds:
            try:
                outs.append(P.generate_constrained(lm, prompt, pool, max_new_tokens=n_tokens,
                                                   controls=[lk.controls.Temperature(t)],
                                                   seed=seed))
            except P.Incomplete:
                incomplete += 1
    return outs, incomplete


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
    assert outs and all(o and o in SOURCE for o in outs)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_regex_always_matches(tiny_lm, pattern):
    outs, incomplete = sample(tiny_lm, "Answer:", P.Regex(tiny_lm.tokenizer, pattern), 20,
                              seeds=range(8))
    assert outs, "no output completed"
    assert all(re.fullmatch(pattern, o) for o in outs), outs


def test_catalogue_links_only_existing_titles(tiny_lm):
    pool = P.Catalogue(tiny_lm.tokenizer, TITLES)
    outs, incomplete = sample(tiny_lm, "See", pool, 25, seeds=range(8))
    for o in outs:
        assert pool.is_complete(o) and o.count("[") == o.count("]")
        assert all(link in TITLES for link in pool.links(o))


def test_the_prompt_is_not_read(tiny_lm):
    """Only the generated text is constrained: a "[" in the prompt opens no link."""
    pool = P.Catalogue(tiny_lm.tokenizer, TITLES)
    outs, _ = sample(tiny_lm, "Wiki: The physicist [", pool, 10, temps=[1.0], seeds=range(4))
    assert outs and all(pool.is_complete(o) for o in outs)


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


def test_stops_at_eos_when_complete(smol):
    pool = P.OneOf(smol.tokenizer, [" positive", " negative"])
    text, steps = P.generate_constrained(smol, "Review: Awful food.\nSentiment:", pool,
                                         max_new_tokens=10, seed=0, trace=True)
    assert text in (" positive", " negative")
    assert steps[-1].token_id == smol.eos_token_id and len(steps) <= 4


def test_end_token_closes_the_output(tiny_lm):
    pool = P.Quote(tiny_lm.tokenizer, SOURCE, end="\n")
    outs, _ = sample(tiny_lm, "Quote:", pool, 10, temps=[1.0, 5.0], seeds=range(6))
    assert outs and all(o.rstrip("\n") in SOURCE and o.strip() for o in outs)
    assert pool.is_complete(" Warsaw\n") and not pool.is_complete(" \n")


def test_quote_needs_more_than_whitespace(tokenizer):
    pool = P.Quote(tokenizer, SOURCE)
    assert not pool.is_complete(" ") and pool.is_prefix(" ") and pool.is_complete(" in")
    assert tokenizer.eos_token_id not in pool.allowed_ids(pool.state_after(" "))
    trailing = P.Quote(tokenizer, "ab.   ")       # spaces at the end lead nowhere: never allowed
    assert not trailing.is_prefix("   ") and trailing.is_prefix(" ") is False
    assert trailing.is_complete(".  ")


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


# --- the figure and the learner checks -----------------------------------------------------


def test_mask_figure(smol):
    pool = P.Regex(smol.tokenizer, r"\d{2}\.\d{2}")
    _, steps = P.generate_constrained(smol, "The price is", pool, max_new_tokens=8, seed=0,
                                      trace=True)
    fig = P.mask_figure(steps, k=5)
    assert len(fig.data[0].z) == 5 and len(fig.data[0].z[0]) == len(steps)


def test_checks_pass_the_reference_and_fail_mistakes(capsys):
    from labkit import checks

    assert checks.check_pool_renormalise(checks.reference_pool_renormalise)
    assert checks.check_trie_step(checks.reference_trie_step)

    def not_renormalised(probs, allowed):
        keep = torch.zeros_like(probs, dtype=torch.bool)
        keep[list(allowed)] = True
        return probs * keep

    def only_whole_remainder(prefix, options, texts):
        return sorted({i for i, t in enumerate(texts) for o in options if prefix + t == o})

    def allows_overshoot(prefix, options, texts):
        return sorted({i for i, t in enumerate(texts) for o in options
                       if (prefix + t).startswith(o) or o.startswith(prefix + t)})

    def not_attempted(*args):
        raise NotImplementedError

    assert not checks.check_pool_renormalise(not_renormalised)
    assert "renormalis" in capsys.readouterr().out
    assert not checks.check_trie_step(only_whole_remainder)
    assert not checks.check_trie_step(allows_overshoot)
    assert "straddle" in capsys.readouterr().out
    assert not checks.check_trie_step(not_attempted)
    assert "not attempted" in capsys.readouterr().out


@pytest.mark.widgets
def test_pool_panel(tiny_lm):
    panel = P.pool_panel(tiny_lm, "The city is", " Paris| Rome")
    after, z = panel.result
    assert 0 < z <= 1 and math.isclose(float(after.probs.sum()), 1.0, abs_tol=1e-5)
    panel.boxes[2].value = " Par"                       # written so far: no model call
    after, _ = panel.result
    assert {t for t, p in after.top(5) if p > 0} <= {"i", "is", "r"}
    panel.boxes[1].value = ""                           # bad input: shown, not raised
    assert "empty" in panel.children[3].value or "non-empty" in panel.children[3].value
