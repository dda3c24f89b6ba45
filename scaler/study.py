"""The study of a search: its storage, the queue of (stage, point, seed) runs, and recovery after a kill.

Every run still to make is queued as a trial with fixed params
(``enqueue_trial``) — one trial is one proxy training run, so a kill loses at most the run in
flight — in an RDB storage (SQLite in the run folder by default). Queuing the pairs, rather than
letting ``GridSampler`` pick them, keeps "each run is made once" true whatever recorded the earlier
trials (GridSampler assumes trial *n* is its grid cell *n*, which runs recorded by Ray break).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import warnings
from collections.abc import Iterator

import optuna

from scaler.errors import UsageError
from scaler.options import GRACE_FACTOR, HEARTBEAT
from scaler.run_folder import STUDY_NAME, RunFolder
from scaler.stages import STAGES


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.NopPruner()


def study_name(baseline: str, budget: str, identity: dict) -> str:
    """A search's study name: readable, and unique to its identity (baseline, budget, grid, data
    fingerprint, recipes, seeds: ``scaler.search.IDENTITY``), so one database holds many searches."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:10]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", baseline.rsplit("/", 1)[-1].removesuffix(".json"))
    return f"{stem}-{budget}-{digest}"


def open_study(config, run: RunFolder | None, name: str = STUDY_NAME, heartbeat: int = HEARTBEAT,
               create: bool = True) -> optuna.Study:
    """The study ``name`` in ``config.storage`` or the run folder's SQLite file; created if absent
    (unless ``create`` is false: then a missing study is a UsageError)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not config.storage:
        run.record(run.storage_file)
    url = config.storage or run.storage_url
    if not create:
        require_sqlite_file(url)
    try:
        storage = open_storage(url, heartbeat)
    except Exception as exc:  # a bad URL or an unreachable database; the message may hold the password too
        raise unreachable(url, exc) from None
    # Every trial is queued with its params fixed, so the sampler never samples; it is only named.
    sampler = optuna.samplers.RandomSampler(seed=0)
    if not create:
        try:
            return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=make_pruner(config.pruner))
        except KeyError:
            known = ", ".join(s.study_name for s in storage.get_all_studies()) or "none"
            raise UsageError(f"no study {name!r} in {redact_url(url)} (studies there: {known})") from None
    return optuna.create_study(
        study_name=name, storage=storage, sampler=sampler, pruner=make_pruner(config.pruner),
        direction="maximize", load_if_exists=True,
    )


def check_storage(url: str) -> None:
    """Connect to the storage at ``url`` once (creating Optuna's tables), or say in one line why not."""
    try:
        open_storage(url).engine.dispose()
    except Exception as exc:
        raise unreachable(url, exc) from None


def unreachable(url: str, exc: BaseException) -> UsageError:
    """The one line said when a storage cannot be opened, its password redacted from the URL and the error."""
    return UsageError(f"cannot open study storage {redact_url(url)}: {redact_error(exc, url)}")


def redact_error(exc: BaseException, url: str) -> str:
    """``Type: first line`` of an exception, with the URL's password (and the URL) hidden."""
    reason = str(exc).splitlines()[0] if str(exc) else ""
    reason = reason.replace(url, redact_url(url))
    password = _password(url)
    if password:
        reason = reason.replace(password, "***")
    return f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__


def _password(url: str) -> str | None:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).password
    except Exception:
        return None


def driver_url(url: str) -> str:
    """``postgresql://`` with the driver scaler installs (psycopg 3; SQLAlchemy's default is psycopg2)."""
    import importlib.util

    if url.startswith("postgresql://") and not importlib.util.find_spec("psycopg2") and importlib.util.find_spec("psycopg"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def delete_studies(url: str, names) -> None:
    """Delete the studies ``names`` (those missing are fine) from the storage at ``url``; a storage
    that fails is one line with the password redacted."""
    for name in names:
        try:
            optuna.delete_study(study_name=name, storage=driver_url(url))
        except KeyError:
            pass
        except Exception as exc:
            raise UsageError(f"cannot delete study {name!r} in {redact_url(url)}: {redact_error(exc, url)}") from None


def open_storage(url: str, heartbeat: int = HEARTBEAT) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats whose stale runs are queued again; on SQLite, serialisable.

    The password may be in the URL or where libpq looks (PGPASSWORD, ~/.pgpass).
    """
    url = driver_url(url)
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    with _creating(url), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(
            url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat, grace_period=heartbeat * GRACE_FACTOR,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(),
        )
    if storage.engine.name == "sqlite":
        _begin_immediate(storage.engine)
    return storage


@contextlib.contextmanager
def sqlite_lock(database: str | None) -> Iterator[None]:
    """An exclusive ``flock`` across processes, on the folder that holds the SQLite file ``database``.

    The folder, not the file: closing any descriptor of the file would drop the POSIX locks SQLite
    holds on it for this whole process (another thread's write included), and a lock file would be
    left beside the user's database. Not reentrant: hold one at a time. In-memory SQLite, or a
    folder that cannot be opened (left for SQLite to report), needs or gets no lock.
    """
    try:
        fd = os.open(os.path.dirname(os.path.abspath(database)), os.O_RDONLY | os.O_DIRECTORY) \
            if database and database != ":memory:" else None
    except OSError:
        fd = None
    if fd is None:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def _creating(url: str):
    """The lock under which a storage opens: Optuna checks that its tables (and alembic's version
    row) are missing, then creates them, so two processes opening one new database at once both
    tried, and one failed ("already exists", "UNIQUE constraint failed"). SQLite: the file's
    folder (:func:`sqlite_lock`); PostgreSQL: an advisory lock; others: none."""
    from sqlalchemy.engine import make_url

    if url.startswith("postgresql"):
        return _postgres_lock(url)
    return sqlite_lock(make_url(url).database if url.startswith("sqlite") else None)


@contextlib.contextmanager
def _postgres_lock(url: str) -> Iterator[None]:
    """:func:`postgres_lock` on a connection of its own, before the storage's engine exists."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with postgres_lock(engine, "scaler:open-storage"):
            yield
    finally:
        engine.dispose()


@contextlib.contextmanager
def postgres_lock(engine, name: str) -> Iterator[None]:
    """A session advisory lock named ``name`` on one of ``engine``'s connections: released at the
    end, or when the connection closes (its process dies)."""
    from sqlalchemy import text

    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)  # a bigint per name
    with engine.connect() as conn:
        conn.execute(text("select pg_advisory_lock(:k)"), {"k": key})
        try:
            yield
        finally:
            conn.execute(text("select pg_advisory_unlock(:k)"), {"k": key})


def _begin_immediate(engine) -> None:
    """Every SQLite transaction takes the write lock at its start (SQLAlchemy's pysqlite recipe).

    pysqlite begins a transaction only at its first write, so Optuna's "read WAITING, write RUNNING"
    would let two processes both take a run; with ``BEGIN IMMEDIATE`` the second waits and then
    reads RUNNING.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, record):
        dbapi_connection.isolation_level = None  # pysqlite's own BEGIN off; ours below

    @event.listens_for(engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before the listeners existed


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
    # A queued trial has only its fixed params; a taken one gains its params one suggest at a time.
    params = {**(getattr(trial, "system_attrs", None) or {}).get("fixed_params", {}), **trial.params}
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
            retire(study._storage, t._trial_id, "interrupted; retried")
            cut += 1
        elif t.state == optuna.trial.TrialState.FAIL and not is_final(t) and not t.user_attrs.get("retry"):
            cut += 1  # out of memory is not counted: a caller may not train it again (nas: its architecture failed)
    return cut


def is_final(trial) -> bool:
    """A run that needs no retry: complete, pruned, or failed with the reason scaler recorded.

    One failed by Optuna with no reason (Ctrl-C landing before the objective's handlers, or a
    bug), marked interrupted, or failed by a cause that may pass (``retry``: out of memory), is retried.
    """
    if trial.state == optuna.trial.TrialState.FAIL:
        attrs = trial.user_attrs
        return bool(attrs.get("reason")) and not attrs.get("interrupted") and not attrs.get("retry")
    return trial.state.is_finished()


def _final_runs(study: optuna.Study, keys: list[Key]) -> dict[Key, optuna.trial.FrozenTrial]:
    """Of ``keys``, those whose latest run is final, with that run."""
    latest = latest_by_key(study.get_trials(deepcopy=False))
    return {k: latest[k] for k in keys if k in latest and is_final(latest[k])}


def keys_to_run(study: optuna.Study, keys: list[Key]) -> list[Key]:
    """Of ``keys``, those whose latest run is not final (never run, waiting, interrupted)."""
    final = _final_runs(study, keys)
    return [k for k in keys if k not in final]


def finished_runs(study: optuna.Study, keys: list[Key]) -> tuple[int, int, tuple[float, str] | None]:
    """How many of ``keys`` have a final latest run, how many a running one, and the best complete
    one's (accuracy, kind)."""
    latest = latest_by_key(study.get_trials(deepcopy=False))
    runs = [latest[k] for k in keys if k in latest]
    final = [t for t in runs if is_final(t)]
    running = sum(t.state == optuna.trial.TrialState.RUNNING for t in runs)
    done = [(t.value, t.user_attrs.get("kind", "")) for t in final if t.state == optuna.trial.TrialState.COMPLETE]
    return len(final), running, max(done, default=None)


def retire(storage, trial_id: int, reason: str) -> bool:
    """Close a waiting or running trial as interrupted, with ``reason``: its key is to run again
    (:func:`is_final`). False when it was finished meanwhile by another process."""
    storage.set_trial_user_attr(trial_id, "interrupted", True)
    storage.set_trial_user_attr(trial_id, "reason", reason)
    return storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)


def retire_waiting(study: optuna.Study) -> None:
    """Close every queued run (left by a stage a kill cut short); their own stage queues them again."""
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
        retire(study._storage, t._trial_id, "queued by another stage; queued again")


def stage_keys(stage: str, points: list[int], seeds: int) -> list[Key]:
    """A stage's runs, seed-major: every point has one result before any gets its second."""
    return [(stage, p, s) for s in range(seeds) for p in points]



def redact_url(url: str) -> str:
    """A storage URL with its password hidden (``postgresql://user:***@host/db``)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: show nothing of it that could be a secret
        return "<unreadable storage URL>"


def require_sqlite_file(url: str) -> None:
    """A UsageError if ``url`` names a SQLite file that does not exist: a look or a worker must not create one."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return  # opening the storage says why
    if parsed.get_backend_name() == "sqlite" and parsed.database and not os.path.isfile(parsed.database):
        raise UsageError(f"no SQLite database at {parsed.database}")


def storage_status(url: str):
    """One row per study in the storage at ``url``: the search it holds and its runs by state."""
    import pandas as pd

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    require_sqlite_file(url)
    try:
        storage = optuna.storages.RDBStorage(driver_url(url))
        studies = storage.get_all_studies()
    except Exception as exc:
        raise unreachable(url, exc) from None
    rows = []
    for s in studies:
        search = s.user_attrs.get("search") or {}
        latest = latest_by_key(storage.get_all_trials(s._study_id, deepcopy=False))
        states = [t.state for t in latest.values()]
        running = [t for t in latest.values() if t.state == optuna.trial.TrialState.RUNNING]
        rows.append({
            "study": s.study_name, "baseline": search.get("baseline", ""), "budget": search.get("budget", ""),
            "runs": len(latest),
            **{name.lower(): states.count(getattr(optuna.trial.TrialState, name))
               for name in ("COMPLETE", "RUNNING", "WAITING", "FAIL", "PRUNED")},
            "workers": len({t.user_attrs.get("worker") for t in running}),
        })
    return pd.DataFrame(rows)
