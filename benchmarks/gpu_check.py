"""One prepared check for a session that has a GPU: run it once (it ends within ``--limit`` + 1 minute: 7.7 minutes).

    python benchmarks/gpu_check.py --out runs/gpu_check.json            # on the GPU machine
    python benchmarks/gpu_check.py --quick --out /tmp/gpu_check.json    # anywhere: a tiny CPU run of the same steps

It writes one JSON file:

- ``device``: the device's name, torch and CUDA versions, GPU memory;
- ``throughput``: for resnet50 and mobilenet_v2 at ``--preset gpu`` (proxy width 0.5, 64 px, bf16
  autocast on a GPU), the baseline's proxy trained by 1, 2 and 4 processes at once (plain
  subprocesses started together behind a barrier): each process's training images/s and the
  aggregate (all images over the span from the first start to the last end), with GPU utilisation
  and memory sampled from ``nvidia-smi`` every half second while they run (none without it);
- ``searches``: the wall time of README's main job on the device (``scaler search --baseline resnet50
  --budget 2x --device cuda``, family and report included: the figure to set beside this CPU's
  ``make run``), then of the same search at ``--preset gpu`` with four worker processes sharing
  the GPU, then README's job with four workers; each with the line that says how many runs it
  trained in how long (before commit ee9c71a that line counted the search's own process's runs only).

The steps run as: resnet50's throughput (1, 2, 4 processes), README's job, mobilenet_v2's
throughput, then the two 4-worker searches, so a lease cut short still measures what matters most.
``--only NAME`` (repeatable) runs just the named searches, in the order given.

``--quick`` degrades every step so the script can be tested on a CPU (synthetic 16-px data, a
width-0.125 proxy at 16 px, 1 and 2 processes, smoke searches); its figures say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINES = ("resnet50", "mobilenet_v2")
QUICK_DATA = "synthetic:size=16,images=300"
QUICK_RECIPE = {"proxy_width": 0.125, "proxy_resolution": 16, "subset": 128, "epochs": 1, "warmup_epochs": 0.2}


def child(args) -> int:
    """One process of a throughput run: load, wait at the barrier, train, print one JSON line."""
    from scaler.baselines import get_baseline
    from scaler.proxy import dataset, train_point
    from scaler.recipe import resolve_recipe
    from scaler.scaling import Multipliers

    baseline = get_baseline(args.child)
    recipe = resolve_recipe("gpu", baseline, json.loads(args.recipe))
    data = dataset(args.data, recipe.seed)
    data.train.images_at(recipe.proxy_resolution)  # resize before the barrier: the window times training only
    barrier = Path(args.barrier)
    (barrier / f"ready-{os.getpid()}").touch()
    while not (barrier / "go").exists():
        time.sleep(0.05)
    start = time.time()
    result = train_point(baseline, Multipliers(), data=data, recipe=recipe, device=args.device, seed=0)
    print(json.dumps({"images_per_s": result.images_per_s, "images": result.images_seen, "seconds": result.seconds,
                      "start": start, "end": time.time(), "accuracy": result.accuracy, "device": result.device}))
    return 0


class Sampler:
    """nvidia-smi's GPU utilisation (%) and memory (MiB), every ``period`` seconds, in a thread."""

    QUERY = ("nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits")

    def __init__(self, period: float = 0.5) -> None:
        self.period, self.samples, self.available = period, [], shutil.which("nvidia-smi") is not None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        if self.available:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self.available:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(self.QUERY, capture_output=True, text=True, timeout=5).stdout
                self.samples += parse_smi(out, time.time())
            except (OSError, subprocess.SubprocessError):
                pass
            self._stop.wait(self.period)

    def summary(self) -> dict:
        if not self.available:
            return {"nvidia_smi": False}
        util = [s["utilisation"] for s in self.samples]
        return {"nvidia_smi": True, "samples": self.samples, "utilisation_mean": sum(util) / len(util) if util else None,
                "utilisation_max": max(util, default=None), "memory_mib_max": max((s["memory_mib"] for s in self.samples), default=None)}


def parse_smi(text: str, when: float) -> list[dict]:
    """nvidia-smi's ``utilization.gpu, memory.used`` CSV lines (one per GPU; no units) as samples."""
    out = []
    for gpu, line in enumerate(line for line in text.splitlines() if line.strip()):
        try:
            util, memory = (float(v) for v in line.split(","))
        except ValueError:  # "[N/A]" or a message instead of numbers
            continue
        out.append({"t": round(when, 2), "gpu": gpu, "utilisation": util, "memory_mib": memory})
    return out


def throughput(baseline: str, processes: int, args, env: dict) -> dict:
    """``processes`` copies of one proxy run started together; their rates and the aggregate."""
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as barrier:
        cmd = [sys.executable, __file__, "--child", baseline, "--barrier", barrier, "--device", args.device,
               "--data", args.data, "--recipe", json.dumps(args.recipe_overrides)]
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(processes)]
        deadline = min(time.time() + 240, args.end)
        while len(list(Path(barrier).glob("ready-*"))) < processes and time.time() < deadline:
            if any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(0.05)
        with Sampler() as sampler:
            (Path(barrier) / "go").touch()
            outs = [_finish(p, deadline) for p in procs]
    runs, errors = [], []
    for p, (stdout, stderr) in zip(procs, outs):
        if p.returncode == 0 and stdout.strip():
            runs.append(json.loads(stdout.strip().splitlines()[-1]))
        else:
            errors.append((stderr.strip().splitlines() or ["no output"])[-1])
    span = (max(r["end"] for r in runs) - min(r["start"] for r in runs)) if runs else None
    return {"baseline": baseline, "processes": processes, "per_process_images_per_s": [r["images_per_s"] for r in runs],
            "aggregate_images_per_s": sum(r["images"] for r in runs) / span if span else None, "span_s": span,
            "errors": errors, "gpu": sampler.summary()}


def _finish(proc: subprocess.Popen, deadline: float) -> tuple[str, str]:
    """A child's output; one still running at the deadline is killed (this script started it) and says so."""
    try:
        return proc.communicate(timeout=max(1.0, deadline - time.time()))
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, _ = proc.communicate()
        return stdout, "timed out"


# The searches timed on the device: README's main job as it is (the comparison with this CPU's
# `make run`), then the gpu preset with four worker processes sharing the GPU, then README's job so.
SEARCHES = (("default", []), ("gpu preset, 4 workers", ["--preset", "gpu", "--workers", "4"]),
            ("default, 4 workers", ["--workers", "4"]))
QUICK_SEARCHES = (("smoke", []), ("smoke, 2 workers", ["--workers", "2"]))
QUICK_SEARCH_ARGS = ["--preset", "smoke", "--data", QUICK_DATA, "--confirm", "0", "--curves", "none", "--no-family",
                     "--no-report"]


def search(name: str, extra: list[str], args, env: dict) -> dict:
    """The wall time of one ``scaler search`` on the device; one cut short by the deadline is ended with its workers."""
    with tempfile.TemporaryDirectory(prefix="gpu_check-search-") as out:
        cmd = [sys.executable, "-m", "scaler", "search", "--baseline", "resnet50", "--budget", "2x", "--device", args.device,
               *(QUICK_SEARCH_ARGS if args.quick else []), *extra, "--out", out]
        start = time.perf_counter()
        limit = max(10.0, args.end - time.time())
        with Sampler() as sampler:
            # Its own process group: local workers are its children, and a search cut short must not leave them on the GPU.
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
                                    start_new_session=True)
            try:
                stdout, stderr = proc.communicate(timeout=limit)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):  # it may end between the timeout and the kill
                    os.killpg(proc.pid, signal.SIGKILL)
                stdout, stderr = proc.communicate()
                stderr += f"\ntimed out after {limit:.0f} s"
        lines = stdout.splitlines()
        return {"name": name, "command": " ".join(cmd[1:]).replace(out, "TMP"), "wall_s": time.perf_counter() - start,
                "returncode": proc.returncode,
                "chosen": next((line for line in lines if line.startswith("chosen:")), None),
                "trained": next((line.strip() for line in lines if "trained" in line and line.startswith("run folder")), None),
                "error": stderr.strip().splitlines()[-1] if proc.returncode and stderr.strip() else None,
                "stderr_tail": stderr.strip().splitlines()[-6:],
                "gpu": {k: v for k, v in sampler.summary().items() if k != "samples"}}


def steps(quick: bool, only: list[str] | None = None) -> list[tuple]:
    """The steps in the order they run: what a short device lease must not miss comes first.

    ``only``: just these searches, by name (a second lease measuring what the first did not reach)."""
    counts = (1, 2) if quick else (1, 2, 4)
    searches = [("search", name, extra) for name, extra in (QUICK_SEARCHES if quick else SEARCHES)]
    if only:
        unknown = set(only) - {s[1] for s in searches}
        if unknown:
            raise SystemExit(f"gpu_check: unknown search(es) {sorted(unknown)} (known: {[s[1] for s in searches]})")
        by_name = {s[1]: s for s in searches}
        return [by_name[name] for name in dict.fromkeys(only)]  # in the order given
    return [*(("throughput", BASELINES[0], n) for n in counts), searches[0],
            *(("throughput", BASELINES[1], n) for n in counts), *searches[1:]]


def describe_device(device: str) -> dict:
    import torch

    out = {"requested": device, "torch": torch.__version__, "cuda_available": torch.cuda.is_available(),
           "cuda": torch.version.cuda, "threads": torch.get_num_threads()}
    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(index)
        out.update(name=props.name, memory_gib=round(props.total_memory / 2**30, 1), capability=f"{props.major}.{props.minor}",
                   bf16=torch.cuda.is_bf16_supported())
    else:
        out["name"] = "cpu"
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/gpu_check.json")
    p.add_argument("--device", default=None, help="default: cuda when present, else cpu")
    p.add_argument("--quick", action="store_true", help="a tiny CPU-sized run of every step (tests the script)")
    p.add_argument("--data", default=None, help="default: the project's default data (quick: synthetic 16 px)")
    p.add_argument("--epochs", type=int, default=4, help="epochs of each throughput run (default 4)")
    p.add_argument("--limit", type=float, default=400,
                   help="start no step after this many seconds, and cut a step short 40 s later (default 400)")
    p.add_argument("--only", action="append", metavar="SEARCH",
                   help="run only this search, by name (repeatable, run in the order given; no throughput steps), "
                        "e.g. 'default, 4 workers'")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--barrier", help=argparse.SUPPRESS)
    p.add_argument("--recipe", default="{}", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)

    import torch

    from scaler.options import DEFAULT_SOURCE

    started = time.perf_counter()
    args.end = time.time() + args.limit + 40  # no step runs past this: the script ends within --limit + 1 minute
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.data = args.data or (QUICK_DATA if args.quick else DEFAULT_SOURCE)
    # A GPU trains the whole training split (the gpu preset keeps the default's 2,000-image subset; more
    # images per run keep the GPU busy for long enough to measure).
    args.recipe_overrides = dict(QUICK_RECIPE) if args.quick else {"subset": None, "epochs": args.epochs}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    if args.device == "cpu":
        env.setdefault("OMP_NUM_THREADS", "1")  # several processes on a few cores: one thread each
    report = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "command": " ".join(["python", *sys.argv]),
              "quick": args.quick, "data": args.data, "recipe": {"preset": "gpu", **args.recipe_overrides},
              "device": describe_device(args.device), "throughput": [], "skipped": []}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every step: a run cut short still leaves what it measured
        report["total_s"] = time.perf_counter() - started
        out.write_text(json.dumps(report, indent=1) + "\n")

    print(f"device: {report['device']['name']} ({args.device}); data {args.data}", flush=True)
    report["searches"] = []
    for step in steps(args.quick, args.only):
        if time.perf_counter() - started > args.limit:
            report["skipped"].append(f"search ({step[1]})" if step[0] == "search" else f"{step[1]} x{step[2]}")
            continue
        if step[0] == "search":
            row = search(step[1], step[2], args, env)
            report["searches"].append(row)
            print(f"search ({row['name']}): {row['wall_s']:.1f} s wall, exit {row['returncode']}; {row['trained']}", flush=True)
        else:
            row = throughput(step[1], step[2], args, env)
            report["throughput"].append(row)
            rates = ", ".join(f"{r:.0f}" for r in row["per_process_images_per_s"])
            aggregate = row["aggregate_images_per_s"]
            print(f"{step[1]} x{step[2]}: {rates} images/s per process; aggregate "
                  f"{aggregate:.0f}" if aggregate else f"{step[1]} x{step[2]}: failed: {row['errors']}", flush=True)
        save()
    save()
    print(f"wrote {out} ({report['total_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
