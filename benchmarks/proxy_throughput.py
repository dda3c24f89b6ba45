"""How close does the proxy harness come to a minimal hand-written PyTorch loop, and to the machine?

For each model at the proxy recipe's width and resolution, measured side by side in one run:
the harness's training images/s (``scaler.train.train`` on the built-in data, augmentation and
loss checks included, evaluation excluded) and those of a bare loop (same model, batch, memory
format, optimizer; one pre-made batch, nothing else), both timed from the first step of a fresh
model after a warm-up run of each has built oneDNN's kernels for the shapes. Achieved GFLOP/s counts training as
3 x forward multiply-adds x 2 FLOPs, against this machine's fp32 matmul rate measured in the same
run. Each figure is the best of ``--repeats`` alternating trials, which damps the noise of a
shared machine.

    .venv/bin/python benchmarks/proxy_throughput.py
    .venv/bin/python benchmarks/proxy_throughput.py --models resnet18 --steps 30 --repeats 3
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F

from scaler.baselines import get_baseline
from scaler.cost import count_cost
from scaler.data import load_dataset
from scaler.devices import set_threads
from scaler.recipe import PRESETS
from scaler.train import train


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def hand_loop(name: str, width: float, px: int, num_classes: int, batch: int, steps: int, recipe) -> float:
    """Images/s of the plainest loop: fixed batch, channels_last, SGD Nesterov, label smoothing."""
    torch.manual_seed(0)
    model = get_baseline(name).build(width=width, num_classes=num_classes).to(memory_format=torch.channels_last).train()
    x = torch.randn(batch, 3, px, px).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=recipe.momentum, nesterov=True, weight_decay=recipe.weight_decay)
    start = time.perf_counter()  # from the first step of a fresh model, as the harness is timed
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y, label_smoothing=recipe.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - start)


def harness(name: str, width: float, px: int, data, steps: int, recipe) -> float:
    r = recipe.replace(epochs=1, subset=steps * recipe.batch_size, warmup_epochs=0.1, lr=0.01)
    return train(name, width=width, depth=1.0, resolution_px=px, data=data, recipe=r).images_per_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet18,mobilenet_v2,efficientnet_b0")
    parser.add_argument("--preset", default="default", choices=sorted(PRESETS))
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per trial")
    parser.add_argument("--repeats", type=int, default=2, help="alternating trials; the best counts")
    args = parser.parse_args(argv)

    threads = set_threads()
    torch.set_flush_denormal(True)
    recipe = PRESETS[args.preset]
    data = load_dataset("animals")
    width, px, batch = recipe.proxy_width, recipe.proxy_resolution, recipe.batch_size
    peak = max(matmul_gflops() for _ in range(2))
    print(f"{threads} threads; fp32 matmul 2048^3: {peak:.0f} GFLOP/s; proxy width {width}, {px} px, batch {batch}, "
          f"{args.steps} steps, best of {args.repeats}", flush=True)
    print(f"{'model':<16} {'MACs/img':>9} {'hand img/s':>11} {'harness img/s':>14} {'harness/hand':>13} "
          f"{'GFLOP/s':>8} {'% of matmul':>12}")
    for name in args.models.split(","):
        macs = count_cost(name, width=width, resolution=px, num_classes=data.num_classes).macs
        # Warm both paths once (oneDNN builds its kernels per shape on first use).
        harness(name, width, px, data, 2, recipe)
        hand_loop(name, width, px, data.num_classes, batch, 1, recipe)
        hand, ours = 0.0, 0.0
        for _ in range(args.repeats):
            ours = max(ours, harness(name, width, px, data, args.steps, recipe))
            hand = max(hand, hand_loop(name, width, px, data.num_classes, batch, args.steps, recipe))
        gflops = ours * 3 * macs * 2 / 1e9
        print(f"{name:<16} {macs / 1e6:>8.2f}M {hand:>11.0f} {ours:>14.0f} {ours / hand:>12.0%} {gflops:>8.1f} "
              f"{gflops / peak:>11.1%}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
