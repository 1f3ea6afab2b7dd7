"""Label scoring: batched (shared prefix cached, padded rows) vs one sequence at a time.

    python benchmarks/bench_prompting.py            # embedded SmolLM2-135M-Instruct
    python benchmarks/bench_prompting.py --items 16 --shots 4 --repeats 3

Scores the test items of the sentiment task (2 labels) and of the capitals task (4
multi-token choices) with a k-shot raw prompt, both ways, checks that the two agree to
1e-4, and prints the median wall time of each over interleaved rounds
(`labkit.metrics.interleaved`, the lab's one timing helper) and the speed-up. The figure
depends on the machine (cores, other load): run it on yours.
"""
from __future__ import annotations

import argparse
import statistics

import torch

import labkit as lk
from labkit import metrics
from labkit import prompting as P
from labkit import tasks as T


def inputs(lm, task, n_items, shots, chat=False):
    items = task.test[:n_items]
    parts = [P.split_prompt(task, it, P.pick_shots(task, shots), chat=chat,
                            tokenizer=lm.tokenizer) for it in items]
    labels = [[P.answer_text(y, chat) for y in task.choices(it)] for it in items]
    kw = dict(prefix=parts[0][0], end=P.end_text(chat, lm.tokenizer))
    return [q for _, q in parts], labels, kw


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="a hub id or path; default: the embedded model")
    ap.add_argument("--items", type=int, default=16)
    ap.add_argument("--shots", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: torch's choice); 1 is steadier on a busy machine")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    lm = lk.load(args.model)
    print(f"{lm}; torch threads: {torch.get_num_threads()}; {args.items} items, "
          f"{args.shots}-shot raw prompts, median of {args.repeats}")
    print(f"{'task':<10} {'pairs':>5} {'one by one (s)':>15} {'batched (s)':>12} "
          f"{'speed-up':>9} {'max |diff|':>11}")
    for task in (T.sentiment(), T.capitals()):
        prompts, labels, kw = inputs(lm, task, args.items, args.shots)
        ways = {"slow": lambda: P.label_logprobs_naive(lm, prompts, labels, **kw),
                "fast": lambda: P.label_logprobs(lm, prompts, labels,
                                                 batch_size=args.batch_size, **kw)}
        slow, fast = ways["slow"](), ways["fast"]()                    # the warm-up, kept
        times = metrics.interleaved(ways, args.repeats, warmup=False)
        slow_t, fast_t = (statistics.median(times[w]) for w in ("slow", "fast"))
        diff = float((fast - slow).abs().max())
        assert diff < 1e-4, f"batched and one-by-one scores differ by {diff}"
        pairs = sum(map(len, labels))
        print(f"{task.name:<10} {pairs:>5} {slow_t:>15.2f} {fast_t:>12.2f} "
              f"{slow_t / fast_t:>8.1f}× {diff:>11.1e}")


if __name__ == "__main__":
    main()
