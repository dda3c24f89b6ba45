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
# Processes a search at the default or long preset runs on a CPU of two or more cores unless told
# otherwise: a proxy this small uses a second thread poorly, so two processes of one thread train
# more runs an hour than one of two (README's job: 12 min 54 s against 16 min 14 s on this project's
# 2-core machine, 2026-11-27; docs/distributed.md). Not at --preset smoke, whose runs take less time
# than a worker's start. More than two on more cores was not measured.
CPU_WORKERS = 2
CPU_PRESETS = ("default", "long")


def default_workers(preset: str, device: str, backend: str) -> int:
    """Worker processes when ``--workers`` is not given, with Optuna's backend (Ray places its own
    trials): GPU_WORKERS for the gpu preset on a GPU, CPU_WORKERS for the CPU presets on a CPU with
    that many cores, else 1."""
    if backend != "optuna":
        return 1
    if device.startswith("cuda"):
        return GPU_WORKERS if preset == "gpu" else 1
    if device == "cpu" and preset in CPU_PRESETS and cpu_count() >= CPU_WORKERS:
        return CPU_WORKERS
    return 1


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
