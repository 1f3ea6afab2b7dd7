"""Notebook 07's check: the Monte Carlo estimate of KL(π_method ‖ π_base) from samples.

The reference draws n continuations from the method itself -- `lk.generate(lm, prompt,
controls=controls, seed=seed + i, trace=True)`, its own controls and nothing else -- and
averages, over the samples, the log-ratio of the whole continuation,
Σ_t log q(x_t | x_<t) - log p(x_t | x_<t), q the distribution each token was drawn from
(`step.after`) and p the base model's at the same context (`labkit.metrics.log_ratios`).
It is unbiased for the sequence-level KL(q ‖ p) = E_{x~q}[log q(x) - log p(x)] ≥ 0 (Schulman
2020, "Approximating KL divergence", k1), *only* because x is drawn from q: samples taken with
an extra top-k or temperature come from another distribution, and the average then
estimates nothing in particular (it can even be negative).

The check runs on a small random model built on your model's tokenizer (2 layers, seeded),
so that it takes seconds: a near-uniform model over ~49k tokens, on which an extra top-k or
temperature changes the answer by nats, not by rounding.
"""
from __future__ import annotations

import torch

from ..controls import Temperature, TopK
from ..decoding import generate
from ..metrics import log_ratios, step_kls
from ..models import LM
from ._runner import Case, Check, Mistake, Variant, read_none


def reference_mc_kl(lm, base, prompt, controls, n, seed, max_new_tokens) -> float:
    """Mean over n samples x_i ~ π_method (seed + i) of log π_method(x_i) - log π_base(x_i)."""
    total = 0.0
    for i in range(n):
        _, steps = generate(lm, prompt, controls=controls, seed=seed + i,
                            max_new_tokens=max_new_tokens, trace=True)
        total += sum(log_ratios(steps, base))
    return total / n


def _sampled(extra=(), seeds=lambda seed, i: seed + i, score="ratio", per_token=False):
    """The reference with one mistake: extra controls while sampling, other seeds, another
    score per step, or an average per token instead of per sample."""
    def fn(lm, base, prompt, controls, n, seed, max_new_tokens):
        total, tokens = 0.0, 0
        for i in range(n):
            _, steps = generate(lm, prompt, controls=list(controls) + list(extra),
                                seed=seeds(seed, i), max_new_tokens=max_new_tokens, trace=True)
            if score == "ratio":
                total += sum(log_ratios(steps, base))
            elif score == "exact":
                total += sum(step_kls(steps, base))
            elif score == "before":                     # the model's own q, not the controlled
                ids = torch.tensor([s.token_id for s in steps])
                before = torch.stack([s.before.logprobs for s in steps])
                after = torch.stack([s.after.logprobs for s in steps])
                total += float((before - after).gather(1, ids[:, None]).sum()) + \
                    sum(log_ratios(steps, base))
            elif score == "p_before":                   # p from the method's model, not the base
                ids = torch.tensor([s.token_id for s in steps])[:, None]
                after = torch.stack([s.after.logprobs for s in steps]).gather(1, ids)
                before = torch.stack([s.before.logprobs for s in steps]).gather(1, ids)
                total += float((after - before).sum())
            elif score == "probs":
                ids = torch.tensor([s.token_id for s in steps])[:, None]
                q = torch.stack([s.after.probs for s in steps]).gather(1, ids)
                logp = torch.tensor(log_ratios(steps, base))[:, None]     # log q - log p
                total += float((q - q * torch.exp(-logp)).sum())
            tokens += len(steps)
        return total / (tokens if per_token else n)
    return fn


MC_KL_VARIANTS = [
    Variant("sign", "sign flipped",
            "the estimate is log π_method(x) - log π_base(x) for x drawn from the *method*: "
            "log q first (a KL is ≥ 0 in expectation; yours is negative)",
            fns=[lambda *a: -reference_mc_kl(*a)]),
    Variant("top_k", "samples taken with top-k",
            "sample with the method's own controls only: an extra top-k draws from another "
            "distribution (and its log q), so the average no longer estimates KL(π_method ‖ "
            "π_base) -- a KL needs samples at temperature 1 with no truncation",
            fns=[_sampled(extra=[TopK(k)]) for k in (10, 20, 40, 50)]),
    Variant("temperature", "samples taken with a temperature",
            "sample with the method's own controls only: an extra temperature draws from "
            "another distribution, so the average no longer estimates the method's KL",
            fns=[_sampled(extra=[Temperature(t)]) for t in (0.7, 0.8, 0.5)]),
    Variant("before", "log q read before the controls",
            "log q is the log-probability of the token under the distribution it was drawn "
            "from, after the controls: step.after, not step.before (the model's own)",
            fns=[_sampled(score="before")]),
    Variant("per_token", "averaged per token",
            "sum the log-ratios over each sample's tokens (the log-ratio of the whole "
            "sequence), then average over the n samples -- not over all tokens",
            fns=[_sampled(per_token=True)]),
    Variant("exact_steps", "the exact per-step KL summed",
            "that is KL(q_t ‖ p_t) computed exactly at each step: a fine estimator (lower "
            "variance), but the exercise asks for the Monte Carlo one, log q(x_t) - log p(x_t) "
            "of the token drawn",
            fns=[_sampled(score="exact")]),
    Variant("same_seed", "every sample drawn with the same seed",
            "draw sample i with seed + i: with one seed for all, the n samples are one sample "
            "n times", fns=[_sampled(seeds=lambda seed, i: seed)]),
    Variant("p_before", "log p read from the method's own model",
            "log p is the *base* model's log-probability at the same context "
            "(lk.metrics.base_logits(base, steps), or lk.metrics.log_ratios): step.before is "
            "the method's model before the controls, which is not the base when the method "
            "is an adapter", fns=[_sampled(score="p_before")]),
    Variant("summed", "summed over the samples, not averaged",
            "divide the total by n: the estimate is the *mean* log-ratio over the n samples",
            fns=[lambda *a: reference_mc_kl(*a) * a[4]]),
    Variant("probabilities", "probabilities instead of log-probabilities",
            "use the log-probabilities, log q(x_t) - log p(x_t), not q(x_t) - p(x_t)",
            fns=[_sampled(score="probs")]),
]


def _read_number(out, *args):
    read_none(out)
    if isinstance(out, torch.Tensor):
        if out.numel() != 1:
            raise Mistake(f"return one number, the mean over the samples -- you returned a "
                          f"tensor of shape {tuple(out.shape)} (one value per sample or token? "
                          f"average them)", "not_summed")
        out = out.detach().cpu().item()
    if isinstance(out, (list, tuple)):
        raise Mistake(f"return one number, the mean over the samples -- you returned "
                      f"{len(out)} values (one per sample? average them)", "not_summed")
    if isinstance(out, (str, bytes, bool)) or not hasattr(out, "__float__"):
        raise Mistake(f"return one number (a float), not {type(out).__name__}", "type")
    return float(out)


def small_model(lm, seed: int = 0) -> LM:
    """A 2-layer random Llama on `lm`'s tokenizer (seeded, the caller's RNG untouched)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = lm.tokenizer
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=128, tie_word_embeddings=True,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config).eval()
    return LM(model=model, tokenizer=tok, name=f"check-small-random-llama-{seed}")


def _cases(lm) -> list[Case]:
    small = small_model(lm)
    from ..steer import LogitBias
    ids = small.tokenizer(" happy", add_special_tokens=False).input_ids
    return [
        Case("temperature 0.5 on a small random model, prompt 'Once upon a time', n=4, seed=0, "
             "3 tokens", (small, small, "Once upon a time", [Temperature(0.5)], 4, 0, 3)),
        Case("a method that is top-k 300 itself, n=4, seed=1, 3 tokens",
             (small, small, "The weather today is", [TopK(300)], 4, 1, 3)),
        Case("a logit bias of +10 on ' happy', n=6, seed=2, 4 tokens",
             (small, small, "My day was", [LogitBias({ids[0]: 10.0})], 6, 2, 4)),
        Case("another model as the method (as an adapter is), no controls, n=4, seed=3, "
             "3 tokens", (small_model(lm, seed=1), small, "Once upon a time", [], 4, 3, 3)),
    ]


def _facts(got, want, *args):
    if got < 0 <= want:
        return ["your estimate is negative: one sample's log-ratio can be, but the mean of "
                "log q - log p over samples drawn from q estimates a KL, which is ≥ 0"]
    return []


MC_KL = Check("check_mc_kl", reference=reference_mc_kl, cases=_cases, read=_read_number,
              same=lambda got, want: abs(got - want) <= 1e-3 * max(1.0, abs(want)),
              variants=MC_KL_VARIANTS, facts=_facts,
              show=lambda want, got, *a: (f"{want:.4f}", f"{got:.4f}" if isinstance(got, float)
                                          else repr(got)))


def check_mc_kl(fn, lm=None) -> bool:
    """Check `fn(lm, base, prompt, controls, n, seed, max_new_tokens) -> float`: the mean over
    n samples (sample i drawn by `lk.generate(lm, prompt, controls=controls, seed=seed + i,
    max_new_tokens=..., trace=True)`) of Σ_t log q(x_t) - log p(x_t), q the distribution each
    token was drawn from and p the base model's. `lm` (default lk.load()) lends its tokenizer
    to the small random model the check runs on."""
    if lm is None:
        from ..models import load
        lm = load()
    return MC_KL.check(fn, lm=lm)
