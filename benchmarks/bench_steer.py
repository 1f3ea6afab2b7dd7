"""Per-token cost of notebook 06's steering methods, as a ratio to plain generation.

    .venv/bin/python benchmarks/bench_steer.py                 # default settings, 3 rounds
    .venv/bin/python benchmarks/bench_steer.py --quick --threads 1 --json out.json

Every method generates exactly `--tokens` tokens (stop_at_eos=False) after the same prompt
with the same base controls (top-k 10, as in the PPLM paper). All methods and plain
`lk.generate` run in the same interleaved rounds (`labkit.metrics.interleaved`, the timing
helper of `metrics.cost_ratio`; the order rotates every round), and each ratio is the median
over rounds of time(method) / time(plain) in that round, so background load on a shared
machine hits both sides alike. The discriminator used by classifier guidance (top_k=5 by
default; k=10, as in notebook 06, is reported without a budget) is an untrained head of the
right size: its cost does not depend on its weights. Exits with status 1 if a ratio misses
its budget.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys

BUDGETS = {"logit bias": 1.1, "bag of words": 1.1, "classifier guidance": 3.0,
           "classifier guidance, k=10": None, "PPLM": 10.0}   # None: reported, no budget
PROMPT = "The weather today is"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer tokens and rounds")
    ap.add_argument("--tokens", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch threads")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args()
    import torch

    import labkit as lk
    from labkit import metrics, pplm, steer

    if args.threads:
        torch.set_num_threads(args.threads)
    tokens = args.tokens or (10 if args.quick else 30)
    repeats = args.repeats or (2 if args.quick else 3)
    lm = lk.load()
    base = [lk.controls.TopK(10)]
    bag = steer.BagOfWords(lm.tokenizer, steer.POSITIVE_WORDS, 4.0)
    bias = steer.LogitBias({int(i): 4.0 for i in bag.token_ids})
    disc = steer.Discriminator(lm.model.config.hidden_size)
    guide = steer.ClassifierGuidance(lm, disc, gamma=3.0)             # default: top_k=5
    guide10 = steer.ClassifierGuidance(lm, disc, gamma=3.0, top_k=10)  # as in notebook 06

    def gen(controls):
        return lambda: lk.generate(lm, PROMPT, controls=controls, max_new_tokens=tokens, seed=0,
                                   stop_at_eos=False)

    methods = {"logit bias": gen([bias] + base), "bag of words": gen([bag] + base),
               "classifier guidance": gen([guide]), "classifier guidance, k=10": gen([guide10]),
               "PPLM": lambda: pplm.generate(lm, PROMPT, bag=bag, controls=base, seed=0,
                                             max_new_tokens=tokens, stop_at_eos=False)}
    plain = gen(base)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch threads {torch.get_num_threads()}, load average "
          f"{os.getloadavg()[0]:.1f}; {tokens} tokens, {repeats} rounds")
    # every method and plain generation in the same interleaved rounds (the order rotates):
    # each ratio is the median over rounds of time(method) / time(plain) in that round
    times = metrics.interleaved({"plain": plain, **methods}, repeats)
    print(f"plain generation: {statistics.median(times['plain']) / tokens * 1e3:.0f} ms/token")
    results, ok = {}, True
    print(f"{'method':<27}{'ratio':>8}{'budget':>9}")
    for name in methods:
        ratio = statistics.median(t / p for t, p in zip(times[name], times["plain"]))
        budget = BUDGETS[name]
        passed = budget is None or ratio <= budget
        ok &= passed
        results[name] = {"ratio": ratio, "budget": budget, "passed": passed,
                         "ms_per_token": statistics.median(times[name]) / tokens * 1e3}
        shown = f"{budget:>8.1f}×" if budget else f"{'-':>9}"
        print(f"{name:<27}{ratio:>7.2f}×{shown}  {'ok' if passed else 'OVER'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
