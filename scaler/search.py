"""The compound-coefficient search: proxy-train every grid point at phi = 1, pick the best.

Optuna drives it: every (point, seed) pair still to run is queued as a trial with fixed params
(``enqueue_trial``) — one trial is one proxy training run, so a kill loses at most the run in
flight — with an RDB storage in the run folder. Queuing the pairs, rather than letting
``GridSampler`` pick them, keeps "each pair runs once" true whatever recorded the earlier trials
(GridSampler assumes trial *n* is its grid cell *n*, which runs recorded by Ray break). The objective body is
:func:`evaluate_point`, a plain function from a job description (a dict) to results, with no
hidden state, so another backend (Ray Tune, other machines) can run it unchanged.
"""

from __future__ import annotations

import dataclasses
import fcntl
import functools
import math
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import optuna
import pandas as pd

from scaler import __version__
from scaler.baselines import get_baseline
from scaler.errors import UsageError
from scaler.run_folder import STUDY_NAME, RunFolder
from scaler.scaling import Multipliers, parse_budget
from scaler.search_space import Candidate, candidates, load_space
from scaler.stats import welch_margin

PRUNERS = ("none", "median", "hyperband")
# What a finished run records of train()'s result, whichever backend ran it.
RESULT_ATTRS = ("seconds", "images_seen", "images_per_s", "params")
BACKENDS = ("optuna", "ray")
# Keys of config.json that define the study; a re-run must match them to resume.
IDENTITY = ("baseline", "budget", "space", "data", "recipe", "seeds", "pruner", "candidates")


@dataclass(frozen=True)
class SearchConfig:
    baseline: str
    budget: str = "2x"
    space: str | None = None
    data: str = "animals"
    recipe: dict = dataclasses.field(default_factory=dict)  # scaler.train.ProxyRecipe fields
    seeds: int = 2
    pruner: str = "none"
    device: str = "cpu"
    storage: str | None = None  # SQLAlchemy URL; default: SQLite in the run folder


# --- the objective: a plain function of a job ----------------------------------------------------


@functools.lru_cache(maxsize=4)
def _dataset(spec: str, seed: int):
    from scaler.data import load_dataset

    return load_dataset(spec, seed=seed)


def evaluate_point(job: dict, on_epoch: Callable[[int, float], None] | None = None) -> dict:
    """Proxy-train one candidate once. ``job``: baseline, multipliers [d, w, r], recipe, data, seed, device.

    Raises ``scaler.train.TrainingFailed`` when the run fails (divergence, an error in the model,
    out of memory); whatever ``on_epoch`` raises (``optuna.TrialPruned``) propagates.
    """
    from scaler.train import ProxyRecipe, proxy_settings, train

    recipe = ProxyRecipe(**job["recipe"])
    d, w, r = job["multipliers"]
    width, depth, px = proxy_settings(Multipliers(depth=d, width=w, resolution=r), recipe)
    data = _dataset(job["data"], recipe.seed)
    result = train(job["baseline"], width, depth, px, data=data, recipe=recipe, device=job["device"],
                   on_epoch=on_epoch, seed=job["seed"])
    return dataclasses.asdict(result)


# --- the study -----------------------------------------------------------------------------------


def _pruner(name: str) -> optuna.pruners.BasePruner:
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.NopPruner()


def _open_study(config: SearchConfig, run: RunFolder, n_points: int) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = config.storage or run.storage_url
    try:
        storage = optuna.storages.RDBStorage(url)
    except Exception as exc:  # a bad URL or an unreachable database
        raise UsageError(f"cannot open study storage {url!r}: {type(exc).__name__}: {exc}") from None
    # Every trial is queued with its params fixed, so the sampler never samples; it is only named.
    sampler = optuna.samplers.RandomSampler(seed=0)
    return optuna.create_study(
        study_name=STUDY_NAME, storage=storage, sampler=sampler, pruner=_pruner(config.pruner),
        direction="maximize", load_if_exists=True,
    )


def _latest_by_pair(trials) -> dict[tuple[int, int], optuna.trial.FrozenTrial]:
    """The newest trial of each (point, seed) pair: a retry supersedes the run it repeats."""
    latest: dict[tuple[int, int], optuna.trial.FrozenTrial] = {}
    for t in trials:
        if "point" not in t.params:
            continue
        key = (t.params["point"], t.params["seed"])
        if key not in latest or t.number > latest[key].number:
            latest[key] = t
    return latest


def _recover_interrupted(study: optuna.Study) -> int:
    """Runs cut short by the last process — left RUNNING by a kill, or failed by Ctrl-C — queued again.

    A failed run is final only when it carries the reason scaler recorded for a genuine training
    failure; one failed by Optuna with no reason (Ctrl-C landing before the objective's handlers,
    or a bug) is retried too. Safe because the run folder's lock guarantees no other process works
    on this study.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=None)
    # WAITING trials count: a pair whose retry is already queued is not queued twice.
    cut = [
        t for t in _latest_by_pair(study.get_trials(deepcopy=False)).values()
        if t.state == optuna.trial.TrialState.RUNNING
        or (t.state == optuna.trial.TrialState.FAIL and (t.user_attrs.get("interrupted") or not t.user_attrs.get("reason")))
    ]
    for t in cut:
        if t.state == optuna.trial.TrialState.RUNNING:  # a finished trial's attributes are frozen
            study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
            study._storage.set_trial_user_attr(t._trial_id, "reason", "interrupted; retried")
            study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        retry(study, study._storage.get_trial(t._trial_id))
    return len(cut)


def pairs_to_run(study: optuna.Study, n_points: int, seeds: int) -> list[tuple[int, int]]:
    """(point, seed) pairs with no finished trial in the study, or whose interrupted run waits for a retry.

    Seed-major, so every point has one result before any gets its second.
    """
    trials = study.get_trials(deepcopy=False)
    done = {(t.params.get("point"), t.params.get("seed")) for t in trials if t.state.is_finished()}
    waiting = {(t.params.get("point"), t.params.get("seed")) for t in trials if t.state == optuna.trial.TrialState.WAITING}
    return [(p, s) for s in range(seeds) for p in range(n_points) if (p, s) not in done or (p, s) in waiting]


def _queue(study: optuna.Study, pairs: list[tuple[int, int]]) -> None:
    """Queue a trial for each pair that has none waiting (a retry may be queued already)."""
    waiting = {(t.params.get("point"), t.params.get("seed"))
               for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))}
    for point, seed in pairs:
        if (point, seed) not in waiting:
            study.enqueue_trial({"point": point, "seed": seed})


# --- results ---------------------------------------------------------------------------------------


def trials_table(study: optuna.Study, cands: list[Candidate]) -> pd.DataFrame:
    """One row per grid point: coefficients, multipliers, cost, accuracy mean/std over seeds, state."""
    latest = _latest_by_pair(t for t in study.get_trials(deepcopy=False) if t.state != optuna.trial.TrialState.WAITING)
    rows = []
    for i, c in enumerate(cands):
        runs = [t for (p, _), t in sorted(latest.items()) if p == i]
        complete = [t for t in runs if t.state == optuna.trial.TrialState.COMPLETE]
        accs = [t.value for t in complete]
        states = {t.state.name for t in runs}
        if "FAIL" in states:
            state = "FAIL"
        elif "PRUNED" in states:
            state = "PRUNED"
        elif "RUNNING" in states:
            state = "RUNNING"
        elif runs and len(complete) == len(runs) and complete:
            state = "COMPLETE"
        else:
            state = "WAITING"
        reasons = [t.user_attrs.get("reason", "") for t in runs if t.state.name in ("FAIL", "PRUNED")]
        m = c.coefficients.multipliers(1.0)
        rows.append({
            "point": i, "kind": c.kind, "alpha": c.coefficients.alpha, "beta": c.coefficients.beta,
            "gamma": c.coefficients.gamma, "depth_mult": m.depth, "width_mult": m.width, "resolution_mult": m.resolution,
            "input_px": c.input_px, "nominal_ratio": c.nominal_ratio, "macs_ratio": c.macs_ratio, "macs": c.macs,
            "params": c.params, "activations": c.activations,
            "accuracy_mean": statistics.fmean(accs) if accs else math.nan,
            "accuracy_std": statistics.stdev(accs) if len(accs) > 1 else (0.0 if accs else math.nan),
            "accuracy_n": len(accs),
            "seconds": sum(t.user_attrs.get("seconds", 0.0) for t in runs),
            "state": state, "reason": "; ".join(r for r in reasons if r),
        })
    return pd.DataFrame(rows)


def choose_winner(table: pd.DataFrame, study: optuna.Study, config: SearchConfig) -> dict | None:
    """The complete point with the best mean accuracy, with its margin over the runner-up."""
    done = table[table.state == "COMPLETE"].sort_values("accuracy_mean", ascending=False)
    if done.empty:
        return None
    accs = _accuracies_by_point(study)
    best = done.iloc[0]
    out = {
        "baseline": config.baseline, "budget": config.budget, "kind": best.kind,
        "alpha": best.alpha, "beta": best.beta, "gamma": best.gamma,
        "nominal_ratio": best.nominal_ratio, "macs_ratio": best.macs_ratio,
        "accuracy_mean": best.accuracy_mean, "accuracy_std": best.accuracy_std, "seeds": int(best.accuracy_n),
        "runner_up": None, "margin": None, "margin_interval": None, "significant": False, "test": None,
    }
    if len(done) > 1:
        second = done.iloc[1]
        margin = welch_margin(accs[int(best.point)], accs[int(second.point)])
        out.update(
            runner_up={k: second[k] for k in ("kind", "alpha", "beta", "gamma", "accuracy_mean", "accuracy_std")},
            margin=margin.margin, margin_interval=list(margin.interval) if margin.interval else None,
            significant=margin.significant, test=margin.test,
        )
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in out.items()}


def coefficient_view(study: optuna.Study) -> optuna.Study:
    """An in-memory copy of the finished runs with alpha, beta, gamma as their parameters.

    The search samples (point, seed) indices; Optuna's parameter-importance analysis is only
    meaningful over the coefficients themselves, which each trial records as user attributes.
    """
    finished = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                if all(k in t.user_attrs for k in ("alpha", "beta", "gamma"))]
    view = optuna.create_study(direction="maximize")
    names = ("alpha", "beta", "gamma")
    bounds = {k: (min(t.user_attrs[k] for t in finished), max(t.user_attrs[k] for t in finished)) for k in names} if finished else {}
    dists = {k: optuna.distributions.FloatDistribution(lo, hi if hi > lo else lo + 1e-9) for k, (lo, hi) in bounds.items()}
    view.add_trials([
        optuna.trial.create_trial(params={k: t.user_attrs[k] for k in names}, distributions=dists, value=t.value)
        for t in finished
    ])
    return view


def _accuracies_by_point(study: optuna.Study) -> dict[int, list[float]]:
    latest = _latest_by_pair(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    out: dict[int, list[float]] = {}
    for (p, _), t in sorted(latest.items()):
        out.setdefault(p, []).append(t.value)
    return out


# --- the whole search ------------------------------------------------------------------------------


@dataclass
class SearchResult:
    run: RunFolder
    table: pd.DataFrame
    winner: dict | None
    trained_now: int
    seconds: float


def _lock(run: RunFolder):
    handle = open(run.path / ".lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise UsageError(f"another scaler search is working in {str(run.path)!r}; wait for it or use another --out") from None
    return handle


def _resolved_config(config: SearchConfig, cands: list[Candidate], data_description: dict) -> dict:
    return {
        **dataclasses.asdict(config),
        "data": data_description,
        "candidates": [c.as_dict() for c in cands],
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "scaler_version": __version__,
    }


def _check_same(previous: dict, current: dict, run: RunFolder) -> None:
    from scaler.train import ProxyRecipe

    # A recipe field added since the run began means what its default means: such a run still resumes.
    defaults = {f.name: f.default for f in dataclasses.fields(ProxyRecipe)}
    previous = {**previous, "recipe": {**defaults, **previous["recipe"]}} if isinstance(previous.get("recipe"), dict) else previous
    differs = [k for k in IDENTITY if previous.get(k) != current.get(k)]
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
    data = _dataset(config.data, config.recipe.get("seed", 0))  # the same object the runs train on
    reference = baseline.build(1.0, 1.0, data.num_classes)  # fails early, with the user's message
    del reference
    from scaler.cost import count_cost

    reference_cost = count_cost(baseline)
    ratio = budget.target_ratio(reference_cost.macs)
    if ratio <= 1.0:
        raise UsageError(f"budget {config.budget} is not above the baseline's cost ({ratio:.3g}x); scaler grows networks")
    cands = candidates(space, baseline, ratio, reference=reference_cost)
    config = dataclasses.replace(config, space=space.path)

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
        resolved = _resolved_config(config, cands, data.describe())
        if run.config.exists():
            _check_same(run.read_json(run.config), resolved, run)
        else:
            run.write_json(run.config, resolved)
        study = _open_study(config, run, len(cands))
        recovered = _recover_interrupted(study)
        pairs = pairs_to_run(study, len(cands), config.seeds)
        remaining = len(pairs)
        total = len(cands) * config.seeds
        log(f"search {baseline.name} at {config.budget} (x{ratio:.3g} MACs): {len(cands)} grid points x {config.seeds} "
            f"seed(s) = {total} proxy runs; {total - remaining} done before, {remaining} to run"
            + (f" ({recovered} interrupted run(s) retried)" if recovered else ""))
        start = time.perf_counter()
        if remaining and backend == "ray":
            from scaler.ray_backend import run_grid

            run_grid(study, config, cands, run, log=log, total=total, address=ray_address,
                     on_record=lambda: run_write_trials(run, study, cands))
        elif remaining:
            objective = _Objective(config, cands, log, total, remaining)
            from scaler.train import TrainingFailed

            _queue(study, pairs)
            study.optimize(objective, n_trials=remaining, catch=(TrainingFailed,),
                           callbacks=[lambda s, t: run_write_trials(run, s, cands)])
        table = trials_table(study, cands)
        table.to_csv(run.trials, index=False)
        winner = choose_winner(table, study, config)
        if winner:
            run.write_json(run.coefficients, winner)
        return SearchResult(run, table, winner, remaining, time.perf_counter() - start)
    finally:
        lock.close()


def run_write_trials(run: RunFolder, study: optuna.Study, cands: list[Candidate]) -> None:
    """Rewrite trials.csv after every run, so the table on disk is never behind the study."""
    tmp = run.trials.with_suffix(".csv.tmp")
    trials_table(study, cands).to_csv(tmp, index=False)
    tmp.replace(run.trials)


class _Objective:
    """Maps a trial to a job for :func:`evaluate_point`, reports epochs, and logs progress."""

    def __init__(self, config: SearchConfig, cands: list[Candidate], log, total: int, remaining: int) -> None:
        self.config, self.cands, self.log = config, cands, log
        self.total, self.remaining, self.started = total, remaining, 0
        self.clock = time.perf_counter()
        self.best: tuple[float, str] | None = None
        data = _dataset(config.data, config.recipe.get("seed", 0))
        self.images_per_epoch = len(data.subset_indices(config.recipe.get("subset")))

    def __call__(self, trial: optuna.Trial) -> float:
        point = trial.suggest_categorical("point", list(range(len(self.cands))))
        seed = trial.suggest_categorical("seed", list(range(self.config.seeds)))
        cand = self.cands[point]
        # A retry inherits the old run's attributes: clear the ones that mark it cut short.
        for key, value in {**cand.as_dict(), "interrupted": False, "reason": ""}.items():
            trial.set_user_attr(key, value)
        self.started += 1
        a, b, g = cand.coefficients.as_tuple()
        label = f"[{self.total - self.remaining + self.started}/{self.total}] {cand.kind:<10} a={a:.3g} b={b:.3g} g={g:.3g} seed {seed}"
        recipe_seed = self.config.recipe.get("seed", 0)
        job = {
            "baseline": self.config.baseline, "multipliers": [a, b, g], "recipe": self.config.recipe,
            "data": self.config.data, "seed": recipe_seed + seed, "device": self.config.device,
        }
        accuracies: list[float] = []

        def on_epoch(epoch: int, accuracy: float) -> None:  # epochs count from 1
            accuracies.append(accuracy)
            trial.set_user_attr("val_accuracies", accuracies)
            trial.set_user_attr("images_seen", epoch * self.images_per_epoch)  # kept if pruned
            trial.report(accuracy, epoch)
            self.log(f"{label}  epoch {epoch}: val {accuracy:.1%}")
            if trial.should_prune():
                trial.set_user_attr("reason", f"pruned at epoch {epoch} (val {accuracy:.1%})")
                raise optuna.TrialPruned()

        from scaler.train import TrainingFailed

        try:
            if cand.reason:
                raise TrainingFailed(cand.reason)
            result = evaluate_point(job, on_epoch)
        except TrainingFailed as exc:
            trial.set_user_attr("reason", str(exc))
            self.log(f"{label}  FAILED: {exc}")
            raise
        except KeyboardInterrupt:  # Optuna records the run as failed; the next search retries it
            trial.set_user_attr("interrupted", True)
            trial.set_user_attr("reason", "interrupted")
            raise
        for key in (*RESULT_ATTRS, "seed"):
            trial.set_user_attr(key, result[key])
        trial.set_user_attr("input_px_proxy", result.get("resolution"))
        if self.best is None or result["accuracy"] > self.best[0]:
            self.best = (result["accuracy"], cand.kind)
        elapsed = time.perf_counter() - self.clock
        left = elapsed / self.started * (self.remaining - self.started)
        self.log(f"{label}  -> {result['accuracy']:.1%} in {result['seconds']:.0f}s; best {self.best[0]:.1%} "
                 f"({self.best[1]}); about {_duration(left)} left")
        return result["accuracy"]


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"
