"""labkit.scoreboard: a Method (model, template, controls, generator) and its scored row."""
import math

import pytest

import labkit as lk
from labkit import pplm, scoreboard, steer
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
