"""Does a proxy run keep its speed when another process wants a core? Quiet vs contended, side by side.

For each thread setting (threads, OpenMP wait policy), in a fresh process (OpenMP reads its
policy when torch loads), it times the training images/s of ``scaler.train.train`` twice: alone
(quiet) and beside one competing process that keeps one core busy (contended, a busy loop: another
worker, a browser). The settings alternate and each figure is the best of ``--repeats`` so the
noise of a shared machine is damped; the load average is printed beside them. scaler's choice:
threads = the CPUs a run was given (a worker's share, a Ray trial's ``cpu``), and OMP_WAIT_POLICY
PASSIVE (scaler/cli.py); a run should keep at least 40% of its quiet throughput.

    .venv/bin/python benchmarks/contention.py
    .venv/bin/python benchmarks/contention.py --repeats 3 --subset 512
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# (label, torch threads, OMP_WAIT_POLICY or None for OpenMP's default)
SETTINGS = [
    ("2 threads, OpenMP default wait", 2, None),
    ("2 threads, PASSIVE (scaler's default on 2 CPUs)", 2, "PASSIVE"),
    ("1 thread, PASSIVE (a worker's share of 2 CPUs with --workers 2)", 1, "PASSIVE"),
]

CHILD = """
import json, sys, warnings
warnings.filterwarnings("ignore")
import torch
from scaler.recipe import PRESETS
from scaler.train import train
from scaler.devices import set_threads
threads, subset = int(sys.argv[1]), int(sys.argv[2])
set_threads(threads)
recipe = PRESETS["smoke"].replace(epochs=1, subset=subset)
train("resnet18", width=1.0, depth=1.0, resolution_px=32, data="synthetic", recipe=recipe)  # warm-up: kernels built
r = train("resnet18", width=1.0, depth=1.0, resolution_px=32, data="synthetic", recipe=recipe)
print(json.dumps({"images_per_s": r.images_per_s, "threads": torch.get_num_threads()}))
"""


def measure(threads: int, policy: str | None, subset: int) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run([sys.executable, "-c", CHILD, str(threads), str(subset)], env=env, capture_output=True,
                         text=True, check=True, timeout=900)
    return json.loads(out.stdout.strip().splitlines()[-1])["images_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--subset", type=int, default=512, help="training images per run")
    args = parser.parse_args()
    best: dict[tuple[str, str], float] = {}
    loads = []
    for _ in range(args.repeats):
        for label, threads, policy in SETTINGS:
            for mode in ("quiet", "contended"):
                hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if mode == "contended" else None
                try:
                    time.sleep(0.5 if hog else 0)
                    rate = measure(threads, policy, args.subset)
                finally:
                    if hog:
                        hog.kill()
                        hog.wait()
                best[label, mode] = max(best.get((label, mode), 0.0), rate)
                loads.append(os.getloadavg()[0])
    print(f"resnet18 at 32 px, {args.subset} images, best of {args.repeats}; load average during the runs "
          f"{min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs")
    print(f"{'setting':<66} {'quiet img/s':>12} {'contended img/s':>16} {'kept':>6}")
    for label, _, _ in SETTINGS:
        quiet, contended = best[label, "quiet"], best[label, "contended"]
        print(f"{label:<66} {quiet:>12.0f} {contended:>16.0f} {contended / quiet:>6.0%}")


if __name__ == "__main__":
    main()
