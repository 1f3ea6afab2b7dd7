"""Peak memory and wall time of each notebook, run top to bottom in a fresh kernel.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/notebook_memory.py   # as on mybinder.org
    .venv/bin/python benchmarks/notebook_memory.py --mode quick notebooks/02_prompting.ipynb
    .venv/bin/python benchmarks/notebook_memory.py --json benchmarks/results/notebook_memory.json

mybinder.org gives a session 1 CPU and 2 GB of memory, so every notebook has to fit in that.
Each notebook (all of notebooks/*.ipynb, or those named) runs in quick mode (LABKIT_QUICK=1)
and in full mode (LABKIT_QUICK unset, what a learner runs), each in a fresh python3 kernel
started by nbclient with the notebook's folder as working directory, as JupyterLab would.

* peak: the largest sum of the resident memory (RSS) of the kernel process and all its
  children, sampled with psutil every 0.15 s from a background thread (RSS counts pages shared
  between processes once per process, so this errs on the high side). A spike shorter than
  the sampling interval can slip between samples, so one extra cell at the end reads the
  kernel's own peak from getrusage(), and the larger of the two is reported (both are in the
  JSON).
* time: wall time from starting the kernel to the end of the last cell; on a busy machine it
  inflates (see the load average printed with the machine).

A notebook that fails or times out is reported in its cell of the table, not raised. The
script exits with status 1 if any notebook errored or any full-mode peak is >= 2 GB (10^9
bytes; Binder's limit is for the whole container, server included, so keep a margin).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT_GB = 2.0          # mybinder.org's memory limit
INTERVAL_S = 0.15       # psutil sampling period
# one extra cell: the kernel's own peak RSS (getrusage) and the torch threads it actually used
PROBE = """import json, sys
try:
    import resource
    _peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    _peak *= 1 if sys.platform == "darwin" else 1024
except ImportError:  # Windows
    _peak = None
_torch = sys.modules.get("torch")
print("NBMEM " + json.dumps({"maxrss_gb": _peak and _peak / 1e9,
                             "torch_threads": _torch and _torch.get_num_threads()}))"""


class PeakSampler(threading.Thread):
    """Samples RSS(process + children) of `pid` every INTERVAL_S s and keeps the largest."""

    def __init__(self):
        super().__init__(daemon=True)
        self.pid, self.peak, self.samples = None, 0, 0
        self._done = threading.Event()

    def run(self) -> None:
        import psutil
        while not self._done.wait(INTERVAL_S):
            if self.pid is None:
                continue
            try:
                proc = psutil.Process(self.pid)
                procs = [proc] + proc.children(recursive=True)
            except psutil.NoSuchProcess:
                continue
            rss = 0
            for p in procs:
                try:
                    rss += p.memory_info().rss
                except psutil.NoSuchProcess:  # a child that just exited
                    pass
            self.peak, self.samples = max(self.peak, rss), self.samples + 1

    def stop(self) -> float:
        self._done.set()
        self.join()
        return self.peak / 1e9


def run_notebook(path: Path, quick: bool, timeout: int) -> dict:
    """Execute `path` in a fresh kernel; return time, peak memory and the error, if any."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    env = {k: v for k, v in os.environ.items() if k != "LABKIT_QUICK"}
    if quick:
        env["LABKIT_QUICK"] = "1"
    sampler = PeakSampler()
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.on_notebook_start = lambda notebook: setattr(sampler, "pid", client.km.provisioner.pid)
    error = None
    with tempfile.TemporaryFile("w+") as log:  # the kernel's stderr: a TCP warning, crash messages
        sampler.start()
        t0 = time.perf_counter()
        try:
            client.execute(env=env, stderr=log)
        except Exception as e:  # CellExecutionError, CellTimeoutError, DeadKernelError, ...
            error = (f"{e.ename}: {first_line(e.evalue)}" if getattr(e, "ename", None)
                     else f"{type(e).__name__}: {first_line(str(e))}")
        wall = time.perf_counter() - t0
        log.seek(0)
        stderr_tail = log.read().strip().splitlines()[-5:]
    result = {"notebook": path.name, "mode": "quick" if quick else "full", "wall_s": wall,
              "sampled_peak_gb": sampler.stop(), "samples": sampler.samples, **probe(nb),
              "error": error, "failed_cell": failed_cell(nb) if error else None,
              "kernel_stderr": stderr_tail if error else None}
    result["peak_gb"] = max(result["sampled_peak_gb"], result["kernel_maxrss_gb"] or 0)
    return result


def first_line(text: str) -> str:
    lines = [ln for ln in str(text).strip().splitlines() if ln.strip()]
    return lines[0][:200] if lines else ""


def failed_cell(nb) -> int | None:
    """Index of the first cell whose outputs hold an error."""
    for i, cell in enumerate(nb.cells):
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return i
    return None


def probe(nb) -> dict:
    """What the PROBE cell printed (nothing if the notebook stopped earlier)."""
    for out in nb.cells[-1].get("outputs", []):
        for line in out.get("text", "").splitlines():
            if line.startswith("NBMEM "):
                return {"kernel_" + k: v for k, v in json.loads(line[6:]).items()}
    return {"kernel_maxrss_gb": None, "kernel_torch_threads": None}


def machine() -> dict:
    from bench_core import cpu_model  # the script's own folder is on sys.path
    import psutil
    import torch
    return {"cpu": cpu_model(), "logical_cores": os.cpu_count(),
            "physical_cores": psutil.cpu_count(logical=False),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "memory_gb": psutil.virtual_memory().total / 1e9, "python": platform.python_version(),
            "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def cell(r: dict | None) -> tuple[str, str]:
    """(time, peak) as shown in the table."""
    if r is None:
        return "", ""
    peak = f"{r['peak_gb']:.2f} GB" + (" ⚠ ≥ 2 GB" if r["peak_gb"] >= LIMIT_GB else "")
    if r["error"]:
        where = f" in cell {r['failed_cell']}" if r["failed_cell"] is not None else ""
        return f"**failed{where}** after {r['wall_s']:.0f} s", peak
    return f"{r['wall_s']:.0f} s", peak


def table(results: list[dict]) -> str:
    by = {(r["notebook"], r["mode"]): r for r in results}
    lines = ["| notebook | quick: time | quick: peak | full: time | full: peak |",
             "|---|---:|---:|---:|---:|"]
    for name in dict.fromkeys(r["notebook"] for r in results):
        lines.append(f"| {name.removesuffix('.ipynb')} | "
                     + " | ".join(cell(by.get((name, "quick"))) + cell(by.get((name, "full"))))
                     + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="*", type=Path,
                    help="notebooks to run (default: notebooks/*.ipynb)")
    ap.add_argument("--mode", choices=["quick", "full", "both"], default="both")
    ap.add_argument("--timeout", type=int, default=1800, metavar="S",
                    help="seconds per cell before it counts as failed (default 1800)")
    ap.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    args = ap.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    modes = {"quick": [True], "full": [False], "both": [True, False]}[args.mode]

    info = machine()
    print(f"machine: {info['cpu']}, {info['logical_cores']} logical / {info['physical_cores']} "
          f"physical cores, {info['memory_gb']:.0f} GB RAM, torch threads {info['torch_threads']} "
          f"(OMP_NUM_THREADS={info['OMP_NUM_THREADS']}), torch {info['torch']}, "
          f"load average {info['load_average']:.1f}", flush=True)
    runs = [(p, q) for q in modes for p in paths]   # every quick run first: errors show early
    results = []
    for i, (path, quick) in enumerate(runs, 1):
        print(f"[{i}/{len(runs)}] {path.name} ({'quick' if quick else 'full'}) ...",
              end=" ", flush=True)
        r = run_notebook(path, quick, args.timeout)
        results.append(r)
        print(f"{r['wall_s']:.0f} s, peak {r['peak_gb']:.2f} GB"
              + (f", kernel torch threads {r['kernel_torch_threads']}"
                 if r["kernel_torch_threads"] else "")
              + (f" -- {r['error']}" if r["error"] else ""), flush=True)

    info["load_average_after"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    print("\n" + table(results) + "\n")
    errors = [r for r in results if r["error"]]
    over = [r for r in results if r["mode"] == "full" and r["peak_gb"] >= LIMIT_GB]
    for r in errors:
        print(f"error: {r['notebook']} ({r['mode']}), cell {r['failed_cell']}: {r['error']}")
    for r in over:
        print(f"over Binder's {LIMIT_GB:g} GB: {r['notebook']} (full) peaks at "
              f"{r['peak_gb']:.2f} GB")
    if not errors and not over:
        print(f"every notebook ran; every full-mode peak is under {LIMIT_GB:g} GB")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"machine": info, "results": results}, indent=1) + "\n")
        print(f"figures written to {path}")
    return 1 if errors or over else 0


if __name__ == "__main__":
    sys.exit(main())
