"""labkit.exact: every technique on the toy world against its exact target, in one table."""
import math
import time

import pytest
import torch

from labkit import bayes, exact, sft, stepwise, toy


def test_exact_table_compares_each_technique_with_the_target():
    base = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64).log()
    valid = torch.tensor([False, True, True, False])
    target = bayes.condition(base, valid)
    leaky = torch.tensor([0.1, 0.5, 0.3, 0.1], dtype=torch.float64).log()
    df = exact.exact_table(base, target, {
        "rejection sampling": exact.Exact(target, samples=10, seconds=0.1),
        "leaky": leaky, "base": base}, valid=valid, reward=valid.double())
    assert list(df.index) == ["rejection sampling", "leaky", "base"]
    rej = df.loc["rejection sampling"]
    assert rej["KL(target ‖ method)"] == pytest.approx(0) and rej["success"] == pytest.approx(1)
    assert rej["KL from base"] == pytest.approx(-math.log(0.5))    # conditioning costs log 1/π(c)
    assert rej["model samples"] == 10
    assert math.isinf(df.loc["leaky", "KL(method ‖ target)"])          # mass outside the condition
    assert df.loc["leaky", "success"] == pytest.approx(0.8) == df.loc["leaky", "expected reward"]
    assert df.loc["base", "KL from base"] == pytest.approx(0)
    with pytest.raises(ValueError, match="sum to"):
        exact.exact_table(base, target, {"bad": base + 0.1})
    with pytest.raises(ValueError, match="one per sequence"):
        exact.exact_table(base, target, {"bad": base[:2]})


def test_every_technique_on_the_toy_world_against_the_exact_conditional():
    """What notebook 07's toy-world table shows, measured: rejection sampling is the target,
    SFT on its samples gets close, RL with a large reward for the condition nearly so (it is
    the tilt, never quite the condition), the pool is valid but not the conditional (local
    renormalisation), and the logit bias is neither."""
    world = toy.make_world()
    lp, seqs, v, n = world.log_prob(), world.sequences(), len(world.vocab), world.length
    snow = world.vocab.index("snow")
    valid = seqs[:, -1] == snow
    target = bayes.condition(lp, valid)
    p_c = float(lp.exp()[valid].sum())
    rows = {"rejection sampling": exact.Exact(target, samples=round(1024 / p_c))}
    t0 = time.perf_counter()
    samples, _ = bayes.rejection_sample(world, lambda s: s[:, -1] == snow, 1024, seed=1)
    cfg = sft.SFTConfig(lora_r=None, max_steps=100, batch_size=128, learning_rate=1e-2)
    with toy.one_thread():
        tuned, _ = sft.finetune(world.as_lm(), [("", world.text(s)) for s in samples], cfg,
                                chat=False, progress=False)
    rows["SFT on 1024 filtered samples"] = exact.Exact(world.log_prob(tuned.model),
                                                      samples=round(1024 / p_c), labels=1024,
                                                      seconds=time.perf_counter() - t0)
    policy, _ = bayes.rl_finetune(world, lambda s: 4.0 * (s[:, -1] == snow).double(), 1.0,
                                  progress=False)
    rows["RL, reward 4·1[c], β = 1"] = exact.Exact(world.log_prob(policy))
    rows["token pool"] = exact.Exact(stepwise.pool(lp, valid, v, n))
    bias = torch.zeros(v, dtype=torch.float64)
    bias[snow] = 4.0
    rows["logit bias +4 on snow"] = exact.Exact(stepwise.logit_bias(lp, bias, v, n))
    rows["base"] = exact.Exact(lp)
    df = exact.exact_table(lp, target, rows, valid=valid)
    fwd = df["KL(target ‖ method)"]
    assert fwd["rejection sampling"] == pytest.approx(0, abs=1e-12)
    assert fwd["SFT on 1024 filtered samples"] < 0.1 < fwd["base"]
    assert fwd["RL, reward 4·1[c], β = 1"] < 0.15 and df.loc["RL, reward 4·1[c], β = 1", "success"] < 1
    assert math.isinf(df.loc["RL, reward 4·1[c], β = 1", "KL(method ‖ target)"])   # a nudge
    pool = df.loc["token pool"]
    # every pooled sample is valid, yet the pool is as far from π(x | c) as the base is close:
    # it keeps the first three days' base probabilities, where Bayes' rule reweights them
    assert pool["success"] == pytest.approx(1) and pool["KL(method ‖ target)"] > 0.5
    # +4 on snow at every step: the last day is nearly always snow, and so are the others
    bias_row = df.loc["logit bias +4 on snow"]
    assert 0.9 < bias_row["success"] < 1 and bias_row["KL(target ‖ method)"] > fwd["base"] / 2
    assert df.loc["rejection sampling", "KL from base"] == pytest.approx(-math.log(p_c))
