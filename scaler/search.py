"""The compound-coefficient search: proxy-train every grid point at phi = 1, pick the best.

:func:`run_search` checks the input, costs the grid, takes the run folder's lock, opens the study
(:mod:`scaler.study`), runs the pairs still to run with a backend — Optuna in this process
(:class:`scaler.objective.OptunaObjective`) or Ray Tune (:mod:`scaler.ray_backend`) — and writes
``trials.csv`` and ``coefficients.json`` (:mod:`scaler.results`). Re-running the same command
resumes: the run folder's ``config.json`` holds the search's identity.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import optuna
import pandas as pd

from scaler import __version__
from scaler.baselines import get_baseline
from scaler.cost import count_cost
from scaler.errors import UsageError
from scaler.files import dumps
from scaler.objective import OptunaObjective
from scaler.progress import Progress
from scaler.proxy import dataset
from scaler.proxy_checks import ProxyWarning, run_checks
from scaler.recipe import recipe_defaults, recipe_from_dict
from scaler.results import choose_winner, trials_table
from scaler.run_folder import STUDY_NAME, RunFolder
from scaler.scaling import parse_budget
from scaler.search_space import SPACES_DIR, Candidate, SearchSpace, grid, load_space
from scaler.study import PRUNERS, open_study, pairs_to_run, queue_pairs, recover_interrupted, redact_url
from scaler.train import TrainingFailed

BACKENDS = ("optuna", "ray")
# Keys of config.json that define the study; a re-run must match them (in canonical form) to resume.
IDENTITY = ("baseline", "budget", "space_rules", "data", "recipe", "seeds", "pruner", "candidates", "device")
# What identifies the data: its pixels, labels and split — not how its path was spelled.
DATA_IDENTITY = ("classes", "images", "image_size", "channels", "train_images", "val_images", "split_seed",
                 "fingerprint", "split_fingerprint")


@dataclass(frozen=True)
class SearchConfig:
    baseline: str
    budget: str = "2x"
    space: str | None = None
    data: str = "animals"
    recipe: dict = dataclasses.field(default_factory=dict)  # scaler.recipe.ProxyRecipe fields
    seeds: int = 2
    pruner: str = "none"
    device: str = "cpu"
    storage: str | None = None  # SQLAlchemy URL; default: SQLite in the run folder


@dataclass
class SearchResult:
    run: RunFolder
    table: pd.DataFrame
    winner: dict | None
    trained_now: int
    seconds: float
    warnings: list[ProxyWarning] = dataclasses.field(default_factory=list)


def _lock(run: RunFolder) -> int:
    """Hold the folder's lock (a file descriptor) so that one search at a time works in it."""
    try:  # O_NOFOLLOW: a planted symlink must not make scaler create or truncate a file elsewhere
        fd = os.open(run.path / ".lock", os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise UsageError(f"cannot lock {str(run.path)!r}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UsageError(f"another scaler search is working in {str(run.path)!r}; wait for it or use another --out") from None
    return fd


def _resolved_config(config: SearchConfig, space: SearchSpace, cands: list[Candidate], data_description: dict,
                     dropped: list[Candidate] = ()) -> dict:
    return {
        **dataclasses.asdict(config),
        "space": _space_label(config.space, space),
        "space_rules": {k: v for k, v in dataclasses.asdict(space).items() if k != "path"},
        "storage": redact_url(config.storage) if config.storage else None,
        "data": data_description,
        "candidates": [c.as_dict() for c in cands],
        "dropped": [c.as_dict() for c in dropped],
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "scaler_version": __version__,
    }


def _space_label(spec: str | None, space: SearchSpace) -> str:
    """A built-in space by its name, a user's file as given: never an absolute path that a move breaks."""
    path = Path(space.path)
    return path.stem if path.parent.resolve() == SPACES_DIR.resolve() else str(spec)


def canonical(config: dict) -> dict:
    """The identity of a search in a form that compares equal across runs, moves and versions."""
    out = json.loads(dumps(config))  # standard JSON: NaN -> null, tuples -> lists
    out["recipe"] = {**recipe_defaults(), **(out.get("recipe") or {})}  # a field added since means its default
    data = out.get("data")
    if isinstance(data, dict):
        out["data"] = {k: data.get(k) for k in DATA_IDENTITY}
    out["device"] = str(out.get("device") or "cpu").split(":")[0]  # cpu or cuda: numerics differ, GPU index does not
    return out


def _check_same(previous: dict, current: dict, run: RunFolder) -> None:
    previous, current = canonical(previous), canonical(current)
    # A run begun before a key existed (space_rules) is matched on the keys it has.
    differs = [k for k in IDENTITY if k in previous and previous.get(k) != current.get(k)]
    if differs:
        raise UsageError(
            f"{run.path} holds a search with a different {', '.join(differs)}; "
            "re-run with --fresh to start over, or choose another --out"
        )


def run_search(config: SearchConfig, run: RunFolder, fresh: bool = False, log: Callable[[str], None] = print,
               backend: str = "optuna", ray_address: str | None = None) -> SearchResult:
    """Run (or resume) the search in ``run``; returns the table and the winner.

    ``backend``: ``optuna`` runs the trials in this process; ``ray`` runs them through Ray Tune
    (:mod:`scaler.ray_backend`; a local Ray, or the cluster at ``ray_address``) into the same study.
    """
    if config.seeds < 1:
        raise UsageError(f"--seeds must be 1 or more, got {config.seeds}")
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    if config.pruner not in PRUNERS:
        raise UsageError(f"unknown pruner {config.pruner!r} (known: {', '.join(PRUNERS)})")
    baseline = get_baseline(config.baseline)
    budget = parse_budget(config.budget)
    space = load_space(config.space)
    data = dataset(config.data, config.recipe.get("seed", 0))  # the same object the runs train on
    baseline.build(num_classes=data.num_classes)  # fails early, with the user's message
    reference_cost = count_cost(baseline)
    ratio = budget.target_ratio(reference_cost.macs)
    if ratio <= 1.0:
        raise UsageError(f"budget {config.budget} is not above the baseline's cost ({ratio:.3g}x); scaler grows networks")
    points = _cost_matched_grid(space, baseline, ratio, reference_cost, config.recipe, data.num_classes, log)
    cands = points.kept
    # What the proxy cannot see is known before any training: said first, and kept with the result.
    proxy_warnings = run_checks(baseline, cands, recipe_from_dict(config.recipe), data)

    run.create()
    lock = _lock(run)  # before --fresh clears anything: another search may own the folder
    try:
        if fresh:
            if config.storage:
                try:
                    optuna.delete_study(study_name=STUDY_NAME, storage=config.storage)
                except KeyError:
                    pass
            run.clear()
        resolved = _resolved_config(config, space, cands, data.describe(), points.dropped)
        if run.config.exists():
            _check_same(run.read_json(run.config), resolved, run)
        else:
            run.write_json(run.config, resolved)
        study = open_study(config, run)
        recovered = recover_interrupted(study)
        pairs = pairs_to_run(study, len(cands), config.seeds)
        remaining = len(pairs)
        total = len(cands) * config.seeds
        log(f"search {baseline.name} at {config.budget} (x{ratio:.3g} MACs): {len(cands)} grid points x {config.seeds} "
            f"seed(s) = {total} proxy runs; {total - remaining} done before, {remaining} to run"
            + (f" ({recovered} interrupted run(s) retried)" if recovered else ""))
        for w in proxy_warnings:
            log(f"warning: {w.line()}")
        start = time.perf_counter()
        if remaining and backend == "ray":
            from scaler.ray_backend import run_grid

            run_grid(study, config, cands, run, log=log, total=total, address=ray_address,
                     on_record=lambda: write_trials_csv(run, study, cands))
        elif remaining:
            objective = OptunaObjective(config, cands, Progress(total, remaining, log))
            queue_pairs(study, pairs)
            study.optimize(objective, n_trials=remaining, catch=(TrainingFailed,),
                           callbacks=[lambda s, t: write_trials_csv(run, s, cands)])
        table = trials_table(study, cands)
        run.write_csv(run.trials, table)
        winner = choose_winner(table, study, config)
        if winner:
            winner["warnings"] = [w.as_dict() for w in proxy_warnings]  # the report shows them with the run
            run.write_json(run.coefficients, winner)
        return SearchResult(run, table, winner, remaining, time.perf_counter() - start, proxy_warnings)
    finally:
        os.close(lock)


def _cost_matched_grid(space, baseline, ratio: float, reference, recipe: dict, classes: int, log):
    """The grid matched to the budget at full size and in the proxy the runs train (its recipe and classes)."""
    points = grid(space, baseline, ratio, reference=reference, recipe=recipe_from_dict(recipe), proxy_classes=classes)
    for c in points.dropped:
        log(f"dropped {c.kind} ({', '.join(f'{v:.3f}' for v in c.planned.as_tuple())}): {c.reason}")
    if not points.kept:
        raise UsageError(f"no grid point of {space.path} costs x{ratio:.3g} within the space's tolerances at full "
                         f"size and in the proxy ({len(points.dropped)} dropped; see `scaler grid`)")
    return points


def write_trials_csv(run: RunFolder, study: optuna.Study, cands: list[Candidate]) -> None:
    """Rewrite trials.csv after every run, so the table on disk is never behind the study."""
    run.write_csv(run.trials, trials_table(study, cands))
