"""Every learner check against its corpus of plausible answers (tests/checks/corpus_*.py).

Each correct answer passes; each wrong one fails with exactly the verdict key it must get;
no verdict names a mistake the answer did not make (no other variant's title appears in
it); and no check raises. benchmarks/checks_report.py prints the same results as a table.
"""
import corpus_bayes
import corpus_knobs
import corpus_pool
import corpus_prompting
import corpus_rlhf
import corpus_scoreboard
import corpus_sft
import corpus_steer
import pytest

from labkit.checks import (bayes, knobs, pool, prompting, rlhf, schedule, scoreboard, sft,
                           steer)
from labkit.checks._corpus import score, titles_named

CHECKS = {c.name: c for c in [knobs.TOP_P, bayes.TILT, bayes.KL_REWARD, prompting.FEW_SHOT_PROMPT,
                              prompting.LABEL_LOGPROB, pool.POOL_RENORMALISE, pool.TRIE_STEP,
                              steer.BAG_OF_WORDS, sft.MASKED_LABELS, schedule.LR_SCHEDULE,
                              rlhf.RLOO_ADVANTAGE, rlhf.BRADLEY_TERRY, rlhf.DPO_LOSS,
                              scoreboard.MC_KL]}
CORPUS = {**corpus_knobs.CORPUS, **corpus_bayes.CORPUS, **corpus_prompting.CORPUS,
          **corpus_pool.CORPUS, **corpus_steer.CORPUS, **corpus_sft.CORPUS,
          **corpus_rlhf.CORPUS, **corpus_scoreboard.CORPUS}
ENTRIES = [(name, e) for name, entries in CORPUS.items() for e in entries]
GENERIC = {"passed", "not_attempted", "raised", "none", "type", "shape", "dtype", "unknown"}


@pytest.fixture(scope="module")
def outcomes(tiny_lm, tokenizer):
    """{check: {entry name: Outcome}}, computed once, lazily per check."""
    context = {"check_label_logprob": {"lm": tiny_lm}, "check_bag_of_words": {"tokenizer": tokenizer},
               "check_mc_kl": {"lm": tiny_lm}}
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = {e.name: score(CHECKS[name], e, **context.get(name, {}))
                           for e in CORPUS[name]}
        return cache[name]
    return get


def test_every_check_has_a_corpus():
    assert set(CORPUS) == set(CHECKS)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_each_corpus_has_what_the_issue_asks_for(name):
    entries = CORPUS[name]
    variants = {v.key for v in CHECKS[name].variants}
    plausible = [e for e in entries if e.expect in variants or e.expect == "unknown"]
    assert len(plausible) >= 6, f"{name}: only {len(plausible)} plausible wrong answers"
    have = {e.expect for e in entries}
    assert {"passed", "raised", "none", "not_attempted"} <= have, name
    assert have & {"type", "shape", "dtype", "not_summed", "texts", "mask"}, name
    assert len({e.name for e in entries}) == len(entries), f"{name}: duplicate entry names"
    unknown_keys = have - variants - GENERIC - {"not_summed", "texts", "mask"}
    assert not unknown_keys, f"{name}: entries expect keys no verdict gives: {unknown_keys}"


@pytest.mark.parametrize("name, entry", ENTRIES, ids=[f"{n}-{e.name}" for n, e in ENTRIES])
def test_entry_gets_exactly_its_verdict(name, entry, outcomes):
    out = outcomes(name)[entry.name]
    assert not out.crashed, f"the check raised: {out.message}"
    assert out.key == entry.expect, (f"{entry.name} ({entry.mistake}) must get {entry.expect!r}, "
                                     f"got {out.key!r}:\n{out.message}")
    named = titles_named(CHECKS[name], out.message)
    want = [entry.expect] if entry.expect in {v.key for v in CHECKS[name].variants} else []
    assert named == want, f"the verdict names {named}, not {want}:\n{out.message}"
    if entry.expect == "unknown":
        assert "not a mistake the check knows" in out.message and "expected" in out.message


def test_targets_are_met(outcomes):
    """Every wrong answer caught, at least 80% named exactly, none misleading, no crash."""
    outs = [o for name in CORPUS for o in outcomes(name).values()]
    wrong = [o for o in outs if o.wrong]
    assert all(o.caught for o in wrong)
    assert not any(o.misleading or o.crashed for o in outs)
    assert sum(o.named for o in wrong) >= 0.8 * len(wrong)
    assert all(o.key == "passed" for o in outs if not o.wrong)
