"""Many workers on one search's study: each run made exactly once, none lost, no password written.

A real PostgreSQL (Debian's ``postgresql``; initdb in a temporary folder, a unix socket there, no
TCP) holds the study; three workers take its runs and one is killed mid-run. The same with SQLite
and ``--workers 2``; and the heartbeat path (a worker on "another machine" goes silent) directly.
A two-node Ray cluster on 127.0.0.1 (``tests/ray_cluster.py``) runs a search on both nodes,
survives Ctrl-C (exit 130, resumable) and the loss of a node mid-run.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch
from conftest import ROOT, main_in_process, run_cli

from scaler import devices, run_queue, search
from scaler.run_folder import RunFolder
from scaler.run_queue import reclaim, take, top_up, work_stage, worker_id
from scaler.search import SearchConfig
from scaler.study import key_of, open_study

PASSWORD = "s3cret-pw"
# Runs of about a second each, so that a kill lands mid-run and three workers all get some.
def _work(seeds: int = 2, epochs: int = 3) -> list[str]:
    return ["--baseline", "resnet18", "--budget", "2x", "--preset", "smoke", "--data", "synthetic:size=16,images=600,classes=4",
            "--epochs", str(epochs), "--seeds", str(seeds), "--no-family", "--no-report", "--device", "cpu",
            "--confirm", "0", "--curves", "none", "--heartbeat", "1"]


WORK = _work()
POINTS = 7  # resnet18's grid at the smoke proxy: width and six compound points
KEYS = POINTS * 2  # x seeds


def _pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server of this test's own (trust auth, a unix socket in its folder); its URL."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql); .ci/run installs it")
    root = Path(tempfile.mkdtemp(prefix="scaler-pg-"))  # short: a unix socket path holds 107 bytes
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: the server runs as the postgres user
        root.chmod(0o755)
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    try:
        subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "scaler", "-N"],
                       check=True, capture_output=True, text=True, timeout=120)
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-t", "60",
                        "-o", f"-k {root} -h '' -c fsync=off -c max_connections=100", "start"],
                       check=True, capture_output=True, text=True, timeout=120)
    except (subprocess.SubprocessError, OSError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"PostgreSQL could not start: {exc}")
    try:  # trust auth ignores the password: it is there to prove it is never written
        yield f"postgresql://scaler:{PASSWORD}@/postgres?host={root}"
    finally:
        for storage in _STORAGES.values():
            storage.engine.dispose()
        _STORAGES.clear()
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


def _scaler(*args: str, env: dict | None = None) -> subprocess.Popen:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return subprocess.Popen([sys.executable, "-m", "scaler", *args], cwd=ROOT, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": path, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(condition, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


_STORAGES: dict[str, optuna.storages.RDBStorage] = {}


def _storage(url: str) -> optuna.storages.RDBStorage:
    """One storage (one connection pool) per URL for all the test's looks."""
    from scaler.study import driver_url

    if url not in _STORAGES:
        _STORAGES[url] = optuna.storages.RDBStorage(driver_url(url))
    return _STORAGES[url]


def _study_names(url: str) -> list[str]:
    try:
        return optuna.get_all_study_names(storage=_storage(url))
    except Exception:  # the tables do not exist yet
        return []


def _load(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=_storage(url))


def _check_exactly_once(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Every run of the search complete exactly once, nothing left queued or running; the complete trials."""
    trials = study.get_trials(deepcopy=False)
    print("\n".join(f"{t.number} {t.state.name} {key_of(t)} {t.user_attrs.get('worker')} {t.user_attrs.get('reason')} "
                    f"{t.system_attrs.get('retry_history')} {t.datetime_start} {t.datetime_complete}" for t in trials))
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    per_key = Counter(key_of(t) for t in complete)
    assert len(per_key) == KEYS, f"lost runs: {KEYS - len(per_key)}"
    assert set(per_key.values()) == {1}, f"duplicates: {[k for k, n in per_key.items() if n > 1]}"
    assert not [t for t in trials if not t.state.is_finished()]
    return complete


@pytest.mark.slow
def test_three_workers_on_postgres_one_killed_each_run_once(postgres, tmp_path):
    out = tmp_path / "run"
    # Longer runs than WORK's: the victim must find a run left when it has started.
    search = _scaler("search", *_work(epochs=5), "--out", str(out), "--storage", postgres)
    name = _wait_for(lambda: next(iter(_study_names(postgres)), None), 120, "the search's study")
    assert name == RunFolder(out).study_name() and name.startswith("resnet18-2x-")
    # The survivor also writes the results when every run is done (--out), as the search does.
    def worker(*extra: str) -> subprocess.Popen:
        return _scaler("worker", "--study", name, "--heartbeat", "1", *extra, env={"SCALER_STORAGE": postgres})

    victim = worker()

    def victim_running():
        return [t for t in _load(postgres, name).get_trials(states=(optuna.trial.TrialState.RUNNING,))
                if f"/{victim.pid}/" in t.user_attrs.get("worker", "")]

    # The third worker starts once the victim holds a run: started together, the search and it could
    # make every run before the victim had started (seen once on a quiet machine).
    _wait_for(victim_running, 180, "the first worker to take a run")
    workers = [victim, worker("--out", str(tmp_path / "by-worker"), "--no-family", "--no-report")]
    victim.kill()  # SIGKILL mid-run: its run must be reclaimed and made once by another worker
    victim.wait()
    stdout, stderr = search.communicate(timeout=300)
    assert search.returncode == 0, stdout[-2000:] + stderr[-3000:]
    survivor_out, survivor_err = workers[1].communicate(timeout=120)
    assert workers[1].returncode == 0, survivor_err[-3000:]

    study = _load(postgres, name)
    complete = _check_exactly_once(study)
    killed = [t for t in study.trials if f"/{victim.pid}/" in t.user_attrs.get("worker", "")
              and t.state == optuna.trial.TrialState.FAIL]
    assert len(killed) == 1 and "stopped; retried" in killed[0].user_attrs["reason"]
    redone = [t for t in complete if key_of(t) == key_of(killed[0])]
    assert f"/{victim.pid}/" not in redone[0].user_attrs["worker"]  # another worker made the killed run
    assert f"study {name} in postgresql://scaler:***@/postgres" in stdout
    by_search, by_worker = (pd.read_csv(p / "trials.csv") for p in (out, tmp_path / "by-worker"))
    assert by_worker.accuracy_mean.tolist() == by_search.accuracy_mean.tolist() and len(by_search) == POINTS

    # The password is in no file, log line or message; status shows the study's progress.
    status = run_cli("status", "--storage", postgres)
    assert status.returncode == 0 and name in status.stdout
    text = "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())  # both run folders
    for where in (text, stdout, stderr, survivor_out, survivor_err, status.stdout, status.stderr):
        assert PASSWORD not in where

    # A second search (other seeds) in the same database: its own study, nothing counted as done;
    # its --fresh deletes its study only.
    other = ["search", *_work(seeds=1, epochs=1), "--out", str(tmp_path / "other"), "--storage", postgres]
    second = run_cli(*other, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"0 done before, {POINTS} to run" in second.stdout
    assert len(_study_names(postgres)) == 2
    fresh = run_cli(*other, "--fresh", timeout=300)
    assert fresh.returncode == 0 and f"0 done before, {POINTS} to run" in fresh.stdout
    assert name in _study_names(postgres) and len(_load(postgres, name).trials) == len(study.trials)


@pytest.mark.slow
def test_two_local_workers_on_sqlite_each_run_once(tmp_path):
    # Runs long enough that the spawned worker, which imports torch first, finds some left: at 3 epochs
    # the search's own worker once made all 14 before it had started (a loaded machine, 2026-11-26).
    out = tmp_path / "run"
    result = run_cli("search", *_work(epochs=9), "--out", str(out), "--workers", "2", timeout=400)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "started 1 local worker(s) with 1 thread(s) each" in result.stdout
    study = _load(f"sqlite:///{out / 'study.db'}", RunFolder(out).study_name())
    complete = _check_exactly_once(study)
    assert len({t.user_attrs["worker"] for t in complete}) == 2
    assert f"(trained {len(complete)} run(s) in" in result.stdout  # the search's count, its worker's runs included
    pid, made = re.search(r"worker (\d+): the search's runs are all done; (\d+) made here", result.stdout).groups()
    assert int(made) == sum(t.user_attrs["worker"].split("/")[1] == pid for t in complete) < len(complete)  # its own


def test_a_search_with_workers_trains_on_its_share_of_threads_then_hands_them_back(monkeypatch, tmp_path):
    # The family's latency is timed after the stages: with every core, as `scaler family` times it.
    seen = []
    monkeypatch.setattr(devices, "_THREADS_SET", True)  # this process's own count is the one it has now
    monkeypatch.setattr(search, "thread_share", lambda workers: 1)
    monkeypatch.setattr(search, "_run_search", lambda *args: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        search.run_search(SearchConfig(baseline="resnet18"), RunFolder(tmp_path / "run"), workers=2)
        assert seen == [1] and torch.get_num_threads() == 3
        search.run_search(SearchConfig(baseline="resnet18"), RunFolder(tmp_path / "run"), workers=1)
        assert seen == [1, 3] and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_a_stage_closes_its_own_stale_queued_runs_and_never_a_later_stages(tmp_path):
    # The confirm stage's plan holds the curves' baseline; a process still in it must not close the
    # curve runs that a process already in the curves stage has queued.
    study = open_study(SearchConfig(baseline="resnet18", storage=f"sqlite:///{tmp_path / 'study.db'}"), None, "s")
    confirm = [("confirm", 0, 0), ("curve", 1000, 0)]
    curves = [("curve", 1000, 0), ("curve", 2000, 0)]
    assert top_up(study, [("confirm", 5, 0)]) == 1  # a stale run of an earlier plan of the stage
    assert top_up(study, curves, stage="curve") == 2
    assert top_up(study, confirm, stage="confirm") == 1  # its own run; the baseline's is queued already
    waiting = {key_of(t) for t in study.get_trials(states=(optuna.trial.TrialState.WAITING,))}
    assert waiting == {("confirm", 0, 0), ("curve", 1000, 0), ("curve", 2000, 0)}  # ("confirm", 5) closed


def test_heartbeat_reclaims_a_silent_worker_and_never_a_live_one(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = open_study(SearchConfig(baseline="resnet18", storage=url), None, "s", heartbeat=1)
    keys = [("screen", 0, 0), ("screen", 1, 0)]
    assert top_up(study, keys) == 2 and top_up(study, keys) == 0  # queued once
    silent, live = take(study, keys), take(study, keys)
    assert take(study, keys) is None  # the queue is empty: nothing invented
    for trial in (silent, live):  # both on another machine: only their heartbeats speak for them
        trial.set_user_attr("worker", "elsewhere/1/1")
    end = time.monotonic() + 8  # past the grace period (6 heartbeats of 1 s)
    while time.monotonic() < end:
        study._storage.record_heartbeat(live._trial_id)
        time.sleep(0.5)
    reclaim(study)
    states = {t.number: t.state for t in study.trials}
    assert states[live.number] == optuna.trial.TrialState.RUNNING
    assert states[silent.number] == optuna.trial.TrialState.FAIL
    retry = take(study, keys)  # the silent worker's run, queued again once
    assert retry is not None and key_of(study.trials[retry.number]) == key_of(study.trials[silent.number])
    assert retry.user_attrs["worker"] == worker_id()
    assert take(study, keys) is None


def test_a_run_queued_again_is_taken_before_the_plans_later_runs(tmp_path):
    # The fidelity benchmark's reference is planned seed by seed: a run cut short by a stopped process
    # must complete its seed before the next seed begins, or every seed stays one run short for hours.
    study = open_study(SearchConfig(baseline="resnet18", storage=f"sqlite:///{tmp_path / 's.db'}"), None, "s", heartbeat=1)
    keys = [("confirm", p, s) for s in (0, 1) for p in (0, 1)]
    top_up(study, keys)
    first = take(study, keys)
    assert key_of(study.trials[first.number]) == ("confirm", 0, 0)
    _reclaimed_by_another(study, first._trial_id)  # queued again, behind the three runs queued before it
    order = [key_of(study.trials[take(study, keys).number]) for _ in range(4)]
    assert order == keys
    assert take(study, keys) is None


def _reclaimed_by_another(study, trial_id: int) -> None:
    """What another worker's reclaim does to the run of a worker it presumes dead: fail it, queue it again."""
    assert run_queue.requeue(study, trial_id, "its worker (unknown) stopped; retried")


# A worker stalled past the grace period on a loaded machine found its run reclaimed and ended with
# UpdateFinishedTrialError (`make test` on 2 cores, 2026-11-27); it now lets the run go and goes on.
def test_a_run_reclaimed_while_being_taken_is_let_go(tmp_path, monkeypatch):
    study = open_study(SearchConfig(baseline="resnet18", storage=f"sqlite:///{tmp_path / 's.db'}"), None, "s", heartbeat=1)
    keys = [("screen", 0, 0), ("screen", 1, 0)]
    top_up(study, keys)
    own_id = run_queue.worker_id

    def stalled_then_signed() -> str:  # the stall falls between taking the run and signing it
        if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)):
            (taken,) = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            _reclaimed_by_another(study, taken._trial_id)
        return own_id()

    monkeypatch.setattr(run_queue, "worker_id", stalled_then_signed)
    trial = take(study, keys)
    assert trial is not None and trial.user_attrs["worker"] == own_id()  # the next queued run, signed
    states = Counter(t.state for t in study.trials)
    assert states == {optuna.trial.TrialState.FAIL: 1, optuna.trial.TrialState.RUNNING: 1,
                      optuna.trial.TrialState.WAITING: 1}  # the reclaimed run is queued again


def test_a_run_reclaimed_mid_run_is_let_go_and_the_worker_goes_on(tmp_path):
    study = open_study(SearchConfig(baseline="resnet18", storage=f"sqlite:///{tmp_path / 's.db'}"), None, "s", heartbeat=1)
    keys = [("screen", 0, 0), ("screen", 1, 0)]
    stalls = []

    def objective(trial) -> float:
        if not stalls:  # the first run stalls and another worker reclaims it
            stalls.append(trial.number)
            _reclaimed_by_another(study, trial._trial_id)
        trial.set_user_attr("val_accuracies", [0.5])  # the run's next write, as each epoch writes
        return 0.5

    assert work_stage(study, keys, objective, poll=0.01) == 2  # the two keys' runs; the reclaimed one not counted
    trials = {t.number: t for t in study.trials}
    assert trials[stalls[0]].state == optuna.trial.TrialState.FAIL
    assert sorted(key_of(t) for t in trials.values() if t.state == optuna.trial.TrialState.COMPLETE) == sorted(keys)


def test_unreachable_storage_is_one_line_without_the_password(tmp_path, capsys):
    status, out, err = main_in_process(["search", "--baseline", "resnet18", "--out", str(tmp_path / "r"), "--preset", "smoke",
                                        "--data", "synthetic", "--storage", f"postgresql://scaler:{PASSWORD}@127.0.0.1:1/scaler"],
                                       capsys)
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert PASSWORD not in err + out and "scaler:***@127.0.0.1:1" in err
    assert not (tmp_path / "r" / "config.json").exists() or PASSWORD not in (tmp_path / "r" / "config.json").read_text()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ray_address_refused_in_one_line(tmp_path):
    from scaler.errors import UsageError
    from scaler.ray_backend import check_address

    with pytest.raises(UsageError, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:"):
        check_address(f"127.0.0.1:{_free_port()}")  # nothing listens there
    result = run_cli("search", "--baseline", "resnet18", "--out", str(tmp_path / "r"), "--preset", "smoke", "--data",
                     "synthetic", "--backend", "ray", "--ray-address", "ray://127.0.0.1:10001", timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Ray Client (ray://) is not supported" in result.stderr


@pytest.mark.slow
def test_ray_cluster_of_two_nodes_ctrl_c_resume_and_a_lost_node(tmp_path, monkeypatch):
    temp = Path(tempfile.mkdtemp(prefix="scaler-rc-"))  # short: Ray's socket paths hold 107 bytes
    (temp / "home").mkdir()
    (temp / "home" / "ray_bootstrap_config.yaml").write_text("provider:\n  type: local\n")  # no cloud metadata probe
    # The driver and the nodes use 127.0.0.1, and never probe 8.8.8.8 for an outward address.
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    cluster = subprocess.Popen([sys.executable, str(ROOT / "tests" / "ray_cluster.py"), str(temp / "ray")],
                               env={**os.environ, "HOME": str(temp / "home")}, stdout=subprocess.PIPE, text=True)
    try:
        address = cluster.stdout.readline().strip()
        assert address.startswith("127.0.0.1:"), "the test cluster did not start"
        out = tmp_path / "run"
        # 9 epochs: runs long enough that both nodes get some before the resumed search ends (at 3, on a loaded
        # machine, one node once made every run left while the other's worker was still importing torch).
        args = ["search", *_work(seeds=2, epochs=9), "--out", str(out), "--backend", "ray", "--ray-address", address,
                "--trial-resources", "cpu=1"]
        first = _scaler(*args)
        _wait_for(lambda: (out / "trials.csv").exists() and "COMPLETE" in (out / "trials.csv").read_text(), 240,
                  "a first run")
        first.send_signal(signal.SIGINT)  # Ctrl-C: the runs in flight are dropped, nothing is answered
        _, stderr = first.communicate(timeout=120)
        assert first.returncode == 130, stderr[-3000:]
        assert not (out / "coefficients.json").exists()

        # The resume; once both nodes have made runs, the second is lost mid-run: its trial runs again.
        def runs() -> list[str]:  # the node of each finished run
            table = pd.read_csv(out / "trials.csv")
            return [n for n in ";".join(table.nodes.fillna("")).split(";") if n]

        before = len(runs())
        again = _scaler(*args)
        # Both nodes busy: runs on both, and many still to make (both stay busy until the last few).
        def both_busy() -> bool:
            if again.poll() is not None:  # ended before both nodes had runs: say how, not just "timed out"
                stdout, stderr = again.communicate()
                raise AssertionError(f"the resumed search ended (status {again.returncode}) with runs on "
                                     f"{sorted(set(runs()))}:\n{stdout[-2000:]}{stderr[-2000:]}")
            return len(runs()) >= before + 2 and len(set(runs())) == 2

        _wait_for(both_busy, 240, "runs on both nodes")
        cluster.send_signal(signal.SIGUSR1)
        assert cluster.stdout.readline().strip() == "lost"
        stdout, stderr = again.communicate(timeout=300)
        assert again.returncode == 0, stdout[-2000:] + stderr[-3000:]
        assert "0 done before" not in stdout  # resumed
        table = pd.read_csv(out / "trials.csv")
        assert (table.state == "COMPLETE").all() and table.nodes.str.startswith("127.0.0.1/").all(), table.to_string()
        if "retried: its Ray worker or node was lost" not in stdout:
            # Everything above held; the node was lost between two of its runs, so no run needed a retry.
            pytest.skip("the second node was lost between runs this time: nothing in flight to retry")
    finally:
        cluster.terminate()  # the helper ends the node processes it started
        cluster.wait(timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def test_trial_resources_take_fractions_and_refuse_nonsense():
    from scaler.commands.search import parse_resources
    from scaler.errors import UsageError

    assert parse_resources("cpu=2,gpu=0.25", "cuda") == {"cpu": 2.0, "gpu": 0.25}  # four trials share a GPU
    assert parse_resources("cpu=0.5", "cpu") == {"cpu": 0.5, "gpu": 0.0}
    assert parse_resources("cpu=1", "cuda") == {"cpu": 1.0, "gpu": 1.0}
    for bad in ("cpu=-1", "tpu=1", "cpu=two", "cpu=0,gpu=0", "cpu=inf"):
        with pytest.raises(UsageError, match="trial-resources"):
            parse_resources(bad, "cpu")


def _open_at_once(url: str, monkeypatch, threads: int = 4) -> tuple[list[Exception], list[int]]:
    """``threads`` threads open the storage at ``url`` at one moment: the errors, and for each
    opening how many were inside Optuna's storage set-up at once (1: they took turns)."""
    import threading
    import time

    import scaler.study as study_module

    real, inside, overlaps, errors = optuna.storages.RDBStorage, [], [], []

    def slow(*args, **kwargs):  # widens the window in which a second opening would overlap
        inside.append(1)
        overlaps.append(len(inside))
        time.sleep(0.05)
        try:
            return real(*args, **kwargs)
        finally:
            inside.pop()

    start = threading.Barrier(threads)

    def open_one():
        start.wait()
        try:
            study_module.open_storage(url).engine.dispose()
        except Exception as exc:  # every failure is returned
            errors.append(exc)

    with monkeypatch.context() as patch:
        patch.setattr(optuna.storages, "RDBStorage", slow)
        running = [threading.Thread(target=open_one) for _ in range(threads)]
        for thread in running:
            thread.start()
        for thread in running:
            thread.join()
    return errors, overlaps


def test_a_new_sqlite_storage_opened_by_several_at_once_is_created_once(tmp_path, monkeypatch):
    # Optuna checks for its tables, then creates them: a second process opening the same new SQLite
    # file in between failed ("table ... already exists", or alembic's "UNIQUE constraint failed",
    # seen when a --join'ed benchmark process started beside the first). open_storage holds a lock
    # on the file's folder while it opens, so the openings take turns, and all succeed.
    for round_ in range(3):
        errors, overlaps = _open_at_once(f"sqlite:///{tmp_path / f'study{round_}.db'}", monkeypatch)
        assert errors == [] and len(overlaps) == 4 and max(overlaps) == 1  # never two openings at once
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study0.db", "study1.db", "study2.db"]  # no lock files left


def test_a_new_postgres_database_opened_by_several_at_once_is_created_once(postgres, monkeypatch):
    # The same race on PostgreSQL (workers on several machines started together on an empty
    # database): an advisory lock makes the openings take turns.
    import psycopg

    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute("create database racing")
    errors, overlaps = _open_at_once(postgres.replace("/postgres?", "/racing?"), monkeypatch)
    assert errors == [] and len(overlaps) == 4 and max(overlaps) == 1


def test_a_sqlite_storage_in_a_missing_folder_is_reported_not_created(tmp_path):
    import scaler.study as study_module

    with pytest.raises(Exception, match="unable to open database file"):
        study_module.open_storage(f"sqlite:///{tmp_path / 'missing' / 'study.db'}")
    assert not (tmp_path / "missing").exists()
