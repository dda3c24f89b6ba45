"""Count a network's cost: parameters, multiply-adds, activations and latency.

MACs are multiply-adds of convolutions and linear layers (the EfficientNet paper's "FLOPS");
"fvcore total" adds normalization and pooling, as fvcore counts them. The MACs ratio compares
with the baseline at multipliers (1, 1) and its base resolution: measured after rounding, next
to the nominal d * w^2 * r^2.

examples:
  scaler flops --baseline resnet50 --per-layer
  scaler flops --baseline efficientnet_b0 --coefficients 1.2,1.1,1.15 --phi 1
  scaler flops --baseline efficientnet_b0 --width 1.1 --depth 1.2 --resolution 260 --json
"""

from __future__ import annotations

from scaler.commands._common import (
    add_baseline_argument,
    add_device_argument,
    add_json_argument,
    add_scaling_arguments,
    check_numbers,
    check_scaling,
    print_json,
    print_table,
    resolve_device,
    resolve_scaled_model,
)
from scaler.scaling import format_macs


def add_arguments(parser) -> None:
    add_baseline_argument(parser)
    add_scaling_arguments(parser)
    parser.add_argument("--num-classes", type=int, default=1000, help="classifier outputs (default 1000)")
    parser.add_argument(
        "--per-layer", nargs="?", type=int, const=2, default=0, metavar="DEPTH",
        help="also print a table per module, down to DEPTH levels of nesting (default 2: stages and blocks)",
    )
    parser.add_argument("--latency-runs", type=int, default=10, help="timed forward passes for latency; 0 skips (default 10)")
    add_device_argument(parser)
    add_json_argument(parser)


def run(args) -> int:
    import pandas as pd

    from scaler.baselines.base import BUILDER_SCALING
    from scaler.cost import count_cost, measure_latency
    from scaler.devices import set_threads

    check_numbers(args, {"num_classes": 1, "per_layer": 0, "latency_runs": 0})
    check_scaling(args)
    resolve_device(args.device)  # a bad --device fails even when no latency is timed
    scaled = resolve_scaled_model(args)
    b = scaled.baseline
    cost = count_cost(b, width=scaled.width, depth=scaled.depth, resolution=scaled.resolution, num_classes=args.num_classes,
                      per_module_depth=args.per_layer)
    reference = count_cost(b, num_classes=args.num_classes)
    latency = None
    if args.latency_runs > 0:
        device = resolve_device(args.device)
        set_threads()  # every core this process may use, as a family's latency
        model = b.build(width=scaled.width, depth=scaled.depth, num_classes=args.num_classes)
        latency = measure_latency(model, scaled.resolution, device, repeats=args.latency_runs)
    result = {
        "baseline": b.name,
        "width": scaled.width,
        "depth": scaled.depth,
        "resolution": scaled.resolution,
        "params": cost.params,
        "macs": cost.macs,
        "fvcore_total": cost.fvcore_total,
        "activations": cost.activations,
        "macs_ratio": cost.macs / reference.macs,
        "nominal_ratio": scaled.multipliers.nominal_ratio,
        "latency_ms": latency,
        "device": str(resolve_device(args.device)) if latency is not None else None,
        "stages": [vars(s) for s in b.stages(width=scaled.width, depth=scaled.depth)],
        "unsupported_ops": cost.unsupported,
        "count_method": cost.method,
        "scaling": b.scaling,
    }
    if args.per_layer:
        result["per_module"] = cost.per_module
    if args.json:
        print_json(result)
        return 0
    print(f"{b.name}  width {scaled.width:.4g}  depth {scaled.depth:.4g}  resolution {scaled.resolution} px")
    print(f"  scaled by: {b.scaling}")
    lines = [
        ("params", f"{cost.params:,}"),
        ("MACs (multiply-adds)", f"{cost.macs:,}  ({format_macs(cost.macs)})"),
        ("fvcore total (+norm, pool)", f"{cost.fvcore_total:,}  ({format_macs(cost.fvcore_total)})"),
        ("activations", f"{cost.activations:,}"),
        ("MACs ratio to baseline", f"{result['macs_ratio']:.3f} measured, {result['nominal_ratio']:.3f} nominal (d*w^2*r^2)"),
    ]
    if latency is not None:
        lines.append((f"latency, batch 1 ({result['device']})", f"{latency:.2f} ms (median of {args.latency_runs})"))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"  {key:<{width}}  {value}")
    if cost.unsupported:
        print(f"  not counted (no handle): {', '.join(f'{k} x{v}' for k, v in cost.unsupported.items())}")
    if result["stages"]:
        print("\nstages:")
        print_table(pd.DataFrame(result["stages"]))
    elif scaled.depth != 1 and b.scaling != BUILDER_SCALING:  # a builder of its own may still use depth
        print("  no stages found (runs of shape-keeping blocks): depth leaves this network as it is")
    if args.per_layer:
        frame = pd.DataFrame(cost.per_module)
        frame["share %"] = (100 * frame["macs"] / cost.macs).round(1)
        print("\nper module (MACs are multiply-adds):")
        print_table(frame)
    return 0
