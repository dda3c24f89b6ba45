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

    ``in_study``, where other processes may train the same stage (Optuna workers on one study),
    returns what the study holds of the stage: its final runs, its running ones (this process's
    included, once it has taken its run) and the best complete one's (accuracy, kind). Numbering,
    best and time left are then the search's, whichever process trained each run, not this
    process's alone; runs started together get their own numbers.
    """

    def __init__(self, total: int, remaining: int, log: Callable[[str], None],
                 in_study: Callable[[], tuple[int, int, tuple[float, str] | None]] | None = None) -> None:
        self.total, self.remaining, self.log, self.in_study = total, remaining, log, in_study
        self.started = self.finished = 0
        self.best: tuple[float, str] | None = None
        self.clock = time.perf_counter()

    def label(self, what: str, key: tuple[str, int, int]) -> str:
        """The next run's label, e.g. ``[4/18] screen depth      a=2 b=1 g=1 seed 0``."""
        self.started += 1
        if self.in_study:  # this run is among the running ones
            final, running, _ = self.in_study()
            number = min(self.total, final + max(1, running))
        else:
            number = self.total - self.remaining + self.started
        return f"[{number}/{self.total}] {key[0]} {what} seed {key[2]}"

    def epoch(self, label: str, epoch: int, accuracy: float) -> None:
        self.log(f"{label}  epoch {epoch}: val {accuracy:.1%}")

    def done(self, label: str, kind: str, accuracy: float, seconds: float) -> None:
        self.finished += 1
        finished, left_to_finish = self.finished, self.remaining - self.finished
        bests = [b for b in (self.best, (accuracy, kind)) if b]
        if self.in_study:  # this run is recorded in the study just after this line
            in_study, _, best = self.in_study()
            finished, left_to_finish = in_study + 1 - (self.total - self.remaining), self.total - in_study - 1
            bests += [best] if best else []
        self.best = max(bests)
        elapsed = time.perf_counter() - self.clock
        left = elapsed / max(1, finished) * max(0, left_to_finish)
        self.log(f"{label}  -> {accuracy:.1%} in {seconds:.0f}s; best {self.best[0]:.1%} "
                 f"({self.best[1]}); about {duration(left)} left")

    def failed(self, label: str, state: str, reason: str) -> None:
        self.finished += 1
        self.log(f"{label}  {state}: {reason}")
