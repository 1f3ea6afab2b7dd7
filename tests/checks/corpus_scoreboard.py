"""Notebook 07's exercise, answered the way learners answer it: the Monte Carlo KL of a method
from its own samples, written from the exercise text, each with the verdict key it must get."""
import torch

import labkit as lk
from labkit.checks._corpus import Entry


def todo(*args):
    raise NotImplementedError


def _log_p(base, steps):
    """The base's log-probability of each drawn token (the exercise's hint)."""
    logits = lk.metrics.base_logits(base, steps)                       # steps vocab
    ids = torch.tensor([s.token_id for s in steps])
    return logits.log_softmax(-1)[torch.arange(len(steps)), ids]


def _log_q(steps):
    return torch.stack([s.after.logprobs[s.token_id] for s in steps])


def loop(lm, base, prompt, controls, n, seed, max_new_tokens):
    total = 0.0
    for i in range(n):
        _, steps = lk.generate(lm, prompt, controls=controls, seed=seed + i,
                               max_new_tokens=max_new_tokens, trace=True)
        total += float((_log_q(steps) - _log_p(base, steps)).sum())
    return total / n


def with_log_ratios(lm, base, prompt, controls, n, seed, max_new_tokens):
    samples = [lk.generate(lm, prompt, controls=controls, seed=seed + i,
                           max_new_tokens=max_new_tokens, trace=True)[1] for i in range(n)]
    return sum(sum(lk.metrics.log_ratios(s, base)) for s in samples) / len(samples)


def _per_sample(lm, base, prompt, controls, n, seed, max_new_tokens, extra=(), seed_of=None):
    out = []
    for i in range(n):
        _, steps = lk.generate(lm, prompt, controls=list(controls) + list(extra),
                               seed=seed + i if seed_of is None else seed_of(seed, i),
                               max_new_tokens=max_new_tokens, trace=True)
        out.append(float((_log_q(steps) - _log_p(base, steps)).sum()))
    return out


def flipped(lm, base, prompt, controls, n, seed, max_new_tokens):
    return -sum(_per_sample(lm, base, prompt, controls, n, seed, max_new_tokens)) / n


def with_top_k(lm, base, prompt, controls, n, seed, max_new_tokens):
    extra = [lk.controls.TopK(50)]                       # "sampling looks better with top-k"
    return sum(_per_sample(lm, base, prompt, controls, n, seed, max_new_tokens, extra)) / n


def with_temperature(lm, base, prompt, controls, n, seed, max_new_tokens):
    extra = [lk.controls.Temperature(0.7)]               # the lab's usual sampling temperature
    return sum(_per_sample(lm, base, prompt, controls, n, seed, max_new_tokens, extra)) / n


def q_before(lm, base, prompt, controls, n, seed, max_new_tokens):
    total = 0.0
    for i in range(n):
        _, steps = lk.generate(lm, prompt, controls=controls, seed=seed + i,
                               max_new_tokens=max_new_tokens, trace=True)
        logq = torch.stack([s.before.logprobs[s.token_id] for s in steps])
        total += float((logq - _log_p(base, steps)).sum())
    return total / n


def p_before(lm, base, prompt, controls, n, seed, max_new_tokens):
    total = 0.0
    for i in range(n):
        _, steps = lk.generate(lm, prompt, controls=controls, seed=seed + i,
                               max_new_tokens=max_new_tokens, trace=True)
        logp = torch.stack([s.before.logprobs[s.token_id] for s in steps])   # lm's, not base's
        total += float((_log_q(steps) - logp).sum())
    return total / n


def per_token(lm, base, prompt, controls, n, seed, max_new_tokens):
    ratios = []
    for i in range(n):
        _, steps = lk.generate(lm, prompt, controls=controls, seed=seed + i,
                               max_new_tokens=max_new_tokens, trace=True)
        ratios += (_log_q(steps) - _log_p(base, steps)).tolist()
    return sum(ratios) / len(ratios)


def exact_steps(lm, base, prompt, controls, n, seed, max_new_tokens):
    total = 0.0
    for i in range(n):
        _, steps = lk.generate(lm, prompt, controls=controls, seed=seed + i,
                               max_new_tokens=max_new_tokens, trace=True)
        total += sum(lk.metrics.step_kls(steps, base))
    return total / n


def one_seed(lm, base, prompt, controls, n, seed, max_new_tokens):
    return sum(_per_sample(lm, base, prompt, controls, n, seed, max_new_tokens,
                           seed_of=lambda s, i: s)) / n


def summed(lm, base, prompt, controls, n, seed, max_new_tokens):
    return sum(_per_sample(lm, base, prompt, controls, n, seed, max_new_tokens))


def in_probabilities(lm, base, prompt, controls, n, seed, max_new_tokens):
    total = 0.0
    for i in range(n):
        _, steps = lk.generate(lm, prompt, controls=controls, seed=seed + i,
                               max_new_tokens=max_new_tokens, trace=True)
        total += float((_log_q(steps).exp() - _log_p(base, steps).exp()).sum())
    return total / n


def seeds_from_one(lm, base, prompt, controls, n, seed, max_new_tokens):
    return sum(_per_sample(lm, base, prompt, controls, n, seed, max_new_tokens,
                           seed_of=lambda s, i: s + i + 1)) / n          # seed + 1 .. seed + n


def every_sample(lm, base, prompt, controls, n, seed, max_new_tokens):
    return _per_sample(lm, base, prompt, controls, n, seed, max_new_tokens)   # forgot the mean


def as_tensor(lm, base, prompt, controls, n, seed, max_new_tokens):
    return torch.tensor(_per_sample(lm, base, prompt, controls, n, seed, max_new_tokens))


def forgot_return(lm, base, prompt, controls, n, seed, max_new_tokens):
    estimate = sum(_per_sample(lm, base, prompt, controls, n, seed, max_new_tokens)) / n  # noqa: F841


def wrong_attribute(lm, base, prompt, controls, n, seed, max_new_tokens):
    _, steps = lk.generate(lm, prompt, controls=controls, seed=seed, trace=True)
    return sum(s.logprob for s in steps)                 # Step has .prob, not .logprob


CORPUS = {
    "check_mc_kl": [
        Entry("loop", loop, "passed", "correct"),
        Entry("with_log_ratios", with_log_ratios, "passed", "correct, with lk.metrics"),
        Entry("flipped", flipped, "sign", "log p - log q"),
        Entry("with_top_k", with_top_k, "top_k", "samples drawn with an extra TopK(50)"),
        Entry("with_temperature", with_temperature, "temperature", "samples at temperature 0.7"),
        Entry("q_before", q_before, "before", "log q from step.before"),
        Entry("p_before", p_before, "p_before", "log p from step.before, not the base"),
        Entry("per_token", per_token, "per_token", "the mean over all tokens"),
        Entry("exact_steps", exact_steps, "exact_steps", "Σ exact per-step KL"),
        Entry("one_seed", one_seed, "same_seed", "every sample with the same seed"),
        Entry("summed", summed, "summed", "no division by n"),
        Entry("in_probabilities", in_probabilities, "probabilities", "q - p, not logs"),
        Entry("seeds_from_one", seeds_from_one, "unknown", "seeds seed+1 .. seed+n"),
        Entry("every_sample", every_sample, "not_summed", "a list of per-sample values"),
        Entry("as_tensor", as_tensor, "not_summed", "a tensor of per-sample values"),
        Entry("forgot_return", forgot_return, "none", "no return"),
        Entry("wrong_attribute", wrong_attribute, "raised", "Step.logprob does not exist"),
        Entry("todo", todo, "not_attempted", "not attempted"),
    ],
}
