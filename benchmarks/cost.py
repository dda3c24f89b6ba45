"""How long costing one candidate takes: scaler's counter against plain fvcore, in one run.

For each built-in baseline at its base resolution, for efficientnet_b0 at B7's multipliers
(width 2.0, depth 3.1) at 600 px, and for baselines the tool did not write (a torchvision builder
scaled by its own knobs, one rewritten, a timm model) at a 2x candidate (depth 1.26, width 1.12,
251 px: EfficientNet's split of 2x), time

- ``scaler.cost.count_cost(...)`` — the project's counter (analytic for the built-ins), and
- plain fvcore: build the model, then ``fvcore.nn.FlopCountAnalysis(model, x).total()``,

and print them side by side with their ratio, and whether fvcore's total equals the counter's
``fvcore_total`` (the counts must be exact, not just fast). Goals: 0.1 s for an analytic count,
2 s for a traced one (a build, a rewrite and an fvcore trace). Usage::

    .venv/bin/python benchmarks/cost.py [--repeats 5] [--fvcore-repeats 1] [--threads N]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
import warnings

import torch
from fvcore.nn import FlopCountAnalysis

from scaler.baselines import get_baseline, list_baselines
from scaler.cost import count_cost
from scaler.scaling import format_macs

TRACED = ["torchvision.models:regnet_y_400mf", "torchvision.models:shufflenet_v2_x1_0", "torchvision.models:convnext_tiny"]
try:
    import timm  # noqa: F401  (the optional extra)

    TRACED.append("timm:resnet26d")
except ImportError:
    pass
GOALS = {"analytic": 0.1, "fvcore": 2.0, "flop_counter": 2.0}


def _seconds(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _plain_fvcore(name: str, width: float, depth: float, resolution: int) -> int:
    model = get_baseline(name).build(width=width, depth=depth, num_classes=1000).eval()
    analysis = FlopCountAnalysis(model, torch.zeros(1, 3, resolution, resolution))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    with torch.no_grad():
        return int(analysis.total())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls of count_cost per row; median (default 5)")
    parser.add_argument("--fvcore-repeats", type=int, default=1, help="timed plain-fvcore runs per row; median (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")  # tracer chatter
    logging.getLogger("fvcore").setLevel(logging.ERROR)

    rows = [(name, 1.0, 1.0, get_baseline(name).resolution) for name in list_baselines()]
    rows.append(("efficientnet_b0", 2.0, 3.1, 600))  # = efficientnet_b7
    # A 2x candidate of networks the tool did not write: a library's knobs, a rewrite, timm's.
    rows += [(spec, 1.12, 1.26, 251) for spec in TRACED]
    _plain_fvcore("resnet18", 1.0, 1.0, 32)  # warm-up: the first trace pays one-off costs
    count_cost("resnet18")

    header = (
        f"{'model':<52} {'px':>4} {'MACs':>7} {'count_cost s':>12} {'method':>8} "
        f"{'fvcore s':>9} {'ratio':>8} {'same total':>10}"
    )
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; MACs are multiply-adds; "
          "fvcore s = build + FlopCountAnalysis(...).total()")
    print(header)
    print("-" * len(header))
    missed = []
    for name, width, depth, resolution in rows:
        ours_s, cost = _seconds(lambda n=name, w=width, d=depth, r=resolution: count_cost(n, width=w, depth=d, resolution=r), args.repeats)
        fv_s, fv_total = _seconds(lambda n=name, w=width, d=depth, r=resolution: _plain_fvcore(n, w, d, r), args.fvcore_repeats)
        if ours_s > GOALS[cost.method]:
            missed.append(f"{name} {ours_s:.3f} s > {GOALS[cost.method]:g} s")
        label = name if (width, depth) == (1.0, 1.0) else f"{name} w{width:g} d{depth:g}" + (" (B7)" if depth == 3.1 else "")
        print(
            f"{label:<52} {resolution:>4} {format_macs(cost.macs):>7} {ours_s:>12.6f} {cost.method:>8} "
            f"{fv_s:>9.3f} {fv_s / ours_s:>7.0f}x {'yes' if fv_total == cost.fvcore_total else 'NO':>10}"
        )
    print("every count within its goal (analytic <= 0.1 s, traced <= 2 s)" if not missed else f"over the goal: {'; '.join(missed)}")
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())
