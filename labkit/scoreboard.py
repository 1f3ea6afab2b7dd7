"""A method, and its row on the scoreboard: what notebooks 06 and 07 compare.

A `Method` is everything that decides how a text is written, as one value:

* the model `lm` -- the base, or a model changed by training (an SFT/RL/DPO adapter);
* the prompt `template` -- "{prompt}" (the prompt as given), or a steering prefix around it;
* the `controls` -- logits processors applied at every step (bag of words, guidance, top-k);
* the `generator` and its keyword `options` -- `lk.generate` (the default), `pplm.generate`
  with `bag=`/`step_size=`, or a constrained generator (`pool.generate_constrained` with
  `pool=`): any function called as `generator(lm, prompt, controls=, max_new_tokens=, seed=,
  chat=, trace=, **options)` that returns the text, or (text, steps) with `trace=True`;
* `chat` -- whether the prompt is wrapped in the model's chat template;
* what it cost to build: `training_seconds` and `labels_used` (0 for inference-time
  controls), and any other `meta` (e.g. the strength of a sweep), which `run` copies into
  the row.

`run(method, prompts, seeds=..., base=lm)` generates with the method on every prompt and seed
and scores the texts with `labkit.metrics.score` against the *base* model: success (lexicon,
bag words, discriminator), perplexity under the base, distinct-n, seconds per token, and
"KL from base" -- each step's sampled-from distribution against the base model reading the
bare prompt and the same generated tokens (`metrics.step_kls(..., prompt=)`), so a prompt
template, an adapter and the controls all count as distance.

`evaluate(methods, prompts, base=lm, seeds=...)` is the scoreboard of notebook 07: every
method on the same prompts, seeds and token budget, one row each in a pandas DataFrame --
success by a `Judge` that differs from what steered (TextBlob's lexicon; the lab steers with
VADER), perplexity under the base, distinct-1/2 and repetition, the KL from the base as a
Monte Carlo estimate from the method's own samples and as the exact per-step KL, cost
(time × plain sampling, training seconds, labels, extra parameters), a sample, and an error
column: a method that fails, or a judge that returns NaN, fills its own row's error and the
others still run. `labkit.exact.exact_table` is its counterpart on the toy world, where every
technique's distribution is known exactly and so is the target.

Left out on purpose: batching several prompts through one method (every generator of the
lab writes one text at a time), and caching generations between runs.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field

from . import decoding, lexicon, metrics
from .adapters.view import adapter_parameters, fingerprint, split


@dataclass
class Method:
    """One way of writing a continuation: a model, a prompt template, controls, a generator."""

    name: str
    lm: object                                  # a labkit LM: the base, or an adapter
    controls: list = field(default_factory=list)    # logits processors, in order
    template: str = "{prompt}"                  # how the prompt is put to the model
    generator: object = decoding.generate       # lk.generate, pplm.generate, a constrained one
    options: dict = field(default_factory=dict)     # the generator's own keyword arguments
    chat: bool = False                          # wrap the prompt in the chat template
    training_seconds: float = 0.0               # what building it cost (0: inference only)
    labels_used: int = 0                        # labelled examples it needed (0: none)
    extra_parameters: int | None = None         # None: its LoRA adapters' size (0 for the base)
    meta: dict = field(default_factory=dict)    # anything else the row should show

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("a Method needs a name (what its row is called)")
        if not hasattr(self.lm, "model") or not hasattr(self.lm, "encode"):
            raise TypeError(f"Method {self.name!r}: lm must be a labkit LM (lk.load(...)), "
                            f"not {type(self.lm).__name__}")
        if not isinstance(self.template, str) or "{prompt}" not in self.template:
            raise ValueError(f"Method {self.name!r}: the template must contain '{{prompt}}' "
                             f"where the prompt goes, got {self.template!r}")
        if not callable(self.generator):
            raise TypeError(f"Method {self.name!r}: generator must be a function such as "
                            "lk.generate or labkit.pplm.generate")
        self.controls = list(self.controls)
        if not all(callable(c) for c in self.controls):
            raise TypeError(f"Method {self.name!r}: every control must be a logits processor")
        for key in ("controls", "max_new_tokens", "seed", "chat", "trace"):
            if key in self.options:
                raise ValueError(f"Method {self.name!r}: {key!r} is set by the Method itself "
                                 f"(a field or a generate() argument), not in options")
        if not isinstance(self.chat, bool):
            raise ValueError(f"Method {self.name!r}: chat must be True or False")

    def prompt_for(self, prompt: str) -> str:
        """The text the model is given for `prompt` (before any chat template)."""
        return self.template.replace("{prompt}", prompt)

    def generate(self, prompt: str, *, seed: int | None = None, max_new_tokens: int = 40,
                 trace: bool = False):
        """The method's continuation of `prompt`: the text, or (text, steps) with `trace`."""
        return self.generator(self.lm, self.prompt_for(prompt), controls=self.controls,
                              max_new_tokens=max_new_tokens, seed=seed, chat=self.chat,
                              trace=trace, **self.options)

    def __repr__(self):
        parts = [f"{self.name!r}", getattr(self.lm, "name", type(self.lm).__name__)]
        if self.template != "{prompt}":
            parts.append(f"template={self.template!r}")
        if self.controls:
            parts.append(f"controls={self.controls!r}")
        if self.generator is not decoding.generate:
            parts.append(f"generator={getattr(self.generator, '__module__', '')}."
                         f"{getattr(self.generator, '__name__', repr(self.generator))}")
        return f"Method({', '.join(parts)})"


def run(method: Method, prompts, *, base, seeds=(0,), max_new_tokens: int = 40,
        bag_words=None, disc=None, target=1) -> dict:
    """Generate with `method` on every prompt and seed, and score the texts against the
    `base` model: one row (a dict) of `labkit.metrics.score` figures, plus "seconds/token",
    the method's name, cost and meta, and the texts themselves ("texts")."""
    if not isinstance(method, Method):
        raise TypeError(f"run() takes a scoreboard.Method, not {type(method).__name__}")
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    seeds = list(seeds)
    if not prompts or not seeds:
        raise ValueError("run() needs at least one prompt and one seed")
    texts, asked, kls, seconds, n_tok = [], [], [], 0.0, 0
    for prompt in prompts:
        for seed in seeds:
            t0 = time.perf_counter()
            text, steps = method.generate(prompt, seed=seed, max_new_tokens=max_new_tokens,
                                          trace=True)
            seconds += time.perf_counter() - t0
            n_tok += max(len(steps), 1)
            texts.append(text)
            asked.append(prompt)
            kls += metrics.step_kls(steps, base, prompt=prompt, chat=method.chat)
    row = metrics.score(base, asked, texts, chat=method.chat, bag_words=bag_words, kls=kls,
                        disc=disc, target=target)
    return {"method": method.name, **method.meta, **row, "seconds/token": seconds / n_tok,
            "training seconds": method.training_seconds, "labels used": method.labels_used,
            "texts": texts}


# --- the scoreboard: every method on the same prompts, seeds and budget ----------------------


@dataclass(frozen=True)
class Judge:
    """What "success" means on the scoreboard: a name (shown in the table) and a function
    text -> score in [0, 1] (1: the text does what was asked). It must differ from what
    steered: a method steered by VADER (notebooks 04, 06) is judged by TextBlob (`TEXTBLOB`,
    the default), else the table rewards fooling one's own judge (Goodhart). With
    `with_prompt=True` the function is called as score(prompt, text): a judge with a right
    answer per prompt (accuracy on a label task)."""

    name: str
    score: object                               # text -> float in [0, 1]
    with_prompt: bool = False                   # score(prompt, text) instead

    def __call__(self, texts, prompts=None) -> list[float]:
        if self.with_prompt:
            if prompts is None or len(prompts) != len(texts):
                raise ValueError(f"the judge {self.name!r} reads the prompt too: give one "
                                 f"prompt per text")
            out = [float(self.score(p, t)) for p, t in zip(prompts, texts)]
        else:
            out = [float(self.score(t)) for t in texts]
        bad = [t for t, v in zip(texts, out) if math.isnan(v)]
        if bad:
            raise ValueError(f"the judge {self.name!r} returned NaN for {len(bad)} of "
                             f"{len(out)} texts (e.g. {bad[0][:60]!r}): a judge must give every "
                             f"text a number, 0 for a failure")
        return out


TEXTBLOB = Judge("TextBlob polarity > 0", lambda text: float(lexicon.polarity(text) > 0))
VADER = Judge("VADER compound ≥ 0.05", lambda text: float(lexicon.lexicon_label(text) == 1))

COLUMNS = ["success", "perplexity", "distinct-1", "distinct-2", "repetition", "KL (MC)",
           "KL (exact)", "time ×", "seconds/token", "training seconds", "labels used",
           "extra parameters", "sample", "error"]


def _judge(judge) -> Judge:
    if judge is None:
        return TEXTBLOB
    if isinstance(judge, Judge):
        return judge
    if callable(judge):
        return Judge(getattr(judge, "__name__", repr(judge)), judge)
    raise TypeError(f"judge must be a scoreboard.Judge or a function text -> score, not "
                    f"{type(judge).__name__}")


def extra_parameters(method: Method) -> int:
    """Parameters the method adds to the base: its own count if given, else the size of the
    LoRA adapters its model switches on (0 for the base model)."""
    if method.extra_parameters is not None:
        return int(method.extra_parameters)
    shared, names = split(method.lm.model)
    return sum(p.numel() for name in names for p in adapter_parameters(shared, name))


def check_base(method: Method, base) -> None:
    """A ValueError if the method's model is not built on `base` (an adapter trained on
    another model, or another model altogether): its KL and fluency would mean nothing."""
    mine, theirs = split(method.lm.model)[0], split(base.model)[0]
    if mine is not theirs and fingerprint(mine) != fingerprint(theirs):
        raise ValueError(f"Method {method.name!r}: its model ({method.lm.name}) is not built on "
                         f"the base it is scored against ({base.name}): train or load its "
                         f"adapter on that base (an adapter trained on another model does not "
                         f"fit it)")


def _is_plain(method: Method, base) -> bool:
    """Is `method` plain sampling from `base` (no template, control or other generator)?"""
    return (method.lm.model is base.model and not method.controls and not method.options
            and method.template == "{prompt}" and method.generator is decoding.generate)


def _sample(method: Method, prompts, seeds, base, max_new_tokens, bar) -> dict:
    """Generate with `method` on every prompt and seed (its own controls only: the samples are
    drawn from the method's distribution, as the KL estimate needs) and read every sample
    against the base in one pass each."""
    texts, asked, logq, logp, nll, kls, lengths = [], [], [], [], [], [], []
    gen_s = score_s = 0.0
    for prompt in prompts:
        for seed in seeds:
            t0 = time.perf_counter()
            text, steps = method.generate(prompt, seed=seed, max_new_tokens=max_new_tokens,
                                          trace=True)
            t1 = time.perf_counter()
            if steps:
                q, p, k = metrics.against_base(steps, base, prompt=prompt, chat=method.chat)
                eos = steps[-1].token_id in method.lm.eos_token_ids
                logq.append(float(q.sum()))     # log q(x) and log p(x) of the whole sample: the
                logp.append(float(p.sum()))     # EOS step counts in both (the choice to stop)
                nll += (-p[:len(p) - eos]).tolist()     # the text's tokens, EOS left out
                kls += k.tolist()
            texts.append(text)
            asked.append(prompt)
            lengths.append(len(steps))
            gen_s += t1 - t0
            score_s += time.perf_counter() - t1
            bar.update(1)
    return dict(texts=texts, prompts=asked, logq=logq, logp=logp, nll=nll, kls=kls,
                lengths=lengths,
                generation_seconds=gen_s, scoring_seconds=score_s)


def _row(method: Method, s: dict, judges: dict, plain_rate: float) -> dict:
    texts, n_tok = s["texts"], max(sum(s["lengths"]), 1)
    nll, mc = s["nll"], [q - p for q, p in zip(s["logq"], s["logp"])]
    rate = s["generation_seconds"] / n_tok
    row = {"perplexity": math.exp(statistics.fmean(nll)) if nll else math.nan,
           "distinct-1": metrics.distinct_n(texts, 1), "distinct-2": metrics.distinct_n(texts, 2),
           "repetition": metrics.repetition(texts, 4),
           "KL (MC)": sum(mc) / n_tok if mc else math.nan,
           "KL (exact)": statistics.fmean(s["kls"]) if s["kls"] else math.nan,
           "time ×": rate / plain_rate, "seconds/token": rate,
           "training seconds": method.training_seconds, "labels used": method.labels_used,
           "extra parameters": extra_parameters(method), "sample": texts[0], "error": "",
           **method.meta}
    t0 = time.perf_counter()
    for column, judge in judges.items():          # "success", then any other judged column
        try:
            row[column] = statistics.fmean(judge(texts, s["prompts"]))
        except Exception as e:                                  # noqa: BLE001 (shown in the row)
            row[column] = math.nan
            row["error"] = "; ".join(filter(None, [row["error"], f"{type(e).__name__}: {e}"]))
    s["scoring_seconds"] += time.perf_counter() - t0
    return row


def evaluate(methods, prompts, *, base, seeds=(0,), judge=None, also=None,
             max_new_tokens: int = 40, progress: bool = True, baseline_rate: float | None = None):
    """Every method on the same prompts, seeds and budget -> a pandas DataFrame, one row per
    method (indexed by its name), the judge named in `df.attrs["judge"]`. Columns:

    * **success** -- the mean of `judge` over the texts (default `TEXTBLOB`, a lexicon other
      than the VADER that steers the lab's methods);
    * **perplexity** -- exp of the mean negative log-likelihood of the generated tokens (EOS
      left out) under the *base* model, given the bare prompt: fluency, lower is better;
    * **distinct-1**, **distinct-2** -- per text, averaged (`metrics.distinct_n`), and
      **repetition**, seq-rep-4 (`metrics.repetition`);
    * **KL (MC)** -- Σ over samples of log π_method(x) - log π_0(x), per generated token: the
      Monte Carlo estimate of KL(π_method ‖ π_0) from the method's own samples, drawn with its
      own controls only (temperature 1 and no truncation unless the method *is* those), the
      base reading the bare prompt; **KL (exact)** -- the mean over the same steps of the
      exact per-step KL(controlled ‖ base) (`metrics.step_kls`): the same quantity, each
      step's expectation taken exactly (lower variance);
    * **time ×** -- seconds per generated token as a ratio to plain sampling from `base` in
      the same call on the same prompts and seeds (a method of the list that is plain sampling
      from `base`, else `baseline_rate` if given -- seconds per token measured earlier, as
      the dashboard does -- else a plain run made for the purpose, not scored);
      **seconds/token**; **training seconds**,
      **labels used** and **extra parameters** (the method's metadata; its adapters' size);
    * **sample** -- the first text; **error** -- "" or why the method's row is empty: a
      method that raises (a pool with no allowed token, a model on another base) or a judge
      that returns NaN gets its message here, and the other methods still run.

    `also` ({column: Judge}) adds a judged column after "success" for each: the validity and
    the accuracy of a label task, say (`Judge(..., with_prompt=True)` sees the prompt).

    Each method's `meta` (e.g. {"family": "bag of words", "strength": 2.0}: one point of a
    strength sweep, `viz.pareto` draws a family as a curve) comes first, as columns.

    `df.attrs["seconds"]` holds the time spent generating, scoring and on the plain baseline
    (0 when a method is plain sampling), for `benchmarks/bench_scoreboard.py`. Naive version (what it computes, row by row)::

        for m in methods: texts = [m.generate(p, seed=s) for p in prompts for s in seeds]
                          row = judge(texts), perplexity(base, texts), distinct, KL, cost
    """
    import pandas as pd
    from tqdm.auto import tqdm

    methods = [methods] if isinstance(methods, Method) else list(methods)
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    seeds = list(seeds)
    if not methods:
        raise ValueError("evaluate() needs at least one Method")
    for m in methods:
        if not isinstance(m, Method):
            raise TypeError(f"evaluate() takes scoreboard.Method objects, not {type(m).__name__}")
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise ValueError(f"two methods share a name ({sorted({n for n in names if names.count(n) > 1})}): "
                         f"each row needs its own")
    if not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise ValueError("evaluate() needs a non-empty list of non-empty prompts")
    if not seeds:
        raise ValueError("evaluate() needs at least one seed")
    judge = _judge(judge)
    judges = {"success": judge, **{str(k): _judge(j) for k, j in (also or {}).items()}}
    if not hasattr(base, "model") or not hasattr(base, "encode"):
        raise TypeError(f"base must be a labkit LM (lk.load(...)), not {type(base).__name__}")

    bar = tqdm(total=len(methods) * len(prompts) * len(seeds), unit="text",
               desc="scoreboard", leave=False, disable=not progress)
    seconds = {"generation": 0.0, "scoring": 0.0, "baseline": 0.0}
    plain = next((m for m in methods if _is_plain(m, base)), None)
    sampled, rows, baseline = {}, {}, None
    if plain is None and baseline_rate is None:     # time × needs plain sampling: run it once
        bar.total += len(prompts) * len(seeds)
        t0 = time.perf_counter()
        baseline = _sample(Method("plain", base), prompts, seeds, base, max_new_tokens, bar)
        seconds["baseline"] = time.perf_counter() - t0
    for m in methods:
        bar.set_description(f"scoreboard: {m.name}")
        try:
            check_base(m, base)
            sampled[m.name] = _sample(m, prompts, seeds, base, max_new_tokens, bar)
        except Exception as e:                                  # noqa: BLE001 (shown in the row)
            rows[m.name] = {"error": f"{type(e).__name__}: {e}", **m.meta,
                            "training seconds": m.training_seconds, "labels used": m.labels_used}
    bar.close()
    ref = sampled.get(plain.name) if plain is not None else baseline
    plain_rate = (ref["generation_seconds"] / max(sum(ref["lengths"]), 1) if ref is not None
                  else baseline_rate if baseline_rate is not None else math.nan)
    for m in methods:
        if m.name in sampled:
            s = sampled[m.name]
            rows[m.name] = _row(m, s, judges, plain_rate)
            seconds["generation"] += s["generation_seconds"]
            seconds["scoring"] += s["scoring_seconds"]
    rows = {m.name: rows[m.name] for m in methods}              # the order they were given
    meta = list(dict.fromkeys(k for m in methods for k in m.meta if k not in COLUMNS))
    extra = [c for c in judges if c not in COLUMNS]
    columns = meta + COLUMNS[:1] + extra + COLUMNS[1:]
    df = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=columns)
    df.index.name = "method"
    df["error"] = df["error"].fillna("")
    df.attrs["judge"], df.attrs["seconds"] = judge.name, seconds
    return df


__all__ = ["COLUMNS", "Judge", "Method", "TEXTBLOB", "VADER", "check_base", "evaluate",
           "extra_parameters", "run"]
