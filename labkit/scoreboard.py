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

Left out on purpose: batching several prompts through one method (every generator of the
lab writes one text at a time), and caching generations between runs.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from . import decoding, metrics


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


__all__ = ["Method", "run"]
