"""The queue of a search's runs, shared by every process working on its study: each run made once.

Any number of workers — the search itself, its ``--workers`` processes, ``scaler worker`` on other
machines — run the same stages against one study. For each stage, each worker:

1. **tops up** the queue under the study's lock (:func:`study_lock`): a WAITING trial for every key
   that has no final, running or waiting trial. Whoever gets there first queues the stage; the
   others find nothing to add. A crash half-way leaves a queue the next top-up completes.
2. **takes** the stage's WAITING trial that comes first in the plan (a run queued again after its
   worker died goes before the plan's later runs): the storage turns WAITING into RUNNING atomically
   (``SELECT ... FOR UPDATE`` on PostgreSQL and MySQL; on SQLite every transaction begins
   ``IMMEDIATE``, see :func:`scaler.study.open_storage`), so two workers never take the same run. It never
   creates a trial of its own: ``study.ask()`` on an empty queue would sample a random one.
3. runs it with a heartbeat; before each take it **reclaims** the runs of dead workers (one lock
   and one query a run, small beside a run's seconds, and a dead worker's run is retried at once) —
   a heartbeat older than the grace period (Optuna's ``fail_stale_trials``), or a worker of this
   machine whose process is gone — and requeues them (``RetryHeartbeatStaleTrialCallback``); a
   live worker's heartbeat is fresh, so its run is never taken. The stage is done when every key's
   latest run is settled: final, or out of memory once in this search (:func:`settled`; the next
   search tries it again).
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime

import optuna
from optuna.trial import TrialState

from scaler.study import Key, is_final, key_of, key_params, latest_by_key, postgres_lock, retire, sqlite_lock

POLL = 2.0  # seconds between looks at the queue while others finish a stage


@contextlib.contextmanager
def study_lock(study: optuna.Study) -> Iterator[None]:
    """Hold a lock on ``study`` across processes and machines (while the queue is topped up).

    PostgreSQL: a session advisory lock; MySQL: ``GET_LOCK``; SQLite: ``flock`` on the database's
    folder (:func:`scaler.study.sqlite_lock`). Each is released when its holder dies, so a killed
    worker never leaves the study locked.
    """
    engine = _rdb(study).engine
    name = f"scaler:{study.study_name}"
    from sqlalchemy import text

    if engine.name == "postgresql":
        with postgres_lock(engine, name):
            yield
    elif engine.name in ("mysql", "mariadb"):
        with engine.connect() as conn:
            conn.execute(text("select get_lock(:n, -1)"), {"n": name[:64]})
            try:
                yield
            finally:
                conn.execute(text("select release_lock(:n)"), {"n": name[:64]})
    elif engine.name == "sqlite":
        with sqlite_lock(engine.url.database):
            yield
    else:
        yield  # one process only: nothing to serialise


def _rdb(study: optuna.Study) -> optuna.storages.RDBStorage:
    """The study's RDB storage (Optuna wraps it in a cache)."""
    return getattr(study._storage, "_backend", study._storage)


# --- who is working ----------------------------------------------------------------------------------


def _started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), "" off Linux; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name
    except FileNotFoundError:
        return None
    except OSError:  # no /proc: whether the pid exists is all we can tell
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ""


_WORKER: list[str] = []


def worker_id() -> str:
    """host/pid/start: names this process, and lets a process of the same host tell that it is gone
    (a new process with the same pid has another start)."""
    if not _WORKER:
        _WORKER.append(f"{socket.gethostname()}/{os.getpid()}/{_started(os.getpid())}")
    return _WORKER[0]


def _gone(worker: str) -> bool:
    """Whether ``worker`` ran on this machine and its process is no longer there."""
    host, _, rest = worker.partition("/")
    pid, _, started = rest.partition("/")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's: only its heartbeat says
    now = _started(int(pid))
    return now is None or (bool(started) and bool(now) and now != started)


def reclaim(study: optuna.Study) -> int:
    """Fail and requeue the runs of dead workers; return how many of this machine's were reclaimed.

    Optuna fails runs whose heartbeat is older than the grace period (and its callback queues each
    again). A run whose worker was on this machine and is gone is reclaimed at once; so is a run
    left RUNNING by an older scaler (no worker recorded) once the grace period has passed.
    """
    storage = study._storage
    interval = storage.get_heartbeat_interval()  # None: a storage opened without heartbeats
    grace = _rdb(study).grace_period or 2 * interval if interval else None
    reclaimed = 0
    with study_lock(study):  # a top-up must not queue a run between its failing and its retry
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker = t.user_attrs.get("worker")
            old = grace is not None and t.datetime_start is not None and (datetime.now() - t.datetime_start).total_seconds() > grace
            if (_gone(worker) if worker else old) and requeue(study, t._trial_id, f"its worker {worker or '(unknown)'} stopped; retried"):
                reclaimed += 1
    return reclaimed


def requeue(study: optuna.Study, trial_id: int, reason: str) -> bool:
    """Fail a RUNNING run whose worker is gone, with ``reason``, and queue it again (the storage's
    retry callback); False if it finished, or another worker reclaimed it, meanwhile."""
    storage = study._storage
    try:
        if not retire(storage, trial_id, reason):
            return False
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    retry = storage.get_heartbeat_stale_trial_callback() or optuna.storages.RetryHeartbeatStaleTrialCallback()
    retry(study, storage.get_trial(trial_id))
    return True


def interrupted_runs(study: optuna.Study) -> int:
    """How many runs' latest trial failed without a final reason (Ctrl-C, a reclaimed worker, out of memory): to run again."""
    return sum(t.state == TrialState.FAIL and not is_final(t) for t in latest_by_key(study.get_trials(deepcopy=False)).values())


# --- the queue ---------------------------------------------------------------------------------------


SINCE_ATTR = "search_since"  # study attribute: the first trial number of the search now running


def mark_search_start(study: optuna.Study) -> None:
    """Note where the search now starting begins, for :func:`settled` in every process working on it."""
    study.set_user_attr(SINCE_ATTR, _next_number(study))


def _next_number(study: optuna.Study) -> int:
    return max((t.number + 1 for t in study.get_trials(deepcopy=False)), default=0)


def settled(trial, since: int) -> bool:
    """Final, or failed from trial number ``since`` on by a cause that may pass (``retry``: out of
    memory): the next search retries that one, this one does not try it again and again."""
    retry_later = trial.state == TrialState.FAIL and trial.user_attrs.get("retry") and trial.number >= since
    return is_final(trial) or bool(retry_later)


def top_up(study: optuna.Study, keys: list[Key], since: int | None = None, stage: str | None = None) -> int:
    """Queue every key of ``keys`` whose latest run is neither settled (:func:`settled`, counting
    from trial ``since``), running nor waiting; how many.

    Also closes queued runs of ``stage`` (default: every stage of ``keys``) that are not ``keys``
    (left by a search resumed with another ``--confirm`` or ``--curves``), so no worker takes them.
    A plan holding a later stage's runs (the confirm stage queues the curves' baseline) names its
    own stage, so it never closes what a process already in that later stage queued.
    """
    since = math.inf if since is None else since
    wanted = set(keys)
    stages = {stage} if stage else {k[0] for k in keys}
    with study_lock(study):
        latest = latest_by_key(study.get_trials(deepcopy=False))
        for key, t in latest.items():
            if t.state == TrialState.WAITING and key[0] in stages and key not in wanted:
                retire(study._storage, t._trial_id, "queued by another plan of its stage")
        missing = [k for k in keys if k not in latest
                   or not (settled(latest[k], since) or latest[k].state in (TrialState.WAITING, TrialState.RUNNING))]
        for key in missing:
            study.enqueue_trial(key_params(key))
    return len(missing)


def take(study: optuna.Study, keys: list[Key]) -> optuna.Trial | None:
    """A queued run of ``keys``, now RUNNING and this worker's; None when none is waiting.

    Runs are taken in the plan's order, not the queue's: a run queued again (its worker died) comes
    before the plan's later runs, so a seed cut short is completed before new seeds are begun.
    """
    storage = study._storage
    rank = {k: i for i, k in enumerate(keys)}
    waiting = [(rank[k], t) for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
               if (k := key_of(t)) in rank]
    for _, t in sorted(waiting, key=lambda rt: (rt[0], rt[1].number)):
        try:
            if not storage.set_trial_state_values(t._trial_id, TrialState.RUNNING):
                continue  # another worker took it first
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        storage.record_heartbeat(t._trial_id)
        trial = optuna.Trial(study, t._trial_id)
        try:
            trial.set_user_attr("worker", worker_id())
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # this process stalled past the grace period and another reclaimed the run: it is queued again
        return trial
    return None


@contextlib.contextmanager
def heartbeat(study: optuna.Study, trial_id: int) -> Iterator[None]:
    """Record the run's heartbeat every interval while it runs (a daemon thread)."""
    storage = study._storage
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(storage.get_heartbeat_interval() or 10):
            with contextlib.suppress(Exception):  # a database hiccup: the next beat tries again
                storage.record_heartbeat(trial_id)

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def run_trial(study: optuna.Study, trial: optuna.Trial, objective: Callable[[optuna.Trial], float],
              catch: tuple[type[Exception], ...]) -> optuna.trial.FrozenTrial | None:
    """Run ``objective`` on a taken trial and tell the study how it ended.

    A run reclaimed meanwhile (this worker stalled past the grace period and was presumed dead) is
    left as it is, and None returned: its retry decides, and the worker goes on to the next run.
    """
    with heartbeat(study, trial._trial_id):
        try:
            value = objective(trial)
        except optuna.exceptions.UpdateFinishedTrialError:  # the run's first write after it was reclaimed
            return None
        except optuna.TrialPruned:
            return study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
        except catch:
            return study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        except BaseException:  # Ctrl-C or a bug: recorded as failed (retried), then it goes on up
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            raise
    return study.tell(trial, value, skip_if_finished=True)


def work_stage(study: optuna.Study, keys: list[Key], objective: Callable[[optuna.Trial], float], *,
               catch: tuple[type[Exception], ...] = (), on_trial: Callable[[], None] | None = None,
               poll: float = POLL, stage: str | None = None) -> int:
    """Take and run the stage's queued runs until every key's latest run is settled; how many ran here.
    ``stage``: the stage the plan is (:func:`top_up`)."""
    ran = 0
    # From the search's start (its workers read the same mark), else from this stage's: an out-of-memory
    # run is tried once per search however many processes work on it.
    since = study.user_attrs.get(SINCE_ATTR)
    if since is None:  # read every trial only where no search marked its start (the fidelity benchmark)
        since = _next_number(study)
    top_up(study, keys, since, stage)
    while True:
        reclaim(study)
        trial = take(study, keys)
        if trial is not None:
            if run_trial(study, trial, objective, catch) is not None:
                ran += 1
                if on_trial:
                    on_trial()
            continue
        latest = latest_by_key(study.get_trials(deepcopy=False))
        if all(k in latest and settled(latest[k], since) for k in keys):
            return ran
        if not top_up(study, keys, since, stage):  # the rest are running elsewhere
            time.sleep(poll)
