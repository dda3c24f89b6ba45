"""Ray Tune backend for ``scaler search --backend ray``: the same grid and objective, run by Tune.

For each stage, :class:`scaler.stage_runner.StageRunner` hands :func:`run_jobs` the opened
Optuna study, the stage's plan and its keys still to run (stage, point, seed); it

1. runs them as one Tune experiment, ``tune.grid_search`` over the keys, each a function trainable
   that calls :func:`scaler.objective.evaluate_point` unchanged and ``tune.report``\\ s every validated epoch;
2. records every finished run into the study (``optuna.trial.create_trial`` + ``study.add_trial``)
   with the params, distributions, value, intermediate values and user attributes that the Optuna
   backend's objective sets, so ``trials.csv``, ``coefficients.json``, resume, family and report
   cannot tell the backends apart. Runs are recorded as they finish, from a Tune callback in the
   driver, so killing the search loses only the runs in flight, as with the Optuna backend;
3. returns Tune's results as a pandas DataFrame (one row per Tune trial, with its key).

Without an address it starts a private local Ray whose files all live in the run folder, under
``ray/``: ``home/`` (the HOME its processes see), ``tmp/`` (Ray's temp folder: sockets, logs) and
``results/`` (Tune's storage). With an address (``ray start --head`` on a cluster) it connects.

Note:
    Network. Ray's dashboard looks for ``~/ray_bootstrap_config.yaml`` and, when it is missing,
    asks the cloud metadata address (169.254.169.254) which cloud it runs on; and a Linux Ray
    finds its node address by a UDP ``connect`` to 8.8.8.8, even when told 127.0.0.1. A local Ray
    here does neither: its processes get a HOME holding a bootstrap config with
    ``provider: {type: local}``, and ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (read by Ray at
    import) makes it use the loopback address; usage statistics are off. Every socket it opens
    is then on 127.0.0.1, a unix socket, or netlink (checked with ``strace -f -e trace=connect``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import optuna
import pandas as pd

from scaler.errors import UsageError
from scaler.objective import RESULT_ATTRS, RETRY_NOTE, Planned, evaluate_point, make_job
from scaler.progress import Progress
from scaler.proxy import dataset
from scaler.run_folder import RunFolder
from scaler.study import Key, key_distributions, key_params
from scaler.train import TrainingFailed

RAY_FOLDER = "ray"  # inside the run folder
BOOTSTRAP = "provider:\n  type: local\n"  # ~/ray_bootstrap_config.yaml of a local Ray
# Environment of a local Ray's processes (they inherit the driver's at ray.init).
LOCAL_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # node address = 127.0.0.1, no probe of 8.8.8.8
    "RAY_USAGE_STATS_ENABLED": "0",
}


def _local_env() -> dict[str, str]:
    """LOCAL_ENV, and OpenMP threads that sleep while they wait (unless the user set a policy): the
    trials share the machine by design (scaler.cli.shares_the_machine). This module imports torch
    (scaler.train), so the driver's own OpenMP has read its policy already: this reaches Ray's processes only."""
    return {**LOCAL_ENV, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}


# The CLI prints its own progress; Tune's new console output ignores verbose=0.
DRIVER_ENV = {"RAY_AIR_NEW_OUTPUT": "0"}
# Unix socket paths hold at most 107 bytes; Ray puts its sockets at
# <temp>/session_<date>_<time>_<micros>_<pid>/sockets/plasma_store (temp + about 62 bytes).
SOCKET_PATH_MAX = 107
SESSION_SOCKET_SUFFIX = 64
MAX_FAILURES = 2  # a trial whose Ray worker or node died is run again this many times


# --- the trainable: runs in Ray's worker processes -------------------------------------------------


def _trainable(config: dict, context: dict) -> None:
    """One proxy run of the key ``config["key"]`` (stage, point, seed); ``context`` is what all runs share."""
    from ray import tune  # here, not at the top: `import ray` takes seconds and most searches never need it

    stage, point, seed = config["key"]
    # Tune starts a trial in its own results folder; relative data paths and a user's
    # `module:function` baseline are meant from where `scaler search` was started.
    if context["cwd"] and os.path.isdir(context["cwd"]):
        os.chdir(context["cwd"])
        if context["cwd"] not in sys.path:
            sys.path.insert(0, context["cwd"])
    if context["home"]:
        os.environ["HOME"] = context["home"]  # the user's, for `~` in data paths and caches
    from scaler.devices import set_threads

    set_threads(context["threads"])  # the trial's cpu resource, never more: two trials must not fight over a core
    job = context["jobs"][f"{stage}/{point}/{seed}"]
    epochs: list[int] = []
    accuracies: list[float] = []

    def on_epoch(epoch: int, accuracy: float) -> None:
        epochs.append(epoch)
        accuracies.append(accuracy)
        tune.report({"epoch": epoch, "val_accuracy": accuracy})

    try:
        result = evaluate_point(job, on_epoch)
    except TrainingFailed as exc:
        tune.report({"failed": str(exc) or type(exc).__name__, "retry": exc.retry})
        return
    tune.report({
        # the last epoch again: a scheduler insists on its metric in every result
        "epoch": epochs[-1] if epochs else 0, "val_accuracy": result["accuracy"],
        "accuracy": result["accuracy"], "val_epochs": epochs, "val_accuracies": accuracies,
        **{k: result[k] for k in (*RESULT_ATTRS, "resolution")},
        "train_seed": result["seed"],  # "seed" in Tune's table is the key's seed index, as in the study
        "node": _node(),
    })


def _node() -> str:
    """Which Ray node ran this: its address and the start of its id (two nodes may share an address)."""
    import ray

    return f"{ray.util.get_node_ip_address()}/{ray.get_runtime_context().get_node_id()[:8]}"


# --- starting Ray ----------------------------------------------------------------------------------


def _short_temp_dir(target: Path) -> tuple[str, Path | None]:
    """Ray's temp folder ``target``, or a short link to it when its socket paths would be too long.

    The files stay in ``target`` (inside the run folder); only the path Ray is given is short: a
    symlink in the system's temp folder, removed when Ray stops.
    """
    target.mkdir(parents=True, exist_ok=True)
    if len(str(target)) + SESSION_SOCKET_SUFFIX <= SOCKET_PATH_MAX:
        return str(target), None
    link = Path(tempfile.mkdtemp(prefix="scaler-ray-")) / "t"
    link.symlink_to(target, target_is_directory=True)
    if len(str(link)) + SESSION_SOCKET_SUFFIX > SOCKET_PATH_MAX:
        link.unlink()
        link.parent.rmdir()
        raise UsageError(f"the system's temp folder {tempfile.gettempdir()!r} is too deep for Ray's sockets; set TMPDIR=/tmp")
    return str(link), link


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def check_address(address: str, timeout: float = 5.0) -> None:
    """Refuse, in one line, an address scaler cannot use: Ray Client's ``ray://``, or one nothing answers at."""
    if address == "auto":
        return
    if "://" in address:
        raise UsageError(f"--ray-address {address!r}: Ray Client (ray://) is not supported, as Tune's callbacks must run "
                         "on the cluster; run scaler search on one of its nodes with --ray-address HOST:PORT (the head's GCS port)")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--ray-address must be HOST:PORT (the head node's GCS port, 6379 by default), got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise UsageError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def ray_session(run: RunFolder, address: str | None = None) -> Iterator[None]:
    """Connect to ``address``, or start a private local Ray with its files in the run folder; always shut it down."""
    folder = run.record(run.path / RAY_FOLDER).resolve()
    home = folder / "home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "ray_bootstrap_config.yaml").write_text(BOOTSTRAP)
    link = None
    # HOME and LOCAL_ENV are read by Ray at import and by its processes at start; they are the
    # user's again once Ray stops.
    with _environ({"HOME": str(home), **DRIVER_ENV, **({} if address else _local_env())}):
        import logging

        import ray

        try:
            if address:
                check_address(address)
                try:
                    ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
                except Exception as exc:  # a port that answers but is no Ray head, another Ray version
                    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    raise UsageError(f"cannot connect to the Ray cluster at {address}: {type(exc).__name__}: {reason}") from None
            else:
                temp, link = _short_temp_dir(folder / "tmp")
                ray.init(
                    _node_ip_address="127.0.0.1", include_dashboard=False, _temp_dir=temp,
                    log_to_driver=False, logging_level=logging.WARNING,
                )
            yield
        finally:
            ray.shutdown()
            if link is not None:
                link.unlink(missing_ok=True)
                link.parent.rmdir()


# --- the driver --------------------------------------------------------------------------------------


class _Recorder:
    """Turns finished Tune trials into Optuna trials, and logs progress as the Optuna backend does."""

    def __init__(self, study, plan: dict[Key, Planned], images_per_epoch: int, progress: Progress, on_record) -> None:
        self.study, self.plan, self.images_per_epoch = study, plan, images_per_epoch
        self.progress, self.on_record = progress, on_record
        self.labels: dict[str, str] = {}
        self.recorded: set[Key] = set()
        self.epochs: dict[str, dict[int, float]] = {}  # trial -> {epoch: val accuracy}

    def label(self, key: Key) -> str:
        return self.progress.label(self.plan[key].label, key)

    def start(self, tid: str, key: Key) -> None:
        if tid not in self.labels:  # a trial a scheduler paused starts again
            self.labels[tid] = self.label(key)
            self.epochs[tid] = {}

    def epoch(self, tid: str, result: dict) -> None:
        if "val_accuracy" in result and "accuracy" not in result:  # not the closing report
            self.epochs[tid][result["epoch"]] = result["val_accuracy"]
            self.progress.epoch(self.labels[tid], result["epoch"], result["val_accuracy"])

    def record(self, key: Key, result: dict, error: str | None = None, tid: str | None = None,
               stopped_by: str | None = None, retry: bool = False) -> None:
        """Add one finished run to the study: COMPLETE, PRUNED (stopped by the scheduler) or FAIL.

        ``retry``: the failure may pass on another try (Ray killed the worker for memory), as
        ``TrainingFailed.retry`` is for a failure inside training.
        """
        label = self.labels.get(tid) or self.label(key)
        # Intermediate values keyed by the epoch number train() passes to on_epoch, as trial.report does.
        if "val_accuracies" in result:
            intermediate = dict(zip(result["val_epochs"], result["val_accuracies"]))
        else:
            intermediate = dict(self.epochs.get(tid, {}))
        accuracies = list(intermediate.values())
        planned = self.plan[key]
        user_attrs = {**planned.attrs(key[0]), "val_accuracies": accuracies}
        if accuracies:
            user_attrs["images_seen"] = len(accuracies) * self.images_per_epoch  # kept if pruned or failed
        value = None
        if error is None and "accuracy" in result:
            state, value = optuna.trial.TrialState.COMPLETE, result["accuracy"]
            user_attrs.update({k: result[k] for k in RESULT_ATTRS})
            user_attrs["seed"] = result["train_seed"]
            user_attrs["input_px_proxy"] = result.get("resolution")
            user_attrs["node"] = result.get("node")
        elif error is None and "failed" not in result and stopped_by:
            state = optuna.trial.TrialState.PRUNED
            last = f" (val {accuracies[-1]:.1%})" if accuracies else ""
            user_attrs["reason"] = f"pruned at epoch {len(accuracies)}{last} by {stopped_by}"
        else:
            state = optuna.trial.TrialState.FAIL
            user_attrs["reason"] = result.get("failed") or error or "the run ended without a result"
            user_attrs["retry"] = bool(result.get("retry")) or retry
            if user_attrs["retry"]:
                user_attrs["reason"] += RETRY_NOTE
        trial = optuna.trial.create_trial(
            state=state, value=value, params=key_params(key), distributions=key_distributions(),
            user_attrs=user_attrs, intermediate_values=intermediate,
        )
        self.study.add_trial(trial)
        self.recorded.add(key)
        if state == optuna.trial.TrialState.COMPLETE:
            self.progress.done(label, planned.cand.kind, value, result["seconds"])
        else:
            self.progress.failed(label, state.name, user_attrs["reason"])
        if self.on_record:
            self.on_record()


def _tune_callback(recorder: _Recorder, stopped_by: str | None):
    from ray import tune

    class Recorder(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            recorder.start(trial.trial_id, tuple(trial.config["key"]))

        def on_trial_result(self, iteration, trials, trial, result, **info):
            recorder.epoch(trial.trial_id, result)

        def on_trial_complete(self, iteration, trials, trial, **info):
            recorder.record(tuple(trial.config["key"]), trial.last_result or {}, tid=trial.trial_id, stopped_by=stopped_by)

        def on_trial_recover(self, iteration, trials, trial, **info):
            recorder.progress.log(f"{recorder.labels.get(trial.trial_id, trial.trial_id)}  retried: its Ray worker or node was lost")

        def on_trial_error(self, iteration, trials, trial, **info):
            text = _error_text(trial)
            killed = _killed_for_memory(text)
            recorder.record(tuple(trial.config["key"]), trial.last_result or {}, error=_error_line(text, killed),
                            tid=trial.trial_id, retry=killed)

    return Recorder()


def _error_text(trial) -> str:
    """What Tune wrote of a trial's error, "" if nothing."""
    if trial.error_file and os.path.isfile(trial.error_file):  # written by the driver just before the callback
        return Path(trial.error_file).read_text(errors="replace")
    return ""


def _killed_for_memory(text: str) -> bool:
    """Whether Ray's memory monitor killed the trial's worker: the node was short of memory, which
    other processes may have held, so the next search tries the run again."""
    return any(sign in text for sign in ("running low on memory", "NODE_OUT_OF_MEMORY", "ray.exceptions.OutOfMemoryError"))


def _error_line(text: str, killed_for_memory: bool = False) -> str:
    """One line saying why a Tune trial errored: the traceback's last line, or why its worker died
    (``killed_for_memory``: said first, when Ray's memory monitor killed it)."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("Failure #")]
    if not lines:
        return "the Ray worker failed"
    line = lines[-1].split(" Some common causes")[0]  # Ray's "the worker died" explains itself at length
    if killed_for_memory and "low on memory" not in line:  # the monitor's numbers come last
        line = f"Ray killed the worker, the node running low on memory: {line}"
    return line if len(line) <= 300 else line[:297] + "..."


def _scheduler(pruner: str, epochs: int):
    """Tune's counterpart of the Optuna pruner (same warm-up), or None."""
    from ray.tune.schedulers import ASHAScheduler, MedianStoppingRule

    if pruner == "median":
        return MedianStoppingRule(time_attr="epoch", metric="val_accuracy", mode="max",
                                  grace_period=1, min_samples_required=3), "median stopping rule"
    if pruner == "hyperband":
        # max_t one past the last epoch: ASHA stops a trial that reaches max_t, which would cut
        # off the run's closing report (its result) after the last epoch.
        return ASHAScheduler(time_attr="epoch", metric="val_accuracy", mode="max", max_t=max(1, epochs) + 1,
                             grace_period=1), "ASHA (hyperband)"
    return None, None


def run_jobs(study: optuna.Study, config, plan: dict[Key, Planned], todo: list[Key], run: RunFolder, *,
             progress: Progress, address: str | None = None, on_record: Callable[[], None] | None = None,
             resources: dict | None = None) -> pd.DataFrame:
    """Run the keys ``todo`` of ``plan`` through Ray Tune, record them in ``study``; Tune's results as a DataFrame.

    ``resources``: what each trial takes, e.g. ``{"cpu": 2, "gpu": 0.25}`` (a fraction of a GPU lets
    small proxies share one); default one CPU, and one GPU on a GPU device. A trial whose worker or
    node is lost is run again (up to :data:`MAX_FAILURES` times). Raises KeyboardInterrupt when Tune
    stopped before every run was recorded (Ctrl-C): the search must not write an answer from part
    of its grid.
    """
    data = dataset(config.data, config.recipe.get("seed", 0))
    recipe = next(iter(plan.values())).recipe
    recorder = _Recorder(study, plan, len(data.subset_indices(recipe.get("subset"))), progress, on_record)
    # Networks known to fail (their candidate carries the reason) are recorded without a run.
    for key in [k for k in todo if plan[k].cand.reason]:
        recorder.record(key, {"failed": plan[key].cand.reason})
    todo = [k for k in todo if not plan[k].cand.reason]
    if not todo:
        return pd.DataFrame(columns=["stage", "point", "seed"])

    cuda = str(config.device).startswith("cuda")
    resources = dict(resources or {"cpu": 1, "gpu": 1 if cuda else 0})
    on_worker = dataclasses.replace(config, device="cuda" if cuda else config.device)  # the GPU Ray gave the trial
    context = {
        "jobs": {"/".join(map(str, k)): make_job(on_worker, plan[k], k[2]) for k in todo},
        "cwd": os.getcwd(),
        "home": None if address else os.environ.get("HOME"),
        "threads": max(1, int(resources.get("cpu", 1))),
    }
    storage = (run.path / RAY_FOLDER / "results").resolve()
    with ray_session(run, address):
        from ray import tune

        scheduler, stopped_by = _scheduler(config.pruner, recipe.get("epochs", 1))
        trainable = tune.with_resources(tune.with_parameters(_trainable, context=context), resources)
        tuner = tune.Tuner(
            trainable,
            param_space={"key": tune.grid_search([list(k) for k in todo])},
            # reuse_actors: one worker process runs trial after trial, keeping torch and the data loaded.
            tune_config=tune.TuneConfig(scheduler=scheduler, reuse_actors=True,
                                        trial_dirname_creator=lambda t: "{}-p{}-s{}".format(*t.config["key"])),
            run_config=tune.RunConfig(
                name=f"search-{datetime.now():%Y%m%d-%H%M%S}", storage_path=str(storage), verbose=0,
                callbacks=[_tune_callback(recorder, stopped_by)],
                failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),  # a lost node's trial runs again
            ),
        )
        frame = tuner.fit().get_dataframe()
    missing = [k for k in todo if k not in recorder.recorded]
    if missing:  # Tune returns quietly on Ctrl-C; the runs it left are retried when the search resumes
        raise KeyboardInterrupt(f"Ray Tune stopped before {len(missing)} run(s) finished")
    if "config/key" in frame:
        for i, name in enumerate(("stage", "point", "seed")):
            frame.insert(i, name, [k[i] for k in frame["config/key"]])
    return frame
