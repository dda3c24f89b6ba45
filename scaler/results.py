"""What a search's study says: one row per grid point, the winner, and a view for Optuna's plots."""

from __future__ import annotations

import math
import statistics

import optuna
import pandas as pd

from scaler.files import plain
from scaler.scaling import Coefficients
from scaler.search_space import Candidate
from scaler.study import key_of, latest_by_key
from scaler.verdict import PointResult, interval_list, judge, p_best


def stage_runs(study: optuna.Study, stage: str, complete_only: bool = False) -> dict[tuple[int, int], optuna.trial.FrozenTrial]:
    """(point, seed) -> the latest finished or running trial of a stage (runs from before stages were screen)."""
    states = (optuna.trial.TrialState.COMPLETE,) if complete_only else None
    trials = [t for t in study.get_trials(deepcopy=False, states=states) if t.state != optuna.trial.TrialState.WAITING]
    return {(p, s): t for (st, p, s), t in latest_by_key(trials).items() if st == stage}


def trials_table(study: optuna.Study, cands: list[Candidate], stage: str = "screen",
                 points: list[int] | None = None) -> pd.DataFrame:
    """One row per grid point of ``stage`` (all points, or ``points``): coefficients, multipliers, cost,
    accuracy mean/std over seeds, P(best), state.

    ``p_best`` is the bootstrap probability (:func:`scaler.verdict.p_best`) that the point is the
    best among the points whose every run is complete; NaN for the others.
    """
    latest = stage_runs(study, stage)
    rows, by_seed = [], {}
    for i, c in enumerate(cands):
        if points is not None and i not in points:
            continue
        runs = {s: t for (p, s), t in sorted(latest.items()) if p == i}
        accs = {s: t.value for s, t in runs.items() if t.state == optuna.trial.TrialState.COMPLETE}
        state = point_state(list(runs.values()))
        if state == "COMPLETE":
            by_seed[i] = accs
        reasons = [t.user_attrs.get("reason", "") for t in runs.values() if t.state.name in ("FAIL", "PRUNED")]
        m = c.coefficients.multipliers(1.0)
        values = list(accs.values())
        rows.append({
            "stage": stage, "point": i, "kind": c.kind, "alpha": c.coefficients.alpha, "beta": c.coefficients.beta,
            "gamma": c.coefficients.gamma, "depth_mult": m.depth, "width_mult": m.width, "resolution_mult": m.resolution,
            "input_px": c.input_px, "nominal_ratio": c.nominal_ratio, "macs_ratio": c.macs_ratio,
            "proxy_macs_ratio": c.proxy_macs_ratio, **proxy_columns(c), "macs": c.macs,
            "params": c.params, "activations": c.activations,
            "accuracy_mean": statistics.fmean(values) if values else math.nan,
            "accuracy_std": statistics.stdev(values) if len(values) > 1 else (0.0 if values else math.nan),
            "accuracy_n": len(values),
            "seconds": sum(t.user_attrs.get("seconds", 0.0) for t in runs.values()),
            "state": state, "reason": "; ".join(r for r in reasons if r),
            "nodes": ";".join(run_node(t) for _, t in sorted(runs.items())),
        })
    pbest = p_best(by_seed)
    return pd.DataFrame(rows).assign(p_best=[pbest.get(r["point"], math.nan) for r in rows])


def proxy_columns(c: Candidate) -> dict:
    """The coefficients the point's proxy is built at: its own when matched apart (scaler.matching)."""
    pa, pb, pg = c.proxy_point.as_tuple()
    return {"proxy_alpha": pa, "proxy_beta": pb, "proxy_gamma": pg}


def run_node(trial: optuna.trial.FrozenTrial) -> str:
    """Where a run was made: its Ray node (address/id), or its worker's host; "" when not recorded."""
    return trial.user_attrs.get("node") or str(trial.user_attrs.get("worker") or "").split("/")[0]


def point_state(runs: list[optuna.trial.FrozenTrial]) -> str:
    """A point's state from its latest run per seed: any failure or prune marks it, COMPLETE only when all are."""
    states = {t.state.name for t in runs}
    for state in ("FAIL", "PRUNED", "RUNNING"):
        if state in states:
            return state
    return "COMPLETE" if runs and states == {"COMPLETE"} else "WAITING"


def point_label(row) -> str:
    """How the verdict names a point: kind, grid number and coefficients."""
    return f"{row.kind} point {int(row.point)} ({row.alpha:.3g}, {row.beta:.3g}, {row.gamma:.3g})"


def point_results(table: pd.DataFrame, study: optuna.Study, stage: str) -> list[PointResult]:
    """The complete points of ``table`` as the verdict and the stages judge them: per-seed accuracies, cost, coefficients."""
    accs = accuracies_by_seed(study, stage)
    return [PointResult(int(r.point), r.kind, accs.get(int(r.point), {}), float(r.macs), point_label(r),
                        Coefficients(r.alpha, r.beta, r.gamma))
            for r in table[table.state == "COMPLETE"].itertuples()]


def choose_winner(table: pd.DataFrame, study: optuna.Study, config, stage: str = "screen") -> dict | None:
    """The complete point of ``stage`` chosen by :data:`scaler.verdict.CHOICE_RULE`, with the verdict's evidence."""
    done = table[table.state == "COMPLETE"]
    points = point_results(table, study, stage)
    verdict = judge(points)
    if verdict is None:
        return None
    rows = done.set_index("point")
    best = rows.loc[verdict.ranked[0].point]
    out = {
        "baseline": config.baseline, "budget": config.budget, "stage": stage, "point": verdict.ranked[0].point,
        "kind": best.kind,
        "alpha": best.alpha, "beta": best.beta, "gamma": best.gamma,
        "nominal_ratio": best.nominal_ratio, "macs_ratio": best.macs_ratio,
        "accuracy_mean": best.accuracy_mean, "accuracy_std": best.accuracy_std, "seeds": int(best.accuracy_n),
        "runner_up": None, "margin": None, "margin_interval": None, "significant": False, "test": None,
        "p_best": {str(p): v for p, v in sorted(verdict.p_best.items())},
        "compound_vs_single": verdict.compound_vs_single, "verdict": verdict.text, "rule": verdict.rule,
        "told_apart": verdict.told_apart,  # False: the winner is the rule's pick among points the noise cannot order
    }
    if verdict.margin is not None:
        second, margin = rows.loc[verdict.ranked[1].point], verdict.margin
        out.update(
            runner_up={"point": verdict.ranked[1].point,
                       **{k: second[k] for k in ("kind", "alpha", "beta", "gamma", "accuracy_mean", "accuracy_std")}},
            margin=margin.margin, margin_interval=interval_list(margin), significant=margin.significant, test=margin.test,
        )
    return plain(out)


def coefficient_view(study: optuna.Study) -> optuna.Study:
    """An in-memory copy of the finished runs with alpha, beta, gamma as their parameters.

    The search queues (stage, point, seed) keys; Optuna's parameter-importance analysis is only
    meaningful over the coefficients themselves, which each trial records as user attributes.
    """
    finished = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                if (key_of(t) or ("",))[0] == "screen" and all(k in t.user_attrs for k in ("alpha", "beta", "gamma"))]
    view = optuna.create_study(direction="maximize")
    names = ("alpha", "beta", "gamma")
    bounds = {k: (min(t.user_attrs[k] for t in finished), max(t.user_attrs[k] for t in finished)) for k in names} if finished else {}
    dists = {k: optuna.distributions.FloatDistribution(lo, hi if hi > lo else lo + 1e-9) for k, (lo, hi) in bounds.items()}
    view.add_trials([
        optuna.trial.create_trial(params={k: t.user_attrs[k] for k in names}, distributions=dists, value=t.value)
        for t in finished
    ])
    return view


def accuracies_by_seed(study: optuna.Study, stage: str = "screen") -> dict[int, dict[int, float]]:
    """point -> {seed: accuracy} over the latest complete run of each (point, seed) of ``stage``: seeds pair across points."""
    out: dict[int, dict[int, float]] = {}
    for (p, seed), t in sorted(stage_runs(study, stage, complete_only=True).items()):
        out.setdefault(p, {})[seed] = t.value
    return out


def stage_agreement(screen: pd.DataFrame, confirm: pd.DataFrame, screen_winner: dict | None, winner: dict) -> dict:
    """How the confirm stage's ranking of the promoted points compares with the screen's: both
    rankings, Kendall's tau between them, and whether the winner changed."""
    from scipy.stats import kendalltau

    done = confirm[confirm.state == "COMPLETE"]
    order = ["accuracy_mean", "macs", "point"]
    confirm_rank = [int(p) for p in done.sort_values(order, ascending=[False, True, True]).point]
    screen_rows = screen.set_index("point").loc[confirm_rank].reset_index()
    screen_rank = [int(p) for p in screen_rows.sort_values(order, ascending=[False, True, True]).point]
    tau = None
    if len(confirm_rank) > 2:
        tau = kendalltau(screen_rows.accuracy_mean, done.set_index("point").loc[confirm_rank].accuracy_mean).statistic
    return plain({
        "screen_winner": {k: (screen_winner or {}).get(k) for k in ("point", "kind", "alpha", "beta", "gamma", "accuracy_mean")},
        "rankings": {"screen": screen_rank, "confirm": confirm_rank},
        "kendall_tau": None if tau is None or math.isnan(tau) else float(tau),
        "winner_changed": bool(screen_winner) and int(screen_winner["point"]) != int(winner["point"]),
    })


def proxy_ident(point) -> tuple:
    """A proxy point as runs are matched to networks by it: its coefficients to 9 decimals."""
    return tuple(round(float(v), 9) for v in point)


def recorded_proxy(trial) -> tuple | None:
    """The proxy point a run recorded training, as :func:`proxy_ident` (None: not recorded yet, a queued
    run, or one whose record another process is writing, or was killed writing: its attributes are
    written one by one, ``label`` last, :meth:`scaler.objective.Planned.attrs`)."""
    a = trial.user_attrs
    if "label" not in a:
        return None
    return proxy_ident(a.get(f"proxy_{k}", a[k]) for k in ("alpha", "beta", "gamma"))


def curves_table(study: optuna.Study, points: list, sources: dict[int, tuple[str, int]]) -> pd.DataFrame:
    """One row per curve network (strategy, phi): cost and accuracy over seeds.

    ``sources``: curve position -> the (stage, point) whose runs it is: a curve run, or the screen's
    or confirm's runs of a grid point (phi = 1).
    """
    runs_of = {stage: stage_runs(study, stage) for stage in {s for s, _ in sources.values()}}
    rows = []
    for i, pt in enumerate(points):
        stage, index = sources[i]
        runs = [t for (p, _), t in sorted(runs_of[stage].items()) if p == index]
        if stage == "curve":  # a run keyed to this number but recorded for another proxy is not this network's
            own = proxy_ident(pt.network.proxy_point.as_tuple())
            runs = [t for t in runs if recorded_proxy(t) in (None, own)]
        accs = [t.value for t in runs if t.state == optuna.trial.TrialState.COMPLETE]
        c = pt.network
        m = c.coefficients.multipliers(1.0)
        rows.append({
            "strategy": pt.strategy, "phi": pt.phi, "kind": c.kind, "alpha": c.coefficients.alpha,
            "beta": c.coefficients.beta, "gamma": c.coefficients.gamma, "depth_mult": m.depth, "width_mult": m.width,
            "resolution_mult": m.resolution, "input_px": c.input_px, "macs": c.macs, "macs_ratio": c.macs_ratio,
            "proxy_macs_ratio": c.proxy_macs_ratio, **proxy_columns(c), "params": c.params,
            "accuracy_mean": statistics.fmean(accs) if accs else math.nan,
            "accuracy_std": statistics.stdev(accs) if len(accs) > 1 else math.nan,
            "accuracy_n": len(accs), "runs_from": stage, "state": point_state(runs),
        })
    return pd.DataFrame(rows)
