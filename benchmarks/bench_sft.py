"""Speed and memory of supervised fine-tuning (labkit.sft) on SmolLM2-135M-Instruct.

    .venv/bin/python benchmarks/bench_sft.py              # or --quick, --threads N, --json F

Rows, each with its budget where it has one (the script exits with status 1 if one is missed):

* trainer overhead: `lk.sft.finetune` (LoRA r=8 on q_proj/v_proj, AdamW, fp32, one batch of
  12 chat examples of ~46 tokens) per step, everything included -- tokenizing, injecting the
  adapter into the shared base, the schedule, clipping, the history, removing the adapter
  after -- against a bare step of the same batch through the same peft-injected model: a
  forward with transformers' own `labels=` loss, backward, and an AdamW step. Both are timed
  in interleaved rounds (`labkit.metrics.interleaved`, one untimed warm-up each); the ratio is
  the median of the per-round ratios. Budget 1.2x.
* LoRA against full fine-tuning (`lora_r=None`: a copy of the model, every weight trained),
  each in a fresh subprocess so that their peaks are separate: trainable parameters, seconds
  per step (the median step after the first) and the peak resident memory (RSS) of the
  process, beside the peak after loading the model alone; and LoRA with
  `gradient_checkpointing=True` (activations recomputed in the backward pass). Full
  fine-tuning with AdamW in fp32 holds 4 bytes x 4 (weights, gradients, two moments) per
  parameter -- ~2.2 GB for 135M, plus the base it leaves untouched: it cannot fit
  mybinder.org's 2 GB. Budget: LoRA with checkpointing peaks <= 2 GB (Binder's limit); plain
  LoRA and full fine-tuning have none (measured, not budgeted: at this batch plain LoRA's
  activations alone pass 2 GB).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from labkit.metrics import peak_rss_gb   # Linux's VmHWM: a subprocess's own peak

RESULT_TAG = "BENCH_RESULT "
WORDS = ["apple", "river", "cloud", "stone", "tiger", "piano", "lemon", "forest", "candle",
         "rocket", "garden", "silver"]
BUDGETS = {  # row -> (limit, unit); a row passes when its value is <= the limit
    "LoRA step / bare step": (1.2, "x"),
    "LoRA + checkpointing: peak RSS": (2.0, "GB"),
}


def examples():
    """12 chat examples of ~46 tokens each with SmolLM2's template (the issue's batch)."""
    return [(f"Write the word {w} in capital letters.",
             f"{w.upper()}. That is {w} written in capital letters.") for w in WORDS]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device) -> dict:
    import peft
    import torch
    import transformers
    info = {"cpu": cpu_model(), "logical_cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__,
            "python": platform.python_version(), "device": str(device),
            "load_average": os.getloadavg()[0]}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


# --- one configuration in a fresh process --------------------------------------------------


def child(kind: str, steps: int, threads: int | None) -> None:
    """Load the model, fine-tune `steps` steps (lora, lora-ckpt or full), print one JSON line."""
    import torch

    import labkit as lk
    from labkit import sft

    if threads:
        torch.set_num_threads(threads)
    lm = lk.load()
    loaded = peak_rss_gb()
    cfg = sft.SFTConfig(max_steps=steps, batch_size=12, warmup_steps=0,
                        lora_r=None if kind == "full" else 8,
                        learning_rate=2e-5 if kind == "full" else 2e-4,
                        gradient_checkpointing=kind == "lora-ckpt")
    tuned, history = sft.finetune(lm, examples(), cfg, progress=False)
    seconds = [b["seconds"] - a["seconds"] for a, b in zip(history, history[1:])]
    if kind != "full":
        from labkit import adapters
        trainable = sum(p.numel() for p in adapters.adapter_parameters(
            tuned.model.base, tuned.model.names[-1]))
    else:
        trainable = sum(p.numel() for p in tuned.model.parameters())
    total = sum(p.numel() for n, p in lm.model.named_parameters() if "lora_" not in n)
    print(RESULT_TAG + json.dumps({"kind": kind, "trainable": trainable, "parameters": total,
                                   "first_step_s": history[0]["seconds"],
                                   "step_s": statistics.median(seconds),
                                   "peak_rss_gb": peak_rss_gb(), "loaded_rss_gb": loaded,
                                   "device": str(lm.device)}), flush=True)


def run_child(kind: str, steps: int, threads: int | None) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--steps", str(steps)]
    if threads:
        cmd += ["--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"the {kind} subprocess failed:\n    " + "\n    ".join(tail))
    return json.loads(lines[-1][len(RESULT_TAG):])


# --- the trainer against a bare step, in this process ----------------------------------------


def overhead(steps: int, repeats: int, threads: int | None) -> tuple[dict, dict]:
    import torch
    from peft import LoraConfig

    import labkit as lk
    from labkit import adapters, metrics, sft

    if threads:
        torch.set_num_threads(threads)
    lm = lk.load()
    sync = torch.cuda.synchronize if lm.device.type == "cuda" else (lambda: None)
    cfg = sft.SFTConfig(max_steps=steps, batch_size=12, warmup_steps=0)
    data = examples()
    rows = sft.encode(lm, data)
    ids, mask, labels = sft.collate(rows, lm.tokenizer.pad_token_id, lm.device)

    base = lm.model                             # the same peft-injected model for both sides
    adapters.add(base, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                                  lora_dropout=cfg.lora_dropout,
                                  target_modules=list(cfg.target_modules)), "bare")
    view = adapters.AdapterView(base, ["bare"])

    def bare():
        for _ in range(steps):
            loss = view(input_ids=ids, attention_mask=mask, labels=labels).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync()

    def ours():
        tuned, _ = sft.finetune(lm, data, cfg, progress=False)
        sync()
        adapters.delete(tuned.model)

    with adapters.trainable(base, "bare") as params:
        opt = torch.optim.AdamW(params, lr=cfg.learning_rate)
        view.train()
        times = metrics.interleaved({"finetune": ours, "bare": bare}, repeats)
        view.eval()
    ratio = statistics.median(a / b for a, b in zip(times["finetune"], times["bare"]))
    figures = {"ratio": ratio, "finetune_step_s": statistics.median(times["finetune"]) / steps,
               "bare_step_s": statistics.median(times["bare"]) / steps, "steps_per_call": steps,
               "rounds_s": times, "tokens_per_row": [len(r) for r, _ in rows],
               "peak_rss_gb": peak_rss_gb()}
    return figures, machine(lm.device)


# --- the report ----------------------------------------------------------------------------


def row(name: str, value, fmt: str, detail: str = "") -> dict:
    limit, unit = BUDGETS.get(name, (None, ""))
    ok = None if limit is None or value is None else value <= limit
    return {"name": name, "value": value, "shown": "n/a" if value is None else fmt.format(value),
            "budget": f"<= {limit:g} {unit}" if limit is not None else "",
            "status": {True: "pass", False: "FAIL", None: ""}[ok], "detail": detail}


def print_table(rows: list[dict], info: dict, load_before: float, args) -> None:
    print(f"machine: {info['cpu']}, {info['logical_cores']} cores, torch threads "
          f"{info['torch_threads']}, torch {info['torch']}, transformers {info['transformers']}, "
          f"peft {info['peft']}, python {info['python']}, device {info['device']}"
          + (f" ({info['gpu']})" if info.get("gpu") else ""))
    busy = info["load_average"] > info["logical_cores"]
    print(f"load average: {load_before:.1f} before, {info['load_average']:.1f} after"
          + (" -- more runnable processes than cores: timings are inflated, ratios less so"
             if busy else ""))
    print(f"mode: {'quick' if args.quick else 'full'} ({args.repeats} interleaved rounds of "
          f"{args.steps} steps; {args.child_steps} steps per subprocess)\n")
    head = {"name": "row", "shown": "value", "budget": "budget", "status": "result"}
    widths = {k: max(len(r[k]) for r in rows + [head]) for k in head}
    print("  ".join(head[k].ljust(widths[k]) for k in head).rstrip())
    print("  ".join("-" * widths[k] for k in head))
    for r in rows:
        cells = [r["name"].ljust(widths["name"]), r["shown"].rjust(widths["shown"]),
                 r["budget"].ljust(widths["budget"]), r["status"].ljust(widths["status"])]
        print("  ".join(cells) + (f"  {r['detail']}" if r["detail"] else ""))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds and steps")
    p.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    p.add_argument("--threads", type=int, metavar="N", help="torch threads (default: torch's)")
    p.add_argument("--child", choices=["lora", "lora-ckpt", "full"], help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child, args.steps, args.threads)
        return 0
    args.repeats, args.steps, args.child_steps = (2, 2, 3) if args.quick else (5, 4, 5)
    load_before = os.getloadavg()[0]
    print("LoRA and full fine-tuning, one fresh subprocess each ...", flush=True)
    lora = run_child("lora", args.child_steps, args.threads)
    ckpt = run_child("lora-ckpt", args.child_steps, args.threads)
    full = run_child("full", args.child_steps, args.threads)
    print("trainer overhead: finetune vs bare steps, interleaved ...\n", flush=True)
    f, info = overhead(args.steps, args.repeats, args.threads)
    info["load_average"] = os.getloadavg()[0]
    n = full["parameters"]
    adam_gb = 4 * 4 * n / 1e9
    tokens = f["tokens_per_row"]
    rows = [
        row("LoRA step / bare step", f["ratio"], "{:.2f} x",
            f"{f['finetune_step_s']:.2f} s vs {f['bare_step_s']:.2f} s per step, 12 rows of "
            f"{min(tokens)}-{max(tokens)} tokens (mean {statistics.fmean(tokens):.0f})"),
        row("LoRA: trainable parameters", lora["trainable"] / 1e6, "{:.2f} M",
            f"{100 * lora['trainable'] / n:.2f}% of {n / 1e6:.0f}M (r=8 on q_proj, v_proj)"),
        row("LoRA: seconds per step", lora["step_s"], "{:.2f} s",
            f"first step {lora['first_step_s']:.2f} s"),
        row("LoRA: peak RSS", lora["peak_rss_gb"], "{:.2f} GB",
            f"{lora['loaded_rss_gb']:.2f} GB after loading the model"),
        row("LoRA + checkpointing: seconds per step", ckpt["step_s"], "{:.2f} s",
            f"{ckpt['step_s'] / lora['step_s']:.2f}x plain LoRA's"),
        row("LoRA + checkpointing: peak RSS", ckpt["peak_rss_gb"], "{:.2f} GB",
            "gradient_checkpointing=True"),
        row("full: trainable parameters", full["trainable"] / 1e6, "{:.1f} M", "every weight"),
        row("full: seconds per step", full["step_s"], "{:.2f} s",
            f"first step {full['first_step_s']:.2f} s; "
            f"{full['step_s'] / lora['step_s']:.1f}x LoRA's"),
        row("full: peak RSS", full["peak_rss_gb"], "{:.2f} GB",
            f"AdamW fp32: 4 B x 4 x {n / 1e6:.0f}M = {adam_gb:.2f} GB, + the untouched base "
            f"({4 * n / 1e9:.2f} GB) and activations"),
    ]
    print_table(rows, info, load_before, args)
    failed = [r["name"] for r in rows if r["status"] == "FAIL"]
    print(f"\n{'all budgets met' if not failed else 'budget missed: ' + ', '.join(failed)}")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"machine": info, "mode": "quick" if args.quick else "full",
                                    "rows": [{k: r[k] for k in ("name", "value", "budget",
                                                                "status")} for r in rows],
                                    "figures": {"overhead": f, "lora": lora,
                                                "lora_ckpt": ckpt, "full": full}},
                                   indent=1) + "\n")
        print(f"figures written to {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    t0 = time.perf_counter()
    code = main()
    if "--child" not in sys.argv:
        print(f"({time.perf_counter() - t0:.0f} s)")
    sys.exit(code)
