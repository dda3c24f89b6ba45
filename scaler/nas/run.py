"""The architecture search: sample, cost first, train, confirm the best few, compare with the start.

:func:`run_nas` follows MnasNet (Tan et al. 2019) with this project's machinery:

- **sample**: an Optuna study named ``nas`` (TPE for ``--objective reward``, NSGA-II for
  ``pareto``; ask-and-tell) picks each stage's choices (:mod:`scaler.nas.space`);
- **cost first**: every architecture is costed analytically (microseconds) before it is trained;
  one whose MACs miss the target by more than the band is told PRUNED with its cost, the reason
  and a constraint violation (so TPE learns where the band is), and counted, never trained;
- **screen**: each architecture in the band is proxy-trained, ``--seeds`` runs, as queued runs
  ``("screen", trial number, seed)`` of the search's key study (:mod:`scaler.study`), through the
  same :class:`~scaler.stage_runner.StageRunner` as ``scaler search`` (``--backend optuna|ray``);
  its reward (:mod:`scaler.nas.reward`) or its (accuracy, cost) pair is told to the ``nas`` study;
- **confirm**: the best ``--confirm`` architectures (by reward; for ``pareto``, of the front)
  again at the confirm recipe and seeds, ``("confirm", trial number, seed)``; the winner has the
  best mean reward there;
- **reference**: the start width-matched to the winner's MACs, at the confirm recipe and seeds,
  ``("curve", winner's trial number, seed)``: is the searched architecture better than simply
  shrinking (or growing) the start to the same cost?

Both studies live in the run folder's SQLite file (or ``--storage``); a killed search resumes
from them: runs cut short are retried, architectures asked but never told are finished first.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import optuna
import pandas as pd

from scaler import __version__
from scaler.baselines import get_baseline
from scaler.cost import count_cost, measure_latency
from scaler.devices import set_threads
from scaler.errors import UsageError
from scaler.files import plain
from scaler.nas.reward import FORMS, SOFT_W, reward
from scaler.nas.space import NasSpace, architecture, extremes, fit_width, load_nas_space, read_start, stage_code, suggest
from scaler.objective import Planned
from scaler.options import BACKENDS, DEFAULT_SOURCE, OBJECTIVES, PARETO_COSTS
from scaler.proxy import dataset
from scaler.results import accuracies_by_seed, stage_runs
from scaler.run_folder import RunFolder
from scaler.run_identity import canonical
from scaler.scaling import Coefficients, format_macs, parse_budget
from scaler.search_space import Candidate
from scaler.stage_runner import StageRunner
from scaler.stats import margin_between
from scaler.study import delete_studies, driver_url, open_study, recover_interrupted, redact_url, stage_keys
from scaler.verdict import interval_list, p_best

NAS_STUDY = "nas"
# Rejections allowed per architecture to train before the search stops: a band the sampler cannot hit.
REJECTS_PER_TRIAL = 30
IDENTITY = ("target", "space_rules", "start", "data", "recipe", "seeds", "objective", "pareto_cost", "reward_target",
            "reward_w", "reward_form", "band", "sampler_seed", "device", "confirm_recipe", "confirm_seeds")


@dataclass(frozen=True)
class NasConfig:
    target: str  # MACs (400M) or a factor of the start's (0.5x)
    trials: int = 60  # architectures trained (those outside the band are extra, and counted)
    space: str | None = None
    start: str | None = None  # default: the space's
    data: str = DEFAULT_SOURCE
    recipe: dict = dataclasses.field(default_factory=dict)
    seeds: int = 1
    objective: str = "reward"
    pareto_cost: str = "macs"
    reward_target: str | None = None  # T; default the target
    reward_w: float = SOFT_W
    reward_form: str = "soft"
    band: float | None = None  # default: the space's
    confirm: int = 3
    confirm_recipe: dict = dataclasses.field(default_factory=dict)
    confirm_seeds: int = 3
    reference: bool = True
    sampler_seed: int = 0
    batch: int = 1  # architectures sampled before their runs are handed to the backend together
    device: str = "cpu"
    storage: str | None = None
    pruner: str = "none"  # the key study's (scaler.study.open_study); NAS runs are short and never pruned
    baseline: str = ""  # every run trains its own stage list (Planned.baseline)


@dataclass
class NasResult:
    run: RunFolder
    summary: dict
    trials: pd.DataFrame
    trained_now: int
    seconds: float


@dataclass(frozen=True)
class _Setup:
    space: NasSpace
    start: dict  # as given
    fitted: dict  # width-matched to the target: the architectures' starting point
    start_width: float
    target: float  # MACs
    reward_target: float
    band: float
    smallest: int
    largest: int


def prepare(config: NasConfig) -> _Setup:
    """Everything checked and costed before anything is written: bad input is one line, exit 2."""
    if config.objective not in OBJECTIVES:
        raise UsageError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {config.objective!r}")
    if config.pareto_cost not in PARETO_COSTS:
        raise UsageError(f"--pareto-cost must be one of {', '.join(PARETO_COSTS)}, got {config.pareto_cost!r}")
    if config.reward_form not in FORMS:
        raise UsageError(f"--reward-form must be one of {', '.join(FORMS)}, got {config.reward_form!r}")
    if not math.isfinite(config.reward_w) or config.reward_w > 0:
        raise UsageError(f"--reward-w must be a finite number <= 0, got {config.reward_w!r}")
    for name, lowest in (("trials", 1), ("seeds", 1), ("confirm", 0), ("confirm_seeds", 1), ("batch", 1), ("sampler_seed", 0)):
        if getattr(config, name) < lowest:
            raise UsageError(f"--{name.replace('_', '-')} must be {lowest} or more, got {getattr(config, name)}")
    if config.band is not None and not (math.isfinite(config.band) and 0 < config.band < 1):
        raise UsageError(f"--band must be a fraction in (0, 1), got {config.band!r}")
    space = load_nas_space(config.space)
    start = read_start(config.start or space.start)
    start_macs = count_cost(start).macs
    target = _macs(config.target, start_macs, "--target")
    band = config.band or space.band
    width, fitted = fit_width(start, target)
    smallest, largest = extremes(space, fitted)
    if smallest > target * (1 + band):
        raise UsageError(f"target {format_macs(target)} is below the smallest architecture the space makes from "
                         f"{start['name']} ({format_macs(smallest)}, band ±{band:.0%}); raise --target or widen the space")
    if largest < target * (1 - band):
        raise UsageError(f"target {format_macs(target)} is above the largest architecture the space makes from "
                         f"{start['name']} ({format_macs(largest)}, band ±{band:.0%})")
    reward_target = _macs(config.reward_target, start_macs, "--reward-target") if config.reward_target else target
    return _Setup(space, start, fitted, width, target, reward_target, band, smallest, largest)


def _macs(text: str, start_macs: float, flag: str) -> float:
    try:
        budget = parse_budget(text)
    except UsageError as exc:
        raise UsageError(f"{flag}: {exc}") from None
    return budget.macs if budget.macs is not None else budget.ratio * start_macs


def run_nas(config: NasConfig, run: RunFolder, fresh: bool = False, log: Callable[[str], None] = print,
            backend: str = "optuna", ray_address: str | None = None) -> NasResult:
    """Run (or resume) the search in ``run``; returns the answer (also in ``nas.json`` and ``best.json``)."""
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    setup = prepare(config)
    data = dataset(config.data, config.recipe.get("seed", 0))
    run.create()
    fd = run.lock("scaler nas")
    try:
        if fresh:
            _forget(config, run)
        resolved = _resolved_config(config, setup, data.describe())
        if run.config.exists():
            _check_same(run.read_json(run.config), resolved, run)
        else:
            run.write_json(run.config, resolved)
        key_study = open_study(config, run)
        nas_study = _open_nas_study(config, run)
        recovered = recover_interrupted(key_study)
        log(f"nas from {setup.start['name']} at {format_macs(setup.target)} MACs (±{setup.band:.0%}; start width-matched "
            f"x{setup.start_width:.3f}: {format_macs(count_cost(setup.fitted).macs)}); space makes "
            f"{format_macs(setup.smallest)}..{format_macs(setup.largest)}; objective {config.objective}; "
            f"{config.trials} architecture(s) x{config.seeds} seed(s)"
            + (f" ({recovered} interrupted run(s) retried)" if recovered else ""))
        start = time.perf_counter()
        def write_table() -> None:  # trials.csv is never behind the studies, as in scaler search
            run.write_csv(run.trials, trials_frame(nas_study, key_study, config, setup))

        search = _Search(config, setup, key_study, nas_study,
                         StageRunner(config, key_study, run, backend, ray_address, _quiet(log),
                                     on_record=lambda: None), log, run, on_batch=write_table)
        search.screen()
        summary = search.answer()
        frame = trials_frame(nas_study, key_study, config, setup)
        run.write_csv(run.trials, frame)
        if summary.get("best") is not None:
            run.write_json(run.path / "best.json", summary.pop("best"))
        run.write_json(run.path / "nas.json", summary)
        return NasResult(run, summary, frame, search.runner.trained, time.perf_counter() - start)
    finally:
        os.close(fd)


def _quiet(log: Callable[[str], None]) -> Callable[[str], None]:
    """The stage runner's header per batch of one architecture would drown the progress lines."""
    return lambda line: None if line.startswith(("screen: ", "confirm: ", "curve: ")) else log(line)


def _forget(config: NasConfig, run: RunFolder) -> None:
    if config.storage:
        delete_studies(config.storage, (NAS_STUDY, "search"))
    run.clear()


def _resolved_config(config: NasConfig, setup: _Setup, data: dict) -> dict:
    return {
        **dataclasses.asdict(config),
        "command": "nas",
        "target": setup.target, "reward_target": setup.reward_target, "band": setup.band,
        "start": setup.start["name"], "start_width": setup.start_width, "fitted_start": setup.fitted,
        "space_rules": setup.space.rules(),
        "storage": redact_url(config.storage) if config.storage else None,
        "data": data,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "scaler_version": __version__,
        "torch_threads": set_threads(),
    }


def _check_same(previous: dict, current: dict, run: RunFolder) -> None:
    """A re-run resumes only the same search (the trial count, confirm K and backend may change)."""
    previous, current = canonical(previous), canonical(current)
    if previous.get("command") != "nas":
        raise UsageError(f"{run.path} holds a run of another command; choose another --out")
    differs = [k for k in IDENTITY if previous.get(k) != current.get(k)]
    if differs:
        raise UsageError(f"{run.path} holds a nas search with a different {', '.join(differs)}; "
                         "re-run with --fresh to start over, or choose another --out")


def _open_nas_study(config: NasConfig, run: RunFolder) -> optuna.Study:
    url = config.storage or run.storage_url  # open_study has checked and recorded it
    if config.objective == "pareto":
        # A generation of a fifth of the trials (at least 4): NSGA-II's default 50 would never leave random sampling.
        sampler = optuna.samplers.NSGAIISampler(population_size=max(4, min(50, config.trials // 5)), seed=config.sampler_seed)
        return optuna.create_study(study_name=NAS_STUDY, storage=driver_url(url), sampler=sampler,
                                   directions=["maximize", "minimize"], load_if_exists=True)
    sampler = optuna.samplers.TPESampler(seed=config.sampler_seed, n_startup_trials=max(2, min(10, config.trials // 3)))
    return optuna.create_study(study_name=NAS_STUDY, storage=driver_url(url), sampler=sampler, direction="maximize", load_if_exists=True)


def _candidate(spec: dict, macs: int, params: int, activations: int, target: float) -> Candidate:
    """What the key study records of a network: an architecture has no coefficients of its own (1, 1, 1)."""
    return Candidate("nas", Coefficients(1.0, 1.0, 1.0), 1.0, macs / target, macs, params, activations, spec["resolution"])


class _Search:
    def __init__(self, config: NasConfig, setup: _Setup, key_study, nas_study, runner: StageRunner, log, run,
                 on_batch: Callable[[], None]) -> None:
        self.config, self.setup, self.key_study, self.nas_study = config, setup, key_study, nas_study
        self.runner, self.log, self.run, self.on_batch = runner, log, run, on_batch

    # --- screen ------------------------------------------------------------------------------

    def counts(self) -> dict:
        trials = self.nas_study.get_trials(deepcopy=False)
        return {
            "sampled": len(trials),
            "trained": sum(bool(t.user_attrs.get("trained")) for t in trials),
            "rejected": sum(bool(t.user_attrs.get("rejected")) for t in trials),
            "failed": sum(t.state == optuna.trial.TrialState.FAIL and bool(t.user_attrs.get("trained")) for t in trials),
        }

    def screen(self) -> None:
        left = [t for t in self.nas_study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.RUNNING]
        if left:
            self.log(f"resuming {len(left)} architecture(s) a stopped search left untold")
            self._train([(t.number, self._resumed(t)) for t in left])
        while True:
            counts = self.counts()
            if counts["trained"] >= self.config.trials:
                break
            if counts["rejected"] >= REJECTS_PER_TRIAL * self.config.trials:
                self.log(f"stopping: {counts['rejected']} architectures sampled outside ±{self.setup.band:.0%} of the "
                         f"target; widen --band or the space")
                break
            batch = []
            while len(batch) < min(self.config.batch, self.config.trials - counts["trained"]):
                item = self._sample()
                if item is not None:
                    batch.append(item)
                elif self.counts()["rejected"] >= REJECTS_PER_TRIAL * self.config.trials:
                    break
            self._train(batch)

    def _sample(self) -> tuple[int, dict] | None:
        """Ask for an architecture and cost it; one outside the band is told PRUNED (None), else returned."""
        trial = self.nas_study.ask()
        spec = suggest(trial, self.setup.space, self.setup.fitted)
        cost = count_cost(spec)
        off = cost.macs / self.setup.target - 1
        for name, value in {"macs": cost.macs, "params": cost.params, "activations": cost.activations,
                            "macs_vs_target": cost.macs / self.setup.target,
                            "code": " ".join(stage_code(r) for r in spec["stages"])}.items():
            trial.set_user_attr(name, value)
        # Feasible at 0 or below: TPE ranks rejected architectures by how far outside the band they fell.
        trial.set_constraint("macs_band", abs(off) - self.setup.band)
        if abs(off) > self.setup.band:
            reason = (f"costs {format_macs(cost.macs)} MACs, {off:+.0%} from the target "
                      f"(band ±{self.setup.band:.0%}): not trained")
            trial.set_user_attr("rejected", True)
            trial.set_user_attr("reason", reason)
            self.nas_study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            counts = self.counts()
            self.log(f"[{counts['sampled']}] rejected: {reason}")
            return None
        if self.config.objective == "pareto" and self.config.pareto_cost == "latency":
            model = get_baseline(spec).build()  # full size, batch 1, on this machine's CPU
            trial.set_user_attr("latency_ms", measure_latency(model, spec["resolution"], "cpu", repeats=5))
        trial.set_user_attr("trained", True)
        return trial.number, spec

    def _resumed(self, frozen) -> dict | None:
        """The architecture of a trial a killed search left RUNNING (None: killed before it was costed)."""
        if not frozen.user_attrs.get("trained"):
            return None
        return architecture(frozen.params, self.setup.fitted, frozen.number)

    def _train(self, batch: list[tuple[int, dict | None]]) -> None:
        todo = [(n, spec) for n, spec in batch if spec is not None]
        for n, spec in batch:
            if spec is None:  # sampled but not costed when the last process stopped
                self._set(n, "reason", "interrupted before it was costed")
                self.nas_study.tell(n, state=optuna.trial.TrialState.FAIL)
        if not todo:
            return
        plans = {n: self._planned(n, spec, self.config.recipe, "screen") for n, spec in todo}
        plan = {key: plans[key[1]] for key in stage_keys("screen", list(plans), self.config.seeds)}
        self.runner.run_stage("screen", plan, f"{len(plans)} architecture(s)")
        runs = stage_runs(self.key_study, "screen")
        for n, _ in todo:
            mine = [runs.get((n, s)) for s in range(self.config.seeds)]
            if all(t is not None and t.state == optuna.trial.TrialState.COMPLETE for t in mine):
                accuracy = statistics.fmean(t.value for t in mine)
                frozen = self._trial(n)
                self.nas_study.tell(n, self._values(accuracy, frozen.user_attrs))
                self.log(f"architecture {n}: {accuracy:.1%} at {format_macs(frozen.user_attrs['macs'])} MACs, "
                         f"reward {self._reward(accuracy, frozen.user_attrs['macs']):.4f}")
            else:
                reasons = [t.user_attrs.get("reason", "") for t in mine if t is not None and t.state != optuna.trial.TrialState.COMPLETE]
                self._set(n, "reason", "; ".join(r for r in reasons if r) or "training failed")
                self.nas_study.tell(n, state=optuna.trial.TrialState.FAIL)
        self.on_batch()

    def _trial(self, number: int) -> optuna.trial.FrozenTrial:
        """One trial by number (``study.trials[n]`` would deep-copy every trial to give it)."""
        storage = self.nas_study._storage
        return storage.get_trial(storage.get_trial_id_from_study_id_trial_number(self.nas_study._study_id, number))

    def _set(self, number: int, name: str, value) -> None:
        self.nas_study._storage.set_trial_user_attr(self._trial(number)._trial_id, name, value)

    def _reward(self, accuracy: float, macs: float) -> float:
        return reward(accuracy, macs, self.setup.reward_target, self.config.reward_w, self.config.reward_form)

    def _values(self, accuracy: float, attrs: dict):
        if self.config.objective == "pareto":
            return [accuracy, attrs["latency_ms"] if self.config.pareto_cost == "latency" else attrs["macs"]]
        return self._reward(accuracy, attrs["macs"])

    def _planned(self, number: int, spec: dict, recipe: dict, stage: str, label: str | None = None) -> Planned:
        cost = count_cost(spec)
        cand = _candidate(spec, cost.macs, cost.params, cost.activations, self.setup.target)
        return Planned(cand, recipe, label or f"architecture {number} ({format_macs(cost.macs)})", baseline=spec)

    # --- confirm, reference, answer -----------------------------------------------------------

    def screened(self) -> list[dict]:
        """Every architecture the screen finished: number, spec, MACs, accuracy, reward; best reward first."""
        out, runs = [], None
        for t in self.nas_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            accuracy = t.values[0] if self.config.objective == "pareto" else None
            if accuracy is None:  # the reward objective: its accuracy is the screen runs' mean
                runs = runs or stage_runs(self.key_study, "screen", complete_only=True)  # read once, not per architecture
                accuracy = statistics.fmean(runs[(t.number, s)].value for s in range(self.config.seeds))
            out.append({"number": t.number, "spec": architecture(t.params, self.setup.fitted, t.number),
                        "macs": t.user_attrs["macs"], "accuracy": accuracy,
                        "reward": self._reward(accuracy, t.user_attrs["macs"])})
        return sorted(out, key=lambda r: (-r["reward"], r["macs"], r["number"]))

    def front(self) -> list[int]:
        if self.config.objective != "pareto":
            return []
        return sorted(t.number for t in self.nas_study.best_trials)

    def answer(self) -> dict:
        screened = self.screened()
        counts = self.counts()
        summary = {"target": self.setup.target, "reward_target": self.setup.reward_target, "band": self.setup.band,
                   "objective": self.config.objective, "pareto_cost": self.config.pareto_cost,
                   "reward_w": self.config.reward_w, "reward_form": self.config.reward_form,
                   "start": self.setup.start["name"], "start_width": self.setup.start_width,
                   "fitted_start": self.setup.fitted, "counts": counts, "front": self.front(), "best": None,
                   "winner": None, "confirm": [], "reference": None}
        if not screened:
            return summary
        pool = screened
        if self.config.objective == "pareto":
            front = set(summary["front"])
            pool = [r for r in screened if r["number"] in front]
        promoted = pool[: self.config.confirm]
        stage, by_point = "screen", {}
        if promoted:
            plans = {r["number"]: self._planned(r["number"], r["spec"], self.config.confirm_recipe, "confirm") for r in promoted}
            plan = {key: plans[key[1]] for key in stage_keys("confirm", list(plans), self.config.confirm_seeds)}
            self.log(f"confirm: the best {len(plans)} architecture(s) x {self.config.confirm_seeds} seed(s) at "
                     f"{self.config.confirm_recipe.get('epochs')} epoch(s)")
            self.runner.run_stage("confirm", plan, f"{len(plans)} architecture(s)")
            by_point = self._accuracies("confirm", [r["number"] for r in promoted], self.config.confirm_seeds)
            if by_point:
                stage = "confirm"
        rows = {r["number"]: r for r in screened}
        if stage == "confirm":
            rewards = {n: {s: self._reward(a, rows[n]["macs"]) for s, a in accs.items()} for n, accs in by_point.items()}
            chance = p_best(rewards)
            ranked = sorted(rewards, key=lambda n: (-statistics.fmean(rewards[n].values()), rows[n]["macs"], n))
            for n in [r["number"] for r in promoted]:
                accs = by_point.get(n, {})
                summary["confirm"].append({
                    "number": n, "macs": rows[n]["macs"], "screen_accuracy": rows[n]["accuracy"],
                    "screen_reward": rows[n]["reward"],
                    "accuracy_mean": statistics.fmean(accs.values()) if accs else None,
                    "accuracy_std": statistics.stdev(accs.values()) if len(accs) > 1 else None, "seeds": len(accs),
                    "reward_mean": statistics.fmean(rewards[n].values()) if n in rewards else None,
                    "p_best": chance.get(n), "code": " ".join(stage_code(r) for r in rows[n]["spec"]["stages"]),
                })
            chosen = ranked[0]
            if len(ranked) > 1:
                m = margin_between(rewards[ranked[0]], rewards[ranked[1]])
                summary["margin"] = {"runner_up": ranked[1], "reward_margin": m.margin, "interval": interval_list(m),
                                     "significant": m.significant, "test": m.test}
        else:
            chosen = screened[0]["number"] if self.config.objective == "reward" else pool[0]["number"]
        win = rows[chosen]
        win_accs = by_point.get(chosen) or self._accuracies("screen", [chosen], self.config.seeds).get(chosen, {})
        summary["winner"] = {"number": chosen, "stage": stage, "macs": win["macs"],
                             "params": count_cost(win["spec"]).params,
                             "accuracy_mean": statistics.fmean(win_accs.values()) if win_accs else win["accuracy"],
                             "accuracy_std": statistics.stdev(win_accs.values()) if len(win_accs) > 1 else None,
                             "seeds": len(win_accs), "screen_accuracy": win["accuracy"], "reward": win["reward"],
                             "code": " ".join(stage_code(r) for r in win["spec"]["stages"])}
        label = format_macs(self.setup.target).replace(" ", "")
        summary["best"] = {**win["spec"], "name": f"nas-{label}",
                           "description": f"scaler nas from {self.setup.start['name']} at {label} MACs, trial {chosen}"}
        if self.config.reference and stage == "confirm":
            summary["reference"] = self._reference(chosen, win, by_point.get(chosen, {}))
        return plain(summary)

    def _accuracies(self, stage: str, numbers: list[int], seeds: int) -> dict[int, dict[int, float]]:
        """number -> {seed: accuracy} for the numbers whose every run of ``stage`` is complete."""
        by_seed = accuracies_by_seed(self.key_study, stage)
        return {n: {s: by_seed[n][s] for s in range(seeds)} for n in numbers
                if all(s in by_seed.get(n, {}) for s in range(seeds))}

    def _reference(self, number: int, win: dict, win_accs: dict[int, float]) -> dict | None:
        """The start width-matched to the winner's MACs, under the confirm recipe and the same seeds."""
        width, spec = fit_width(self.setup.start, win["macs"])
        spec = {**spec, "name": f"{self.setup.start['name']}-w{width:.3f}"}
        planned = self._planned(number, spec, self.config.confirm_recipe, "curve",
                                label=f"{self.setup.start['name']} x{width:.3f} (reference)")
        plan = {key: planned for key in stage_keys("curve", [number], self.config.confirm_seeds)}
        self.log(f"reference: {spec['name']} at {format_macs(planned.cand.macs)} MACs (the winner: "
                 f"{format_macs(win['macs'])}) x {self.config.confirm_seeds} seed(s)")
        self.runner.run_stage("curve", plan, "the width-matched start")
        ref_accs = self._accuracies("curve", [number], self.config.confirm_seeds).get(number)
        if not ref_accs or not win_accs:
            return {"name": spec["name"], "width": width, "macs": planned.cand.macs, "accuracy_mean": None,
                    "reason": "its runs did not all finish"}
        m = margin_between(win_accs, ref_accs)
        return {"name": spec["name"], "width": width, "macs": planned.cand.macs, "params": planned.cand.params,
                "accuracy_mean": statistics.fmean(ref_accs.values()),
                "accuracy_std": statistics.stdev(ref_accs.values()) if len(ref_accs) > 1 else None,
                "seeds": len(ref_accs), "margin": m.margin, "interval": interval_list(m), "significant": m.significant,
                "test": m.test, "stages": spec["stages"], "stem_channels": spec["stem_channels"],
                "head_channels": spec["head_channels"]}


def trials_frame(nas_study: optuna.Study, key_study: optuna.Study, config: NasConfig, setup: _Setup) -> pd.DataFrame:
    """trials.csv: one row per sampled architecture (screen), then the confirm stage's and the reference's rows."""
    rows = []
    front = {t.number for t in nas_study.best_trials} if config.objective == "pareto" else set()
    screen = stage_runs(key_study, "screen")
    for t in nas_study.get_trials(deepcopy=False):
        a = t.user_attrs
        accs = [screen[(t.number, s)].value for s in range(config.seeds)
                if (t.number, s) in screen and screen[(t.number, s)].state == optuna.trial.TrialState.COMPLETE]
        accuracy = statistics.fmean(accs) if accs and t.state == optuna.trial.TrialState.COMPLETE else math.nan
        state = "rejected" if a.get("rejected") else t.state.name
        rows.append({
            "stage": "screen", "number": t.number, "state": state, "macs": a.get("macs"), "params": a.get("params"),
            "macs_vs_target": a.get("macs_vs_target"), "latency_ms": a.get("latency_ms", math.nan),
            "accuracy_mean": accuracy, "accuracy_std": statistics.stdev(accs) if len(accs) > 1 else math.nan,
            "accuracy_n": len(accs),
            "reward": (reward(accuracy, a["macs"], setup.reward_target, config.reward_w, config.reward_form)
                       if not math.isnan(accuracy) else math.nan),
            "on_front": t.number in front, "code": a.get("code", ""), "reason": a.get("reason", ""),
        })
    for stage in ("confirm", "curve"):
        by_number: dict[int, list] = {}
        for (n, _), run in sorted(stage_runs(key_study, stage).items()):
            by_number.setdefault(n, []).append(run)
        for n, runs in by_number.items():
            accs = [r.value for r in runs if r.state == optuna.trial.TrialState.COMPLETE]
            # a complete run's record: another may be cut short before it wrote one
            a = next((r.user_attrs for r in runs if r.state == optuna.trial.TrialState.COMPLETE), runs[0].user_attrs)
            rows.append({
                "stage": "confirm" if stage == "confirm" else "reference", "number": n,
                # params: the run recorded its proxy's; the full size's are in the screen's row and nas.json
                "state": "COMPLETE" if len(accs) == len(runs) else "FAIL", "macs": a.get("macs"), "params": math.nan,
                "macs_vs_target": a.get("macs", math.nan) / setup.target, "latency_ms": math.nan,
                "accuracy_mean": statistics.fmean(accs) if accs else math.nan,
                "accuracy_std": statistics.stdev(accs) if len(accs) > 1 else math.nan, "accuracy_n": len(accs),
                "reward": (reward(statistics.fmean(accs), a["macs"], setup.reward_target, config.reward_w, config.reward_form)
                           if accs else math.nan),
                "on_front": False, "code": a.get("label", ""),
                "reason": "; ".join(r.user_attrs.get("reason", "") for r in runs if r.user_attrs.get("reason")),
            })
    return pd.DataFrame(rows)
