"""Which curve networks miss their cost: the phi = 2 networks of every grid point's curve, matched with a
grid point's reach (the proxy apart by up to APART_LIMIT) and with the curves' own rule (that reach
first, then APART_LIMIT squared; scaler.stages). Analytic costing only: seconds, no training.

    .venv/bin/python benchmarks/curve_costs.py
    .venv/bin/python benchmarks/curve_costs.py --baselines resnet50 --spaces compound --px 24 64
"""

from __future__ import annotations

import argparse

from scaler.baselines import get_baseline
from scaler.matching import Coster, match_point
from scaler.proxy_checks import curve_cost_missed
from scaler.recipe import resolve_recipe
from scaler.scaling import Coefficients
from scaler.search_space import grid, load_space
from scaler.stages import baseline_point, curve_points, curve_tolerances


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baselines", nargs="+",
                        default=["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0"])
    parser.add_argument("--spaces", nargs="+", default=["compound", "compound_coarse"])
    parser.add_argument("--px", nargs="+", type=int, default=[24, 40, 48], help="proxy resolutions")
    parser.add_argument("--budget", type=float, default=2.0)
    args = parser.parse_args()
    totals = {"networks": 0, "grid reach": 0, "curves' rule": 0}
    for name in args.baselines:
        baseline = get_baseline(name)
        for space_name in args.spaces:
            space = load_space(space_name)
            rules = space.matching_rules()
            tolerances = curve_tolerances(rules)
            for px in args.px:
                recipe = resolve_recipe("default", baseline).replace(proxy_resolution=px)
                kept = grid(space, baseline, args.budget, recipe=recipe).kept
                coster = Coster(baseline, recipe)
                curves = [p for p in curve_points(baseline_point(coster), [(c.kind, i, c) for i, c in enumerate(kept)],
                                                  args.budget, coster, rules) if p.phi == 2]
                plain = [match_point(c.kind, Coefficients(*(v**2 for v in c.coefficients.as_tuple())), args.budget**2,
                                     coster, **rules).cost for c in kept]
                for label, rows in (("grid reach", [(c.kind, 2, m.full_ratio, m.proxy_ratio) for c, m in zip(kept, plain)]),
                                    ("curves' rule", [(p.strategy, 2, p.network.macs_ratio, p.network.proxy_macs_ratio)
                                                      for p in curves])):
                    missed = [r for r, m in zip(rows, curve_cost_missed(rows, args.budget, *tolerances)) if m]
                    totals[label] += len(missed)
                    for kind, _, full, proxy in missed:
                        print(f"{name:18s} {space_name:16s} {px:3d} px  {label:12s}  {kind:10s} full x{full:.3g}, proxy x{proxy:.3g}")
                totals["networks"] += len(curves)
    networks, grid_reach, curves_rule = totals.values()
    print(f"phi = 2 networks: {networks}; missing their cost with a grid point's reach: {grid_reach}; "
          f"with the curves' rule: {curves_rule}")


if __name__ == "__main__":
    main()
