"""Does ``OMP_WAIT_POLICY`` set inside a process that has imported torch change anything? No.

libgomp reads its environment once, when torch loads it. Each mode runs in a fresh process: the
policy set to PASSIVE before ``import torch``, after it, or not at all; then 300 small matrix
products on 2 threads with a 2 ms pause after each. Waiting threads that spin burn CPU through the
pauses; threads that sleep do not, so the CPU time tells which policy is in force.

    .venv/bin/python benchmarks/wait_policy.py
"""

from __future__ import annotations

import os
import subprocess
import sys

CHILD = """
import os, sys, time
if sys.argv[1] == "before":
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
import torch
if sys.argv[1] == "after":
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
torch.set_num_threads(2)
a = torch.randn(256, 256)
wall, cpu = time.perf_counter(), time.process_time()
for _ in range(300):
    a @ a
    time.sleep(0.002)
print(f"{time.perf_counter() - wall:.2f} {time.process_time() - cpu:.2f}")
"""


def main() -> None:
    if "OMP_WAIT_POLICY" in os.environ:
        print("OMP_WAIT_POLICY is set in this shell: every mode inherits it")
    print("| PASSIVE set | wall s | CPU s |\n|---|---:|---:|")
    for mode in ("none", "after", "before") * 2:
        out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True).stdout.split()
        print(f"| {mode} `import torch` |" if mode != "none" else "| never |", f"{out[0]} | {out[1]} |")


if __name__ == "__main__":
    main()
