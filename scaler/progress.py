"""The progress line of a search, one for every backend: what runs, what it reached, how long is left."""

from __future__ import annotations

import time
from collections.abc import Callable


def duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


class Progress:
    """Numbers the runs ``[k/total]``, logs epochs and results, and estimates the time left.

    ``total`` is every run of the search, ``remaining`` those this process is to run; the time
    left is the mean time per finished run so far times the runs still to finish.
    """

    def __init__(self, total: int, remaining: int, log: Callable[[str], None]) -> None:
        self.total, self.remaining, self.log = total, remaining, log
        self.started = self.finished = 0
        self.best: tuple[float, str] | None = None
        self.clock = time.perf_counter()

    def label(self, what: str, key: tuple[str, int, int]) -> str:
        """The next run's label, e.g. ``[4/18] screen depth      a=2 b=1 g=1 seed 0``."""
        self.started += 1
        return f"[{self.total - self.remaining + self.started}/{self.total}] {key[0]} {what} seed {key[2]}"

    def epoch(self, label: str, epoch: int, accuracy: float) -> None:
        self.log(f"{label}  epoch {epoch}: val {accuracy:.1%}")

    def done(self, label: str, kind: str, accuracy: float, seconds: float) -> None:
        self.finished += 1
        if self.best is None or accuracy > self.best[0]:
            self.best = (accuracy, kind)
        elapsed = time.perf_counter() - self.clock
        left = elapsed / self.finished * max(0, self.remaining - self.finished)
        self.log(f"{label}  -> {accuracy:.1%} in {seconds:.0f}s; best {self.best[0]:.1%} "
                 f"({self.best[1]}); about {duration(left)} left")

    def failed(self, label: str, state: str, reason: str) -> None:
        self.finished += 1
        self.log(f"{label}  {state}: {reason}")
