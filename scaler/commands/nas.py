"""Search an MBConv baseline under a MACs target, as MnasNet found EfficientNet-B0's, then scale it.

Each stage of the start (efficientnet_b0's stage list, or a user's JSON; first width-matched to
the target) chooses its kernel, expansion, squeeze-excite, blocks (-1, 0, +1), width factor and,
in the early stages, Fused-MBConv (search_spaces/mbconv.toml). Every sampled architecture is
costed before it is trained: one outside --band of the target is recorded and not trained. The
rest are proxy-trained; --objective reward maximises MnasNet's ACC x (MACs/T)^w with TPE,
--objective pareto runs NSGA-II on (accuracy, MACs or latency). The best few are confirmed
longer, and the winner is trained beside the start width-matched to its MACs. The run folder
(default runs/nas-<target>) holds best.json (a stage list: --baseline for flops, search, family,
compare, export), trials.csv, nas.json and the report; running the same command again resumes.

examples:
  scaler nas --target 400M --trials 60
  scaler nas --target 30M --trials 6 --preset smoke --out runs/nas-smoke
  scaler nas --target 50M --space search_spaces/mbconv.toml --data imagefolder:./imgs
  scaler nas --target 400M --objective pareto --pareto-cost latency
  scaler search --baseline runs/nas-400M/best.json --budget 2x
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

from scaler.commands._common import add_device_argument, add_recipe_arguments, check_numbers, resolve_device, resolve_recipe
from scaler.errors import UsageError
from scaler.nas.reward import FORMS, SOFT_W
from scaler.options import BACKENDS, DEFAULT_CONFIRM_PRESET, DEFAULT_SOURCE, OBJECTIVES, PARETO_COSTS

RAY_BATCH = 4  # a local Ray starts per batch (seconds): a batch of one would spend most of its time starting Ray


def add_arguments(parser) -> None:
    parser.add_argument("--target", required=True, help="MACs of the searched baseline: 400M, 1.2G, or a factor of the start's (0.5x)")
    parser.add_argument("--trials", type=int, default=60, help="architectures to train (those outside the band are extra; default 60)")
    parser.add_argument("--space", help="MBConv space TOML (default search_spaces/mbconv.toml)")
    parser.add_argument("--start", help="the stage list the choices start from: a built-in name or a .json (default: the space's)")
    parser.add_argument("--band", type=float, help="train only architectures within this fraction of the target (default: the space's, 0.1)")
    parser.add_argument("--data", default=DEFAULT_SOURCE, help=f"data source (see `scaler data`); default {DEFAULT_SOURCE}")
    parser.add_argument("--seeds", type=int, default=1, help="proxy runs per architecture in the screen (default 1)")
    obj = parser.add_argument_group("objective")
    obj.add_argument("--objective", default="reward", choices=OBJECTIVES,
                     help="reward: MnasNet's ACC x (MACs/T)^w with TPE (default); pareto: NSGA-II on accuracy and cost")
    obj.add_argument("--pareto-cost", choices=PARETO_COSTS, help="with --objective pareto: its cost axis, macs (default) or latency (CPU, batch 1)")
    obj.add_argument("--reward-target", help="T of the reward (default: --target)")
    obj.add_argument("--reward-w", type=float, default=SOFT_W, help=f"w of the soft reward (default {SOFT_W})")
    obj.add_argument("--reward-form", default="soft", choices=FORMS, help="soft: w both sides of T; hard: w = 0 below T, -1 above")
    obj.add_argument("--sampler-seed", type=int, default=0, help="seed of TPE / NSGA-II (default 0)")
    stages = parser.add_argument_group("confirm and reference")
    stages.add_argument("--confirm", type=int, default=3, help="retrain the best K architectures longer; 0: none (default 3)")
    stages.add_argument("--confirm-preset", default=DEFAULT_CONFIRM_PRESET,
                        help=f"confirm recipe: 2x, 3x, 4x the screen's epochs, or a preset (default {DEFAULT_CONFIRM_PRESET})")
    stages.add_argument("--confirm-seeds", type=int, default=3, help="seeds per confirmed architecture (default 3)")
    stages.add_argument("--no-reference", action="store_true",
                        help="do not train the start width-matched to the winner's MACs beside it")
    parser.add_argument("--storage", help="SQLAlchemy URL for the studies (default: SQLite in the run folder)")
    parser.add_argument("--backend", default="optuna", choices=BACKENDS, help="who runs the trainings: optuna (this process) or ray")
    parser.add_argument("--ray-address", help="with --backend ray: a Ray cluster's address (default: a local Ray)")
    parser.add_argument("--batch", type=int,
                        help="architectures sampled before their runs go to the backend together "
                             "(default 1; with ray 4: each batch starts Ray once and runs in parallel)")
    parser.add_argument("--out", help="run folder (default runs/nas-<target>)")
    parser.add_argument("--fresh", action="store_true", help="delete the run folder's studies and start over")
    parser.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    add_recipe_arguments(parser)
    add_device_argument(parser)


def run(args) -> int:
    from scaler.nas.run import NasConfig, prepare, run_nas
    from scaler.run_folder import RunFolder
    from scaler.stages import confirm_recipe

    check_numbers(args, {"trials": 1, "seeds": 1, "confirm": 0, "confirm_seeds": 1, "batch": 1, "sampler_seed": 0})
    if args.pareto_cost is not None and args.objective != "pareto":
        raise UsageError(f"--pareto-cost is pareto's cost axis; it does not apply to --objective {args.objective}")
    args.pareto_cost = args.pareto_cost or "macs"
    config = NasConfig(target=args.target, trials=args.trials, space=args.space, start=args.start, data=args.data,
                       seeds=args.seeds, objective=args.objective, pareto_cost=args.pareto_cost,
                       reward_target=args.reward_target, reward_w=args.reward_w, reward_form=args.reward_form,
                       band=args.band, confirm=args.confirm, confirm_seeds=args.confirm_seeds,
                       reference=not args.no_reference, sampler_seed=args.sampler_seed,
                       batch=args.batch or (RAY_BATCH if args.backend == "ray" else 1),
                       device=str(resolve_device(args.device)), storage=args.storage)
    setup = prepare(config)  # bad input ends here, before any recipe or folder
    args.baseline = config.start or setup.space.start  # the recipe takes the start's own fields (EfficientNet's head init)
    recipe = resolve_recipe(args)
    if args.proxy_width is None:
        # The proxy of every architecture is as wide as the start's proxy would be unmatched: a
        # small target's channels are already few, and the recipe's width is calibrated on full-size ones.
        recipe = recipe.replace(proxy_width=min(1.0, recipe.proxy_width / setup.start_width))
    config = dataclasses.replace(config, recipe=dataclasses.asdict(recipe),
                                 confirm_recipe=dataclasses.asdict(confirm_recipe(recipe, args.confirm_preset, None)))
    folder = RunFolder(Path(args.out)) if args.out else RunFolder.for_name(re.sub(r"[^A-Za-z0-9_.-]+", "_", f"nas-{args.target}"))
    result = run_nas(config, folder, fresh=args.fresh, log=lambda line: print(line, flush=True),
                     backend=args.backend, ray_address=args.ray_address)
    print_summary(result)
    if not result.summary.get("winner"):
        print("no architecture finished training; no best.json", file=sys.stderr)
        return 1
    if not args.no_report:
        from scaler.nas.report import write_nas_report

        print(f"report:  {write_nas_report(folder)}")
    return 0


def print_summary(result) -> None:
    from scaler.scaling import format_macs

    s = result.summary
    c = s["counts"]
    print(f"\n{c['sampled']} architecture(s) sampled: {c['trained']} trained ({c['failed']} failed), "
          f"{c['rejected']} rejected by cost before training")
    for row in s.get("confirm") or []:
        acc = "" if row["accuracy_mean"] is None else f"{row['accuracy_mean']:.1%}"
        print(f"  confirm  #{row['number']:<4} {format_macs(row['macs']):>8}  screen {row['screen_accuracy']:.1%}  "
              f"confirm {acc} over {row['seeds']} seed(s)  P(best) {row['p_best'] or 0:.2f}")
    w = s.get("winner")
    if w:
        std = "" if w["accuracy_std"] is None else f" ± {w['accuracy_std']:.1%}"
        print(f"\nbest: architecture {w['number']} ({w['stage']}), {format_macs(w['macs'])} MACs, {w['params']:,} params, "
              f"accuracy {w['accuracy_mean']:.1%}{std} over {w['seeds']} seed(s)\n  {w['code']}")
    ref = s.get("reference")
    if ref and ref.get("accuracy_mean") is not None:
        interval = ref["interval"]
        span = f" [{interval[0]:+.1%}, {interval[1]:+.1%}]" if interval else " (no interval)"
        print(f"vs {ref['name']} at {format_macs(ref['macs'])} MACs: {ref['accuracy_mean']:.1%}; "
              f"difference {ref['margin']:+.1%}{span} ({ref['test']})")
    print(f"\nrun folder: {result.run.path}  (trained {result.trained_now} run(s) in {result.seconds:.0f} s)")
    if w:
        print(f"best.json: {result.run.path / 'best.json'}  (use as --baseline)")
