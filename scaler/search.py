"""The compound-coefficient search: screen the grid, confirm the best longer, train the curves, answer.

:func:`run_search` checks the input, costs the grid (cost-matched, :mod:`scaler.matching`), takes
the run folder's lock, opens the study (:mod:`scaler.study`) and runs the stages
(:mod:`scaler.stages`) with a backend (:mod:`scaler.stage_runner`): screen, confirm, curves. It
writes ``trials.csv`` (both stages), ``curves.csv`` and ``coefficients.json`` (the answer and its
evidence, :mod:`scaler.results`). Re-running the same command resumes: the run folder's
``config.json`` holds the search's identity.
"""

from __future__ import annotations

import dataclasses
import hashlib
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
from scaler.devices import set_threads, shared_threads
from scaler.errors import UsageError
from scaler.files import dumps
from scaler.local_workers import local_workers, thread_share
from scaler.matching import Coster
from scaler.objective import Planned
from scaler.options import BACKENDS, CURVES, DEFAULT_CONFIRM, DEFAULT_CONFIRM_PRESET, DEFAULT_SOURCE, HEARTBEAT, PRUNERS
from scaler.proxy import dataset
from scaler.proxy_checks import (
    ProxyWarning,
    check_baseline_accuracy,
    check_curve_costs,
    check_winners_agree,
    curve_cost_missed,
    run_checks,
)
from scaler.recipe import recipe_from_dict
from scaler.results import (
    choose_winner,
    curves_table,
    point_results,
    proxy_ident,
    recorded_proxy,
    stage_agreement,
    stage_runs,
    trials_table,
)
from scaler.run_folder import STUDY_NAME, RunFolder
from scaler.run_identity import canonical
from scaler.run_queue import interrupted_runs, mark_search_start, reclaim
from scaler.scaling import parse_budget
from scaler.search_space import SPACES_DIR, Candidate, SearchSpace, coarse_hint, grid, load_space, trim_notes
from scaler.stage_runner import StageRunner
from scaler.stages import CurvePoint, baseline_point, confirm_recipe, curve_points, curve_strategies, curve_tolerances, promote
from scaler.study import MAX_INDEX, Key, check_storage, delete_studies, key_of, open_study, redact_url, stage_keys, study_name
from scaler.train import check_memory

# Keys of config.json that define the study; a re-run must match them (in canonical form) to resume.
# The confirm stage's K and the curves' strategies may change: they only choose which runs to make.
IDENTITY = ("baseline", "budget", "space_rules", "data", "recipe", "seeds", "pruner", "candidates", "device",
            "confirm_recipe", "confirm_seeds", "curve_recipe")


@dataclass(frozen=True)
class SearchConfig:
    baseline: str
    budget: str = "2x"
    space: str | None = None
    data: str = DEFAULT_SOURCE
    recipe: dict = dataclasses.field(default_factory=dict)  # scaler.recipe.ProxyRecipe fields
    seeds: int = 2
    pruner: str = "none"
    device: str = "cpu"
    storage: str | None = None  # SQLAlchemy URL; default: SQLite in the run folder
    confirm: int = DEFAULT_CONFIRM  # top K of the screen to confirm (0: no confirm stage)
    confirm_recipe: dict = dataclasses.field(default_factory=dict)  # default: twice the screen's epochs
    confirm_seeds: int = 0  # default: one more than the screen's
    curves: str = "best"  # single dimensions drawn beside the chosen point: best, all or none
    curve_recipe: str = "screen"  # the curves train at the screen's recipe and seeds (reusing its runs), or the confirm's

    def resolved(self) -> SearchConfig:
        """Defaults that depend on other fields filled in."""
        def pruned(recipe: dict) -> dict:  # a pruner reads every epoch's accuracy
            return {**recipe, "eval_every": 1} if self.pruner != "none" and not recipe.get("eval_every") else recipe

        screen = pruned(self.recipe)
        recipe = pruned(self.confirm_recipe or dataclasses.asdict(
            confirm_recipe(recipe_from_dict(screen), DEFAULT_CONFIRM_PRESET, None)))
        return dataclasses.replace(self, recipe=screen, confirm_recipe=recipe,
                                   confirm_seeds=self.confirm_seeds or self.seeds + 1)


@dataclass
class SearchResult:
    run: RunFolder
    table: pd.DataFrame  # the stage the answer comes from (confirm, else screen)
    winner: dict | None
    trained_now: int
    seconds: float
    warnings: list[ProxyWarning] = dataclasses.field(default_factory=list)
    screen: pd.DataFrame | None = None
    curves: pd.DataFrame | None = None



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
        # Per-run accuracies repeat to the bit for the same thread count; another count changes the
        # order of float reductions and so the last digits (docs/benchmarks.md, "Repeatability").
        "torch_threads": set_threads(),
    }


def _space_label(spec: str | None, space: SearchSpace) -> str:
    """A built-in space by its name, a user's file as given: never an absolute path that a move breaks."""
    path = Path(space.path)
    return path.stem if path.parent.resolve() == SPACES_DIR.resolve() else str(spec)


def _check_same(previous: dict, current: dict, run: RunFolder) -> None:
    previous, current = canonical(previous), canonical(current)
    # A run begun before a key existed (space_rules) is matched on the keys it has.
    differs = [k for k in IDENTITY if k in previous and previous.get(k) != current.get(k)]
    if differs:
        raise UsageError(
            f"{run.path} holds a search with a different {', '.join(differs)}; "
            "re-run with --fresh to start over, or choose another --out"
        )


@dataclass
class _Grid:
    """What a search's configuration resolves to before any training: the same in every worker."""

    baseline: object
    space: SearchSpace
    data: object
    ratio: float
    cands: list[Candidate]
    dropped: list[Candidate]
    coster: Coster
    warnings: list[ProxyWarning]


def _prepare(config: SearchConfig, log: Callable[[str], None]) -> _Grid:
    baseline = get_baseline(config.baseline)
    space = load_space(config.space)
    data = dataset(config.data, config.recipe.get("seed", 0))  # the same object the runs train on
    baseline.build(num_classes=data.num_classes)  # fails early, with the user's message
    # A proxy resolution whose data this machine cannot hold: bad input, not one failed run per point.
    check_memory(data, config.recipe["proxy_resolution"], error=UsageError)
    if baseline.source != "built-in":
        log(f"baseline {baseline.name}: scaled by {baseline.scaling}")
    for name in baseline.ignored_multipliers(data.num_classes):  # its points along it would be copies of the baseline
        log(f"warning: baseline {baseline.name} ignores {name}: its network at {name} 2 is the same size as at 1")
    reference_cost = count_cost(baseline)
    ratio = parse_budget(config.budget).target_ratio(reference_cost.macs)
    if ratio <= 1.0:
        raise UsageError(f"budget {config.budget} is not above the baseline's cost ({ratio:.3g}x); scaler grows networks")
    points = _cost_matched_grid(space, baseline, ratio, reference_cost, config.recipe, data.num_classes, log)
    cands = points.kept
    # What the proxy cannot see is known before any training: said first, and kept with the result.
    proxy_warnings = run_checks(baseline, cands, recipe_from_dict(config.recipe), data)
    coster = Coster(baseline, recipe_from_dict(_curve_recipe(config)[0]), reference=reference_cost, proxy_classes=data.num_classes)
    return _Grid(baseline, space, data, ratio, cands, points.dropped, coster, proxy_warnings)


def identity(resolved: dict) -> dict:
    """The part of a resolved config.json that defines the search (what a resume must match)."""
    canon = canonical(resolved)
    return {k: canon.get(k) for k in IDENTITY}


def run_search(config: SearchConfig, run: RunFolder, fresh: bool = False, log: Callable[[str], None] = print,
               backend: str = "optuna", ray_address: str | None = None, workers: int = 1,
               heartbeat: int = HEARTBEAT, trial_resources: dict | None = None) -> SearchResult:
    """Run (or resume) the search in ``run``; returns the tables and the answer.

    ``backend``: ``optuna`` runs the trials in this process, and in ``workers - 1`` more local
    worker processes on the same study (:mod:`scaler.local_workers`); ``ray`` runs them through
    Ray Tune (:mod:`scaler.ray_backend`; a local Ray, or the cluster at ``ray_address``) into the
    same study. Any ``scaler worker`` on the study's storage works beside either.
    """
    config = _checked(config, backend)
    if workers > 1 and backend != "optuna":
        raise UsageError("--workers starts Optuna workers; with --backend ray, Ray places the trials (--trial-resources)")
    # This process is one of the workers while the stages run; the family's latency, timed after
    # them, has every core again (as `scaler family` times it).
    with shared_threads(thread_share(workers) if workers > 1 else None):
        return _run_search(config, run, fresh, log, backend, ray_address, workers, heartbeat, trial_resources)


def _run_search(config: SearchConfig, run: RunFolder, fresh: bool, log: Callable[[str], None], backend: str,
                ray_address: str | None, workers: int, heartbeat: int, trial_resources: dict | None) -> SearchResult:
    if config.storage:  # an unreachable database is said before minutes of grid costing
        check_storage(config.storage)
    prep = _prepare(config, log)
    cands = prep.cands

    run.create()
    lock_fd = run.lock()  # before --fresh clears anything: another search may own the folder
    try:
        resolved = _resolved_config(config, prep.space, cands, prep.data.describe(), prep.dropped)
        previous = run.read_json(run.config) if run.config.exists() else None
        name = study_name(config.baseline, config.budget, identity(resolved))
        if fresh:
            _forget(config, run, {name, (previous or {}).get("study", STUDY_NAME)})
            previous = None
        if previous is not None:
            _check_same(previous, resolved, run)
            name = previous.get("study", STUDY_NAME)  # a run folder from before studies were named
        resolved["study"] = name
        if previous is None:
            run.write_json(run.config, resolved)
        study = open_study(config, run, name, heartbeat)
        _claim(study, config, resolved)
        storage_url = config.storage or run.storage_url
        retried = reclaim(study) + interrupted_runs(study)
        mark_search_start(study)
        log(f"search {prep.baseline.name} at {config.budget} (x{prep.ratio:.3g} MACs): {len(cands)} grid points; screen "
            f"x{config.seeds} seed(s), confirm top {config.confirm} x{config.confirm_seeds} seed(s), curves: {config.curves}"
            + (f" ({retried} run(s) cut short or out of memory retried)" if retried else ""))
        log(f"study {name} in {redact_url(storage_url)}" + (f"; {workers} local workers" if workers > 1 else ""))
        for w in prep.warnings:
            log(f"warning: {w.line()}")
        start = time.perf_counter()
        runner = StageRunner(config, study, run, backend, ray_address, log,
                             on_record=lambda: _write_tables(run, _live_tables(study, cands)), trial_resources=trial_resources)
        with local_workers(workers - 1, storage_url, name, heartbeat, log):
            answer = _stages(runner, config, cands, prep.coster, prep.ratio, prep.data.num_classes, prep.space.matching_rules())
        _write_tables(run, [t for t in (answer.screen, answer.confirm) if t is not None])
        winner = answer.winner
        if winner:
            winner["warnings"] = [w.as_dict() for w in [*prep.warnings, *answer.warnings]]
            run.write_json(run.coefficients, winner)
        if answer.curves is not None:
            run.write_csv(run.curves, answer.curves)
        return SearchResult(run, answer.table, winner, runner.trained, time.perf_counter() - start,
                            [*prep.warnings, *answer.warnings], answer.screen, answer.curves)
    finally:
        os.close(lock_fd)


# The study's user attributes: the search's resolved config (what a worker checks its grid and data
# against) and its SearchConfig (what a worker runs).
CONFIG_ATTR, SEARCH_ATTR = "config", "search"


def _claim(study: optuna.Study, config: SearchConfig, resolved: dict) -> None:
    """Record the search in its study, or check that the study holds this search (a resume)."""
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is None:
        study.set_user_attr(CONFIG_ATTR, json.loads(dumps(resolved)))
        study.set_user_attr(SEARCH_ATTR, json.loads(dumps({**dataclasses.asdict(config), "storage": None})))
        return
    differs = [k for k, v in identity(stored).items() if v != identity(resolved).get(k)]
    if differs:
        raise UsageError(f"the storage's study {study.study_name!r} holds a search with a different "
                         f"{', '.join(differs)}; use --fresh to start it over")


def work(storage: str, name: str, log: Callable[[str], None] = print, heartbeat: int = HEARTBEAT) -> tuple[int, SearchConfig]:
    """``scaler worker``: take and run the queued runs of the study ``name`` until its search is done.

    The worker runs the stages of the search stored in the study, and first checks that its grid
    and data (their fingerprint) are the search's: a machine with other data must not add runs.
    Returns how many runs it made, and the search's configuration (to write its results with
    :func:`run_search`, which then finds every run done but those that ran out of memory: it tries them once more).
    """
    probe = SearchConfig(baseline="", storage=storage)
    study = open_study(probe, None, name, heartbeat, create=False)
    fields = study.user_attrs.get(SEARCH_ATTR)
    if not fields:
        raise UsageError(f"study {name!r} was not made by scaler search (it holds no search)")
    known = {f.name for f in dataclasses.fields(SearchConfig)}
    config = _checked(SearchConfig(**{**{k: v for k, v in fields.items() if k in known}, "storage": storage}), "optuna")
    prep = _prepare(config, lambda line: None)
    resolved = _resolved_config(config, prep.space, prep.cands, prep.data.describe(), prep.dropped)
    _claim(study, config, resolved)
    log(f"worker on study {name} in {redact_url(storage)}: {config.baseline} at {config.budget}, {len(prep.cands)} grid points")
    runner = StageRunner(config, study, None, "optuna", None, log, on_record=lambda: None)
    _stages(runner, config, prep.cands, prep.coster, prep.ratio, prep.data.num_classes, prep.space.matching_rules())
    return runner.made_here, config


def _checked(config: SearchConfig, backend: str) -> SearchConfig:
    if config.seeds < 1:
        raise UsageError(f"--seeds must be 1 or more, got {config.seeds}")
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    if config.pruner not in PRUNERS:
        raise UsageError(f"unknown pruner {config.pruner!r} (known: {', '.join(PRUNERS)})")
    if config.confirm < 0:
        raise UsageError(f"--confirm must be 0 or more, got {config.confirm}")
    if config.curves not in CURVES:
        raise UsageError(f"--curves must be one of {', '.join(CURVES)}, got {config.curves!r}")
    if config.curve_recipe not in ("screen", "confirm"):
        raise UsageError(f"--curve-recipe must be screen or confirm, got {config.curve_recipe!r}")
    return config.resolved()


def _forget(config: SearchConfig, run: RunFolder, names: set[str]) -> None:
    """--fresh: this search's study (in its storage; no other search's) and the files this run wrote."""
    if config.storage:
        delete_studies(config.storage, names)
    run.clear()


@dataclass
class _Answer:
    screen: pd.DataFrame
    confirm: pd.DataFrame | None
    table: pd.DataFrame  # the stage the answer comes from
    winner: dict | None
    curves: pd.DataFrame | None
    warnings: list[ProxyWarning]


def _stages(runner: StageRunner, config: SearchConfig, cands: list[Candidate], coster: Coster, ratio: float,
            classes: int, rules: dict) -> _Answer:
    """Screen, confirm, curves; the answer comes from the highest stage that finished a point."""
    screen_plan = _plan("screen", range(len(cands)), cands, config.seeds, config.recipe)
    runner.run_stage("screen", screen_plan, f"{len(cands)} points x {config.seeds} seed(s)")
    screen = trials_table(runner.study, cands, "screen")
    screen_winner = choose_winner(screen, runner.study, config, "screen")
    promoted = promote(point_results(screen, runner.study, "screen"), config.confirm) if config.confirm and screen_winner else []
    final, stage, warnings, confirm = screen, "screen", [], None
    if promoted:
        plan = _plan("confirm", promoted, cands, config.confirm_seeds, config.confirm_recipe)
        # The curves' baseline (phi = 0) does not depend on the answer: queued after the confirm
        # stage's runs, it takes the workers the stage's last round leaves idle. (Ray runs a stage as
        # one Tune experiment at one recipe, whose epochs its pruner schedules by: not there.)
        early = _curve_plan(runner.study, config, [CurvePoint("baseline", 0, baseline_point(coster))])[0] \
            if config.curves != "none" and runner.backend == "optuna" else {}
        also = f", then the curves' baseline x {len(early)} seed(s)" if early else ""
        runner.run_stage("confirm", {**plan, **early}, f"{len(promoted)} points x {config.confirm_seeds} seed(s){also}")
        confirm = trials_table(runner.study, cands, "confirm", promoted)
        if (confirm.state == "COMPLETE").any():
            final, stage = confirm, "confirm"
    winner = choose_winner(final, runner.study, config, stage)
    if winner and stage == "confirm":
        winner.update(stage_agreement(screen, final, screen_winner, winner))
        disagree = check_winners_agree(_identity(screen_winner), _identity(winner))
        warnings += [disagree] if disagree else []
    curves = None
    if winner and config.curves != "none":
        curves = _curves(runner, config, cands, final, winner["point"], coster, ratio, promoted, rules)
        base = curves[curves.phi == 0].accuracy_mean  # the curves train the baseline: is it saturated, or at chance?
        judged = check_baseline_accuracy(float(base.iloc[0]) if len(base) else None, classes)
        networks = list(zip(curves.strategy, curves.phi, curves.macs_ratio, curves.proxy_macs_ratio))
        tolerances = curve_tolerances(rules)
        curves["cost_missed"] = curve_cost_missed(networks, ratio, *tolerances)  # the report marks them on the chart
        costs = check_curve_costs(networks, ratio, *tolerances, which=list(curves["cost_missed"]))
        warnings += [w for w in (judged, costs) if w]
    return _Answer(screen, confirm, final, winner, curves, warnings)


def _identity(winner: dict) -> tuple:
    return (winner["alpha"], winner["beta"], winner["gamma"])


def _plan(stage: str, points, cands: list[Candidate], seeds: int, recipe: dict) -> dict[Key, Planned]:
    plans = {p: Planned(cands[p], recipe, cands[p].progress_label) for p in points}
    return {key: plans[key[1]] for key in stage_keys(stage, list(plans), seeds)}


def _curves(runner: StageRunner, config: SearchConfig, cands: list[Candidate], final: pd.DataFrame, chosen: int,
            coster: Coster, ratio: float, confirmed: list[int], rules: dict) -> pd.DataFrame:
    """Train the curve networks no stage has trained yet; one row per (strategy, phi).

    At ``config.curve_recipe`` (default the screen's, whose runs give every grid point's phi = 1),
    or the confirm's (whose runs give the confirmed points' phi = 1).
    """
    strategies = curve_strategies(final, trials_table(runner.study, cands, "screen"), chosen, cands, config.curves)
    points = curve_points(baseline_point(coster), strategies, ratio, coster, rules)  # the space's matching rules
    stage = config.curve_recipe
    trained = range(len(cands)) if stage == "screen" else confirmed
    reused = {i: pt.grid_point for i, pt in enumerate(points) if pt.phi == 1 and pt.grid_point in trained}
    todo = [i for i in range(len(points)) if i not in reused]
    plan, index = _curve_plan(runner.study, config, [points[i] for i in todo])
    seeds = _curve_recipe(config)[1]
    runner.run_stage("curve", plan, f"{len(todo)} networks x {seeds} seed(s) at the {stage} recipe "
                                    f"({len(reused)} reused from the {stage} stage)")
    runs = {i: (stage, p) for i, p in reused.items()} | {i: ("curve", index[n]) for n, i in enumerate(todo)}
    return curves_table(runner.study, points, runs)


def _curve_plan(study: optuna.Study, config: SearchConfig, points: list[CurvePoint]) -> tuple[dict[Key, Planned], list[int]]:
    """The runs of curve networks ``points`` at the curves' recipe and seeds, and each network's run number."""
    recipe, seeds = _curve_recipe(config)
    index = _curve_indices(study, [pt.network for pt in points])
    plans = {index[n]: Planned(pt.network, recipe, f"{pt.strategy} phi={pt.phi}") for n, pt in enumerate(points)}
    return {key: plans[key[1]] for key in stage_keys("curve", list(plans), seeds)}, index


def _curve_recipe(config: SearchConfig) -> tuple[dict, int]:
    """The recipe and seeds the curves train at: the screen's (``--curve-recipe screen``) or the confirm's."""
    return (config.recipe, config.seeds) if config.curve_recipe == "screen" else (config.confirm_recipe, config.confirm_seeds)


CURVE_NUMBERS = 1000  # a new curve network's run number is at least this (runs numbered by position lie below)


def _curve_indices(study: optuna.Study, networks: list[Candidate]) -> list[int]:
    """Each curve network's run number (the key's point): that of runs already recorded of the same
    proxy, else one derived from the proxy's own coefficients (:func:`_curve_number`).

    Curve networks are chosen after the answer (the chosen point, the best single dimension) and
    matched by the installed version's rules, so a resume may plan other networks than the runs in
    the study — after ``--confirm`` changed the winner, say. Keyed by network, such runs are neither
    reused for the wrong network nor lost. A new network's number depends on the network alone, so
    every worker of a study computes the same one, whatever runs are in flight (a run records its
    network only once taken); ``results.curves_table`` also drops a run whose recorded proxy is not
    its network's.
    """
    known: dict[tuple, int] = {}
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        key, recorded = key_of(t), recorded_proxy(t)
        if key and key[0] == "curve" and recorded is not None:
            known.setdefault(recorded, key[1])
    taken = set(known.values())
    out = []
    for net in networks:
        ident = proxy_ident(net.proxy_point.as_tuple())
        if ident not in known:
            number = _curve_number(ident)
            while number in taken:  # another recorded network has it (a 1-in-99,000 chance): the next
                number = CURVE_NUMBERS + (number + 1 - CURVE_NUMBERS) % (MAX_INDEX - CURVE_NUMBERS)
            known[ident] = number
            taken.add(number)
        out.append(known[ident])
    return out


def _curve_number(ident: tuple) -> int:
    """A number in [CURVE_NUMBERS, MAX_INDEX) from a proxy's coefficients: the same in every process."""
    digest = hashlib.sha256(repr(ident).encode()).digest()
    return CURVE_NUMBERS + int.from_bytes(digest[:8], "big") % (MAX_INDEX - CURVE_NUMBERS)


def _live_tables(study: optuna.Study, cands: list[Candidate]) -> list[pd.DataFrame]:
    """Both stages' tables as the study stands mid-search: the confirm stage's points are those it has begun."""
    confirmed = sorted({point for point, _ in stage_runs(study, "confirm")})
    screen = trials_table(study, cands, "screen")
    return [screen, trials_table(study, cands, "confirm", confirmed)] if confirmed else [screen]


def _write_tables(run: RunFolder, frames: list[pd.DataFrame]) -> None:
    """trials.csv, both stages, rewritten after every run: the table on disk is never behind the study."""
    run.write_csv(run.trials, pd.concat(frames, ignore_index=True))


def _cost_matched_grid(space, baseline, ratio: float, reference, recipe: dict, classes: int, log):
    """The grid matched to the budget at full size and in the proxy the runs train (its recipe and classes)."""
    points = grid(space, baseline, ratio, reference=reference, recipe=recipe_from_dict(recipe), proxy_classes=classes)
    for c in points.dropped:
        log(f"dropped {c.kind} ({', '.join(f'{v:.3f}' for v in c.planned.as_tuple())}): {c.reason}")
    hint = coarse_hint(space, points.dropped)
    for line in trim_notes(space, points.kept) + ([hint] if hint else []):
        log(line)
    if not points.kept:
        raise UsageError(f"no grid point of {space.path} costs x{ratio:.3g} within the space's tolerances at full "
                         f"size and in the proxy ({len(points.dropped)} dropped; see `scaler grid`)")
    return points
