"""Scoring controlled generations: attribute success, fluency, diversity, distance, cost.

The scoreboard of PPLM's tables (Dathathri et al. 2020, Table 3-4), reused by notebook 07
through `labkit.scoreboard` (which runs a method and calls `score`):

* attribute success -- `bag_rate` (share of texts using a bag word), `lexicon_positive`
  (share judged positive by the VADER lexicon, `labkit.lexicon`; an outside judge that no
  control optimises directly), or a discriminator's mean probability (`disc_score`);
* fluency -- `fluency`: mean perplexity of the continuations under the *base* model
  (exp of the mean negative log-likelihood per token; lower is more fluent);
* diversity -- `distinct_n`: distinct n-grams / all n-grams of each text (Li et al. 2016,
  "A Diversity-Promoting Objective Function for Neural Conversation Models", §4.1),
  averaged over the texts; `repetition`: seq-rep-4 (Welleck et al. 2020);
* distance from the base model -- `mean_kl`: the mean over generated steps of
  KL(sampled-from ‖ base) in nats, the base model read at the same context (`base=`), or
  KL(after ‖ before), the controls' own distance, without it; `log_ratios`: the Monte Carlo
  estimate of the sequence-level KL, log q(x) - log p(x) along a sample drawn from q;
* cost -- `seconds_per_token` and `cost_ratio`: seconds per generated token, as a ratio to
  plain generation, timed interleaved (`interleaved`, the lab's one timing helper) so that
  machine load hits both sides alike.

Left out on purpose: MAUVE, human ratings, and external fluency judges (a bigger LM): the
base model is the only judge the lab ships.
"""
from __future__ import annotations

import math
import re
import statistics
import sys
import time

import torch

from .discriminator import discriminator_probs
from .dist import forward as run_model
from .dist import kl, perplexity
from .lexicon import lexicon_label, lexicon_positive, sentiment  # noqa: F401  (the judges)
from .validate import whole

NAN = float("nan")

# --- attribute success ------------------------------------------------------------------------


def words(text: str) -> list[str]:
    """Lower-cased words of `text` (letters, digits and apostrophes)."""
    return re.findall(r"[a-z0-9']+", text.lower())


def bag_rate(texts, bag_words) -> float:
    """Share of texts containing at least one word of the bag (whole words, any case)."""
    bag = {w.lower().strip() for w in bag_words}
    return sum(bool(bag & set(words(t))) for t in texts) / max(len(texts), 1)


def bag_frequency(text: str, bag_words) -> float:
    """Share of the words of `text` that are bag words (1.0 is pure regurgitation)."""
    bag = {w.lower().strip() for w in bag_words}
    ws = words(text)
    return sum(w in bag for w in ws) / max(len(ws), 1)


def disc_score(lm, disc, texts, target=1) -> float:
    """Mean probability of class `target` under a `labkit.discriminator.Discriminator`
    (empty texts are skipped; NaN if none is left)."""
    texts = [t for t in texts if t.strip()]
    if not texts:
        return NAN
    return float(discriminator_probs(lm, disc, texts)[:, disc.target_index(target)].mean())


# --- fluency and diversity ----------------------------------------------------------------------


def fluency(lm, prompts, texts, *, chat: bool = False) -> float:
    """Mean perplexity of each continuation given its prompt, under the base model `lm`
    (empty continuations are skipped; NaN if none is left). `prompts` is one prompt for all
    texts or one per text; `chat=True` wraps each prompt in the chat template, as
    `lk.perplexity(..., chat=True)` does."""
    texts = list(texts)
    prompts = [prompts] * len(texts) if isinstance(prompts, str) else list(prompts)
    if len(prompts) != len(texts):
        raise ValueError(f"fluency needs one prompt per text (or one prompt for all): got "
                         f"{len(prompts)} prompts and {len(texts)} texts")
    ppl = [perplexity(lm, p, t, chat=chat) for p, t in zip(prompts, texts) if t.strip()]
    return statistics.fmean(ppl) if ppl else NAN


def distinct(text: str, n: int) -> float:
    """Distinct n-grams / all n-grams of the words of one text (1.0: no repetition); NaN for
    a text with fewer than n words (it has no n-gram)."""
    n = whole("n", n, low=1)
    ws = words(text)
    grams = [tuple(ws[i:i + n]) for i in range(len(ws) - n + 1)]
    return len(set(grams)) / len(grams) if grams else NAN


def distinct_n(texts, n: int) -> float:
    """Distinct-n of a set of texts: `distinct(text, n)` of each text, averaged over the texts
    that have an n-gram (a text shorter than n words is skipped, not counted as 0); NaN if
    none has one.

    The ratio is Li et al.'s (2016, §4.1). They, and PPLM, pool the n-grams of all samples of
    a setting, a figure that falls as samples are added (more texts, more shared n-grams),
    so rows with different numbers of texts would not compare; DExperts (Liu et al. 2021)
    pools the samples of each prompt and averages over the prompts, which is this figure
    when each prompt has one sample. Naive definition, one text at a time::

        mean(len(set(grams(t))) / len(grams(t)) for t in texts if grams(t))
    """
    if isinstance(texts, str):
        texts = [texts]
    n = whole("n", n, low=1)
    scores = [d for d in (distinct(t, n) for t in texts) if not math.isnan(d)]
    return statistics.fmean(scores) if scores else NAN


def repetition(texts, n: int = 4) -> float:
    """seq-rep-n (Welleck et al. 2020, "Neural Text Generation with Unlikelihood Training",
    §5): the share of a text's n-grams that repeat an earlier one, 1 - distinct(text, n),
    averaged over the texts that have an n-gram (NaN if none has). 0 is no repetition; a
    degenerate loop ("the the the ...") tends to 1."""
    if isinstance(texts, str):
        texts = [texts]
    n = whole("n", n, low=1)
    reps = [1.0 - d for d in (distinct(t, n) for t in texts) if not math.isnan(d)]
    return statistics.fmean(reps) if reps else NAN


# --- distance from the base model -----------------------------------------------------------------


def generations(steps) -> list[list]:
    """A flat list of traced steps (from one or several `generate(..., trace=True)` calls) split
    into generations: a step continues the one before when its context is that step's context
    plus the token drawn there."""
    groups = []
    for s in steps:
        ctx = s.after.context
        if ctx is None:
            raise ValueError("a step without its context: trace it with lk.generate(..., "
                             "trace=True)")
        if groups:
            prev = groups[-1][-1].after.context
            if (ctx.shape[1] == prev.shape[1] + 1 and int(ctx[0, -1]) == groups[-1][-1].token_id
                    and torch.equal(ctx[:, :-1], prev)):
                groups[-1].append(s)
                continue
        groups.append([s])
    return groups


def base_logits(base, steps, *, prompt: str | None = None, chat: bool = False) -> torch.Tensor:
    """The base model's next-token logits at each step of ONE generation -> [steps, vocab] on
    the CPU, from one teacher-forced pass over prompt + generated tokens (naive version: one
    `lk.next_token` per step). The prompt is the generation's own (its first context), or
    `prompt` (encoded by `base`, with `chat`) -- so that a method's prompt template counts
    as part of what it changed."""
    first, last = steps[0].after.context, steps[-1].after.context      # 1 seq, 1 seq'
    new = last[0, first.shape[1]:].tolist()                             # tokens drawn before the last step
    if prompt is None:
        head = first[0].tolist()
    else:
        head = base.encode(prompt, chat=chat, room=len(new) + 1)[0].tolist()
    ids = torch.tensor([head + new], device=base.device)                # 1 seq
    with torch.inference_mode():
        logits = run_model(base.model, ids).logits[0, len(head) - 1:]  # steps vocab
    return logits.float().cpu()


def step_kls(steps, base=None, *, prompt: str | None = None, chat: bool = False) -> list[float]:
    """KL in nats at each step of `generate(..., trace=True)` steps.

    With `base` (an LM): KL(step.after ‖ base), the distribution each token was sampled from
    against the base model's at the same context (`base_logits`: one pass per generation) --
    how far the whole method (controls, adapter, prompt) moved the model. `prompt` (then the
    steps must be one generation) replaces the generation's own prompt for the base: a
    method whose template adds a steering prefix is read against the bare prompt. Without
    `base`: KL(after ‖ before), the controls' own distance from the model that generated."""
    steps = list(steps)
    if base is None:
        if prompt is not None:
            raise ValueError("prompt= says what the base model reads: give base= too")
        return [s.after.kl(s.before) for s in steps]
    groups = generations(steps)
    if prompt is not None and len(groups) > 1:
        raise ValueError(f"prompt= is the prompt of one generation, but the steps hold "
                         f"{len(groups)}: call step_kls once per generation")
    out = []
    for group in groups:
        q = base_logits(base, group, prompt=prompt, chat=chat)          # steps vocab
        p = torch.stack([s.after.logits for s in group])                # steps vocab
        if p.shape != q.shape:
            raise ValueError(f"the steps have {p.shape[-1]} logits per token but the base model "
                             f"{q.shape[-1]}: compare models that share a vocabulary")
        out += kl(p, q).tolist()
    return out


def against_base(steps, base, *, prompt: str | None = None, chat: bool = False):
    """(log q(x_t), log p(x_t), KL(q_t ‖ p_t)), three [steps] tensors, for ONE generation from
    one teacher-forced pass of the base: q_t the distribution step t's token x_t was sampled
    from (`step.after`), p_t the base model's at the same context (`base_logits`; the bare
    `prompt` if given, so a method's template counts as what it changed)."""
    steps = list(steps)
    if not steps:
        raise ValueError("no steps to compare with the base: generate at least one token")
    if len(generations(steps)) > 1:
        raise ValueError("against_base reads ONE generation: call it once per generation")
    p = base_logits(base, steps, prompt=prompt, chat=chat)              # steps vocab
    q = torch.stack([s.after.logits for s in steps])                    # steps vocab
    if p.shape != q.shape:
        raise ValueError(f"the steps have {q.shape[-1]} logits per token but the base model "
                         f"{p.shape[-1]}: compare models that share a vocabulary")
    ids = torch.tensor([s.token_id for s in steps])[:, None]            # steps 1
    logq = torch.log_softmax(q, dim=-1).gather(1, ids)[:, 0]
    logp = torch.log_softmax(p, dim=-1).gather(1, ids)[:, 0]
    return logq, logp, kl(q, p)


def log_ratios(steps, base, *, prompt: str | None = None, chat: bool = False) -> list[float]:
    """log q(x_t) - log p(x_t) at each step of ONE generation (`against_base`). Their sum over
    a sequence x drawn from q is the Monte Carlo estimate of the sequence-level KL(q ‖ p) =
    E_x[log q(x) - log p(x)] (Schulman 2020, "Approximating KL divergence": the k1 estimator):
    unbiased only when x really was drawn from q -- with the method's own controls and
    nothing else (no extra temperature or top-k), which is why the scoreboard samples at
    temperature 1 with no truncation. One sample's sum can be negative; the mean is not, in
    expectation. `step_kls` takes each step's expectation exactly instead (lower variance)."""
    logq, logp, _ = against_base(steps, base, prompt=prompt, chat=chat)
    return (logq - logp).tolist()


def mean_kl(steps, base=None, *, prompt: str | None = None, chat: bool = False) -> float:
    """The mean of `step_kls` over all steps (nats; NaN for no steps): with `base`, the KL from
    the base model ("KL from base" on the scoreboard); without, KL(after ‖ before)."""
    kls = step_kls(steps, base, prompt=prompt, chat=chat)
    return statistics.fmean(kls) if kls else NAN


# --- cost ---------------------------------------------------------------------------------------


def peak_rss_gb() -> float:
    """The peak resident memory of this process so far, in GB (10^9 bytes): what a 2 GB
    limit such as mybinder.org's counts. NaN where the OS does not say (Windows)."""
    try:      # Linux: VmHWM starts afresh in a new program; getrusage keeps the peak of the
        for line in open("/proc/self/status"):     # process a subprocess was forked from
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    try:
        import resource
    except ImportError:
        return NAN
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e9 if sys.platform == "darwin" else peak * 1024 / 1e9     # bytes vs KiB


def interleaved(fns: dict, repeats: int = 3, *, warmup: bool = True) -> dict:
    """{name: [seconds of each round]} for the zero-argument callables `fns` {name: fn}, timed
    in interleaved rounds (the order rotates every round) after one untimed warm-up call of
    each, so that a machine's load and warm-up hit every side alike. The one timing helper of
    the lab: `cost_ratio` and every script in benchmarks/ use it."""
    if not fns:
        raise ValueError("nothing to time: give at least one function")
    names = list(fns)
    if warmup:
        for name in names:
            fns[name]()
    times = {name: [] for name in names}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def seconds_per_token(fn, n_tokens: int, repeats: int = 3) -> float:
    """Median seconds per token of `fn()`, which generates `n_tokens` tokens."""
    return statistics.median(interleaved({"fn": fn}, repeats, warmup=False)["fn"]) / n_tokens


def cost_ratio(fn, baseline, repeats: int = 3) -> float:
    """Median over interleaved rounds of time(fn) / time(baseline): both must generate the same
    number of tokens (use stop_at_eos=False). One warm-up call of each is not timed."""
    t = interleaved({"fn": fn, "baseline": baseline}, repeats)
    return statistics.median(a / b for a, b in zip(t["fn"], t["baseline"]))


# --- one row of the scoreboard --------------------------------------------------------------------


def score(lm, prompts, texts, *, chat: bool = False, bag_words=None, kls=None, disc=None,
          target=1) -> dict:
    """One row of the scoreboard for `texts` (continuations of `prompts`, one per text or one
    for all) scored under the base model `lm`: the figures above. `kls`, when given, are the
    per-step KLs from the base (`step_kls(steps, base=lm)`), averaged into "KL from base"."""
    row = {"positive (lexicon)": lexicon_positive(texts),
           "perplexity": fluency(lm, prompts, texts, chat=chat),
           "distinct-1": distinct_n(texts, 1), "distinct-2": distinct_n(texts, 2),
           "distinct-3": distinct_n(texts, 3)}
    if bag_words is not None:
        row["bag rate"] = bag_rate(texts, bag_words)
    if disc is not None:
        row["discriminator"] = disc_score(lm, disc, texts, target)
    if kls is not None:
        row["KL from base"] = statistics.fmean(kls) if len(kls) else NAN
    return row
