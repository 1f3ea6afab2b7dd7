"""The toy world's figures: building it, and KL-regularised RL reaching its exact target.

    .venv/bin/python benchmarks/bench_toy.py [--json out.json]

Prints the time to build the default world (grammar, corpus, the trained 2×32 base) and,
for five rewards, the steps and seconds `bayes.rl_finetune` (exact policy gradient, default
settings) takes to reach KL(π_θ ‖ π·e^{r/β}/Z) < 0.005 nats -- the figures quoted in
labkit/bayes.py's docstring and the README. The world is rebuilt in this process, so the
build time is real; RL runs on one thread (as `labkit.toy.one_thread` makes it).
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from labkit import bayes, toy


def rewards(world):
    W = {w: i for i, w in enumerate(world.vocab)}
    return {
        "rainy days, β=1": (lambda s: (s == W["rain"]).double().sum(-1), 1.0),
        "minus sunny days, β=0.3": (lambda s: -(s == W["sun"]).double().sum(-1), 0.3),
        "weather changes, β=2": (lambda s: (s[:, 1:] != s[:, :-1]).double().sum(-1), 2.0),
        "last day = snow (λ=3), β=1": (bayes.match_reward({world.length - 1: W["snow"]}, 3.0), 1.0),
        "distinct words, β=0.5": (
            lambda s: torch.tensor([float(len(set(r.tolist()))) for r in s]), 0.5),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write the figures to this file too")
    args = ap.parse_args()
    t0 = time.perf_counter()
    world = toy._make_world.__wrapped__(0, toy.WEATHER, 4, ())       # no in-process cache
    build = time.perf_counter() - t0
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"building the default world: {build:.1f} s "
          f"(final training loss {world.history[-1]['loss']:.3f} nats per sequence)")
    rows = []
    for name, (fn, beta) in rewards(world).items():
        t0 = time.perf_counter()
        _, history = bayes.rl_finetune(world, fn, beta, progress=False)
        rows.append({"reward": name, "steps": len(history) - 1,
                     "seconds": time.perf_counter() - t0,
                     "kl_target": history[-1]["kl_target"]})
        print(f"  {name:<28} {rows[-1]['steps']:>4} steps  {rows[-1]['seconds']:5.1f} s  "
              f"KL(policy ‖ target) {rows[-1]['kl_target']:.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"build_s": build, "rl": rows}, f, indent=1)


if __name__ == "__main__":
    main()
