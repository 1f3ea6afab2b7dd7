"""The learner-check machinery (labkit/checks/_runner.py): every check passes its reference,
its known mistakes can be told apart on its cases, arguments are copied, and nothing a
learner's function does -- or returns -- makes a check raise. The corpus of plausible wrong
answers is in tests/checks/."""
import itertools

import pytest
import torch

import labkit as lk
from labkit import checks
from labkit.checks import (_runner, bayes, knobs, pool, prompting, rlhf, schedule, scoreboard,
                           sft, steer)

CHECKS = [knobs.TOP_P, bayes.TILT, bayes.KL_REWARD, prompting.FEW_SHOT_PROMPT,
          prompting.LABEL_LOGPROB, pool.POOL_RENORMALISE, pool.TRIE_STEP, steer.BAG_OF_WORDS,
          sft.MASKED_LABELS, schedule.LR_SCHEDULE, rlhf.RLOO_ADVANTAGE, rlhf.BRADLEY_TERRY,
          rlhf.DPO_LOSS, scoreboard.MC_KL]


@pytest.fixture(scope="module")
def context(tiny_lm, tokenizer):
    return {"check_label_logprob": {"lm": tiny_lm}, "check_bag_of_words": {"tokenizer": tokenizer},
            "check_mc_kl": {"lm": tiny_lm}}


def test_public_names_run_each_check_on_its_reference(tiny_lm, tokenizer, capsys):
    assert checks.check_top_p(checks.reference_top_p)
    assert checks.check_tilt(lk.bayes.tilt)
    assert checks.check_kl_reward(lk.bayes.kl_penalised_reward)
    assert checks.check_few_shot_prompt(lk.prompting.build_prompt)
    assert checks.check_label_logprob(lk.prompting.label_logprob, tiny_lm)
    assert checks.check_pool_renormalise(checks.reference_pool_renormalise)
    assert checks.check_trie_step(checks.reference_trie_step)
    assert checks.check_bag_of_words(checks.reference_bag_of_words, tokenizer)
    assert checks.check_masked_labels(lk.sft.masked_labels)
    assert checks.check_lr_schedule(lk.sft.lr_at)
    assert checks.check_rloo_advantage(lk.rlhf.rloo_advantage)
    assert checks.check_bradley_terry_loss(lk.rewards.bradley_terry_loss)
    assert checks.check_dpo_loss(lk.dpo.dpo_loss)
    assert checks.check_mc_kl(checks.reference_mc_kl, tiny_lm)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 14 and all(line.startswith("✅ check_") for line in out), out


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
def test_known_mistakes_are_told_apart_by_the_cases(check, context):
    """Each variant differs from the reference, and from every other variant, on some case --
    so a learner's output can match at most one of them."""
    cases = check.cases(**context.get(check.name, {}))
    fams = {"reference": [check.reference, *check.also_correct]}
    fams.update({v.key: list(v.fns) for v in check.variants if v.fns})
    outs = {k: [[check._out(f, c) for f in fs] for c in cases] for k, fs in fams.items()}
    for a, b in itertools.combinations(fams, 2):
        assert not all(any(check._same(x, y) for x in xa for y in xb)
                       for xa, xb in zip(outs[a], outs[b])), f"{a} and {b} look the same"
    for v in check.variants:                # and each is named when it is the learner's code
        for f in v.fns:
            assert check.verdict(f, **context.get(check.name, {})).key == v.key, (v.key, f)
    titles = [v.title for v in check.variants]
    assert len(set(titles)) == len(titles)
    for v in check.variants:                # a hint never spells another mistake's title
        assert not [t for t in titles if t != v.title and t in v.hint], v.key


class _Hostile:
    def __repr__(self):
        raise RuntimeError("no repr")

    def __iter__(self):
        raise RuntimeError("no iter")

    def __float__(self):
        raise RuntimeError("no float")

    def __len__(self):
        raise RuntimeError("no len")


HOSTILE = {
    "None": lambda *a: None,
    "a string": lambda *a: "positive",
    "a dict": lambda *a: {"a": 1},
    "a hostile object": lambda *a: _Hostile(),
    "a generator": lambda *a: (i for i in range(3)),
    "NaN": lambda *a: float("nan"),
    "a NaN tensor": lambda *a: torch.full((4,), float("nan")),
    "an empty tensor": lambda *a: torch.empty(0),
    "a 0-d tensor": lambda *a: torch.tensor(1.5),
    "a complex tensor": lambda *a: torch.ones(4, dtype=torch.complex64),
    "huge and negative ids": lambda *a: [10 ** 40, -(10 ** 40), -1],
    "a tensor that needs grad": lambda *a: torch.ones(4, requires_grad=True) * 2,
    "raises ValueError": lambda *a: (_ for _ in ()).throw(ValueError("bad")),
    "raises a custom error": lambda *a: (_ for _ in ()).throw(type("MyError", (Exception,), {})()),
    "the wrong arity": lambda x: x,
}


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
@pytest.mark.parametrize("what", sorted(HOSTILE))
def test_nothing_a_learner_returns_makes_a_check_raise(check, what, context, capsys):
    v = check.verdict(HOSTILE[what], **context.get(check.name, {}))
    assert not v.passed and v.key not in (_runner.BROKEN, _runner.PASSED), (v.key, v.message)
    assert check.check(HOSTILE[what], **context.get(check.name, {})) is False
    assert capsys.readouterr().out.startswith(f"❌ {check.name}: ")


def test_a_check_that_cannot_run_says_so_and_returns_false(capsys):
    assert checks.check_label_logprob(lk.prompting.label_logprob, lm="not a model") is False
    assert "the check itself could not run" in capsys.readouterr().out
    assert checks.check_top_p("my_top_p") is False
    assert "expected a function" in capsys.readouterr().out


def test_not_attempted_and_a_later_not_implemented(capsys):
    def todo(probs, p):
        raise NotImplementedError

    def half_done(probs, p):
        if p >= 1:
            raise NotImplementedError("p = 1 is not done yet")
        return checks.reference_top_p(probs, p)

    assert knobs.TOP_P.verdict(todo).key == "not_attempted"
    assert checks.check_top_p(todo) is False
    assert capsys.readouterr().out.startswith("⏳ check_top_p: not attempted yet")
    v = knobs.TOP_P.verdict(half_done)
    assert v.key == "raised" and "p = 1 is not done yet" in v.message


def test_an_exception_names_the_learners_line():
    def broken(probs, p):
        values, order = probs.sort()
        return values[order[len(probs)]]
    v = knobs.TOP_P.verdict(broken)
    assert v.key == "raised" and "IndexError" in v.message
    assert "return values[order[len(probs)]]" in v.message


def test_arguments_are_copied_lists_dicts_and_tensors_not_models():
    model = object()
    args = ([1, [2, 3]], {"k": [4]}, torch.zeros(2), (5, [6]), {7}, model, "s")
    copied = [_runner.copy_arg(a) for a in args]
    copied[0][1].append(9)
    copied[1]["k"].append(9)
    copied[2] += 1
    copied[3][1].append(9)
    copied[4].add(9)
    assert args[:5] == ([1, [2, 3]], {"k": [4]}, args[2], (5, [6]), {7})
    assert float(args[2].sum()) == 0
    assert copied[5] is model and copied[6] == "s"


def test_a_function_that_edits_its_arguments_spoils_no_later_case():
    def appends(shots, query, instruction=""):
        shots.append(("extra", "positive"))      # the caller's list, if it were not copied
        return lk.prompting.build_prompt(shots[:-1], query, instruction)

    def zeroes(probs, p):
        out = checks.reference_top_p(probs.clone(), p)
        probs.zero_()
        return out
    assert prompting.FEW_SHOT_PROMPT.verdict(appends).passed
    assert knobs.TOP_P.verdict(zeroes).passed


def test_a_new_check_is_a_reference_a_variant_table_and_cases():
    """The machinery the later notebooks' checks will reuse, on a toy exercise."""
    def read(out, x):
        if not isinstance(out, int):
            raise _runner.Mistake("return an int", "type")
        return out
    double = _runner.Check(
        "check_double", reference=lambda x: 2 * x, read=read, same=lambda a, b: a == b,
        cases=lambda: [_runner.Case("x=0", (0,)), _runner.Case("x=3", (3,))],
        variants=[_runner.Variant("plus_two", "added two", "multiply by 2", fns=[lambda x: x + 2]),
                  _runner.Variant("squared", "squared", "multiply, do not square",
                                  fns=[lambda x: x * x])])
    assert double.verdict(lambda x: x + x).key == "passed"
    v = double.verdict(lambda x: x + 2)
    assert v.key == "plus_two" and "added two" in v.message and "on x=0" in v.message
    v = double.verdict(lambda x: x + 1)
    assert v.key == "unknown" and "on x=0: expected 0, got 1" in v.message
    assert "not a mistake the check knows" in v.message
    assert double.verdict(lambda x: str(x)).key == "type"


def test_reference_top_p_agrees_with_the_top_p_control():
    probs = torch.softmax(torch.randn(100, generator=torch.Generator().manual_seed(1)), 0)
    for p in (0.1, 0.5, 0.9, 0.99):
        want = lk.Distribution.from_logits(probs.log()).apply(lk.controls.TopP(p)).probs
        torch.testing.assert_close(checks.reference_top_p(probs, p), want)


def test_reference_bag_boosts_only_one_token_spellings(tokenizer):
    z = torch.zeros(len(tokenizer))
    out = checks.reference_bag_of_words(tokenizer, ["happy", "xylophone", "enjoy", "happy"], z, 2.0)
    boosted = {tokenizer.decode([i]) for i in (out != 0).nonzero().flatten().tolist()}
    assert boosted == {"happy", " happy", " enjoy"}
    assert set(out[out != 0].tolist()) == {2.0}
    bag = lk.steer.BagOfWords(tokenizer, ["happy", "xylophone", "enjoy"], 2.0)
    assert set((out != 0).nonzero().flatten().tolist()) <= set(bag.token_ids.tolist())
