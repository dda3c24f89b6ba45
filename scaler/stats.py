"""Seed noise: is the winner's margin over the runner-up larger than seed-to-seed spread?"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom; 1.96 beyond.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042)


def t95(df: float) -> float:
    """t quantile for a Welch interval; fractional df rounds down (the wider, conservative side)."""
    k = max(1, int(math.floor(df)))
    return _T95[k - 1] if k <= len(_T95) else 1.96


@dataclass(frozen=True)
class Margin:
    """Difference of means a - b with a 95% Welch interval (None when either side has one sample)."""

    margin: float
    interval: tuple[float, float] | None
    test: str

    @property
    def significant(self) -> bool:
        return self.interval is not None and self.interval[0] > 0


def welch_margin(a: list[float], b: list[float]) -> Margin:
    diff = statistics.fmean(a) - statistics.fmean(b)
    if len(a) < 2 or len(b) < 2:
        return Margin(diff, None, "none: needs 2 or more seeds per point")
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return Margin(diff, (diff, diff), "welch")
    df = (va + vb) ** 2 / ((va**2 / (len(a) - 1)) + (vb**2 / (len(b) - 1)))
    half = t95(df) * se
    return Margin(diff, (diff - half, diff + half), "welch")
