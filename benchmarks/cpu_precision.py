"""Would bf16 autocast speed up the proxies on a CPU? fp32 against bf16, side by side in one run.

``scaler.devices.autocast`` keeps a CPU in fp32. This measures what bf16 autocast would buy there:
the training images/s of a bare loop (channels_last, SGD with Nesterov momentum, one pre-made
batch) for each proxy the search trains by default, fp32 and bf16 alternating, the best of
``--repeats`` trials each, on one thread. Prints the CPU's bf16 / AMX flags beside the figures.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/cpu_precision.py
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from scaler.baselines import get_baseline

# (baseline, proxy width, px, batch): the animals default, and the glyphs recipes of docs/data.md.
PROXIES = [("resnet50", 0.25, 24, 128), ("resnet50", 0.125, 40, 64), ("mobilenet_v2", 0.25, 48, 64)]


def images_per_s(name: str, width: float, px: int, batch: int, steps: int, bf16: bool) -> float:
    torch.manual_seed(0)
    model = get_baseline(name).build(width=width, num_classes=10).to(memory_format=torch.channels_last).train()
    x = torch.randn(batch, 3, px, px).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    precision = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    for step in range(steps + 3):  # 3 warm-up steps build oneDNN's kernels for the shapes
        if step == 3:
            start = time.perf_counter()
        with precision():
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cpuinfo = Path("/proc/cpuinfo")
    flags = set(cpuinfo.read_text().split()) if cpuinfo.exists() else set()
    print("CPU flags:", " ".join(f for f in ("avx512_bf16", "amx_bf16") if f in flags) or "no bf16 instructions")
    for name, width, px, batch in PROXIES:
        best = {bf16: 0.0 for bf16 in (False, True)}
        for _ in range(args.repeats):
            for bf16 in best:
                best[bf16] = max(best[bf16], images_per_s(name, width, px, batch, args.steps, bf16))
        print(f"{name:13s} width {width:<5} {px:3d} px  batch {batch:3d}:  fp32 {best[False]:6.0f}  "
              f"bf16 {best[True]:6.0f} images/s  (bf16 / fp32 {best[True] / best[False]:.2f})", flush=True)


if __name__ == "__main__":
    main()
