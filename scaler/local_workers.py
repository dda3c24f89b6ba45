"""``scaler search --workers N``: N - 1 more worker processes on this machine, on the search's study.

Each is ``scaler worker`` (:func:`scaler.search.work`): it takes runs from the study's shared
queue (:mod:`scaler.run_queue`) beside the search, so each run is made once whichever process
takes it. The machine's CPUs are shared out: each process trains with its share of threads, never
more (OpenMP threads that find their core busy spin and collapse; docs/distributed.md). The
storage URL travels in the environment, not on the command line, where ``ps`` would show a password.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

STORAGE_ENV = "SCALER_STORAGE"  # `scaler worker`'s storage URL when --storage is not given
STOP_SECONDS = 30  # after the search, or after Ctrl-C, how long a worker may take to finish
# Processes a search at --preset gpu runs on a GPU unless told otherwise: on an H200 one resnet50
# proxy kept the GPU 13% busy and four at once gave 3.5x the images/s, each at most 7% slower than
# one alone (docs/fidelity.md, 2026-11-27). More was not measured.
GPU_WORKERS = 4


def default_workers(preset: str, device: str, backend: str) -> int:
    """Worker processes when ``--workers`` is not given: GPU_WORKERS for the gpu preset on a GPU
    with Optuna's backend (Ray shares a GPU by --trial-resources), else 1."""
    return GPU_WORKERS if preset == "gpu" and device.startswith("cuda") and backend == "optuna" else 1


def cpu_count() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def thread_share(processes: int) -> int:
    """Threads per process when ``processes`` share this machine's CPUs: at least 1."""
    return max(1, cpu_count() // max(1, processes))


@contextlib.contextmanager
def local_workers(count: int, storage: str, study: str, heartbeat: int, log: Callable[[str], None]) -> Iterator[list]:
    """Start ``count`` workers on ``study``; when the block ends, wait for them (they stop when the
    search is done), or on an error or Ctrl-C interrupt them, each by its PID."""
    if count <= 0:
        yield []
        return
    threads = thread_share(count + 1)  # this process is a worker too (scaler.search sets its own share)
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, STORAGE_ENV: storage, "OMP_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    command = [sys.executable, "-m", "scaler", "worker", "--study", study, "--heartbeat", str(heartbeat)]
    procs = [subprocess.Popen(command, env=env) for _ in range(count)]
    log(f"started {count} local worker(s) with {threads} thread(s) each (pids {', '.join(str(p.pid) for p in procs)})")
    try:
        yield procs
    except BaseException:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)  # each records its run as interrupted: a resume retries it
        _reap(procs)
        raise
    _reap(procs)


def _reap(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        try:
            p.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
