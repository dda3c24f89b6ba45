"""The device a command runs on: ``auto`` (a GPU when one is present), ``cpu``, ``cuda[:N]``, and its numerics."""

from __future__ import annotations

import contextlib
import os

import torch

from scaler.errors import UsageError
from scaler.local_workers import cpu_count


def resolve_device(name: str | torch.device | None) -> torch.device:
    """A ``torch.device``; an unknown name or a GPU that is not there is a UsageError."""
    if isinstance(name, torch.device):
        return name
    if name is None or str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(str(name))
    except RuntimeError:
        raise UsageError(f"unknown device {name!r}; use auto, cpu or cuda[:N]") from None
    if device.type not in ("cpu", "cuda"):  # torch knows mps, meta, xpu ...; scaler trains and times on these two
        raise UsageError(f"device {str(name)!r} is not supported; use auto, cpu or cuda[:N]")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device {str(name)!r} asked for, but no CUDA GPU is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"device {str(name)!r} asked for, but this machine has {torch.cuda.device_count()} GPU(s)")
    return device


def autocast(device: torch.device):
    """The precision a run computes in on ``device``: bf16 autocast on a GPU, plain fp32 on a CPU.

    The same context wraps the training step, the batch-norm recalibration and the evaluation, so a
    candidate is trained and judged in one precision. On a CPU it is a no-op: bf16 there was no faster
    even with AMX (0.64–1.05x fp32 on the default proxies; docs/benchmarks.md, "bf16 autocast on this
    CPU"), and fp32 keeps CPU results comparable with every run measured before.
    """
    if torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def release_memory(device: torch.device) -> None:
    """Hand a finished run's cached GPU memory back to the driver; a no-op on a CPU.

    PyTorch's caching allocator keeps freed blocks for its own process: with several processes
    sharing one GPU (several searches, or a search's workers) a process that trained a large
    candidate would hold that memory through its next, smaller runs and starve the others.
    """
    if device.type == "cuda" and torch.cuda.is_available():
        with torch.cuda.device(device):
            torch.cuda.empty_cache()


_THREADS_SET = False


def set_threads(threads: int | None = None) -> int:
    """Train with ``threads`` threads (a worker's share of the CPUs, a Ray trial's ``cpu``); else, once,
    with every core this process may run on, unless OMP_NUM_THREADS says otherwise."""
    global _THREADS_SET
    if threads is not None:
        torch.set_num_threads(max(1, int(threads)))
        _THREADS_SET = True
    elif not _THREADS_SET:
        if not os.environ.get("OMP_NUM_THREADS"):
            torch.set_num_threads(max(1, cpu_count()))
        _THREADS_SET = True
    return torch.get_num_threads()


@contextlib.contextmanager
def shared_threads(threads: int | None):
    """Train with ``threads`` threads (this process's share beside other workers; None: no change),
    then with the process's own count again: what follows the training, such as timing a family's
    latency, has every core the process may use."""
    own = set_threads()
    if threads is not None:
        set_threads(threads)
    try:
        yield
    finally:
        set_threads(own)
