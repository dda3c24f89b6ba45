"""What each proxy size costs and buys: points kept by cost matching, the last feature map, seconds a run.

For each baseline and each proxy size (input pixels at resolution 1, width multiplier; the channel
divisor follows the width, ``ProxyRecipe.proxy_divisor``), side by side in one run:

- the 2x grid of the default space, cost-matched with every proxy the miniature of its network
  (``proxy_match = "miniature"``) at 5% full size / 15% proxy (the default until 2026-11-26) and at
  3% / 5%: how many points are kept, and whether the resolution-only point is among them;
- at 3% / 5% with the proxy's own free coefficient set apart from the full size's (the full size
  matched first, then the proxy's copy of the free coefficient scanned within 0.55-1.35x of it): the
  points kept and the largest ratio of the proxy's value to the full size's among them. This is the
  experiment that led to the search's own ``proxy_match = "apart"`` (scaler/matching.py), which
  bounds the move at 1.2x and keeps the full size at 5%;
- the last feature map of the proxy baseline (a stride-32 network needs 64 px for 2x2);
- the proxy baseline's MACs over the default proxy's, and, with ``--time``, the measured seconds of
  one screen run of it (the default recipe otherwise, the built-in data, this process's threads).

On the built-in 28-px data every proxy above 28 px upsamples: a larger proxy buys matchable
resolution points, not resolution information (docs/data.md).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/proxy_options.py --time
    .venv/bin/python benchmarks/proxy_options.py --baselines resnet50 --options 24:0.25 64:0.125
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import warnings

from scaler.baselines import get_baseline
from scaler.cost import count_cost, final_feature_size
from scaler.devices import set_threads
from scaler.matching import FREE, Coster, match_point, off
from scaler.options import DEFAULT_SOURCE
from scaler.proxy import dataset, train_point
from scaler.recipe import proxy_rounding, resolve_recipe
from scaler.scaling import Multipliers
from scaler.search_space import grid, load_space, share_points

OPTIONS = ("24:0.25", "32:0.25", "40:0.125", "48:0.125", "64:0.125", "64:0.0625")
TOLERANCES = ((0.05, 0.15), (0.03, 0.05))


def proxy_apart(baseline, recipe, space, full: float = 0.03, proxy: float = 0.05) -> tuple[int, float]:
    """Points kept when the proxy's free coefficient may differ from the full size's; the largest such difference."""
    coster, kept, spread = Coster(baseline, recipe), 0, 1.0
    for kind, planned in share_points(space, 2.0):
        m = match_point(kind, planned, 2.0, coster, full, math.inf)  # the full size alone
        if off(m.cost.full_ratio, 2.0) > full:
            continue
        name, c = FREE[kind], m.cost.coefficients
        v0 = getattr(c, name)
        values = [v0 * math.exp(0.005 * k) for k in range(-120, 61)]
        costs = [coster(dataclasses.replace(c, **{name: v})) for v in values if kind == "compound" or v > 1.0]
        best = min(costs, key=lambda pc: off(pc.proxy_ratio, 2.0))
        if off(best.proxy_ratio, 2.0) <= proxy:
            kept += 1
            value = getattr(best.coefficients, name)
            spread = max(spread, value / v0, v0 / value)
    return kept, spread


def measure(name: str, px: int, width: float, timed: bool) -> dict:
    baseline = get_baseline(name)
    default = resolve_recipe("default", baseline)
    recipe = default.replace(proxy_resolution=px, proxy_width=width)
    row = {"baseline": name, "px": px, "width": width}
    space = load_space(None)
    for full, proxy in TOLERANCES:
        g = grid(dataclasses.replace(space, full_tolerance=full, proxy_tolerance=proxy, proxy_match="miniature"),
                 baseline, 2.0, recipe=recipe)
        tag = f"{full:.0%}/{proxy:.0%}"
        row[f"kept {tag}"] = f"{len(g.kept)} of {len(g.kept) + len(g.dropped)}"
        row[f"resolution {tag}"] = any(c.kind == "resolution" for c in g.kept)
    kept, spread = proxy_apart(baseline, recipe, space)
    row["kept 3%/5%, proxy apart"] = f"{kept} (x{spread:.2f})"
    with proxy_rounding(recipe):
        row["last map"] = final_feature_size(baseline, width, 1.0, px)
        macs = count_cost(baseline, width=width, resolution=px, num_classes=10).macs
    with proxy_rounding(default):
        ref = count_cost(baseline, width=default.proxy_width, resolution=default.proxy_resolution, num_classes=10).macs
    row["proxy MACs x"] = round(macs / ref, 2)
    if timed:
        result = train_point(name, Multipliers(), data=dataset(DEFAULT_SOURCE), recipe=recipe, seed=0)
        row["s a screen run"] = round(result.seconds, 1)
        row["accuracy"] = round(result.accuracy, 4)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baselines", nargs="+", default=["resnet50", "mobilenet_v2"])
    p.add_argument("--options", nargs="+", default=list(OPTIONS), metavar="PX:WIDTH")
    p.add_argument("--time", action="store_true", help="train one screen run of each proxy baseline and time it")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)
    print(f"torch threads: {set_threads()}")
    rows = []
    for name in args.baselines:
        for option in args.options:
            px, width = option.split(":")
            rows.append(measure(name, int(px), float(width), args.time))
            print(" | ".join(f"{k} {v}" for k, v in rows[-1].items()), flush=True)
    keys = list(rows[0])
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
