"""List the built-in baselines with their base resolution, parameters and multiply-adds.

MACs are multiply-adds of convolutions and linear layers at the base resolution, the
EfficientNet paper's "FLOPS". "proxy recipe" names the fields a baseline sets over the preset
when a search or `scaler train` proxy-trains it (the command line's flags override them).
"""

from __future__ import annotations

import pandas as pd

from scaler.baselines import get_baseline, list_baselines
from scaler.commands._common import add_json_argument, print_json, print_table
from scaler.cost import count_cost
from scaler.scaling import format_macs


def add_arguments(parser) -> None:
    add_json_argument(parser)


def run(args) -> int:
    rows = []
    for name in list_baselines():
        baseline = get_baseline(name)
        cost = count_cost(baseline)
        rows.append(
            {
                "baseline": name,
                "resolution": baseline.resolution,
                "params": cost.params,
                "macs": cost.macs,
                "description": baseline.description,
                "proxy_recipe": dict(baseline.proxy_recipe),
            }
        )
    if args.json:
        print_json(rows)
        return 0
    frame = pd.DataFrame(rows)
    frame["params"] = frame["params"].map("{:,}".format)
    frame["macs"] = frame["macs"].map(format_macs)
    frame["proxy_recipe"] = frame["proxy_recipe"].map(_recipe_text)
    print_table(frame.rename(columns={"resolution": "base px", "macs": "MACs (multiply-adds)", "proxy_recipe": "proxy recipe"}))
    return 0


def _recipe_text(fields: dict) -> str:
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items()) or "-"
