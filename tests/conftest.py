"""Shared test helpers: running the CLI as a user would, and the smoke-size settings every search test uses."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

# Two test workers share this machine's two cores (`make test` runs pytest-xdist with -n 2): each
# runs torch, and every CLI it starts, on one thread. OpenMP threads that find their core busy spin
# and collapse (3,064 -> 67 images/s measured here; docs/benchmarks.md).
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
# The smallest data and search that still exercise everything: shared by the search, Ray and compare tests.
SMOKE_DATA = "synthetic:size=16,images=400,classes=4"
# The screen alone: the stages after it have their own tests (tests/test_stages.py).
SMOKE_SEARCH = ["--preset", "smoke", "--data", "synthetic", "--no-family", "--no-report", "--device", "cpu",
                "--confirm", "0", "--curves", "none"]

# A user's network that fails at some sizes (wider than 1.3x): its points fail with its message.
FLAKY_MODEL = '''
import torch
from torch import nn

class Exploding(nn.Module):
    def __init__(self, width, num_classes):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(8, num_classes)
        self.explode = width > 1.3

    def forward(self, x):
        if self.explode:
            raise RuntimeError("too wide for me")
        return self.fc(self.conv(x).mean((2, 3)))

def build(width_mult, depth_mult, num_classes):
    return Exploding(width_mult, num_classes)
'''


def run_cli(*args: str, cwd: str | Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m scaler ARGS`` as a user would, returning the finished process."""
    # The checkout first on the path: with another cwd, `-m scaler` would find whatever scaler is installed.
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": path}
    return subprocess.run(
        [sys.executable, "-m", "scaler", *args],
        cwd=cwd or ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def main_in_process(argv: list[str], capsys) -> tuple[int, str, str]:
    """``scaler.cli.main(argv)`` in this process: its exit status, stdout and stderr. For input the
    CLI refuses before any work, where a subprocess spends seconds importing torch to say one line."""
    from scaler.cli import main

    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's own errors exit
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def cli():
    return run_cli


def complete_trials(db: Path) -> int:
    """How many trials of a study's SQLite file are COMPLETE (0 while it does not exist yet)."""
    if not Path(db).exists():
        return 0
    try:
        with sqlite3.connect(db) as con:
            return con.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()[0]
    except sqlite3.Error:
        return 0
