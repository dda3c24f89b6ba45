"""Show the coefficient grid a search would train, cost-matched to the budget, and the points dropped.

Every point has alpha * beta^2 * gamma^2 = budget before rounding ("planned"); rounding channels,
repeats and pixels moves the real cost, so one coefficient of each point is moved until the
full-size network ("measured", its MACs over the baseline's) and its proxy ("proxy x", the proxy's
MACs over the proxy baseline's, under --preset and the proxy flags) both cost the budget (within the
space's full_tolerance and proxy_tolerance, 3% and 5% by default: docs/design.md says why). Where one
value cannot meet both, the proxy takes its own value of the free coefficient, within 1.2x of the full
size's ("proxy at"; the space's proxy_match = "apart"). A point that cannot be matched is dropped and
listed with its reason. The space's filter then keeps compound points within its tolerance
on the measured or the nominal (matched alpha * beta^2 * gamma^2) ratio; --filter and --tolerance override it.

examples:
  scaler grid --baseline efficientnet_b0 --budget 2x
  scaler grid --baseline resnet50 --budget 4x --space compound_fine --filter nominal
  scaler grid --baseline resnet18 --preset smoke
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from scaler.commands._common import add_baseline_argument, add_json_argument, check_numbers, print_json, print_table
from scaler.errors import UsageError
from scaler.options import DEFAULT_CLASSES, DEFAULT_SOURCE, FILTERS
from scaler.recipe import resolve_recipe
from scaler.scaling import format_macs, parse_budget

if TYPE_CHECKING:
    import pandas as pd


def add_arguments(parser) -> None:
    add_baseline_argument(parser)
    parser.add_argument("--budget", default="2x", help="a factor (2x) or absolute MACs (1.2G); default 2x")
    parser.add_argument("--space", help="search-space TOML file or built-in name (default compound)")
    parser.add_argument("--filter", choices=FILTERS, help="keep points by measured or nominal ratio (default: the space's)")
    parser.add_argument("--tolerance", type=float, help="keep points within this fraction of the budget (default: the space's)")
    proxy = parser.add_argument_group("the proxy the points are matched in (as `scaler search` trains it)")
    proxy.add_argument("--preset", default="default", help="smoke, default, long or gpu (default: default)")
    proxy.add_argument("--proxy-width", type=float, help="proxy width (default: the preset's)")
    proxy.add_argument("--proxy-resolution", type=int, help="proxy pixels at resolution multiplier 1 (default: the preset's)")
    proxy.add_argument("--proxy-classes", type=int, default=DEFAULT_CLASSES,
                       help=f"classes of the proxy's data (default {DEFAULT_CLASSES}, the built-in {DEFAULT_SOURCE})")
    add_json_argument(parser)


def run(args) -> int:
    import pandas as pd

    from scaler.baselines import get_baseline
    from scaler.cost import count_cost
    from scaler.search_space import coarse_hint, grid, load_space, trim_notes

    check_numbers(args, {}, positive=("tolerance",))
    budget = parse_budget(args.budget)
    baseline = get_baseline(args.baseline)
    space = load_space(args.space)
    space = dataclasses.replace(
        space, **{k: v for k, v in (("filter", args.filter), ("tolerance", args.tolerance)) if v is not None}
    )
    flags = {"proxy_width": args.proxy_width, "proxy_resolution": args.proxy_resolution}
    recipe = resolve_recipe(args.preset, baseline, {k: v for k, v in flags.items() if v is not None})
    ratio = budget.target_ratio(count_cost(baseline).macs)
    if ratio <= 1.0:  # what a search refuses: its grid would shrink the network
        raise UsageError(f"budget {args.budget} is not above the baseline's cost ({ratio:.3g}x); scaler grows networks")
    points = grid(space, baseline, ratio, recipe=recipe, proxy_classes=args.proxy_classes)
    rows = [{**c.as_dict(), "dropped": False} for c in points.kept] + [{**c.as_dict(), "dropped": True} for c in points.dropped]
    if args.json:
        print_json(rows)
        return 0
    print(f"{baseline.name} at {args.budget} (x{ratio:.3g}); {space.path}: filter {space.filter}, tolerance "
          f"{space.tolerance:g}; matched within {space.full_tolerance:.0%} full size, {space.proxy_tolerance:.0%} proxy "
          f"(width {recipe.proxy_width:g}, {recipe.proxy_resolution} px, {args.proxy_classes} classes)")
    frame = pd.DataFrame(rows)
    if points.kept:
        print_table(_display(frame[~frame.dropped]))
        for line in trim_notes(space, points.kept):
            print(line)
    if points.dropped:
        print(f"dropped ({len(points.dropped)}): no value of the point's free coefficient meets both tolerances")
        print_table(pd.concat([_display(frame[frame.dropped]), frame[frame.dropped].reason.rename("reason")], axis=1))
        hint = coarse_hint(space, points.dropped)
        if hint:
            print(hint)
    return 0


def _display(frame: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    def coeffs(prefix: str) -> pd.Series:
        return frame.apply(lambda r: f"{r[prefix + 'alpha']:.3f},{r[prefix + 'beta']:.3f},{r[prefix + 'gamma']:.3f}", axis=1)

    def proxy() -> pd.Series:  # the proxy's own point where it was matched apart, else "="
        if "proxy_alpha" not in frame:
            return pd.Series("=", index=frame.index)
        return coeffs("proxy_").where(frame.proxy_alpha.notna(), "=")

    return pd.DataFrame({
        "kind": frame.kind, "planned": coeffs("planned_"), "matched": coeffs(""), "proxy at": proxy(), "input px": frame.input_px,
        "nominal": frame.nominal_ratio.map("{:.3f}x".format), "measured": frame.macs_ratio.map("{:.3f}x".format),
        "proxy x": frame.proxy_macs_ratio.map("{:.3f}x".format),
        "MACs (multiply-adds)": frame.macs.map(format_macs), "params": frame.params.map("{:,}".format),
    })
