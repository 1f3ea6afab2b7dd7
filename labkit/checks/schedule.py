"""Notebook 03's second check: the warm-up-then-decay learning-rate schedule.

Reference: `labkit.sft.lr_at` (a linear warm-up from 0, then a linear decay to 0 at
max_steps: transformers' `get_linear_schedule_with_warmup`; warm-up as in Goyal et al. 2017,
"Accurate, Large Minibatch SGD", §2.2). The learner's function gives one step's rate, with
keyword arguments; the check's adapter (`_runner.Adapting`) runs it on every step from 0 to
max_steps + 2, so a case is a whole schedule and a mistake shows as a curve.
"""
from __future__ import annotations

import math
import numbers

import torch

from ..sft import lr_at
from ._runner import Adapting, Case, Mistake, Variant, close, diff_vector, read_none


# --- the learning-rate schedule ---------------------------------------------------------------


def _schedule(fn, learning_rate, warmup_steps, max_steps):
    """fn's rate at every step 0 .. max_steps + 2 (a list; the reading comes later)."""
    out = []
    for step in range(max_steps + 3):
        try:
            out.append(fn(step, learning_rate=learning_rate, warmup_steps=warmup_steps,
                          max_steps=max_steps))
        except NotImplementedError:
            raise
        except Exception as e:          # say at which step, keep the learner's traceback
            hint = (" (warmup_steps is 0 here: divide by max(1, warmup_steps))"
                    if isinstance(e, ZeroDivisionError) and warmup_steps == 0 else "")
            try:
                e.args = (f"at step {step}: {e}{hint}",)
            except Exception:
                pass
            raise
    return out


def _rate(f):
    """A variant from a formula f(step, lr, warmup, max_steps), in the learner's signature."""
    def variant(step, *, learning_rate, warmup_steps, max_steps):
        return f(step, learning_rate, warmup_steps, max_steps)
    return variant


def _warm_then(decay, warm=lambda s, w: s / max(1, w)):
    return _rate(lambda s, lr, w, m: lr * (warm(s, w) if s < w else decay(s, w, m)))


def _linear(s, w, m):
    return max(0.0, (m - s) / max(1, m - w))


def _cosine(s, w, m, end=float("inf")):
    """transformers' cosine decay (it rises again after max_steps), or stopped at `end`."""
    return max(0.0, 0.5 * (1 + math.cos(math.pi * min(end, (s - w) / max(1, m - w)))))


LR_VARIANTS = [
    Variant("warmup_ahead", "warm-up one step ahead",
            "at step 0 the rate is 0: it is learning_rate * step / warmup_steps during the warm-up "
            "(step + 1 starts above 0 and reaches the full rate one step early)",
            fns=[_warm_then(_linear, lambda s, w: (s + 1) / max(1, w)),
                 _warm_then(_linear, lambda s, w: (s + 1) / (w + 1))]),
    Variant("no_warmup", "no warm-up",
            "for step < warmup_steps the rate climbs from 0 to learning_rate (learning_rate * "
            "step / warmup_steps); the decay comes after",
            fns=[_rate(lambda s, lr, w, m: lr * _linear(s, w, m)),
                 _rate(lambda s, lr, w, m: lr * max(0.0, (m - s) / max(1, m)))]),
    Variant("no_decay", "no decay after the warm-up",
            "after the warm-up the rate falls linearly, to 0 at step max_steps: learning_rate * "
            "(max_steps - step) / (max_steps - warmup_steps)",
            fns=[_warm_then(lambda s, w, m: 1.0),
                 _warm_then(lambda s, w, m: 1.0 if s < m else 0.0)]),
    Variant("decay_from_zero", "decay measured from step 0",
            "the decay starts at the end of the warm-up, at the full rate: divide by the decay's "
            "length, max_steps - warmup_steps, not by max_steps",
            fns=[_warm_then(lambda s, w, m: max(0.0, (m - s) / max(1, m)))]),
    Variant("ends_early", "decay reaches 0 a step early",
            "the rate reaches 0 at step max_steps exactly (max_steps - step in the numerator), "
            "not at max_steps - 1",
            fns=[_warm_then(lambda s, w, m: max(0.0, (m - 1 - s) / max(1, m - 1 - w))),
                 _warm_then(lambda s, w, m: max(0.0, (m - 1 - s) / max(1, m - w)))]),
    Variant("ends_late", "decay reaches 0 a step late",
            "the rate is 0 at step max_steps: learning_rate * (max_steps - step) / (max_steps - "
            "warmup_steps), with no + 1",
            fns=[_warm_then(lambda s, w, m: max(0.0, (m + 1 - s) / max(1, m + 1 - w)))]),
    Variant("cosine", "cosine decay, not linear",
            "this schedule decays in a straight line from learning_rate to 0 (transformers' "
            "linear one; the cosine one is another schedule)",
            fns=[_warm_then(_cosine), _warm_then(lambda s, w, m: _cosine(s, w, m, end=1.0))]),
    Variant("negative", "negative past max_steps",
            "after max_steps the rate stays 0: take max(0, ...) of the decay, a negative rate "
            "would climb the loss",
            fns=[_warm_then(lambda s, w, m: (m - s) / max(1, m - w))]),
    Variant("one_based", "steps counted from 1",
            "steps are 0-based: the first optimizer step is step 0, where the warm-up's rate is 0",
            fns=[_rate(lambda s, lr, w, m: lr_at(s + 1, learning_rate=lr, warmup_steps=w,
                                                 max_steps=m))]),
    Variant("factor_only", "the factor, not the rate",
            "return the learning rate itself: multiply the schedule's factor (0 to 1) by "
            "learning_rate",
            fns=[_rate(lambda s, lr, w, m: lr_at(s, learning_rate=1.0, warmup_steps=w,
                                                 max_steps=m))]),
    Variant("integer_division", "integer division",
            "use / (true division): // rounds step / warmup_steps down to 0 during the warm-up",
            fns=[_rate(lambda s, lr, w, m: lr * (s // max(1, w) if s < w
                                                 else max(0, (m - s) // max(1, m - w)))),
                 _warm_then(_linear, lambda s, w: s // max(1, w))]),
]


def _read_rates(out, learning_rate, warmup_steps, max_steps):
    read_none(out)
    rates = []
    for step, v in enumerate(out):
        if v is None:
            raise Mistake(f"at step {step} your function returned None -- does every branch "
                          "(the warm-up, the decay, after max_steps) end with `return`?", "none")
        if isinstance(v, torch.Tensor) and v.numel() == 1 and not v.is_complex():
            v = v.item()
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise Mistake(f"at step {step} your function returned {type(v).__name__}: return "
                          "the rate at this one step, a number (float)", "type")
        rates.append(float(v))
    return torch.tensor(rates, dtype=torch.float64)


def _rate_facts(got, want, learning_rate, warmup_steps, max_steps) -> list[str]:
    facts = []
    if torch.isnan(got).any():
        facts.append("your rates contain NaN")
    if (got < 0).any():
        facts.append(f"negative rates at steps {(got < 0).nonzero().flatten().tolist()}")
    if (got[max_steps:] != 0).any():
        facts.append(f"the rate is not 0 from step max_steps = {max_steps} on")
    return facts


def _show_rates(want, got, *args):
    if len(want) <= 12:
        return ("[" + ", ".join(f"{v:.4g}" for v in want.tolist()) + "]",
                "[" + ", ".join(f"{v:.4g}" for v in got.tolist()) + "]")
    return "", diff_vector(want, got, name=lambda i: f"step {i}")


def _lr_cases() -> list[Case]:
    def case(lr, w, m):
        return Case(f"learning_rate={lr:g}, warmup_steps={w}, max_steps={m} (steps 0 to "
                    f"{m + 2})", (lr, w, m))
    return [case(1.0, 2, 6), case(0.1, 0, 4), case(0.001, 3, 10), case(2e-4, 5, 30)]


LR_SCHEDULE = Adapting("check_lr_schedule", reference=lr_at, cases=_lr_cases, read=_read_rates,
                        same=lambda got, want: close(got, want, atol=1e-12, rtol=1e-6),
                        variants=LR_VARIANTS, show=_show_rates, facts=_rate_facts,
                        adapt=_schedule)


def check_lr_schedule(fn) -> bool:
    """Check `fn(step, *, learning_rate, warmup_steps, max_steps) -> float`: a linear warm-up
    from 0, then a linear decay to 0 at max_steps, 0 after (reference: `labkit.sft.lr_at`).
    It is run on every step of a few schedules."""
    return LR_SCHEDULE.check(fn)
