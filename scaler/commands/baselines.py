"""List the built-in baselines with their base resolution, parameters and multiply-adds, or show one.

MACs are multiply-adds of convolutions and linear layers at the base resolution, the
EfficientNet paper's "FLOPS". "proxy recipe" names the fields a baseline sets over the preset
when a search or `scaler train` proxy-trains it (the command line's flags override them).

`--show BASELINE` shows any baseline (a built-in name, `module.path:function`, a torchvision
builder, `timm:NAME`): how its multipliers reach the network, its cost at (1, 1), and the stages
that "depth" grows, with their blocks at (1, 1) and at the given --depth.

examples:
  scaler baselines
  scaler baselines --show torchvision.models:shufflenet_v2_x1_0
  scaler baselines --show timm:resnet26d --depth 2
"""

from __future__ import annotations

from scaler.commands._common import add_json_argument, check_numbers, print_json, print_table
from scaler.errors import UsageError
from scaler.scaling import format_macs


def add_arguments(parser) -> None:
    parser.add_argument("--show", metavar="BASELINE", help="show one baseline: its scaling path, cost and stages")
    parser.add_argument("--depth", type=float, help="with --show: the depth multiplier to show stages at (default 2)")
    add_json_argument(parser)


def run(args) -> int:
    import pandas as pd

    from scaler.baselines import get_baseline, list_baselines
    from scaler.cost import count_cost

    if args.show:
        return _show(args)
    if args.depth is not None:
        raise UsageError("--depth applies to --show BASELINE: the stages of one baseline at that depth")
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


def _show(args) -> int:
    import pandas as pd

    from scaler.baselines import get_baseline
    from scaler.cost import count_cost

    args.depth = 2.0 if args.depth is None else args.depth
    check_numbers(args, {}, positive=("depth",))
    b = get_baseline(args.show)
    cost = count_cost(b)
    at_one = b.stages()
    at_depth = b.stages(depth=args.depth)
    column = f"blocks at depth {args.depth:g}"
    stages = [{"stage": s.name, "channels": s.channels, "blocks": s.repeats} for s in at_one]
    deeper = []
    if len(at_depth) == len(at_one):
        for row, s in zip(stages, at_depth):
            row[column] = s.repeats
    else:  # a library's knobs may turn a one-block stage (not found by shape) into a longer one
        deeper = [{"stage": s.name, "channels": s.channels, "blocks": s.repeats} for s in at_depth]
    result = {"baseline": b.name, "source": b.source, "scaling": b.scaling, "resolution": b.resolution,
              "params": cost.params, "macs": cost.macs, "count_method": cost.method, "stages": stages,
              "stages_at_depth": deeper or None}
    if args.json:
        print_json(result)
        return 0
    print(f"{b.name}  ({b.source}; base {b.resolution} px)")
    print(f"  scaling: {b.scaling}")
    print(f"  at (1, 1): {cost.params:,} params, {format_macs(cost.macs)} MACs ({cost.method})")
    if stages:
        print(f"\nstages (what depth grows; blocks at depth {args.depth:g} = ceil(blocks x {args.depth:g})):")
        print_table(pd.DataFrame(stages))
    else:
        print("\nno stages found by shape at (1, 1)")
    if deeper:
        print(f"\nstages at depth {args.depth:g}:")
        print_table(pd.DataFrame(deeper))
    return 0


def _recipe_text(fields: dict) -> str:
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items()) or "-"
