"""The study of a search: its storage, the queue of (point, seed) runs, and recovery after a kill.

Every (point, seed) pair still to run is queued as a trial with fixed params
(``enqueue_trial``) — one trial is one proxy training run, so a kill loses at most the run in
flight — in an RDB storage (SQLite in the run folder by default). Queuing the pairs, rather than
letting ``GridSampler`` pick them, keeps "each pair runs once" true whatever recorded the earlier
trials (GridSampler assumes trial *n* is its grid cell *n*, which runs recorded by Ray break).
"""

from __future__ import annotations

import warnings

import optuna

from scaler.errors import UsageError
from scaler.run_folder import STUDY_NAME, RunFolder

PRUNERS = ("none", "median", "hyperband")


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.NopPruner()


def open_study(config, run: RunFolder) -> optuna.Study:
    """The search's study in ``config.storage`` or the run folder's SQLite file; created if absent."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not config.storage:
        run.record(run.storage_file)
    url = config.storage or run.storage_url
    try:
        storage = optuna.storages.RDBStorage(url)
    except Exception as exc:  # a bad URL or an unreachable database; the message may hold the password too
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise UsageError(f"cannot open study storage {redact_url(url)}: {type(exc).__name__}: "
                         f"{reason.replace(url, redact_url(url))}") from None
    # Every trial is queued with its params fixed, so the sampler never samples; it is only named.
    sampler = optuna.samplers.RandomSampler(seed=0)
    return optuna.create_study(
        study_name=STUDY_NAME, storage=storage, sampler=sampler, pruner=make_pruner(config.pruner),
        direction="maximize", load_if_exists=True,
    )


def latest_by_pair(trials) -> dict[tuple[int, int], optuna.trial.FrozenTrial]:
    """The newest trial of each (point, seed) pair: a retry supersedes the run it repeats."""
    latest: dict[tuple[int, int], optuna.trial.FrozenTrial] = {}
    for t in trials:
        if "point" not in t.params:
            continue
        key = (t.params["point"], t.params["seed"])
        if key not in latest or t.number > latest[key].number:
            latest[key] = t
    return latest


def recover_interrupted(study: optuna.Study) -> int:
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
        t for t in latest_by_pair(study.get_trials(deepcopy=False)).values()
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


def queue_pairs(study: optuna.Study, pairs: list[tuple[int, int]]) -> None:
    """Queue a trial for each pair that has none waiting (a retry may be queued already)."""
    waiting = {(t.params.get("point"), t.params.get("seed"))
               for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))}
    for point, seed in pairs:
        if (point, seed) not in waiting:
            study.enqueue_trial({"point": point, "seed": seed})


def redact_url(url: str) -> str:
    """A storage URL with its password hidden (``postgresql://user:***@host/db``)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: show nothing of it that could be a secret
        return "<unreadable storage URL>"
