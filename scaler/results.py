"""What a search's study says: one row per grid point, the winner, and a view for Optuna's plots."""

from __future__ import annotations

import math
import statistics

import optuna
import pandas as pd

from scaler.search_space import Candidate
from scaler.stats import welch_margin
from scaler.study import latest_by_pair


def trials_table(study: optuna.Study, cands: list[Candidate]) -> pd.DataFrame:
    """One row per grid point: coefficients, multipliers, cost, accuracy mean/std over seeds, state."""
    latest = latest_by_pair(t for t in study.get_trials(deepcopy=False) if t.state != optuna.trial.TrialState.WAITING)
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
            "input_px": c.input_px, "nominal_ratio": c.nominal_ratio, "macs_ratio": c.macs_ratio,
            "proxy_macs_ratio": c.proxy_macs_ratio, "macs": c.macs,
            "params": c.params, "activations": c.activations,
            "accuracy_mean": statistics.fmean(accs) if accs else math.nan,
            "accuracy_std": statistics.stdev(accs) if len(accs) > 1 else (0.0 if accs else math.nan),
            "accuracy_n": len(accs),
            "seconds": sum(t.user_attrs.get("seconds", 0.0) for t in runs),
            "state": state, "reason": "; ".join(r for r in reasons if r),
        })
    return pd.DataFrame(rows)


def choose_winner(table: pd.DataFrame, study: optuna.Study, config) -> dict | None:
    """The complete point with the best mean accuracy, with its margin over the runner-up."""
    done = table[table.state == "COMPLETE"].sort_values("accuracy_mean", ascending=False)
    if done.empty:
        return None
    accs = accuracies_by_point(study)
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


def accuracies_by_point(study: optuna.Study) -> dict[int, list[float]]:
    latest = latest_by_pair(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    out: dict[int, list[float]] = {}
    for (p, _), t in sorted(latest.items()):
        out.setdefault(p, []).append(t.value)
    return out
