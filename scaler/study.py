"""The study of a search: its storage, the queue of (stage, point, seed) runs, and recovery after a kill.

Every run still to make is queued as a trial with fixed params
(``enqueue_trial``) — one trial is one proxy training run, so a kill loses at most the run in
flight — in an RDB storage (SQLite in the run folder by default). Queuing the pairs, rather than
letting ``GridSampler`` pick them, keeps "each run is made once" true whatever recorded the earlier
trials (GridSampler assumes trial *n* is its grid cell *n*, which runs recorded by Ray break).
"""

from __future__ import annotations

import optuna

from scaler.errors import UsageError
from scaler.run_folder import STUDY_NAME, RunFolder
from scaler.stages import STAGES

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


# A run's key: (stage, point, seed). Its params and their distributions, the same for every backend.
MAX_INDEX = 100_000
Key = tuple[str, int, int]


def key_distributions() -> dict[str, optuna.distributions.BaseDistribution]:
    return {
        "stage": optuna.distributions.CategoricalDistribution(list(STAGES)),
        "point": optuna.distributions.IntDistribution(0, MAX_INDEX),
        "seed": optuna.distributions.IntDistribution(0, MAX_INDEX),
    }


def key_params(key: Key) -> dict:
    stage, point, seed = key
    return {"stage": stage, "point": point, "seed": seed}


def key_of(trial) -> Key | None:
    """A trial's (stage, point, seed), or None for a trial that is not a run of the search."""
    params = trial.params
    if "point" not in params or "seed" not in params:
        return None
    return (params.get("stage", "screen"), int(params["point"]), int(params["seed"]))


def latest_by_key(trials) -> dict[Key, optuna.trial.FrozenTrial]:
    """The newest trial of each key: a retry supersedes the run it repeats."""
    latest: dict[Key, optuna.trial.FrozenTrial] = {}
    for t in trials:
        key = key_of(t)
        if key is not None and (key not in latest or t.number > latest[key].number):
            latest[key] = t
    return latest


def recover_interrupted(study: optuna.Study) -> int:
    """Mark the runs the last process cut short — left RUNNING by a kill — as interrupted; count
    those and the runs failed by Ctrl-C. Their keys are to run again (:func:`keys_to_run`).

    Safe because the run folder's lock guarantees no other process works on this study.
    """
    cut = 0
    for t in latest_by_key(study.get_trials(deepcopy=False)).values():
        if t.state == optuna.trial.TrialState.RUNNING:  # a finished trial's attributes are frozen
            study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
            study._storage.set_trial_user_attr(t._trial_id, "reason", "interrupted; retried")
            study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
            cut += 1
        elif t.state == optuna.trial.TrialState.FAIL and not is_final(t):
            cut += 1
    return cut


def is_final(trial) -> bool:
    """A run that needs no retry: complete, pruned, or failed with the reason scaler recorded.

    One failed by Optuna with no reason (Ctrl-C landing before the objective's handlers, or a
    bug), or marked interrupted, is retried.
    """
    if trial.state == optuna.trial.TrialState.FAIL:
        return bool(trial.user_attrs.get("reason")) and not trial.user_attrs.get("interrupted")
    return trial.state.is_finished()


def keys_to_run(study: optuna.Study, keys: list[Key]) -> list[Key]:
    """Of ``keys``, those whose latest run is not final (never run, waiting, interrupted)."""
    latest = latest_by_key(study.get_trials(deepcopy=False))
    return [k for k in keys if k not in latest or not is_final(latest[k])]


def retire_waiting(study: optuna.Study, keep: set[Key]) -> None:
    """Close queued runs that are not ``keep``'s (left by a stage a kill cut short), so that
    ``optimize`` pops only this stage's; their own stage queues them again."""
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
        if key_of(t) not in keep:
            study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
            study._storage.set_trial_user_attr(t._trial_id, "reason", "queued by another stage; queued again")
            study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)


def stage_keys(stage: str, points: list[int], seeds: int) -> list[Key]:
    """A stage's runs, seed-major: every point has one result before any gets its second."""
    return [(stage, p, s) for s in range(seeds) for p in points]


def queue_keys(study: optuna.Study, keys: list[Key]) -> None:
    """Queue a trial for each key that has none waiting (a retry may be queued already)."""
    waiting = {key_of(t) for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))}
    for key in keys:
        if key not in waiting:
            study.enqueue_trial(key_params(key))


def redact_url(url: str) -> str:
    """A storage URL with its password hidden (``postgresql://user:***@host/db``)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: show nothing of it that could be a secret
        return "<unreadable storage URL>"
