"""Speed of the token pools (labkit.pool): per-token overhead and build time.

    .venv/bin/python benchmarks/bench_pool.py                 # or --quick, --threads 1, --json F

Rows, each with its budget (the script exits with status 1 if one is missed):

* per-token overhead of each pool after warm-up: `lk.generate(..., controls=[pool])` vs the same
  call with no control, both with `stop_at_eos=False` and the same `max_new_tokens`, so they run
  exactly as many forward passes (after end-of-sequence a pool allows only end-of-sequence, as
  `model.generate` expects). A warm-up generation first fills the pool's mask cache; timings
  are medians of interleaved repeats and the ratio the median of per-round ratios. Budget 1.5x.
  The pool call alone (`pool(input_ids, scores)` on a replayed trace) is reported in microseconds.
* build time: the vocabulary trie (once per tokenizer, cold), then a simple regex on the warm
  vocabulary (compile + the first step's mask), budget 2 s for the two together; beside it the
  naive approach (the third-party `regex` module's partial full-match tried on all 49k tokens),
  which pays that cost at *every* step.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

PROMPT = "Write a short note about the lighthouse of Karvik:"
SOURCE = ("The lighthouse of Karvik was built in 1872 by the engineer Olla Brandt. It stands 38 "
          "metres tall, and its lamp can be seen from 22 nautical miles away. Its first keeper, "
          "Jonas Vell, lived there with two dogs until 1931.")
SIMPLE = r"\d{4}-\d{2}-\d{2}"
BUDGET_RATIO, BUDGET_BUILD_S = 1.5, 2.0


def pools(tok):
    from labkit import pool as P

    return {
        "Allowed (1,000 ids)": P.Allowed(range(1000, 2000)),
        "OneOf (3 long options)": P.OneOf(tok, [
            " The lighthouse of Karvik is old, tall and still shining over the cold sea.",
            " Nobody remembers who built the lighthouse of Karvik, but everybody knows its light.",
            " It was built in 1872."]),
        "Quote (the passage)": P.Quote(tok, SOURCE),
        "Regex [a-z ,.]+": P.Regex(tok, r"[a-z ,.]+"),
        "Regex date": P.Regex(tok, SIMPLE),
        "Catalogue (free text)": P.Catalogue(tok, ["Karvik", "Olla Brandt", "Jonas Vell"]),
    }


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench_overhead(lm, pool, n_tokens: int, repeats: int) -> dict:
    import labkit as lk

    def plain():
        return lk.generate(lm, PROMPT, max_new_tokens=n_tokens, seed=0, stop_at_eos=False)

    def pooled():
        if hasattr(pool, "reset"):
            pool.reset()
        return lk.generate(lm, PROMPT, controls=[pool], max_new_tokens=n_tokens, seed=0,
                           stop_at_eos=False)

    pooled(), plain()                                   # warm-up: masks cached, kernels ready
    a, b, ratios = [], [], []
    for r in range(repeats):
        order = (plain, pooled) if r % 2 == 0 else (pooled, plain)
        t = {f: timed(f)[0] for f in order}
        a.append(t[plain] / n_tokens)
        b.append(t[pooled] / n_tokens)
        ratios.append(t[pooled] / t[plain])
    # the pool call alone, replayed on the ids of one pooled generation
    text, steps = lk.generate(lm, PROMPT, controls=[pool], max_new_tokens=n_tokens, seed=0,
                              stop_at_eos=False, trace=True)
    ids = lm.encode(PROMPT)
    scores = steps[0].before.logits[None].clone()
    calls = []
    for _ in range(3):
        if hasattr(pool, "reset"):
            pool.reset()
        ctx = ids.cpu()
        t0 = time.perf_counter()
        for s in steps:
            pool(ctx, scores)
            ctx = torch_cat(ctx, s.token_id)
        calls.append((time.perf_counter() - t0) / len(steps))
    return {"plain_ms": 1e3 * statistics.median(a), "pooled_ms": 1e3 * statistics.median(b),
            "ratio": statistics.median(ratios), "call_us": 1e6 * min(calls), "text": text[:40]}


def torch_cat(ctx, token_id):
    import torch
    return torch.cat([ctx, torch.tensor([[token_id]])], dim=1)


def bench_build(tok) -> dict:
    import regex as mrab

    from labkit import pool as P

    P._VOCABS.clear()
    P._COMPILED.clear()
    vocab_s, v = timed(lambda: P.vocabulary(tok))
    def build():
        rx = P.Regex(tok, SIMPLE)
        return rx.removed(rx.initial())
    regex_s, _ = timed(build)
    P._COMPILED.clear()
    def build_big():
        rx = P.Regex(tok, r"[A-Za-z ]+")
        return rx.removed(rx.initial())
    big_s, _ = timed(build_big)
    compiled = mrab.compile(SIMPLE)
    naive_s, naive = timed(lambda: [i for i, t in enumerate(v.texts)
                                    if t is not None and compiled.fullmatch(t, partial=True)])
    rx = P.Regex(tok, SIMPLE)
    same = sorted(naive) == [i for i in rx.allowed_ids(rx.initial()) if i != tok.eos_token_id]
    return {"vocab_s": vocab_s, "regex_s": regex_s, "big_regex_s": big_s,
            "naive_step_s": naive_s, "naive_agrees": same}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer tokens and repeats")
    ap.add_argument("--threads", type=int, default=None, help="torch threads")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)

    import torch

    import labkit as lk
    if args.threads:
        torch.set_num_threads(args.threads)
    n_tokens, repeats = (12, 3) if args.quick else (32, 7)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load {os.getloadavg()[0]:.1f}")
    lm = lk.load()
    rows, ok = {}, True
    build = bench_build(lm.tokenizer)
    rows["build"] = build
    print(f"\n{'build (49,152-token vocabulary)':44}{'seconds':>10}")
    print(f"{'vocabulary trie, once per tokenizer (cold)':44}{build['vocab_s']:>10.3f}")
    print(f"{'regex ' + SIMPLE + ': compile + first mask':44}{build['regex_s']:>10.3f}")
    print(f"{'regex [A-Za-z ]+: compile + first mask':44}{build['big_regex_s']:>10.3f}")
    print(f"{'naive: regex-module partial match, per step':44}{build['naive_step_s']:>10.3f}"
          f"   (same tokens: {build['naive_agrees']})")
    total = build["vocab_s"] + build["regex_s"]
    passed = total <= BUDGET_BUILD_S
    ok &= passed
    print(f"{'cold total (trie + simple regex)':44}{total:>10.3f}   budget {BUDGET_BUILD_S} s: "
          f"{'pass' if passed else 'FAIL'}")

    print(f"\n{'per token, after warm-up':26}{'plain ms':>10}{'pooled ms':>11}{'ratio':>8}"
          f"{'call µs':>9}  budget {BUDGET_RATIO}x")
    for name, pool in pools(lm.tokenizer).items():
        r = bench_overhead(lm, pool, n_tokens, repeats)
        rows[name] = r
        passed = r["ratio"] <= BUDGET_RATIO
        ok &= passed
        print(f"{name:26}{r['plain_ms']:>10.1f}{r['pooled_ms']:>11.1f}{r['ratio']:>8.2f}"
              f"{r['call_us']:>9.0f}  {'pass' if passed else 'FAIL'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
