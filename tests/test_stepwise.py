"""labkit.stepwise: the exact sequence distribution of a per-step control on the toy world."""
import math

import pytest
import torch

from labkit import bayes, stepwise, toy


@pytest.fixture(scope="module")
def world():
    return toy.make_world()


def _naive(world, step):
    """π_control(x) = Π_t step(π(· | x_<t) from the model, x_<t)[x_t], one model call per
    prefix (the definition), for every sequence -> [N]."""
    out, cache = [], {}
    for seq in world.sequences().tolist():
        total = 0.0
        for t in range(world.length):
            prefix = tuple(seq[:t])
            if prefix not in cache:
                logits = world.next_token(world.text(prefix)).logprobs.double()
                cache[prefix] = step(logits, prefix)
            total += float(cache[prefix][seq[t]])
        out.append(total)
    return torch.tensor(out, dtype=torch.float64)


def test_conditionals_are_the_model_s_next_word_distributions(world):
    lp, v, n = world.log_prob(), len(world.vocab), world.length
    conds = stepwise.conditionals(lp, v, n)
    assert [tuple(c.shape) for c in conds] == [(v,) * t for t in range(1, n + 1)]
    assert torch.allclose(stepwise.from_conditionals(conds), lp, atol=1e-12)
    rain, snow = world.vocab.index("rain"), world.vocab.index("snow")
    for prefix in ("", "sun", "rain snow", "fog fog fog"):
        ids = tuple(world.encode(prefix).tolist())
        model = world.next_token(prefix).logprobs.double()
        assert torch.allclose(conds[len(ids)][ids], model, atol=1e-4), prefix
    assert float(conds[1][rain, snow]) < 0                          # a log-probability


def test_the_pool_is_the_naive_product_of_masked_renormalised_steps(world):
    lp, v, n = world.log_prob(), len(world.vocab), world.length
    seqs = world.sequences()
    sun = world.vocab.index("sun")
    valid = seqs[:, -1] == world.vocab.index("snow")                 # the last day is snow

    def pool_step(logits, prefix):
        allowed = torch.full_like(logits, -math.inf)
        if len(prefix) < n - 1:
            allowed[:] = 0.0                                         # snow is still reachable
        else:
            allowed[world.vocab.index("snow")] = 0.0
        return torch.log_softmax(logits + allowed, -1)

    exact = stepwise.pool(lp, valid, v, n)
    assert torch.allclose(exact, _naive(world, pool_step), atol=1e-4)
    assert float(exact.exp()[valid].sum()) == pytest.approx(1.0)    # every sample is valid
    target = bayes.condition(lp, valid)
    # ... but it is not the conditional: the first three days stay the base's
    assert float(bayes.kl(exact, target)) > 0.05
    no_sun = ~(seqs == sun).any(-1)
    forbid = torch.zeros(v)
    forbid[sun] = -math.inf
    assert torch.allclose(stepwise.pool(lp, no_sun, v, n), stepwise.logit_bias(lp, forbid, v, n))


def test_a_logit_bias_is_the_naive_product_and_not_the_sequence_tilt(world):
    lp, v, n = world.log_prob(), len(world.vocab), world.length
    bias = torch.zeros(v, dtype=torch.float64)
    bias[world.vocab.index("rain")] = 1.0
    exact = stepwise.logit_bias(lp, bias, v, n)
    assert torch.allclose(exact, _naive(world, lambda lg, _: torch.log_softmax(lg + bias, -1)),
                          atol=1e-4)
    tilted = bayes.tilt(lp, stepwise.token_sum(world.sequences(), bias), 1.0)
    assert float(bayes.kl(exact, tilted)) > 0.05                     # the same reward, another law
    assert torch.allclose(stepwise.logit_bias(lp, torch.zeros(v), v, n), lp, atol=1e-12)


def test_bad_input(world):
    lp, v, n = world.log_prob(), len(world.vocab), world.length
    with pytest.raises(ValueError, match="one log-probability per sequence"):
        stepwise.conditionals(lp[:10], v, n)
    with pytest.raises(ValueError, match="no sequence is valid"):
        stepwise.pool(lp, torch.zeros(len(lp), dtype=torch.bool), v, n)
    with pytest.raises(ValueError, match="one number per word"):
        stepwise.logit_bias(lp, torch.zeros(v + 1), v, n)
    with pytest.raises(ValueError, match="NaN"):
        stepwise.logit_bias(lp, torch.full((v,), float("nan")), v, n)
    with pytest.raises(ValueError, match="forbids every word"):
        stepwise.logit_bias(lp, torch.full((v,), -math.inf), v, n)
