"""Train the baseline scaled by depth only, width only, resolution only, compound and Dollar et al.'s
fast scaling (mostly width, alpha 0.8), at matched measured MACs for each budget, under the same
proxy recipe and seeds: the small-scale equivalent of Table 3 of the EfficientNet paper.

Writes compare.csv (one row per strategy and budget: multipliers, MACs as multiply-adds, params,
activations, accuracy mean ± std), compare.json (the settings) and plots/compare_accuracy_vs_macs.png.

examples:
  scaler compare --baseline mobilenet_v2 --budget 2x,4x --seeds 3
  scaler compare --baseline resnet18 --budget 2x --strategies depth,width,compound --coefficients 1.4,1.05,1.15
  scaler compare --run runs/resnet50-2x --budget 2x,4x        # compound = the search's winner
  scaler compare --baseline resnet18 --budget 2x --preset smoke --data synthetic --seeds 1
"""

from __future__ import annotations

from pathlib import Path

from scaler.commands._common import add_device_argument, add_json_argument, check_numbers, print_json, print_table
from scaler.errors import UsageError


def add_arguments(parser) -> None:
    parser.add_argument("--baseline", help="a built-in name, module.path:function, or a stage-list .json")
    parser.add_argument("--run", help="a search's run folder: its baseline, data, recipe and winning coefficients")
    parser.add_argument("--budget", default="2x", help="MACs budgets, comma-separated: 2x,4x or 800M (default 2x)")
    parser.add_argument("--strategies", default=",".join(_strategies()),
                        help="comma-separated subset of depth,width,resolution,compound,dollar (default all)")
    parser.add_argument("--coefficients", help="alpha,beta,gamma for compound (default: the run's, else 1.2,1.1,1.15)")
    parser.add_argument("--dollar-alpha", type=float, default=0.8, help="share of width in the dollar strategy (default 0.8)")
    train = parser.add_argument_group("proxy training")
    train.add_argument("--data", help="data source (default: the run's, else animals)")
    train.add_argument("--preset", help="proxy recipe: smoke, default, long, gpu (default: the run's, else default)")
    train.add_argument("--seeds", type=int, help="seeds per variant (default: the run's, else 2)")
    train.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    train.add_argument("--no-train", action="store_true", help="only match the MACs and count; train nothing")
    add_device_argument(parser)
    parser.add_argument("--out", help="folder for compare.csv (default: the run's folder, or runs/<baseline>-compare/)")
    add_json_argument(parser)


def _strategies():
    return ("depth", "width", "resolution", "compound", "dollar")


def run(args) -> int:
    from scaler import compare as cmp
    from scaler.commands._common import default_family_name, resolve_device, resolve_training, training_options_given
    from scaler.run_folder import RunFolder
    from scaler.scaling import format_macs, parse_coefficients
    from scaler.tables import compare_table

    check_numbers(args, {"seeds": 1, "seed": 0})
    cmp.dollar_strategy(args.dollar_alpha)  # its alpha checked now, not after the first strategies trained
    strategies = cmp.parse_strategies(args.strategies)
    budgets = cmp.parse_budgets(args.budget)
    if not budgets:
        raise UsageError("give at least one budget, e.g. 2x")
    run_folder, config, baseline, coefficients = _source(args, strategies)
    if args.coefficients:
        coefficients = parse_coefficients(args.coefficients)
    device = resolve_device(args.device)

    if args.no_train and training_options_given(args):
        raise UsageError("--data, --preset and --seeds choose how to train: they do not apply with --no-train")
    training = None if args.no_train else resolve_training(args, config)
    out = Path(args.out) if args.out else (
        run_folder.path if run_folder else RunFolder.for_name(default_family_name(baseline, None, "compare")).path
    )

    def progress(row) -> None:
        if args.json:
            return
        acc = "" if row["accuracy_mean"] is None else f"  accuracy {100 * row['accuracy_mean']:.2f}%"
        if row["accuracy_std"] is not None:
            acc += f" ± {100 * row['accuracy_std']:.2f}"
        print(f"  {row['strategy']:>10} {row['budget']:>5}: {format_macs(row['macs'])} MACs "
              f"({row['macs_ratio']:.2f}x){acc}", flush=True)

    frame = cmp.compare(
        baseline, budgets, strategies, coefficients=coefficients, dollar_alpha=args.dollar_alpha,
        training=training, device=device, on_row=progress, log_to=RunFolder(out) if training else None,
    )
    written = cmp.write_compare(
        frame, out, cmp.settings(baseline, budgets, strategies, coefficients, args.dollar_alpha, training, device)
    )
    if args.json:
        print_json({"rows": frame.to_dict(orient="records"), "files": {k: str(v) for k, v in written.items()}})
        return 0
    print()
    print_table(compare_table(frame))
    print(f"\nwrote {', '.join(str(p) for p in written.values())}")
    return 0


def _source(args, strategies):
    """(run folder, its config, baseline, coefficients) from --run or --baseline."""
    from scaler.family_files import run_coefficients
    from scaler.run_folder import RunFolder

    if not args.run:
        if not args.baseline:
            raise UsageError("say what to scale: --baseline NAME or --run RUN_FOLDER")
        return None, {}, args.baseline, None
    if args.baseline:
        raise UsageError("give either --run or --baseline, not both")
    run_folder = RunFolder(Path(args.run))
    config = run_folder.read_json(run_folder.config)
    coefficients = None
    if "compound" in strategies and not args.coefficients:
        _, coefficients = run_coefficients(run_folder)
    baseline = str(config.get("baseline") or "")
    if not baseline:
        raise UsageError(f"{run_folder.config} names no baseline; the run folder is damaged")
    return run_folder, config, baseline, coefficients
