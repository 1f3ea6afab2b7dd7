"""labkit.scoreboard: a Method (model, template, controls, generator) and its scored row."""
import copy
import math
import statistics

import pytest
import torch

import labkit as lk
from labkit import metrics, pplm, scoreboard, steer
from labkit.scoreboard import Method


def test_method_generates_as_its_generator_does(tiny_lm):
    top = [lk.controls.TopK(10)]
    m = Method("top-10", tiny_lm, controls=top)
    assert m.generate("Once upon a time", seed=2, max_new_tokens=5) == \
        lk.generate(tiny_lm, "Once upon a time", controls=top, seed=2, max_new_tokens=5)
    text, steps = m.generate("Once upon a time", seed=2, max_new_tokens=5, trace=True)
    assert len(steps) >= 1 and isinstance(text, str)
    framed = Method("framed", tiny_lm, template="Be kind. {prompt}")
    assert framed.prompt_for("Hi {there}") == "Be kind. Hi {there}"     # braces in a prompt
    _, steps = framed.generate("Once upon a time", seed=0, max_new_tokens=2, trace=True)
    assert steps[0].after.context.tolist() == tiny_lm.encode("Be kind. Once upon a time").tolist()


def test_method_takes_pplm_and_its_options(tiny_lm):
    bag = steer.BagOfWords(tiny_lm.tokenizer, steer.POSITIVE_WORDS, 1.0)
    m = Method("PPLM", tiny_lm, generator=pplm.generate, options=dict(bag=bag, step_size=0.2),
               meta={"strength": 0.2})
    assert m.generate("Once upon a time", seed=1, max_new_tokens=4) == pplm.generate(
        tiny_lm, "Once upon a time", bag=bag, step_size=0.2, seed=1, max_new_tokens=4)
    assert "pplm.generate" in repr(m)


@pytest.mark.parametrize("kw,err", [
    (dict(name=""), ValueError), (dict(template="no slot"), ValueError),
    (dict(generator="lk.generate"), TypeError), (dict(controls=[3]), TypeError),
    (dict(options={"seed": 1}), ValueError), (dict(chat="yes"), ValueError),
])
def test_method_bad_input(tiny_lm, kw, err):
    with pytest.raises(err):
        Method(**{"name": "m", "lm": tiny_lm, **kw})
    with pytest.raises(TypeError, match="labkit LM"):
        Method("m", tiny_lm.model)


def test_run_scores_a_row_with_kl_from_the_base(tiny_lm):
    prompts, kw = ["Once upon a time", "The weather today is"], dict(seeds=[0, 1],
                                                                     max_new_tokens=4)
    plain = scoreboard.run(Method("plain", tiny_lm), prompts, base=tiny_lm, **kw)
    assert plain["method"] == "plain" and len(plain["texts"]) == 4
    assert plain["KL from base"] == pytest.approx(0.0, abs=1e-6)
    for key in ("positive (lexicon)", "perplexity", "distinct-2", "seconds/token",
                "training seconds", "labels used"):
        assert key in plain and not (isinstance(plain[key], float) and math.isinf(plain[key]))
    framed = scoreboard.run(Method("framed", tiny_lm, template="Be cheerful. {prompt}",
                                   meta={"strength": 1}), prompts, base=tiny_lm, **kw)
    assert framed["strength"] == 1
    assert framed["KL from base"] > 1e-4                    # the template moved the model
    topk = scoreboard.run(Method("top-10", tiny_lm, controls=[lk.controls.TopK(10)]), prompts,
                          base=tiny_lm, bag_words=["happy"], **kw)
    assert topk["KL from base"] > 1.0 and "bag rate" in topk  # top-10 of ~uniform: log(4915)
    with pytest.raises(TypeError, match="Method"):
        scoreboard.run(lambda p, s: "", prompts, base=tiny_lm)


def test_method_takes_a_constrained_generator(tiny_lm):
    from labkit import pool
    options = [" Paris", " Rome"]
    m = Method("pool", tiny_lm, generator=pool.generate_constrained,
               options={"pool": pool.OneOf(tiny_lm.tokenizer, options)})
    assert m.generate("The capital of Italy is", seed=0, max_new_tokens=8) in options


# --- evaluate: the scoreboard as a DataFrame ---------------------------------------------------

PROMPTS = ["Once upon a time", "The weather today is"]


def _mask_everything(input_ids, scores):
    return torch.full_like(scores, float("-inf"))       # no token allowed: generation must fail


def test_evaluate_is_one_row_per_method_with_every_column(tiny_lm):
    methods = [Method("plain", tiny_lm), Method("top-10", tiny_lm, controls=[lk.controls.TopK(10)]),
               Method("framed", tiny_lm, template="Be cheerful. {prompt}", labels_used=3,
                      meta={"family": "prompt", "strength": 1})]
    df = scoreboard.evaluate(methods, PROMPTS, base=tiny_lm, seeds=[0, 1], max_new_tokens=4,
                             progress=False)
    assert list(df.index) == ["plain", "top-10", "framed"] and df.index.name == "method"
    assert list(df.columns) == ["family", "strength"] + scoreboard.COLUMNS   # meta first
    assert df.loc["framed", "strength"] == 1 and df.loc["plain", "family"] != "prompt"
    assert df.attrs["judge"] == scoreboard.TEXTBLOB.name            # not VADER, which steers
    assert (df["error"] == "").all()
    plain, top = df.loc["plain"], df.loc["top-10"]
    # sampling from the base itself: log q(x) = log p(x) on every sample, exactly
    assert plain["KL (MC)"] == pytest.approx(0.0, abs=1e-5)
    assert plain["KL (exact)"] == pytest.approx(0.0, abs=1e-5)
    # top-10 of a near-uniform model: every step's KL is about log(V / 10), sample or not
    assert top["KL (exact)"] > 5 and top["KL (MC)"] == pytest.approx(top["KL (exact)"], rel=0.05)
    assert df.loc["framed", "KL (exact)"] > 1e-4 and df.loc["framed", "labels used"] == 3
    assert plain["perplexity"] > 1000             # random weights: close to the vocabulary size
    assert 0.0 < plain["time ×"] < 10 and plain["extra parameters"] == 0
    for col in ("success", "distinct-1", "distinct-2", "repetition"):
        assert ((df[col] >= 0) & (df[col] <= 1)).all(), col
    assert isinstance(plain["sample"], str)
    assert set(df.attrs["seconds"]) == {"generation", "scoring", "baseline"}
    assert df.attrs["seconds"]["baseline"] == 0.0         # "plain" is the baseline: not run twice
    alone = scoreboard.evaluate(methods[1:], PROMPTS, base=tiny_lm, max_new_tokens=4,
                                progress=False)
    assert alone.attrs["seconds"]["baseline"] > 0 and list(alone.index) == ["top-10", "framed"]


def test_mc_kl_is_unbiased_for_the_exact_kl_along_the_same_samples(tiny_lm):
    """Σ_t log q(x_t) - log p(x_t) over the method's own samples and Σ_t KL(q_t ‖ p_t) have the
    same expectation (the tower rule): their means over 80 samples agree within 4 standard
    errors of the noisier, Monte Carlo one; and the evaluate() columns are these means."""
    cold = [lk.controls.Temperature(0.3)]
    mc, exact = [], []
    for seed in range(40):
        for prompt in PROMPTS:
            _, steps = lk.generate(tiny_lm, prompt, controls=cold, seed=seed, max_new_tokens=4,
                                   trace=True)
            mc += metrics.log_ratios(steps, tiny_lm)
            exact += metrics.step_kls(steps, tiny_lm)
    se = statistics.stdev(mc) / math.sqrt(len(mc))
    assert statistics.fmean(exact) > 0.01
    assert abs(statistics.fmean(mc) - statistics.fmean(exact)) < 4 * se
    df = scoreboard.evaluate([Method("T=0.3", tiny_lm, controls=cold)], PROMPTS, base=tiny_lm,
                             seeds=range(40), max_new_tokens=4, progress=False)
    assert df.loc["T=0.3", "KL (MC)"] == pytest.approx(statistics.fmean(mc), rel=1e-4)
    assert df.loc["T=0.3", "KL (exact)"] == pytest.approx(statistics.fmean(exact), rel=1e-4)


def test_evaluate_a_failing_method_and_a_nan_judge_fill_the_error_column(tiny_lm):
    broken = Method("no token allowed", tiny_lm, controls=[_mask_everything])
    df = scoreboard.evaluate([broken, Method("plain", tiny_lm)], PROMPTS, base=tiny_lm,
                             max_new_tokens=3, progress=False)
    assert "masked every token" in df.loc["no token allowed", "error"]
    assert math.isnan(df.loc["no token allowed", "success"])
    assert df.loc["plain", "error"] == "" and not math.isnan(df.loc["plain", "perplexity"])
    nan_judge = scoreboard.Judge("broken judge", lambda text: float("nan"))
    df = scoreboard.evaluate([Method("plain", tiny_lm)], PROMPTS, base=tiny_lm, judge=nan_judge,
                             max_new_tokens=3, progress=False)
    assert "'broken judge' returned NaN for 2 of 2 texts" in df.loc["plain", "error"]
    assert math.isnan(df.loc["plain", "success"]) and df.loc["plain", "perplexity"] > 1
    assert df.attrs["judge"] == "broken judge"
    named = scoreboard.evaluate([Method("plain", tiny_lm)], PROMPTS[:1], base=tiny_lm,
                                judge=lambda text: 1.0, max_new_tokens=2, progress=False)
    assert named.loc["plain", "success"] == 1.0


def test_evaluate_refuses_a_model_on_another_base(tiny_lm):
    from transformers import LlamaForCausalLM

    from labkit.models import LM
    torch.manual_seed(1)
    other = LM(model=LlamaForCausalLM(tiny_lm.model.config).eval(), tokenizer=tiny_lm.tokenizer,
               name="another-tiny-llama")
    df = scoreboard.evaluate([Method("elsewhere", other), Method("plain", tiny_lm)], PROMPTS,
                             base=tiny_lm, max_new_tokens=2, progress=False)
    assert "is not built on the base it is scored against" in df.loc["elsewhere", "error"]
    assert df.loc["plain", "error"] == ""
    same = LM(model=copy.deepcopy(tiny_lm.model), tokenizer=tiny_lm.tokenizer, name="a copy")
    df = scoreboard.evaluate([Method("a copy", same)], PROMPTS, base=tiny_lm, max_new_tokens=2,
                             progress=False)
    assert df.loc["a copy", "error"] == ""               # the same weights, loaded twice: fine


@pytest.mark.parametrize("prompts,match", [([], "non-empty list"), ([""], "non-empty prompts"),
                                           (["ok", "  "], "non-empty prompts")])
def test_evaluate_bad_prompts(tiny_lm, prompts, match):
    with pytest.raises(ValueError, match=match):
        scoreboard.evaluate([Method("plain", tiny_lm)], prompts, base=tiny_lm, progress=False)


def test_evaluate_bad_input(tiny_lm):
    with pytest.raises(ValueError, match="at least one Method"):
        scoreboard.evaluate([], PROMPTS, base=tiny_lm)
    with pytest.raises(ValueError, match="share a name"):
        scoreboard.evaluate([Method("a", tiny_lm), Method("a", tiny_lm)], PROMPTS, base=tiny_lm)
    with pytest.raises(TypeError, match="Method"):
        scoreboard.evaluate(["plain"], PROMPTS, base=tiny_lm)
    with pytest.raises(TypeError, match="judge"):
        scoreboard.evaluate([Method("a", tiny_lm)], PROMPTS, base=tiny_lm, judge="TextBlob")
    with pytest.raises(ValueError, match="seed"):
        scoreboard.evaluate([Method("a", tiny_lm)], PROMPTS, base=tiny_lm, seeds=[])



def test_evaluate_adds_judged_columns_and_judges_that_read_the_prompt(tiny_lm):
    """A label task's validity and accuracy: `also` adds a column per judge, and a judge with
    with_prompt=True gets the prompt of each text (its right answer)."""
    from labkit import pool
    labels = [" yes", " no"]
    gold = {"Is the sky blue?": " yes", "Is fire cold?": " no"}
    m = Method("pool", tiny_lm, generator=pool.generate_constrained,
               options={"pool": pool.OneOf(tiny_lm.tokenizer, labels)})
    seen, scores = [], []

    def right(prompt, text):
        seen.append(prompt)
        scores.append(float(text == gold[prompt]))
        return scores[-1]

    df = scoreboard.evaluate([m], list(gold), base=tiny_lm, seeds=[0, 1], max_new_tokens=4,
                             progress=False, also={
                                 "valid": lambda text: float(text in labels),
                                 "accuracy": scoreboard.Judge("gold label", right,
                                                              with_prompt=True)})
    cols = list(df.columns)
    assert cols[:3] == ["success", "valid", "accuracy"] and cols[3:] == scoreboard.COLUMNS[1:]
    assert df.loc["pool", "valid"] == 1.0 and df.loc["pool", "error"] == ""
    assert seen == [p for p in gold for _ in range(2)]          # each text with its own prompt
    assert df.loc["pool", "accuracy"] == pytest.approx(statistics.fmean(scores))
    with pytest.raises(ValueError, match="one prompt per text"):
        scoreboard.Judge("g", right, with_prompt=True)(["a"])
