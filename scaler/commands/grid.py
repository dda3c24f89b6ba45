"""Show the coefficient grid a search would train, with nominal and measured cost.

Every point has alpha * beta^2 * gamma^2 = budget before rounding ("nominal"); rounding channels
and repeats moves the real cost ("measured", the MACs ratio of the built network). The space's
filter keeps points within its tolerance on one or the other; --filter and --tolerance override it.

examples:
  scaler grid --baseline efficientnet_b0 --budget 2x
  scaler grid --baseline resnet50 --budget 4x --space compound_fine --filter nominal
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from scaler.baselines import get_baseline
from scaler.commands._common import add_baseline_argument, add_json_argument, check_numbers, print_json, print_table
from scaler.cost import count_cost
from scaler.errors import UsageError
from scaler.scaling import format_macs, parse_budget
from scaler.search_space import FILTERS, candidates, load_space


def add_arguments(parser) -> None:
    add_baseline_argument(parser)
    parser.add_argument("--budget", default="2x", help="a factor (2x) or absolute MACs (1.2G); default 2x")
    parser.add_argument("--space", help="search-space TOML file or built-in name (default compound)")
    parser.add_argument("--filter", choices=FILTERS, help="keep points by measured or nominal ratio (default: the space's)")
    parser.add_argument("--tolerance", type=float, help="keep points within this fraction of the budget (default: the space's)")
    add_json_argument(parser)


def run(args) -> int:
    check_numbers(args, {}, positive=("tolerance",))
    budget = parse_budget(args.budget)
    baseline = get_baseline(args.baseline)
    space = load_space(args.space)
    space = dataclasses.replace(
        space, **{k: v for k, v in (("filter", args.filter), ("tolerance", args.tolerance)) if v is not None}
    )
    ratio = budget.target_ratio(count_cost(baseline).macs)
    if ratio <= 1.0:  # what a search refuses: its grid would shrink the network
        raise UsageError(f"budget {args.budget} is not above the baseline's cost ({ratio:.3g}x); scaler grows networks")
    rows = [c.as_dict() for c in candidates(space, baseline, ratio)]
    if args.json:
        print_json(rows)
        return 0
    frame = pd.DataFrame(rows)
    print(f"{baseline.name} at {args.budget} (x{ratio:.3g}); {space.path}: filter {space.filter}, tolerance {space.tolerance:g}")
    print_table(pd.DataFrame({
        "kind": frame.kind,
        "alpha": frame.alpha.map("{:.3f}".format), "beta": frame.beta.map("{:.3f}".format),
        "gamma": frame.gamma.map("{:.3f}".format), "input px": frame.input_px,
        "nominal": frame.nominal_ratio.map("{:.3f}x".format), "measured": frame.macs_ratio.map("{:.3f}x".format),
        "MACs (multiply-adds)": frame.macs.map(format_macs), "params": frame.params.map("{:,}".format),
    }))
    return 0
