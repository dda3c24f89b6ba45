"""`scaler search --backend ray`: the same grid through Ray Tune, recorded into the same study.

One search end to end through the CLI (a private local Ray on 127.0.0.1, all its files in the run
folder), then the same command again, which must resume and run nothing; and how Tune's error
callback records a worker Ray killed for memory (without starting Ray).
"""

import json

import optuna
import pandas as pd
import pytest
from conftest import SMOKE_SEARCH, run_cli

from scaler.run_folder import RunFolder
from scaler.study import key_distributions, keys_to_run, stage_keys

SMOKE = SMOKE_SEARCH


@pytest.mark.slow
def test_ray_search_end_to_end_and_resume(tmp_path):
    out = tmp_path / "run"
    args = ["search", "--baseline", "resnet18", "--budget", "2x", "--out", str(out), *SMOKE, "--backend", "ray"]
    result = run_cli(*args, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "chosen: alpha=" in result.stdout and "[1/" in result.stdout

    table = pd.read_csv(out / "trials.csv")
    assert {"width", "compound"} == set(table.kind)  # depth and resolution: dropped on the smoke proxy's cost
    assert (table.proxy_beta != table.beta).any()  # some proxies matched apart: the Ray job trains those too
    assert (table.state == "COMPLETE").all() and table.accuracy_mean.between(0, 1).all()
    winner = json.loads((out / "coefficients.json").read_text())
    best = table.sort_values("accuracy_mean").iloc[-1]
    assert (winner["alpha"], winner["beta"], winner["gamma"]) == (best.alpha, best.beta, best.gamma)

    # Recorded as the Optuna backend records a trial: params, distributions, value, epochs, attributes.
    study = optuna.load_study(study_name=RunFolder(out).study_name(), storage=f"sqlite:///{out / 'study.db'}")
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert sorted((t.params["point"], t.params["seed"]) for t in trials) == [(p, 0) for p in range(len(table))]
    for t in trials:
        assert t.distributions == key_distributions() and t.params["stage"] == "screen"
        assert t.value == t.user_attrs["val_accuracies"][-1] == list(t.intermediate_values.values())[-1]
        assert {"kind", "alpha", "macs", "seconds", "images_seen", "images_per_s", "params", "seed"} <= set(t.user_attrs)
    assert keys_to_run(study, stage_keys("screen", list(range(len(table))), 1)) == []  # a resume runs nothing

    # Ray's temp folder (sockets, logs) and Tune's results stay inside the run folder.
    assert list((out / "ray" / "tmp").glob("session_2*/sockets"))
    assert list((out / "ray" / "results").glob("search-*/screen-p0-s0"))
    assert (out / "ray" / "home" / "ray_bootstrap_config.yaml").read_text().startswith("provider:")

    again = run_cli(*args, timeout=300)
    assert again.returncode == 0, again.stderr[-4000:]
    assert "0 to run" in again.stdout  # resumed, nothing retrained


@pytest.mark.slow
def test_ray_runs_every_stage_and_the_optuna_backend_resumes_it(tmp_path):
    out = tmp_path / "run"
    args = ["search", "--baseline", "resnet18", "--budget", "2x", "--out", str(out), "--preset", "smoke",
            "--data", "synthetic:size=16,images=400,classes=4", "--no-family", "--no-report", "--device", "cpu",
            "--confirm", "1"]
    result = run_cli(*args, "--backend", "ray", timeout=400)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert set(pd.read_csv(out / "trials.csv").stage) == {"screen", "confirm"}
    assert json.loads((out / "coefficients.json").read_text())["stage"] == "confirm"
    assert (pd.read_csv(out / "curves.csv").state == "COMPLETE").all()
    again = run_cli(*args, timeout=300)  # the Optuna backend finds every stage done
    assert again.returncode == 0 and again.stdout.count(", 0 to run") == 3


# What Ray writes when its memory monitor kills a trial's worker (the actor died, its worker's exit
# type NODE_OUT_OF_MEMORY with the monitor's detail), beside an ordinary error in the training code.
MEMORY_KILL = """Failure # 1 (occurred at 2026-11-26_23-59-00)
ray.exceptions.ActorDiedError: The actor died unexpectedly before finishing this task.
\tclass_name: ImplicitFunc
The actor is dead because its worker process has died. Worker exit type: NODE_OUT_OF_MEMORY Worker exit detail: Task was killed due to the node running low on memory.
Memory on the node (IP: 127.0.0.1, ID: 3a4b6075) was 23.10GB used / 24.00GB limit (0.962500)
"""
CODE_ERROR = """Failure # 1 (occurred at 2026-11-26_23-59-00)
Traceback (most recent call last):
ValueError: expected 4D input (got 3D input)
"""


def test_a_worker_killed_for_memory_is_recorded_to_be_tried_again(tmp_path):
    """Ray's memory monitor kills a worker when the node runs short, perhaps because of other
    processes: Tune's error callback records a failure the next search trains again, like an
    out-of-memory error in training; an error in the code is final. No Ray is started."""
    from types import SimpleNamespace

    from scaler.objective import RETRY_NOTE, Planned
    from scaler.progress import Progress
    from scaler.ray_backend import _Recorder, _tune_callback
    from scaler.scaling import Coefficients
    from scaler.search_space import Candidate

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}", direction="maximize")
    cand = Candidate("depth", Coefficients(2, 1, 1), 2.0, 2.0, 1_000_000, 1, 1, 224)
    keys = [("screen", 0, 0), ("screen", 0, 1)]
    recorder = _Recorder(study, {k: Planned(cand, {"epochs": 1}, "depth") for k in keys}, 100, Progress(2, 2, lambda line: None),
                         None)
    callback = _tune_callback(recorder, None)
    for n, (key, text) in enumerate(zip(keys, (MEMORY_KILL, CODE_ERROR), strict=True)):
        (tmp_path / f"error{n}.txt").write_text(text)
        trial = SimpleNamespace(config={"key": list(key)}, last_result={}, trial_id=f"t{n}", error_file=str(tmp_path / f"error{n}.txt"))
        callback.on_trial_error(0, [], trial)
    killed, broken = study.get_trials()
    assert killed.state == broken.state == optuna.trial.TrialState.FAIL
    assert killed.user_attrs["retry"] and killed.user_attrs["reason"] == (
        "Ray killed the worker, the node running low on memory: Memory on the node (IP: 127.0.0.1, ID: 3a4b6075) "
        "was 23.10GB used / 24.00GB limit (0.962500)" + RETRY_NOTE)
    assert not broken.user_attrs["retry"] and broken.user_attrs["reason"] == "ValueError: expected 4D input (got 3D input)"


def test_a_local_rays_processes_sleep_while_they_wait_unless_the_user_chose(monkeypatch):
    """The trials share the machine by design; the search's own process keeps OpenMP's default, so
    the local cluster's environment carries the policy (scaler.cli.shares_the_machine)."""
    from scaler.ray_backend import _local_env

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert _local_env()["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert _local_env()["OMP_WAIT_POLICY"] == "ACTIVE"
