"""Which networks the tool can scale that it did not write: parameters at (1, 1), width 1.5, depth 2.

For one small member of each torchvision classification family (and timm's resnet26d and
efficientnet_b0 where timm is installed), build the baseline ``torchvision.models:NAME`` at
(1, 1), at width 1.5 and at depth 2, and print its parameters (1000 classes), the blocks per stage
it was found to have at depth 1 and 2, how it is scaled, and whether a forward pass at 64 and 96 px
works at (1.5, 2). Usage::

    .venv/bin/python benchmarks/any_cnn.py [NAME ...]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import torch

from scaler.baselines import get_baseline
from scaler.baselines.any_model import REWRITE
from scaler.cost import count_params
from scaler.rewrite import find_stages

FAMILIES = ["resnet18", "resnext50_32x4d", "wide_resnet50_2", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
            "efficientnet_b0", "efficientnet_v2_s", "regnet_y_400mf", "regnet_x_400mf", "shufflenet_v2_x1_0", "mnasnet1_0",
            "convnext_tiny", "densenet121", "squeezenet1_1", "googlenet", "vgg11_bn"]
TIMM = ["timm:resnet26d", "timm:efficientnet_b0"]


def blocks(model: torch.nn.Module) -> str:
    dense = [m for m in model.modules() if type(m).__name__ == "_DenseBlock"]
    counts = [len(b) for b in dense] if dense else [s.blocks for s in find_stages(model)]
    return "-".join(map(str, counts)) or "none"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="torchvision builder names or timm:NAME (default: one per family)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    names = args.names or FAMILIES + TIMM
    print(f"torch {torch.__version__}; params with 1000 classes; blocks per stage as found (dense layers for DenseNet)")
    print(f"{'baseline':<40} {'params (1,1)':>13} {'width 1.5':>12} {'depth 2':>12} {'blocks d=1':>14} {'blocks d=2':>16} "
          f"{'runs':>5} {'s':>5}  scaled by")
    for name in names:
        spec = name if ":" in name else f"torchvision.models:{name}"
        start = time.perf_counter()
        try:
            b = get_baseline(spec)
            base, wide, deep = (b.build(width=w, depth=d) for w, d in ((1, 1), (1.5, 1), (1, 2)))
            both = b.build(width=1.5, depth=2).eval()
            with torch.no_grad():
                runs = all(both(torch.randn(2, 3, px, px)).shape == (2, 1000) for px in (64, 96))
        except Exception as exc:  # a network the tool cannot scale: say why, in one line
            print(f"{spec:<40} cannot be scaled: {str(exc).splitlines()[0]}")
            continue
        path = "rewrite" if b.scaling == REWRITE else b.scaling.split(":")[0]
        print(f"{spec:<40} {count_params(base):>13,} {count_params(wide):>12,} {count_params(deep):>12,} {blocks(base):>14} "
              f"{blocks(deep):>16} {'yes' if runs else 'NO':>5} {time.perf_counter() - start:>5.1f}  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
