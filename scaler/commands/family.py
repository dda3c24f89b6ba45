"""Scale a baseline into a family (phi = 0..N) and write family.json and family.csv.

Each member has its multipliers, per-stage depths and widths, params, MACs (multiply-adds, the
paper's "FLOPS"), activations, latency at batch 1 and a larger batch on --device, and with
--train the proxy accuracy (mean ± std over seeds). Every member can be rebuilt from family.json
alone (scaler.family.build_member) and exported to ONNX (`scaler export`).

examples:
  scaler family --run runs/resnet50-2x --phi 0..6
  scaler family --baseline efficientnet_b0 --coefficients 1.2,1.1,1.15 --phi 0..7 --train
  scaler family --baseline efficientnet_b0 --coefficients 1.2,1.1,1.15 --phi 0,0.5,1.5
  scaler family --baseline efficientnet_b0 --coefficients 1.2,1.1,1.15 --target 1.2G
  scaler family --baseline mobilenet_v2 --coefficients 1.2,1.1,1.15 --target-latency 15ms
  scaler family --baseline efficientnet_b0 --table official --latency-runs 0
"""

from __future__ import annotations

import re
from pathlib import Path

from scaler.commands._common import (
    add_device_argument,
    add_json_argument,
    check_numbers,
    default_family_name,
    print_json,
    print_table,
    resolve_device,
    resolve_training,
    training_options_given,
)
from scaler.errors import UsageError


def add_arguments(parser) -> None:
    source = parser.add_argument_group("what to scale (a run, or a baseline with coefficients or a table)")
    source.add_argument("--run", help="a search's run folder: baseline from config.json, coefficients from coefficients.json")
    source.add_argument("--baseline", help="a built-in name, module.path:function, or a stage-list .json")
    source.add_argument("--coefficients", help="alpha,beta,gamma, e.g. 1.2,1.1,1.15")
    source.add_argument("--table", choices=["official"], help="official: the published EfficientNet B0..B7 multipliers")
    members = parser.add_argument_group("which members")
    members.add_argument("--phi", help="a range 0..6, a list 0,0.5,1, or one value (default 0..3; with a target: 0)")
    members.add_argument("--target", help="also the largest member whose MACs fit, e.g. 1.2G, 400M, or 3x the baseline")
    members.add_argument("--target-latency", help="also the largest member whose batch-1 latency on --device fits, e.g. 15ms")
    cost = parser.add_argument_group("cost")
    cost.add_argument("--num-classes", type=int, default=1000, help="classifier outputs of the full-size members (default 1000)")
    cost.add_argument("--latency-runs", type=int, default=5, help="timed forward passes per batch size; 0 skips latency (default 5)")
    cost.add_argument("--latency-batch", type=int, default=8, help="the larger batch timed beside batch 1 (default 8)")
    add_device_argument(parser)
    train = parser.add_argument_group("proxy accuracy (--train)")
    train.add_argument("--train", action="store_true", help="train each member with the proxy recipe")
    train.add_argument("--data", help="data source (default: the run's, else animals)")
    train.add_argument("--preset", help="proxy recipe preset: smoke, default, long, gpu (default: the run's, else default)")
    train.add_argument("--seeds", type=int, help="seeds per member (default: the run's, else 2)")
    train.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    out = parser.add_argument_group("output")
    out.add_argument("--out", help="folder for family.json/.csv (default: the run's folder, or runs/<name>/)")
    out.add_argument("--name", help="run name for the default folder (default: baseline and coefficients)")
    add_json_argument(out)


def parse_latency(text: str) -> float:
    """``15ms``, ``15``, ``0.015s`` -> milliseconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)?\s*", str(text))
    if not match or float(match[1]) <= 0:
        raise UsageError(f"latency target must be a positive time like 15ms or 0.02s, got {text!r}")
    value = float(match[1])
    return value * 1000 if match[2] == "s" else value


def run(args) -> int:
    from scaler import family as fam
    from scaler.baselines import get_baseline
    from scaler.cost import count_cost
    from scaler.devices import set_threads
    from scaler.family_files import save_family
    from scaler.run_folder import RunFolder
    from scaler.scaling import check_size, format_macs, parse_budget, parse_phi_range
    from scaler.tables import family_table

    check_numbers(args, {"num_classes": 1, "latency_runs": 0, "latency_batch": 1, "seeds": 1, "seed": 0})
    phis = parse_phi_range(args.phi) if args.phi else None
    target = parse_budget(args.target) if args.target else None
    target_latency = parse_latency(args.target_latency) if args.target_latency else None
    run_folder, config, baseline, coefficients = _source(args)
    if args.table and (args.target or args.target_latency):
        raise UsageError("--target and --target-latency solve for phi; the official table has none")
    if args.table and args.phi:
        raise UsageError("--phi does not apply to --table official (its members are b0..b7)")

    targets = {}
    if target:
        targets["target_macs"] = target.macs if target.macs is not None else target.ratio * count_cost(
            get_baseline(baseline), num_classes=args.num_classes).macs
    if target_latency:
        targets["target_latency_ms"] = target_latency
    if phis is None:
        phis = [0.0] if targets else [0.0, 1.0, 2.0, 3.0]
    for phi in phis if coefficients is not None else ():
        check_size(coefficients.multipliers(phi), f"the member at phi {phi:g}")

    if not args.train and training_options_given(args):
        raise UsageError("--data, --preset and --seeds only apply with --train")
    training = resolve_training(args, config) if args.train else None

    device = resolve_device(args.device)
    set_threads()  # latency timed with every core this process may use, as a search's family is
    out = Path(args.out) if args.out else (
        run_folder.path if run_folder else RunFolder.for_name(args.name or default_family_name(baseline, coefficients, args.table)).path
    )

    def progress(member) -> None:
        if not args.json:
            acc = "" if member.accuracy_mean is None else f"  accuracy {100 * member.accuracy_mean:.2f}%"
            print(f"  {member.label}: {format_macs(member.macs)} MACs, {member.params:,} params{acc}", flush=True)

    family = fam.build_family(
        baseline, coefficients=coefficients, phis=phis, table=args.table, num_classes=args.num_classes,
        device=device, latency_runs=args.latency_runs, latency_batch=args.latency_batch,
        training=training, on_member=progress, log_to=RunFolder(out) if training else None, **targets,
    )
    json_path, csv_path = save_family(family, out)
    data = family.as_dict()
    if args.json:
        print_json({**data, "files": [str(json_path), str(csv_path)]})
        return 0
    print()
    print_table(family_table(data))
    if family.solved:
        print(solved_line(family.solved))
    print(f"\nwrote {json_path} and {csv_path}")
    return 0


def _source(args):
    """(run folder, its config, baseline, coefficients) from --run, or --baseline with --coefficients or --table."""
    from scaler.family_files import run_coefficients
    from scaler.run_folder import RunFolder
    from scaler.scaling import parse_coefficients

    if args.run:
        if args.baseline or args.coefficients or args.table:
            raise UsageError("give either --run, or --baseline with --coefficients or --table, not both")
        run_folder = RunFolder(Path(args.run))
        baseline, coefficients = run_coefficients(run_folder)
        return run_folder, run_folder.read_json(run_folder.config), baseline, coefficients
    if not args.baseline:
        raise UsageError("say what to scale: --run RUN_FOLDER, or --baseline with --coefficients or --table")
    if bool(args.coefficients) == bool(args.table):
        raise UsageError("give exactly one of --coefficients alpha,beta,gamma and --table official")
    return None, None, args.baseline, parse_coefficients(args.coefficients) if args.coefficients else None


def solved_line(s: dict) -> str:
    """What the solved target says: the largest member that fits, and why."""
    from scaler.scaling import format_macs

    parts = []
    if s["target_macs"] is not None:
        parts.append(f"MACs <= {format_macs(s['target_macs'])} at phi <= {s['phi_for_macs']:g}")
    if s["target_latency_ms"] is not None:
        parts.append(f"latency <= {s['target_latency_ms']:g} ms on {s['device']} at phi <= {s['phi_for_latency']:g}")
    return f"\nlargest member that fits: phi = {s['phi']:g} ({'; '.join(parts)})"
