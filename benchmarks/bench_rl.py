"""Speed of RL from feedback (labkit.rlhf), DPO (labkit.dpo) and the reward model
(labkit.rewards) on SmolLM2-135M-Instruct, against the cost of their parts done bare.

    .venv/bin/python benchmarks/bench_rl.py              # or --threads N, --repeats R, --json F

Rows (budget 1.3x each; the script exits with status 1 if one is missed). Each side is timed
in interleaved rounds (`labkit.metrics.interleaved`, one untimed warm-up each) and the ratio
is the median of the per-round ratios:

* RL step: `lk.rlhf.train` for one step (3 prompts × 4 completions of 12 tokens, LoRA r=8,
  AdamW, everything included: the adapter made and removed, sampling, the reward, the KL,
  the RLOO advantage, the history) against its parts done bare on a LoRA model: transformers'
  `generate` of the same 12 rows, one forward of the reference (no gradient), one forward and
  backward of the policy, and an AdamW step. The reward is the word count, so that the
  reward's own cost (a reward model's forward, VADER) is not charged to the trainer.
* DPO step: `lk.dpo.train` for one step of 8 pairs (the reference's log-probabilities
  computed first, as the trainer does once) against a bare forward of the reference over the
  16 rows, a forward and backward of the policy over them, and an AdamW step.
* reward model: `lk.rewards.train_reward_model` on 32 pairs (200 full-batch steps of the
  head) against a bare forward of the frozen body over the 64 texts and 200 Adam steps of a
  linear head on the features.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import warnings

import torch

import labkit as lk
from labkit import adapters, dpo, rewards, rlhf
from labkit.metrics import interleaved
from labkit.pairs import collate, pad_id, padded, response_logprobs

BUDGET = 1.3
PROMPTS = lk.tasks.NEUTRAL_TRAIN[:3]
RL = dict(num_generations=4, prompts_per_step=3, max_new_tokens=12, learning_rate=1e-3)


def lora_view(lm):
    from peft import LoraConfig
    return adapters.create(lm, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                          target_modules=["q_proj", "v_proj"]), prefix="bench")


def rl_pair(lm):
    cfg = rlhf.RLConfig(max_steps=1, **RL)

    def trainer():
        tuned, _ = rlhf.train(lm, PROMPTS, rewards.length, cfg, progress=False)
        adapters.delete(tuned.model)

    view = lora_view(lm)
    params = adapters.adapter_parameters(view.base, view.names[-1])
    opt = torch.optim.AdamW(params, lr=1e-3)
    rows = [lm.ids(p, start=True) for p in PROMPTS for _ in range(4)]
    ids, mask = padded(rows, pad_id(lm), lm.device, left=True)

    def bare():
        with torch.inference_mode():
            out = view.generate(input_ids=ids, attention_mask=mask, do_sample=True, top_k=0,
                                top_p=1.0, max_new_tokens=12, pad_token_id=pad_id(lm),
                                eos_token_id=sorted(lm.eos_token_ids))
        update(lm, view, opt, collate([(r.tolist(), ids.shape[1]) for r in out], pad_id(lm),
                                      lm.device))
    return trainer, bare


def update(lm, view, opt, batch):
    """The bare update of both trainers: a forward of the reference (no gradient), a forward
    and backward of the policy, an AdamW step."""
    with torch.no_grad():
        response_logprobs(lm.model, batch)
    with adapters.training(view):
        logp, _ = response_logprobs(view, batch)
        opt.zero_grad()
        logp.sum().backward()
        opt.step()


def preference_pairs(n: int):
    words = ["lovely", "awful", "sunny", "grey", "quick", "slow", "bright", "dull"]
    return [(PROMPTS[i % 3], f" a {words[i % 8]} day, really {i}", f" a {words[(i + 3) % 8]} one {i}")
            for i in range(n)]


def dpo_pair(lm):
    pairs = preference_pairs(8)
    cfg = dpo.DPOConfig(max_steps=1, batch_size=8)

    def trainer():
        tuned, _ = dpo.train(lm, pairs, cfg, progress=False)
        adapters.delete(tuned.model)

    view = lora_view(lm)
    params = adapters.adapter_parameters(view.base, view.names[-1])
    opt = torch.optim.AdamW(params, lr=1e-3)
    rows = dpo._rows(lm, [p for p, _, _ in pairs] * 2, [c for _, c, _ in pairs]
                     + [r for _, _, r in pairs], 256)
    batch = collate(rows, pad_id(lm), lm.device)

    def bare():
        update(lm, view, opt, batch)
    return trainer, bare


def rm_pair(lm):
    pairs = preference_pairs(32)

    def trainer():
        rewards.train_reward_model(lm, pairs, steps=200, progress=False)

    texts = [c for _, c, _ in pairs] + [r for _, _, r in pairs]
    prompts = [p for p, _, _ in pairs] * 2
    end = [lm.eos_token_id]
    rows = [lm.ids(p, start=True) + lm.ids(c, start=False) + end for p, c in zip(prompts, texts)]

    def bare():
        feats = []
        with torch.no_grad():
            for b in range(0, len(rows), 32):
                ids, mask = padded(rows[b:b + 32], pad_id(lm), lm.device)
                h = lm.model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
                feats.append(h[:, -1])
        f = torch.cat(feats)
        w = torch.zeros(f.shape[1], requires_grad=True)
        opt = torch.optim.Adam([w], lr=0.05)
        d = f[:32] - f[32:]
        for _ in range(200):
            loss = -torch.nn.functional.logsigmoid(d @ w).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return trainer, bare


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    lm = lk.load()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} on {torch.get_num_threads()} threads, "
          f"load {os.getloadavg()[0]:.1f}")
    results, ok = {}, True
    for name, make in (("RL step", rl_pair), ("DPO step", dpo_pair),
                       ("reward model (32 pairs)", rm_pair)):
        trainer, bare = make(lm)
        t = interleaved({"trainer": trainer, "bare": bare}, repeats=args.repeats)
        ratio = statistics.median(a / b for a, b in zip(t["trainer"], t["bare"]))
        results[name] = {"trainer_s": statistics.median(t["trainer"]),
                         "bare_s": statistics.median(t["bare"]), "ratio": ratio}
        passed = ratio <= BUDGET
        ok &= passed
        print(f"{name:26s} trainer {results[name]['trainer_s']:6.2f} s   bare parts "
              f"{results[name]['bare_s']:6.2f} s   ratio {ratio:4.2f}x  (budget {BUDGET}x) "
              f"{'ok' if passed else 'OVER'}")
        for v in [m for m in adapters.adapter_names(lm.model) if m.startswith("bench")]:
            adapters.delete(adapters.AdapterView(lm.model, v))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
