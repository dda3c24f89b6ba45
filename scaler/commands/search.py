"""Search compound-scaling coefficients (alpha, beta, gamma) for a baseline under a budget.

Every grid point of the search space (phi = 1, alpha * beta^2 * gamma^2 ~= budget) is trained
with a short proxy recipe on the data, --seeds times; the best mean accuracy wins. The run folder
(default runs/<baseline>-<budget>) keeps the study: running the same command again resumes it.
At the end the family (phi = 0..3) and the report are written unless --no-family / --no-report.

examples:
  scaler search --baseline resnet50 --budget 2x
  scaler search --baseline mobilenet_v2 --budget 2x --data imagefolder:./my_images --seeds 3
  scaler search --baseline mymodels.net:build --budget 2x --out runs/mynet
  scaler search --baseline resnet18 --budget 2x --preset smoke
  scaler search ... --space search_spaces/compound_fine.toml --pruner median
  scaler search ... --backend ray --ray-address 10.0.0.5:6379 --storage postgresql://...
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

from scaler.commands._common import (
    add_baseline_argument,
    add_device_argument,
    add_recipe_arguments,
    check_numbers,
    resolve_device,
    resolve_recipe,
)
from scaler.errors import UsageError
from scaler.local_workers import CPU_WORKERS, GPU_WORKERS, default_workers
from scaler.options import (
    BACKENDS,
    CURVES,
    DEFAULT_CONFIRM,
    DEFAULT_CONFIRM_PRESET,
    DEFAULT_CONFIRM_PRESETS,
    DEFAULT_SEEDS,
    DEFAULT_SOURCE,
    GRACE_FACTOR,
    HEARTBEAT,
    PRUNERS,
    default_confirm_preset,
)
from scaler.scaling import parse_budget, parse_phi_range


def add_arguments(parser) -> None:
    add_baseline_argument(parser)
    parser.add_argument("--budget", default="2x", help="a factor of the baseline's MACs (2x) or absolute MACs (1.2G); default 2x")
    parser.add_argument("--data", default=DEFAULT_SOURCE, help=f"data source (see `scaler data`); default {DEFAULT_SOURCE}")
    parser.add_argument("--space", help="search-space TOML file or built-in name (default search_spaces/compound.toml)")
    parser.add_argument("--seeds", type=int, help=f"proxy runs per grid point in the screen (default {DEFAULT_SEEDS['default']}; "
                                                  f"with --preset smoke {DEFAULT_SEEDS['smoke']})")
    parser.add_argument("--pruner", default="none", choices=PRUNERS, help="cut hopeless runs early (default none)")
    parser.add_argument("--storage", help="SQLAlchemy URL for the study (default: SQLite in the run folder)")
    parser.add_argument("--backend", default="optuna", choices=BACKENDS,
                        help="who runs the trials: optuna (this process, default) or ray (Ray Tune; see README)")
    parser.add_argument("--ray-address", help="with --backend ray: a Ray cluster's address, HOST:PORT (default: start a local Ray)")
    parser.add_argument("--trial-resources", default="cpu=1",
                        help="with --backend ray: what each trial takes, e.g. cpu=2,gpu=0.25 (fractions share a GPU; default cpu=1, "
                             "and gpu=1 on a GPU device)")
    parser.add_argument("--workers", type=int,
                        help="worker processes on this machine taking runs from the study, each with its share of the CPUs "
                             f"(default, with the optuna backend: {CPU_WORKERS} on a CPU of {CPU_WORKERS}+ cores at the default and "
                             f"long presets, where a small proxy uses a second thread poorly; {GPU_WORKERS} with --preset gpu on a "
                             "GPU, which one proxy leaves mostly idle; else 1; more machines: `scaler worker`)")
    parser.add_argument("--heartbeat", type=int, default=HEARTBEAT,
                        help=f"seconds between a run's heartbeats; a run is reclaimed after {GRACE_FACTOR} missed (default {HEARTBEAT})")
    parser.add_argument("--out", help="run folder (default runs/<baseline>-<budget>)")
    parser.add_argument("--fresh", action="store_true", help="delete the run folder's study and start over")
    parser.add_argument("--phi", default="0..3", help="family members to write at the end (default 0..3)")
    parser.add_argument("--no-family", action="store_true", help="do not write the family at the end")
    parser.add_argument("--latency-runs", type=int, default=3, help="timed passes per family member; 0 skips latency (default 3)")
    parser.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    stages = parser.add_argument_group("stages (screen, then confirm, then curves; see docs/design.md)")
    stages.add_argument("--confirm", type=int, default=DEFAULT_CONFIRM,
                        help=f"retrain the screen's top K (plus the best point led by each dimension) longer; 0: no confirm stage (default {DEFAULT_CONFIRM})")
    stages.add_argument("--confirm-preset",
                        help=f"the confirm stage's recipe: 2x, 3x, 4x the screen's epochs, or a preset name (its schedule; "
                             f"the proxy keeps the screen's size) (default {DEFAULT_CONFIRM_PRESET}; with --preset gpu, "
                             f"{DEFAULT_CONFIRM_PRESETS['gpu']})")
    stages.add_argument("--confirm-seeds", type=int, help="seeds per confirmed point (default: one more than --seeds)")
    stages.add_argument("--curves", default="best", choices=CURVES,
                        help="train phi 0..2 of the chosen point and of the best (or all, or no) single dimension (default best)")
    stages.add_argument("--curve-recipe", default="screen", choices=("screen", "confirm"),
                        help="the curves' recipe and seeds: the screen's (reusing its runs; default) or the confirm's")
    add_recipe_arguments(parser)
    add_device_argument(parser)


def default_run_name(baseline: str, budget: str) -> str:
    stem = baseline.rsplit("/", 1)[-1].removesuffix(".json")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{stem}-{budget}")


def run(args) -> int:
    from scaler.baselines import get_baseline
    from scaler.run_folder import RunFolder
    from scaler.search import SearchConfig, run_search
    from scaler.stages import confirm_recipe

    # Everything the end of a search uses is checked here: a typo must not cost the whole search.
    check_numbers(args, {"seeds": 1, "latency_runs": 0, "confirm": 0, "confirm_seeds": 1, "workers": 1, "heartbeat": 1})
    resources = parse_resources(args.trial_resources, args.device)
    if args.ray_address:
        if args.backend != "ray":
            raise UsageError("--ray-address is for --backend ray")
        from scaler.ray_backend import check_address

        check_address(args.ray_address)  # before minutes of grid costing
    phis = parse_phi_range(args.phi)
    recipe = resolve_recipe(args)
    parse_budget(args.budget)
    config = SearchConfig(
        baseline=args.baseline, budget=args.budget, space=args.space, data=args.data,
        recipe=dataclasses.asdict(recipe), seeds=args.seeds if args.seeds is not None else DEFAULT_SEEDS.get(args.preset, DEFAULT_SEEDS["default"]),
        pruner=args.pruner, device=str(resolve_device(args.device)), storage=args.storage, confirm=args.confirm,
        confirm_recipe=dataclasses.asdict(confirm_recipe(recipe, args.confirm_preset or default_confirm_preset(args.preset),
                                                          get_baseline(args.baseline))),
        confirm_seeds=args.confirm_seeds or 0, curves=args.curves, curve_recipe=args.curve_recipe,
    )
    run_folder = RunFolder(Path(args.out)) if args.out else RunFolder.for_name(default_run_name(args.baseline, args.budget))
    result = run_search(config, run_folder, fresh=args.fresh, log=lambda line: print(line, flush=True),
                        backend=args.backend, ray_address=args.ray_address,
                        workers=args.workers or default_workers(args.preset, config.device, args.backend),
                        heartbeat=args.heartbeat, trial_resources=resources)
    return finish(result, phis, config.device, args.latency_runs, family=not args.no_family, report=not args.no_report)


def finish(result, phis, device: str, latency_runs: int, family: bool = True, report: bool = True) -> int:
    """Print a finished search's tables; write its family and report; the exit status."""
    print_results(result)
    if result.winner is None:
        print("no grid point finished; nothing to scale", file=sys.stderr)
        return 1
    if family:
        from scaler.family_files import write_family

        write_family(result.run, phis=phis, device=device, latency_runs=latency_runs)
        print(f"family:  {result.run.family_csv}")
    if report:
        from scaler.report import write_report

        print(f"report:  {write_report([result.run])}")
    return 0


def parse_resources(text: str, device: str) -> dict[str, float]:
    """``cpu=2,gpu=0.25`` -> {"cpu": 2.0, "gpu": 0.25}; gpu defaults to 1 on a GPU device, 0 otherwise."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        try:
            amount = float(value)
        except ValueError:
            amount = -1.0
        if name not in ("cpu", "gpu") or not (amount >= 0) or amount == float("inf"):
            raise UsageError(f"--trial-resources takes cpu=N,gpu=N with N a number of 0 or more (fractions allowed), got {part!r}")
        out[name] = amount
    out.setdefault("cpu", 1.0)
    out.setdefault("gpu", 1.0 if str(device).startswith("cuda") or (device == "auto" and _has_gpu()) else 0.0)
    if out["cpu"] == 0 and out["gpu"] == 0:
        raise UsageError("--trial-resources must give a trial some cpu or gpu")
    return out


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def print_results(result) -> None:
    from scaler.tables import curves_table, grid_table
    from scaler.verdict import winner_lines

    note = "(MACs are multiply-adds of the full-size network; ratios vs the baseline)"
    if result.screen is not None and result.screen is not result.table:
        print(f"\nscreen, best first {note}:")
        print(grid_table(result.screen).to_string(index=False))
    stage = (result.winner or {}).get("stage", "screen")
    print(f"\n{stage}, best first{'' if stage == 'confirm' else ' ' + note}:")
    print(grid_table(result.table).to_string(index=False))
    w = result.winner
    if w:
        print(f"\nchosen: alpha={w['alpha']:.3f} beta={w['beta']:.3f} gamma={w['gamma']:.3f} ({w['kind']}), "
              f"accuracy {100 * w['accuracy_mean']:.1f}% ± {100 * w['accuracy_std']:.1f} over {w['seeds']} seed(s), "
              f"from the {stage} stage")
        for line in winner_lines(w):
            print(line)
    if result.curves is not None and len(result.curves):
        print("\ncurves (accuracy against MACs at phi = 0, 1, 2):")
        print(curves_table(result.curves).to_string(index=False))
    print(f"\nrun folder: {result.run.path}  (trained {result.trained_now} run(s) in {result.seconds:.0f} s)")
    if result.warnings:  # repeated last: the training log may have scrolled them away
        print("\nwhat the proxy could not see:")
        for warning in result.warnings:
            print(f"warning: {warning.line()}")
