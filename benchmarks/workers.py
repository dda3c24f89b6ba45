"""Workers on one study: the wall time of a smoke grid with 1 and 2 workers, and 3 workers with one killed.

1. ``scaler search ... --workers 1`` and ``--workers 2`` (SQLite in the run folder), each timed
   from start to exit: the ratio is what a second worker buys on this machine.
2. ``scaler search`` plus two ``scaler worker`` processes on one study; one worker is killed
   (SIGKILL) as soon as it holds a run. Counted from the study afterwards: runs made more than once
   (duplicates) and runs never made (lost); both must be 0.

    .venv/bin/python benchmarks/workers.py
    .venv/bin/python benchmarks/workers.py --storage postgresql://scaler@db/scaler  # part 2 on PostgreSQL
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]
GRID = ["--baseline", "resnet18", "--budget", "2x", "--preset", "smoke", "--data", "synthetic:size=16,images=600,classes=4",
        "--epochs", "3", "--seeds", "2", "--no-family", "--no-report", "--device", "cpu", "--confirm", "0",
        "--curves", "none", "--heartbeat", "1"]
RUNS = 12  # 6 grid points x 2 seeds


def scaler(*args: str, env: dict | None = None, quiet: bool = True) -> subprocess.Popen:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    out = subprocess.DEVNULL if quiet else None
    return subprocess.Popen([sys.executable, "-m", "scaler", *args], cwd=ROOT, stdout=out, stderr=out,
                            env={**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": path, **(env or {})})


def timed_search(workers: int, folder: Path) -> float:
    start = time.perf_counter()
    proc = scaler("search", *GRID, "--out", str(folder / f"w{workers}"), "--workers", str(workers))
    if proc.wait() != 0:
        raise SystemExit(f"the search with --workers {workers} failed")
    return time.perf_counter() - start


def killed_worker(folder: Path, storage: str | None) -> tuple[int, int, int]:
    """(runs complete, duplicates, lost) after a search and two workers, one killed mid-run."""
    from scaler.run_folder import RunFolder
    from scaler.study import driver_url

    out = folder / "kill"
    url = storage or f"sqlite:///{out / 'study.db'}"
    search = scaler("search", *GRID, "--out", str(out), *(["--storage", storage] if storage else []))
    name = None
    while name is None:
        time.sleep(0.5)
        name = RunFolder(out).study_name() if (out / "config.json").exists() else None
    db = optuna.storages.RDBStorage(driver_url(url))
    workers = [scaler("worker", "--study", name, "--heartbeat", "1", env={"SCALER_STORAGE": url}) for _ in range(2)]
    victim = workers[0]
    while True:
        study = optuna.load_study(study_name=name, storage=db)
        running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        if any(f"/{victim.pid}/" in t.user_attrs.get("worker", "") for t in running):
            break
        if search.poll() is not None:
            raise SystemExit("the search finished before the worker took a run; use a larger grid")
        time.sleep(0.2)
    victim.kill()
    victim.wait()
    if search.wait() != 0 or workers[1].wait() != 0:
        raise SystemExit("the search or the surviving worker failed")
    from scaler.study import key_of

    trials = optuna.load_study(study_name=name, storage=db).get_trials(deepcopy=False)
    made = Counter(key_of(t) for t in trials if t.state == optuna.trial.TrialState.COMPLETE)
    return sum(made.values()), sum(n - 1 for n in made.values()), RUNS - len(made)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", help="a database for part 2 (default: SQLite in the run folder)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="scaler-workers-"))
    try:
        load = os.getloadavg()[0]
        one = timed_search(1, folder)
        two = timed_search(2, folder)
        print(f"smoke grid ({RUNS} runs): 1 worker {one:.0f} s, 2 workers {two:.0f} s, ratio {two / one:.2f} "
              f"(load average {load:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)", flush=True)
        complete, duplicates, lost = killed_worker(folder, args.storage)
        print(f"3 workers, one killed mid-run: {complete} runs complete, duplicates: {duplicates}, lost: {lost}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
