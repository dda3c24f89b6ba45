"""The regret benchmark: does the search's protocol (screen, promote, confirm) pick what longer training picks?

Every run is a trial of an Optuna study in ``--out`` (``study.db``), keyed (stage, point, seed) as a
search keys its runs, so a rerun trains only what is missing and the benchmark can run in several
sittings (``--stage pool``, then ``--stage reference``, ...), or as two processes, one per core, each
in its own folder (``--stage pool --out A`` beside ``--stage reference --out B``, then
``--stage analyse --out A --merge-from B``). The steps:

- **pool**: every cost-matched point of the default grid, ``--pool-seeds`` (6) seeds at the
  screen's recipe and as many at the confirm stage's: what the replays draw their seeds from.
- **reference**: every point, ``--reference-seeds`` (4) seeds at ``--reference-factor`` (2) times
  the confirm stage's epochs, initialised apart from the pool (seeds from 1000). Its own
  repeatability is the split-half Kendall tau of its seeds; it is usable when that is >= 0.8.
- **analyse**: replays the shipped protocol ``--replays`` (15) times on seeds drawn from the pool
  (distinct seed sets while there are any): the screen's seeds, :func:`scaler.stages.promote`
  (the search's own function), the confirm stage's seeds, the pick by :func:`scaler.verdict.judge`
  (the search's rule). It reports regret — the reference accuracy of the reference's best point
  minus that of the pick, median and 90th percentile — how often the pick is in the reference's
  top 2, and Kendall tau screen -> reference and confirm -> reference (median over the replays,
  with a 95% bootstrap interval over grid points, scipy) beside the reference's split-half tau,
  the ceiling. Writes ``fidelity.json`` and ``fidelity.md`` in ``--out``.
- **protocols**: the same replays for every protocol of a sweep (``--sweep-confirm`` K x
  ``--sweep-screen-seeds`` x ``--sweep-confirm-seeds``) beside the training time each costs (the
  stored runs' median seconds), so the search's defaults are chosen by regret within a time budget.
  Writes ``protocols.json`` and ``protocols.md``.
- **controls**: positive controls. The default search (:func:`scaler.search.run_search`: screen and
  confirm, no curves) on data variants whose right direction is known by construction, given as
  ``--control DIMENSION DATA``, ``--control-replays`` (5) replays each with fresh seeds (and data
  splits); a control passes when the expected dimension leads the pick in >= 4 of 5. Writes
  ``controls.json`` and ``controls.md``.

    python benchmarks/fidelity.py --baseline resnet50                 # pool, reference, analysis
    python benchmarks/fidelity.py --baseline resnet50 --stage pool    # one sitting: the pool only
    python benchmarks/fidelity.py --baseline resnet50 --stage protocols  # K and seeds by regret and time
    python benchmarks/fidelity.py --baseline resnet50 --stage controls \\
        --control resolution glyphs:focus=resolution --control depth glyphs:focus=depth \\
        --control width glyphs:focus=width
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import optuna
from scipy import stats as scipy_stats

from scaler.baselines import Baseline, get_baseline
from scaler.commands._common import check_numbers
from scaler.cost import count_cost
from scaler.devices import resolve_device, set_threads
from scaler.errors import UsageError
from scaler.files import dumps
from scaler.objective import Planned
from scaler.options import DEFAULT_CONFIRM, DEFAULT_SEEDS, DEFAULT_SOURCE, default_confirm_preset
from scaler.progress import duration
from scaler.proxy import dataset, train_point
from scaler.recipe import FIELDS, PRESETS, ProxyRecipe, recipe_defaults, resolve_recipe
from scaler.results import accuracies_by_seed, stage_runs
from scaler.run_folder import RunFolder
from scaler.scaling import Coefficients, parse_budget
from scaler.search import SearchConfig, run_search
from scaler.search_space import Candidate, grid, load_space
from scaler.stage_runner import StageRunner
from scaler.stages import DIMENSIONS, confirm_recipe, leading_dimension, promote
from scaler.study import Key, is_final, key_of, keys_to_run, latest_by_key, make_pruner, open_storage, retire
from scaler.verdict import CLEAR_P_BEST, PointResult, judge, rank

STEPS = ("pool", "reference", "analyse", "protocols", "controls", "all")
REFERENCE_SEED = 1000  # the reference's seed indices start here: other initialisations than the pool's
# The design's minimums (docs/fidelity.md); a smaller benchmark runs, and says so in its report.
MIN_POINTS, MIN_POOL_SEEDS, MIN_REFERENCE_SEEDS, MIN_REFERENCE_FACTOR, MIN_REPLAYS = 10, 6, 4, 2.0, 10
CEILING = 0.8  # the reference is usable when its split-half tau reaches this
GOAL_REGRET = 0.003  # median regret, as a fraction (0.3 points)
GOAL_TOP2 = 0.8
CONTROL_PASS = 4  # of 5 replays
CONTROL_SEED_STEP = 100  # replay r of a control trains with recipe seed r * this (and splits the data by it)

Accs = dict[int, dict[int, float]]  # point -> {seed: accuracy}


# ---------------------------------------------------------------- the analysis, on plain numbers


def seed_draws(seeds: list[int], size: int, n: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """``n`` sets of ``size`` distinct seeds: every set differs from the others until all were drawn once."""
    combos = list(itertools.combinations(sorted(seeds), size))
    if not combos:
        raise UsageError(f"cannot draw {size} seed(s) from the {len(seeds)} the pool holds")
    order = rng.permutation(len(combos))
    return [combos[order[i % len(combos)]] for i in range(n)]


def _results(accs: Accs, seeds, cands: list[Candidate], points) -> list[PointResult]:
    """The points that ran every one of ``seeds``, as the search judges them (a point missing a run is not complete)."""
    out = []
    for p in points:
        own = accs.get(p, {})
        if all(s in own for s in seeds):
            c = cands[p]
            out.append(PointResult(p, c.kind, {s: own[s] for s in seeds}, float(c.macs), coefficients=c.coefficients))
    return out


def replay(cands: list[Candidate], screen: Accs, confirm: Accs, points: list[int], screen_seeds, confirm_seeds,
           k: int) -> dict | None:
    """One run of the shipped protocol on stored runs: the search's promote and pick, on the drawn seeds."""
    screened = _results(screen, screen_seeds, cands, points)
    if not screened:
        return None
    screen_pick = judge(screened).ranked[0].point
    promoted = promote(screened, k) if k else []
    confirmed = _results(confirm, confirm_seeds, cands, promoted)
    final = judge(confirmed) if confirmed else judge(screened)  # as the search: the confirm stage when it finished a point
    return {"screen_seeds": list(screen_seeds), "confirm_seeds": list(confirm_seeds), "promoted": promoted,
            "screen_pick": screen_pick, "pick": final.ranked[0].point, "stage": "confirm" if confirmed else "screen",
            "told_apart": final.told_apart}


def _tau(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 2:
        return math.nan
    with warnings.catch_warnings():  # a constant input (every point tied) has no tau: NaN, said as n/a
        warnings.simplefilter("ignore")
        return float(scipy_stats.kendalltau(a[ok], b[ok]).statistic)


def _means(accs: Accs, seeds, points: list[int]) -> np.ndarray:
    return np.array([np.mean([accs[p][s] for s in seeds]) if all(s in accs.get(p, {}) for s in seeds) else np.nan
                     for p in points])


MAX_SPLITS = 2000  # split-halves scored at most: 16 seeds have 6,435 splits, 26 seeds 5.2 million


def split_half_splits(seeds: list[int], limit: int = MAX_SPLITS, seed: int = 0) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Every split of the seeds into two halves (the first seed always in the first half, so each split
    once); where there are more than ``limit``, ``limit`` distinct ones drawn at random (seeded): the
    median over them estimates the median over all, whose count grows combinatorially with the seeds."""
    seeds = sorted(seeds)
    half = len(seeds) // 2
    if math.comb(len(seeds), half) // (1 if len(seeds) % 2 else 2) > limit:
        rng, drawn = np.random.default_rng(seed), {}
        while len(drawn) < limit:
            first = tuple(sorted(int(s) for s in rng.permutation(seeds)[:half]))
            rest = tuple(s for s in seeds if s not in first)
            if not len(seeds) % 2 and seeds[0] not in first:
                first, rest = rest, first
            drawn.setdefault(first, rest)
        return list(drawn.items())
    out = []
    for first in itertools.combinations(seeds, half):
        if seeds[0] in first or len(seeds) % 2:
            out.append((first, tuple(s for s in seeds if s not in first)))
    return out


def projected_split_half(means: np.ndarray, stds: np.ndarray, seeds: int, sims: int = 2000,
                         seed: int = 0) -> dict:
    """The split-half tau a reference of ``seeds`` seeds per point would likely reach: each half's
    mean drawn around the measured mean with the measured seed std over sqrt(seeds // 2). Median
    over ``sims`` draws, and the share of draws at or above :data:`CEILING`. A planning figure for
    a reference that is not yet usable: how many seeds more would make it so (normal seed noise assumed)."""
    rng = np.random.default_rng(seed)
    spread = stds / math.sqrt(seeds // 2)
    taus = np.array([_tau(rng.normal(means, spread), rng.normal(means, spread)) for _ in range(sims)])
    taus = taus[np.isfinite(taus)]
    return {"seeds": seeds, "median": float(np.median(taus)), "usable_share": float(np.mean(taus >= CEILING))}


def _interval(statistic, n: int, resamples: int, seed: int) -> list[float] | None:
    """95% percentile bootstrap interval over the grid points of ``statistic(indices)`` (scipy)."""
    if n < 3 or resamples < 1:
        return None

    def stat(idx):
        return statistic(np.asarray(idx, int))

    with warnings.catch_warnings():  # resamples of few points are often all ties: their NaNs are dropped
        warnings.simplefilter("ignore")
        res = scipy_stats.bootstrap((np.arange(n),), stat, n_resamples=resamples, method="percentile",
                                    vectorized=False, rng=np.random.default_rng(seed))
    # Percentiles of the finite resamples: one that drew a single point many times can have no tau (all ties).
    values = np.asarray(res.bootstrap_distribution, float)
    values = values[np.isfinite(values)]
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))] if len(values) else None


def _nanmedian(values) -> float:
    values = [v for v in values if math.isfinite(v)]
    return float(np.median(values)) if values else math.nan


def analyse(cands: list[Candidate], screen: Accs, confirm: Accs, reference: Accs, *, replays: int = 15,
            screen_seeds: int = 2, confirm_seeds: int = 3, confirm_k: int = DEFAULT_CONFIRM, seed: int = 0,
            resamples: int = 1000) -> dict:
    """Replay the protocol ``replays`` times and score each pick against the reference (module docstring).

    Accuracies are fractions (0..1), as the study stores them; regret is a fraction too.
    """
    points = sorted(p for p, a in reference.items() if a)
    if len(points) < 2:
        raise UsageError(f"the reference holds {len(points)} finished point(s); run --stage reference first (2 or more needed)")
    ref_points = rank([PointResult(p, cands[p].kind, reference[p], float(cands[p].macs)) for p in points])
    ref_mean = {r.point: r.mean for r in ref_points}
    best, top2 = ref_points[0].point, [r.point for r in ref_points[:2]]
    ref = np.array([ref_mean[p] for p in points])

    rng = np.random.default_rng(seed)
    pool_seeds = sorted({s for p in points for s in screen.get(p, {})})
    confirm_pool = sorted({s for p in points for s in confirm.get(p, {})})
    s_draws = seed_draws(pool_seeds, screen_seeds, replays, rng)
    c_draws = seed_draws(confirm_pool, confirm_seeds, replays, rng) if confirm_k else [()] * replays
    runs, screen_means, confirm_means = [], [], []
    for s_seeds, c_seeds in zip(s_draws, c_draws):
        r = replay(cands, screen, confirm, points, s_seeds, c_seeds, confirm_k)
        screen_means.append(_means(screen, s_seeds, points))
        confirm_means.append(_means(confirm, c_seeds, points) if c_seeds else np.full(len(points), np.nan))
        if r is None:
            continue
        r.update(regret=ref_mean[best] - ref_mean[r["pick"]], in_top2=r["pick"] in top2,
                 screen_regret=ref_mean[best] - ref_mean[r["screen_pick"]], screen_in_top2=r["screen_pick"] in top2,
                 tau_screen=_tau(screen_means[-1], ref), tau_confirm=_tau(confirm_means[-1], ref))
        runs.append(r)
    if not runs:
        raise UsageError("no replay found a screened point: run --stage pool first")

    def median_tau(means):
        return lambda idx: _nanmedian([_tau(m[idx], ref[idx]) for m in means])

    ref_seeds = sorted(set.intersection(*(set(reference[p]) for p in points)))
    splits = split_half_splits(ref_seeds)
    halves = [(_means(reference, a, points), _means(reference, b, points)) for a, b in splits]

    def split_half(idx):
        return _nanmedian([_tau(a[idx], b[idx]) for a, b in halves]) if halves else math.nan

    ceiling = split_half(np.arange(len(points)))
    # Regret needs only the reference's best point: how often both halves of the seeds crown the same one
    # (the halves draw on seeds every point has, so their means are finite).
    leads = [bool(np.argmax(a) == np.argmax(b)) for a, b in halves]
    regrets = np.array([r["regret"] for r in runs])
    screen_regrets = np.array([r["screen_regret"] for r in runs])
    summary = {
        "points": len(points), "replays": len(runs), "best": best, "top2": top2,
        "regret_median": float(np.median(regrets)), "regret_p90": float(np.percentile(regrets, 90)),
        "regret_max": float(regrets.max()), "top2_rate": float(np.mean([r["in_top2"] for r in runs])),
        "screen_regret_median": float(np.median(screen_regrets)),
        "screen_top2_rate": float(np.mean([r["screen_in_top2"] for r in runs])),
        "told_apart_rate": float(np.mean([r["told_apart"] for r in runs])),
        "tau_screen": _nanmedian([r["tau_screen"] for r in runs]),
        "tau_screen_interval": _interval(median_tau(screen_means), len(points), resamples, seed),
        "tau_confirm": _nanmedian([r["tau_confirm"] for r in runs]),
        "tau_confirm_interval": _interval(median_tau(confirm_means), len(points), resamples, seed) if confirm_k else None,
        "split_half_tau": ceiling, "split_half_splits": len(splits),
        "split_half_same_leader": float(np.mean(leads)) if leads else math.nan,
        "split_half_interval": _interval(split_half, len(points), resamples, seed),
        "reference_usable": bool(math.isfinite(ceiling) and ceiling >= CEILING),
    }
    if not summary["reference_usable"] and len(ref_seeds) >= 2:
        stds = np.array([_std({s: reference[p][s] for s in ref_seeds}) for p in points])
        summary["split_half_projection"] = [projected_split_half(ref, stds, n * len(ref_seeds), seed=seed)
                                            for n in (1, 2, 4, 8)]
    summary["goals"] = {"regret_median": summary["regret_median"] <= GOAL_REGRET + 1e-12,
                        "top2_rate": summary["top2_rate"] >= GOAL_TOP2}
    table = [{"point": p, "kind": cands[p].kind, "alpha": cands[p].coefficients.alpha,
              "beta": cands[p].coefficients.beta, "gamma": cands[p].coefficients.gamma,
              "macs_ratio": cands[p].macs_ratio, "proxy_macs_ratio": cands[p].proxy_macs_ratio,
              "reference_mean": ref_mean[p], "reference_std": _std(reference[p]), "reference_n": len(reference[p]),
              "reference_rank": [r.point for r in ref_points].index(p) + 1,
              "screen_mean": _mean(screen.get(p, {})), "screen_n": len(screen.get(p, {})),
              "confirm_mean": _mean(confirm.get(p, {})), "confirm_n": len(confirm.get(p, {}))} for p in points]
    return {"summary": summary, "points": table, "replays": runs}


def _mean(accs: dict) -> float:
    return float(np.mean(list(accs.values()))) if accs else math.nan


def _std(accs: dict) -> float:
    return float(np.std(list(accs.values()), ddof=1)) if len(accs) > 1 else math.nan


# ---------------------------------------------------------------- training the pool and the reference


@dataclass
class Bench:
    """What the benchmark trains: the grid, the three recipes, and where the runs are kept."""

    baseline: Baseline
    cands: list[Candidate]
    dropped: list[Candidate]
    screen: ProxyRecipe
    confirm: ProxyRecipe
    reference: ProxyRecipe
    config: SearchConfig  # what a run's job is made of (baseline, data, the screen's recipe, device)
    data_description: dict
    images: int  # training images per epoch
    out: Path

    @property
    def storage(self) -> str:
        return f"sqlite:///{(self.out / 'study.db').resolve()}"

    def identity(self) -> dict:
        """What must match for a rerun to resume this folder's runs."""
        data = {k: self.data_description.get(k) for k in ("classes", "images", "image_size", "fingerprint",
                                                           "split_seed", "split_fingerprint")}
        return json.loads(dumps({
            "baseline": self.config.baseline, "budget": self.config.budget, "data": data,
            "device": self.config.device.split(":")[0], "candidates": [c.as_dict() for c in self.cands],
            "recipes": {name: dataclasses.asdict(getattr(self, name)) for name in ("screen", "confirm", "reference")},
        }))

    def recipes(self) -> dict[tuple[str, str], ProxyRecipe]:
        """(study, stage) -> the recipe its runs train with."""
        return {("pool", "screen"): self.screen, ("pool", "confirm"): self.confirm, ("reference", "confirm"): self.reference}

    def work(self, recipe: ProxyRecipe, point: int) -> float:
        """A run's compute in units of proxy-baseline image passes: what the time estimate scales by."""
        ratio = self.cands[point].proxy_macs_ratio
        return recipe.epochs * min(self.images, recipe.subset or self.images) * (ratio if math.isfinite(ratio) else 1.0)


def setup(args) -> Bench:
    baseline = get_baseline(args.baseline)
    screen = resolve_recipe(args.preset, baseline, recipe_overrides(args.set))
    confirm = confirm_recipe(screen, args.confirm_preset or default_confirm_preset(args.preset), baseline)
    f = args.reference_factor
    reference = confirm.replace(epochs=int(round(confirm.epochs * f)), warmup_epochs=confirm.warmup_epochs * f)
    data = dataset(args.data, screen.seed)
    cost = count_cost(baseline)
    ratio = parse_budget(args.budget).target_ratio(cost.macs)
    if ratio <= 1.0:
        raise UsageError(f"budget {args.budget} is not above the baseline's cost ({ratio:.3g}x)")
    points = grid(load_space(args.space), baseline, ratio, reference=cost, recipe=screen, proxy_classes=data.num_classes)
    if len(points.kept) < 2:
        raise UsageError(f"the grid keeps {len(points.kept)} cost-matched point(s) at {args.budget}: nothing to rank")
    config = SearchConfig(baseline=args.baseline, budget=args.budget, space=args.space, data=args.data,
                          recipe=dataclasses.asdict(screen), device=str(resolve_device(args.device)))
    return Bench(baseline, points.kept, points.dropped, screen, confirm, reference, config, data.describe(),
                 len(data.subset_indices(screen.subset)), Path(args.out))


def recipe_overrides(items: list[str]) -> dict:
    """``--set FIELD=VALUE`` items as recipe fields; values read as JSON (numbers, true, false, null)."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in FIELDS:
            raise UsageError(f"--set takes FIELD=VALUE with a recipe field ({', '.join(sorted(FIELDS))}), got {item!r}")
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            raise UsageError(f"--set {name}: {value!r} is not a number, true, false or null") from None
    return out


def plans(bench: Bench, args) -> dict[str, list[tuple[str, dict[Key, Planned], str]]]:
    """Per study (pool, reference): its stages' plans, as a search's, keyed (stage, point, seed)."""
    n = len(bench.cands)

    def plan(stage: str, recipe: ProxyRecipe, seeds: list[int]) -> dict[Key, Planned]:
        fields = dataclasses.asdict(recipe)
        return {(stage, p, s): Planned(bench.cands[p], fields, bench.cands[p].progress_label)
                for s in seeds for p in range(n)}

    pool = list(range(args.pool_seeds))
    ref = [REFERENCE_SEED + i for i in range(args.reference_seeds)]
    return {
        "pool": [("screen", plan("screen", bench.screen, pool), f"pool at the screen's recipe: {n} points x {len(pool)} seeds"),
                 ("confirm", plan("confirm", bench.confirm, pool),
                  f"pool at the confirm stage's recipe ({bench.confirm.epochs} epochs): {n} points x {len(pool)} seeds")],
        # The reference is the confirm stage trained longer: its own study, so its keys can be the confirm stage's.
        "reference": [("confirm", plan("confirm", bench.reference, ref),
                       f"reference ({bench.reference.epochs} epochs): {n} points x {len(ref)} seeds")],
    }


def open_study(bench: Bench, name: str) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Every trial is queued with its key, so the sampler never samples; no pruner: every run trains in full.
    # The search's storage: on SQLite every transaction begins IMMEDIATE, so a --join'ed process never
    # takes the run the other one just took, and heartbeats let a dead process's runs be retried.
    return optuna.create_study(study_name=name, storage=open_storage(bench.storage), direction="maximize", load_if_exists=True,
                               sampler=optuna.samplers.RandomSampler(seed=0), pruner=make_pruner("none"))


class Tracker:
    """The benchmark's own progress line after every run: runs done of all, and the time left.

    ``left`` lists the work of every run not yet final in the studies, so the line counts the runs
    of every process on the folder (``--join``), and the time left is the work still to do at the
    rate the study has been finishing it since this process started.
    """

    def __init__(self, left: Callable[[], list[float]], total: int, log, work_at_start: float) -> None:
        self.left, self.total, self.log, self.work_at_start = left, total, log, work_at_start
        self.start = time.perf_counter()

    def record(self) -> None:
        left = self.left()
        rate = (self.work_at_start - sum(left)) / max(1e-9, time.perf_counter() - self.start)
        self.log(f"fidelity: {self.total - len(left)}/{self.total} runs of the benchmark done; about "
                 f"{duration(sum(left) / rate) if rate > 0 else '?'} left")


def estimate_rate(bench: Bench, studies: dict[str, optuna.Study], log) -> tuple[float, str]:
    """Work per second: from the finished runs when there are any, else from a one-epoch probe run."""
    recipes = bench.recipes()
    work = seconds = 0.0
    for name, study in studies.items():
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            stage, point = t.params.get("stage"), t.params.get("point")
            if (name, stage) in recipes and point is not None and point < len(bench.cands) and t.user_attrs.get("seconds"):
                work += bench.work(recipes[name, stage], int(point))
                seconds += t.user_attrs["seconds"]
    if seconds > 0:
        return work / seconds, f"{seconds / 60:.1f} min of finished runs"
    # Two epochs, timed by the second: the first also builds the model and resizes the data.
    probe = bench.screen.replace(epochs=2, warmup_epochs=min(1.0, bench.screen.warmup_epochs))
    log("estimate: timing two epochs of the first grid point ...")
    result = train_point(bench.baseline, bench.cands[0].coefficients.multipliers(1.0),
                         data=dataset(bench.config.data, bench.screen.seed), recipe=probe, device=bench.config.device, seed=0)
    return bench.work(probe, 0) / 2 / result.epoch_seconds[-1], f"a probe's second epoch ({result.epoch_seconds[-1]:.1f} s)"


def train_steps(bench: Bench, args, steps: list[str], log) -> None:
    # Runs a killed process left RUNNING are retried by the queue's reclaim (run_queue.work_stage) as a
    # search's are: its worker is gone; a --join'ed process's live runs are never touched.
    studies = {name: open_study(bench, name) for name in steps}
    all_plans = plans(bench, args)
    recipes = bench.recipes()
    def todo() -> dict[tuple[str, str], list]:  # each stage's runs not yet final, whichever process trains them
        return {(name, stage): keys_to_run(studies[name], list(plan)) for name in steps for stage, plan, _ in all_plans[name]}

    def work(runs: dict[tuple[str, str], list]) -> list[float]:  # the work of each of those runs
        return [bench.work(recipes[k], p) for k, keys in runs.items() for _, p, _ in keys]

    now = todo()
    queue, total = work(now), sum(len(plan) for name in steps for _, plan, _ in all_plans[name])
    counts = [f"{name} {stage} {len(plan)} run(s) ({len(now[name, stage])} to train)"
              for name in steps for stage, plan, _ in all_plans[name]]
    cpu = ""
    if queue:
        rate, source = estimate_rate(bench, studies, log)
        cpu = (f"; about {sum(queue) / rate / 3600:.2f} h of training left on this machine (rate from {source}, "
               f"{set_threads()} torch thread(s))")
    log("plan: " + ", ".join(counts) + cpu)
    if args.dry_run:
        return
    tracker = Tracker(lambda: work(todo()), total, log, work_at_start=sum(queue))
    for name in steps:
        runner = StageRunner(bench.config, studies[name], RunFolder(bench.out), backend="optuna", address=None, log=log,
                             on_record=tracker.record)
        for stage, plan, what in all_plans[name]:
            runner.run_stage(stage, plan, what)


def stored(bench: Bench) -> tuple[Accs, Accs, Accs]:
    """The complete runs: the pool's screen and confirm, and the reference, point -> {seed: accuracy}."""
    pool, reference = open_study(bench, "pool"), open_study(bench, "reference")
    return accuracies_by_seed(pool, "screen"), accuracies_by_seed(pool, "confirm"), accuracies_by_seed(reference, "confirm")


# ---------------------------------------------------------------- reports


def _pts(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.2f}"


def _share(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.0%}"


def _tau_text(value: float, interval) -> str:
    text = "n/a" if not math.isfinite(value) else f"{value:+.2f}"
    return text + (f" [{interval[0]:+.2f}, {interval[1]:+.2f}]" if interval else "")


def markdown(result: dict, bench: Bench, command: str) -> str:
    s = result["summary"]
    ok = lambda flag: "met" if flag else "not met"  # noqa: E731
    lines = [
        f"# Regret benchmark: {bench.config.baseline} at {bench.config.budget} on {bench.config.data}",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `{command}`, device {bench.config.device}, "
        f"{set_threads()} torch thread(s).",
        f"Grid: {s['points']} cost-matched point(s) ({len(bench.dropped)} dropped by matching). Recipes (epochs): screen {bench.screen.epochs}, confirm {bench.confirm.epochs}, "
        f"reference {bench.reference.epochs}. Replays: {s['replays']}.",
        *(["", "**Under the design's minimums:**", *(f"- {note}." for note in result["notes"])] if result.get("notes") else []),
        "",
        "| measure | value | goal |",
        "|---|---|---|",
        f"| regret, median (points) | {_pts(s['regret_median'])} | <= {100 * GOAL_REGRET:.1f}: {ok(s['goals']['regret_median'])} |",
        f"| regret, 90th percentile (points) | {_pts(s['regret_p90'])} | |",
        f"| pick in the reference's top 2 | {s['top2_rate']:.0%} | >= {GOAL_TOP2:.0%}: {ok(s['goals']['top2_rate'])} |",
        f"| the screen alone: median regret, top 2 | {_pts(s['screen_regret_median'])}, {s['screen_top2_rate']:.0%} | |",
        f"| the verdict told the top points apart | {s['told_apart_rate']:.0%} of replays | |",
        f"| Kendall tau screen -> reference (95% interval) | {_tau_text(s['tau_screen'], s['tau_screen_interval'])} | |",
        f"| Kendall tau confirm -> reference | {_tau_text(s['tau_confirm'], s['tau_confirm_interval'])} | |",
        f"| reference split-half tau (ceiling) | {_tau_text(s['split_half_tau'], s['split_half_interval'])} | "
        f">= {CEILING}: reference {'usable' if s['reference_usable'] else 'NOT usable'} |",
        *(["| the same, projected at more seeds (seed noise as measured) | "
           + "; ".join(f"{p['seeds']} seeds {p['median']:+.2f} ({p['usable_share']:.0%} of draws >= {CEILING})"
                       for p in s["split_half_projection"]) + " | |"] if s.get("split_half_projection") else []),
        f"| both halves of the reference's seeds lead with the same point | {_share(s.get('split_half_same_leader'))} of splits | |",
        "",
        "| point | kind | alpha, beta, gamma | full x | proxy x | reference % (seeds) | rank | screen % | confirm % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in sorted(result["points"], key=lambda r: r["reference_rank"]):
        lines.append(f"| {p['point']} | {p['kind']} | {p['alpha']:.3f}, {p['beta']:.3f}, {p['gamma']:.3f} | "
                     f"{p['macs_ratio']:.2f} | {p['proxy_macs_ratio']:.2f} | {_pts(p['reference_mean'])} ± "
                     f"{_pts(p['reference_std'])} ({p['reference_n']}) | {p['reference_rank']} | "
                     f"{_pts(p['screen_mean'])} ({p['screen_n']}) | {_pts(p['confirm_mean'])} ({p['confirm_n']}) |")
    lines += ["", "| replay | screen seeds | confirm seeds | promoted | pick | regret (points) | top 2 |", "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(result["replays"]):
        lines.append(f"| {i} | {r['screen_seeds']} | {r['confirm_seeds']} | {r['promoted']} | {r['pick']} ({r['stage']}) | "
                     f"{_pts(r['regret'])} | {'yes' if r['in_top2'] else 'no'} |")
    return "\n".join(lines) + "\n"


def write(out: Path, name: str, payload: dict, text: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(dumps(payload) + "\n")
    (out / f"{name}.md").write_text(text)


# ---------------------------------------------------------------- protocols: the defaults by regret


def run_seconds(bench: Bench) -> dict[str, float]:
    """Median seconds of one stored run at the screen's and at the confirm's recipe (the pool's)."""
    pool = open_study(bench, "pool")
    out = {}
    for stage in ("screen", "confirm"):
        seconds = [t.user_attrs.get("seconds") for t in stage_runs(pool, stage, complete_only=True).values()]
        seconds = [x for x in seconds if x is not None]
        out[stage] = float(np.median(seconds)) if seconds else math.nan
    return out


def protocols(bench: Bench, args, command: str, log) -> dict:
    """Replay every protocol of the sweep (confirm K x screen seeds x confirm seeds) on the same stored
    runs: each one's regret and top-2 rate beside what its runs cost, so the defaults are chosen by both."""
    screen, confirm, reference = stored(bench)
    seconds = run_seconds(bench)
    pool = min((len(a) for a in screen.values()), default=0)
    confirm_pool = min((len(a) for a in confirm.values()), default=0)
    rows = []
    for k in args.sweep_confirm:
        for ss in (s for s in args.sweep_screen_seeds if s <= pool):
            for cs in ((s for s in args.sweep_confirm_seeds if s <= confirm_pool) if k else [0]):  # K = 0: no confirm runs
                result = analyse(bench.cands, screen, confirm, reference, replays=args.replays, screen_seeds=ss,
                                 confirm_seeds=cs or 1, confirm_k=k, seed=args.seed, resamples=0)
                s, runs = result["summary"], result["replays"]
                promoted = float(np.mean([len(r["promoted"]) for r in runs])) if k else 0.0
                cost = s["points"] * ss * seconds["screen"] + promoted * cs * seconds["confirm"]
                rows.append({"confirm": k, "screen_seeds": ss, "confirm_seeds": cs, "promoted": promoted,
                             "regret_median": s["regret_median"], "regret_p90": s["regret_p90"],
                             "regret_mean": float(np.mean([r["regret"] for r in runs])), "top2_rate": s["top2_rate"],
                             "train_seconds": cost, "replays": s["replays"]})
    rows.sort(key=lambda r: (r["train_seconds"], r["regret_mean"]))
    lines = [f"# Protocols by regret: {bench.config.baseline} at {bench.config.budget} on {bench.config.data}", "",
             f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `{command}`. Every protocol replayed {args.replays} times on the "
             f"same stored runs ({len(bench.cands)} points; pool {pool} screen / {confirm_pool} confirm seeds per point; "
             f"reference {bench.reference.epochs} epochs). Training time is the stored runs' median seconds "
             f"(screen {seconds['screen']:.1f} s, confirm {seconds['confirm']:.1f} s a run) times the runs the protocol "
             "trains: the screen's points x seeds, the promoted points (mean over replays) x confirm seeds; no curves.", "",
             "| confirm K | screen seeds | confirm seeds | promoted | training (min) | regret median | regret mean | "
             "regret p90 | top 2 |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['confirm']} | {r['screen_seeds']} | {r['confirm_seeds'] or '-'} | {r['promoted']:.1f} | "
                     f"{r['train_seconds'] / 60:.1f} | {_pts(r['regret_median'])} | {_pts(r['regret_mean'])} | "
                     f"{_pts(r['regret_p90'])} | {r['top2_rate']:.0%} |")
    payload = {"command": command, "seconds": seconds, "protocols": rows}
    write(bench.out, "protocols", payload, "\n".join(lines) + "\n")
    log((bench.out / "protocols.md").read_text())
    return payload


# ---------------------------------------------------------------- positive controls


def controls(bench: Bench, args, command: str, log) -> dict:
    """The default search on each control's data, ``--control-replays`` times; does the expected dimension lead?

    Replay r of every control before replay r + 1 of any, and the tables rewritten after each: a
    benchmark stopped part way (it takes hours) says where every control stands so far.
    """
    done: dict[tuple[str, str], list[dict]] = {(direction, spec): [] for direction, spec in args.control}
    payload: dict = {}
    for r in range(args.control_replays):
        for direction, spec in args.control:
            done[direction, spec].append(_control_replay(bench, args, direction, spec, r, log))
            payload = _write_controls(bench, args, command, done)
    return payload


def _control_replay(bench: Bench, args, direction: str, spec: str, r: int, log) -> dict:
    screen = bench.screen.replace(seed=CONTROL_SEED_STEP * r)
    config = SearchConfig(baseline=args.baseline, budget=args.budget, space=args.space, data=spec,
                          recipe=dataclasses.asdict(screen), seeds=args.screen_seeds, confirm=args.confirm,
                          confirm_recipe=dataclasses.asdict(bench.confirm.replace(seed=screen.seed)),
                          confirm_seeds=args.confirm_seeds, curves="none", device=bench.config.device)
    folder = bench.out / "controls" / re.sub(r"[^A-Za-z0-9_.=-]+", "_", f"{direction}-{spec}") / f"replay-{r}"
    prefix = f"[control {direction} {spec} replay {r}] "
    result = run_search(config, RunFolder(folder), log=lambda line, p=prefix: log(p + line))
    w = result.winner
    leads = leading_dimension(Coefficients(w["alpha"], w["beta"], w["gamma"])) if w else None
    offered = sorted({leading_dimension(Coefficients(t.alpha, t.beta, t.gamma)) for t in result.screen.itertuples()})
    # A pick the verdict could not tell from the runner-up is the choice rule's tie-break, not evidence.
    # (Computed as the verdict does where the search's answer predates its "told_apart".)
    told = bool(w and w.get("told_apart", w.get("significant") and w["p_best"].get(str(w["point"]), 0.0) >= CLEAR_P_BEST))
    return {"replay": r, "seed": screen.seed, "pick": w and {k: w[k] for k in ("point", "kind", "alpha", "beta", "gamma")},
            "leads": leads, "expected_leads": leads == direction, "told_apart": told, "dimensions_in_grid": offered}


def _write_controls(bench: Bench, args, command: str, done: dict[tuple[str, str], list[dict]]) -> dict:
    """controls.json and controls.md as they stand: a control is decided once enough replays hit or miss."""
    rows = []
    for (direction, spec), replays in done.items():
        hits, total = sum(r["expected_leads"] for r in replays), args.control_replays
        needed = math.ceil(CONTROL_PASS * total / 5)
        verdict = "pass" if hits >= needed else "fail" if hits + total - len(replays) < needed else "under way"
        rows.append({"direction": direction, "data": spec, "replays": replays, "hits": hits, "of": total,
                     "result": verdict, "passed": verdict == "pass",
                     "in_grid": direction in replays[0]["dimensions_in_grid"] if replays else None})
    lines = [f"# Positive controls: {args.baseline} at {args.budget}", "",
             f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `{command}`; each replay is the default search (screen "
             f"x{args.screen_seeds} seeds, confirm top {args.confirm} x{args.confirm_seeds}, no curves) with recipe seed "
             f"{CONTROL_SEED_STEP} x replay. Passes when the expected dimension leads the pick in >= {CONTROL_PASS} of 5.", "",
             "A pick is *told apart* when the search's verdict could tell it from the runner-up (margin "
             f"interval excluding 0 and P(best) >= {CLEAR_P_BEST}); otherwise it is the choice rule's tie-break.", "",
             "| expected | data | leads the pick | told apart | picks (leading dimension) | result |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        picks = ", ".join(str(r["leads"]) for r in row["replays"]) or "–"
        why = " (no grid point led by it survived cost matching)" if row["in_grid"] is False else ""
        told = sum(bool(r.get("told_apart")) for r in row["replays"])
        lines.append(f"| {row['direction']} | `{row['data']}` | {row['hits']} of {len(row['replays'])} done "
                     f"({row['of']} planned) | {told} of {len(row['replays'])} | {picks} | {row['result']}{why} |")
    payload = {"command": command, "controls": rows}
    write(bench.out, "controls", payload, "\n".join(lines) + "\n")
    return payload


# ---------------------------------------------------------------- command line



def _differs(previous: dict, current: dict) -> list[str]:
    """The keys of a stored benchmark.json that differ from ``current`` (Bench.identity())."""
    # a recipe field added since means its default (as scaler.run_identity.canonical reads a search's)
    previous = {**previous, "recipes": {name: {**recipe_defaults(), **r} for name, r in (previous.get("recipes") or {}).items()}}
    return [k for k in current if previous.get(k) != current[k]]


# What every study of a benchmark shares, and the recipes each study's runs train with (Bench.recipes).
COMMON_IDENTITY = ("baseline", "budget", "data", "candidates")
STUDY_RECIPES = {"pool": ("screen", "confirm"), "reference": ("reference",)}


def _study_recipes(identity: dict, study: str) -> dict:
    """The recipes one study's runs train with, from a benchmark's identity (beside its grid and data,
    COMMON_IDENTITY). Not the device: a reference may be trained on a GPU for a pool made on a CPU."""
    return {"recipes": {r: (identity.get("recipes") or {}).get(r) or {} for r in STUDY_RECIPES[study]}}


def _check_identity(bench: Bench) -> None:
    path = bench.out / "benchmark.json"
    current = bench.identity()
    if path.exists():
        differs = _differs(json.loads(path.read_text()), current)
        if differs:
            raise UsageError(f"{bench.out} holds a benchmark with a different {', '.join(differs)}; choose another --out")
    else:
        path.write_text(dumps(current) + "\n")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", default="resnet50")
    p.add_argument("--budget", default="2x")
    p.add_argument("--data", default=DEFAULT_SOURCE, help=f"data spec (default {DEFAULT_SOURCE}, the project's default)")
    p.add_argument("--space", help="search space (default: the search's default grid)")
    p.add_argument("--preset", default="default", help=f"the screen's recipe: {', '.join(PRESETS)} (default: default)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a field of the screen's recipe, e.g. proxy_resolution=48 (repeatable)")
    p.add_argument("--confirm-preset", help="the confirm stage's recipe (default: the search's for --preset)")
    p.add_argument("--stage", default="all", choices=STEPS)
    p.add_argument("--pool-seeds", type=int, default=6, help="seeds per point at the screen's and the confirm's recipe (default 6)")
    p.add_argument("--reference-seeds", type=int, default=4, help="seeds per point of the reference (default 4)")
    p.add_argument("--reference-factor", type=float, default=2.0, help="the reference's epochs over the confirm's (default 2)")
    p.add_argument("--replays", type=int, default=15, help="replays of the protocol (default 15)")
    p.add_argument("--screen-seeds", type=int, default=DEFAULT_SEEDS["default"], help="the search's --seeds (default 2)")
    p.add_argument("--confirm-seeds", type=int, help="the search's --confirm-seeds (default one more than --screen-seeds)")
    p.add_argument("--confirm", type=int, default=DEFAULT_CONFIRM, help=f"the search's --confirm K (default {DEFAULT_CONFIRM})")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for the tau intervals (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the replays' draws and the bootstrap (default 0)")
    p.add_argument("--sweep-confirm", type=int, nargs="+", default=[0, 1, 2, 3, 4], metavar="K",
                   help="--stage protocols: the confirm K values to replay (default 0 1 2 3 4)")
    p.add_argument("--sweep-screen-seeds", type=int, nargs="+", default=[1, 2, 3], metavar="N",
                   help="--stage protocols: the screen seed counts (default 1 2 3)")
    p.add_argument("--sweep-confirm-seeds", type=int, nargs="+", default=[2, 3, 4], metavar="N",
                   help="--stage protocols: the confirm seed counts (default 2 3 4)")
    p.add_argument("--control", nargs=2, action="append", default=[], metavar=("DIMENSION", "DATA"),
                   help="a positive control: the dimension expected to lead, and its data spec (repeatable)")
    p.add_argument("--control-replays", type=int, default=5)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--out", help="folder of the runs and results (default runs/fidelity-<baseline>)")
    p.add_argument("--merge-from", metavar="DIR", action="append", default=[],
                   help="first copy the complete runs of DIR, another --out of the same benchmark (a second process's "
                        "--stage reference, one per core; or a reference of another length or device, each study "
                        "checked against its own recipes) into --out; repeatable")
    p.add_argument("--join", action="store_true",
                   help="--stage pool or reference: train beside the process already working in --out, on the same "
                        "study (each run taken once, as a search's workers take theirs), e.g. on a core another stage freed")
    p.add_argument("--dry-run", action="store_true", help="print the runs and the time they will take; train nothing")
    args = p.parse_args(argv)
    args.confirm_seeds = args.confirm_seeds or args.screen_seeds + 1
    args.out = args.out or f"runs/fidelity-{re.sub(r'[^A-Za-z0-9_.-]+', '_', args.baseline)}"
    return args


def check(args) -> None:
    counts = {"pool_seeds": 1, "reference_seeds": 2, "replays": 1, "screen_seeds": 1, "confirm_seeds": 1, "confirm": 0,
              "resamples": 0, "control_replays": 1, "seed": 0}
    check_numbers(args, {**counts, "reference_factor": 1})
    if args.pool_seeds < max(args.screen_seeds, args.confirm_seeds):
        raise UsageError(f"--pool-seeds ({args.pool_seeds}) must cover --screen-seeds and --confirm-seeds "
                         f"({args.screen_seeds}, {args.confirm_seeds})")
    for name, lowest in (("sweep_confirm", 0), ("sweep_screen_seeds", 1), ("sweep_confirm_seeds", 1)):
        if min(getattr(args, name)) < lowest:
            raise UsageError(f"--{name.replace('_', '-')} takes values of {lowest} or more, got {getattr(args, name)}")
    for direction, _ in args.control:
        if direction not in DIMENSIONS:
            raise UsageError(f"a control's direction must be one of {', '.join(DIMENSIONS)}, got {direction!r}")
    if args.join and (args.stage not in ("pool", "reference") or args.merge_from):
        raise UsageError("--join trains beside another process: give it with --stage pool or reference, without --merge-from")
    if args.join and not (Path(args.out) / "benchmark.json").is_file():
        raise UsageError(f"--join: no benchmark in {args.out} to join; start it there without --join first")
    if args.stage == "controls" and not args.control:
        raise UsageError("--stage controls needs at least one --control DIMENSION DATA")
    pairs = [tuple(c) for c in args.control]
    twice = [" ".join(c) for i, c in enumerate(pairs) if c in pairs[:i]]
    if twice:  # one run folder per control: a second would count the same replays again
        raise UsageError(f"--control {twice[0]} is given twice")


def below_minimums(bench: Bench, args) -> list[str]:
    """Where this benchmark is smaller than the design asks (docs/fidelity.md): said in its log and report."""
    checks = [
        (len(bench.cands) >= MIN_POINTS, f"the grid keeps {len(bench.cands)} cost-matched point(s), under {MIN_POINTS}: "
                                         "tau and top-2 are coarse (a finer space, e.g. --space compound_fine, keeps more)"),
        (args.pool_seeds >= MIN_POOL_SEEDS, f"--pool-seeds {args.pool_seeds} is under {MIN_POOL_SEEDS}"),
        (args.reference_seeds >= MIN_REFERENCE_SEEDS, f"--reference-seeds {args.reference_seeds} is under {MIN_REFERENCE_SEEDS}"),
        (args.reference_factor >= MIN_REFERENCE_FACTOR, f"--reference-factor {args.reference_factor:g} is under "
                                                       f"{MIN_REFERENCE_FACTOR:g} (the reference must train longer than the confirm stage)"),
        (args.replays >= MIN_REPLAYS, f"--replays {args.replays} is under {MIN_REPLAYS}"),
    ]
    return [text for ok, text in checks if not ok]


def merge(bench: Bench, source: Path, log) -> int:
    """Copy the complete runs of another folder of the same benchmark (a second process's
    ``--stage reference``, say) into this folder's studies, where this folder has no final run of
    that key; returns how many were copied. Two folders, because one folder takes one process.

    The grid and data must match; a study whose runs train with other recipes than this folder's (a
    reference of another length, say) is skipped and said so. So a pool and a longer reference, or one
    trained on a GPU, come together in a third folder for ``--stage analyse`` (:func:`_study_recipes`)."""
    theirs = source / "benchmark.json"
    if source.resolve() == bench.out.resolve():
        raise UsageError(f"--merge-from {source} is --out itself")
    if not theirs.is_file() or not (source / "study.db").is_file():
        raise UsageError(f"--merge-from {source}: no benchmark there (benchmark.json and study.db)")
    stored_identity, identity = json.loads(theirs.read_text()), bench.identity()
    if _differs({k: stored_identity.get(k) for k in COMMON_IDENTITY}, {k: identity[k] for k in COMMON_IDENTITY}):
        raise UsageError(f"--merge-from {source} holds a different benchmark (its grid or data differ from {bench.out}'s)")
    lock = RunFolder(source).lock("benchmark")  # not while a process still trains there
    try:
        copied = 0
        url = f"sqlite:///{(source / 'study.db').resolve()}"
        for name in optuna.get_all_study_names(storage=url):
            if name not in STUDY_RECIPES:
                continue
            if _differs(_study_recipes(stored_identity, name), _study_recipes(identity, name)):
                log(f"merge: {source}'s {name} skipped: its runs train with other recipes than {bench.out}'s")
                continue
            mine = open_study(bench, name)
            latest = latest_by_key(mine.get_trials(deepcopy=False))
            done = {k for k, t in latest.items() if is_final(t)}
            found = latest_by_key(optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False))
            new = [t for k, t in found.items() if k not in done and t.state == optuna.trial.TrialState.COMPLETE]
            mine.add_trials(new)
            copied += len(new)
            # A run of a copied key still queued or running here (a process cut short; this folder's lock
            # says none runs now) would be taken, or reclaimed and queued, and trained again.
            keys = {key_of(t) for t in new}
            for t in mine.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING, optuna.trial.TrialState.RUNNING)):
                if key_of(t) in keys:
                    retire(mine._storage, t._trial_id, f"copied from {source}")
            device = stored_identity.get("device")
            log(f"merge: {len(new)} finished run(s) of {source}'s {name} copied"
                + (f" (trained on {device})" if device != identity["device"] else ""))
        return copied
    finally:
        os.close(lock)


def run(args, command: str, log=print) -> dict:
    check(args)
    bench = setup(args)
    bench.out.mkdir(parents=True, exist_ok=True)
    # One process per folder, unless it joins one: then the study's queue keeps each run to one process.
    lock = None if args.join else RunFolder(bench.out).lock("benchmark (add --join to train beside it)")
    try:
        _check_identity(bench)
        for source in args.merge_from if not args.dry_run else []:
            merge(bench, Path(source), log)
        notes = below_minimums(bench, args)
        for note in notes:
            log(f"note: {note}")
        out = {}
        steps = {"all": ["pool", "reference"], "pool": ["pool"], "reference": ["reference"]}.get(args.stage, [])
        if steps:
            train_steps(bench, args, steps, log)
        if args.dry_run:
            return out
        if args.stage in ("all", "analyse"):
            screen, confirm, reference = stored(bench)
            out["fidelity"] = analyse(bench.cands, screen, confirm, reference, replays=args.replays,
                                      screen_seeds=args.screen_seeds, confirm_seeds=args.confirm_seeds,
                                      confirm_k=args.confirm, seed=args.seed, resamples=args.resamples)
            out["fidelity"].update(command=command, notes=notes)
            text = markdown(out["fidelity"], bench, command)
            write(bench.out, "fidelity", out["fidelity"], text)
            log(text)
        if args.stage == "protocols":
            out["protocols"] = protocols(bench, args, command, log)
        if args.control and args.stage in ("all", "controls"):
            out["controls"] = controls(bench, args, command, log)
            log((bench.out / "controls.md").read_text())
        return out
    finally:
        if lock is not None:
            os.close(lock)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    warnings.filterwarnings("ignore", category=FutureWarning, module="torch")
    try:
        run(parse_args(argv), " ".join(["python benchmarks/fidelity.py", *argv]), log=lambda line: print(line, flush=True))
    except UsageError as exc:
        print(f"fidelity: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
