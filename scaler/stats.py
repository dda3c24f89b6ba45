"""Seed noise, the small base of :mod:`scaler.verdict`: a difference of means with a 95% interval.

Two tests, one rule for when each applies (:func:`margin_between`): a *paired* t interval on the
per-seed differences when both points ran the same seeds (seed i of every point saw the same data
order and initialisation, so the seed's own luck cancels in the difference), *Welch* otherwise.
Quantiles come from ``scipy.stats.t`` at the real (for Welch, fractional) degrees of freedom.

A margin is never "significant" without evidence of noise: with fewer than 2 seeds, or no
seed-to-seed variation observed, the interval is None and ``test`` says why.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

from scipy import stats as scipy_stats

# Accuracies are counts over a validation set (steps of 1/N); a standard deviation this small is
# float round-off in a difference such as 0.8 - 0.7 vs 0.7 - 0.6, not seed noise.
ZERO_SD = 1e-9
NO_VARIATION = "no seed-to-seed variation observed: cannot judge"
TOO_FEW = "fewer than 2 seeds per point: cannot judge"


def t95(df: float) -> float:
    """Two-sided 95% quantile of Student's t at ``df`` degrees of freedom (fractional allowed)."""
    return float(scipy_stats.t.ppf(0.975, df))


@dataclass(frozen=True)
class Margin:
    """Difference of means a - b with a 95% interval (None when the noise cannot be judged)."""

    margin: float
    interval: tuple[float, float] | None
    test: str

    @property
    def significant(self) -> bool:
        """The interval excludes 0 (on either side): the sign of the difference is beyond seed noise."""
        return self.interval is not None and (self.interval[0] > 0 or self.interval[1] < 0)


def welch_margin(a: list[float], b: list[float]) -> Margin:
    diff = statistics.fmean(a) - statistics.fmean(b)
    if len(a) < 2 or len(b) < 2:
        return Margin(diff, None, f"welch: {TOO_FEW}")
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se <= ZERO_SD:
        return Margin(diff, None, f"welch: {NO_VARIATION}")
    # Welch–Satterthwaite; a side with zero variance contributes nothing (0/0 is not reached: se > 0).
    df = (va + vb) ** 2 / ((va**2 / (len(a) - 1)) + (vb**2 / (len(b) - 1)))
    half = t95(df) * se
    return Margin(diff, (diff - half, diff + half), "welch")


def paired_margin(a: list[float], b: list[float]) -> Margin:
    """Paired t interval on a[i] - b[i]: a and b are the same seeds, in the same order."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    diffs = [x - y for x, y in zip(a, b)]
    diff = statistics.fmean(diffs)
    if len(diffs) < 2:
        return Margin(diff, None, f"paired t: {TOO_FEW}")
    se = statistics.stdev(diffs) / math.sqrt(len(diffs))
    if se <= ZERO_SD:
        return Margin(diff, None, f"paired t: {NO_VARIATION}")
    half = t95(len(diffs) - 1) * se
    return Margin(diff, (diff - half, diff + half), "paired t")


def margin_between(a: Mapping[int, float], b: Mapping[int, float]) -> Margin:
    """mean(a) - mean(b) for seed -> accuracy maps: paired when both ran exactly the same seeds, else Welch.

    Pairing only on the shared seeds would report a difference other than the one between the
    two means that ranked the points, so a point missing a seed falls back to Welch on all seeds.
    """
    if a.keys() == b.keys():
        seeds = sorted(a)
        return paired_margin([a[s] for s in seeds], [b[s] for s in seeds])
    return welch_margin(list(a.values()), list(b.values()))
