"""The verdict of a search: which grid point it chose, by what rule, and whether seed noise allows the choice.

Input: for each finished grid point its per-seed accuracies (``{seed: accuracy}``). Seed i of every
point saw the same data order and initialisation seed, so seeds pair across points. The rules:

- **Choice** (:data:`CHOICE_RULE`): highest mean accuracy over seeds; means equal to 1e-9 are a
  tie, broken by fewer measured MACs, then by the lower grid point number. Deterministic, and a tie
  goes to the cheaper network.
- **P(best)** (:func:`p_best`): a bootstrap over seeds, :data:`RESAMPLES` resamples from a
  generator seeded with :data:`BOOTSTRAP_SEED` (the same input gives the same answer). Each
  resample draws seed indices with replacement *jointly* for all points (seed luck is shared, so it
  must be drawn once); a point's resampled mean is over the drawn seeds it ran, and a point that ran
  none of them resamples its own seeds. The best resampled mean wins; a tie shares the win equally,
  so k identical points get 1/k each and the values sum to 1. With K seeds there are few distinct
  resamples (10 for K = 3): P(best) is coarse, and says nothing with one seed.
- **Margin** (winner minus runner-up) with a 95% interval (:func:`scaler.stats.margin_between`):
  paired t on per-seed differences when both ran the same seeds, Welch otherwise; quantiles from
  ``scipy.stats.t``. No interval (so never significant) with fewer than 2 seeds or zero observed
  seed-to-seed variation.
- **Told apart** when the margin's interval exists and excludes 0 *and* the winner's P(best) is at
  least :data:`CLEAR_P_BEST` (0.8); otherwise the verdict says the top points cannot be told apart
  and names the point chosen by the rule.
- **Compound vs single** (:func:`compound_vs_single`): the best compound point's mean minus the best
  single-dimension (depth/width/resolution) point's mean, with the same interval machinery, and
  P(a compound point is best overall) = the sum of the compound points' P(best).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from scaler.scaling import Coefficients
from scaler.stats import Margin, margin_between

CHOICE_RULE = "highest mean accuracy; a tie goes to fewer measured MACs, then the lower point number"
CLEAR_P_BEST = 0.8
RESAMPLES = 2000
BOOTSTRAP_SEED = 0
TIE = 1e-9  # accuracies step by 1/N of the validation set; closer means are summation round-off
SINGLE_KINDS = ("depth", "width", "resolution")


@dataclass(frozen=True)
class PointResult:
    """One finished grid point: its per-seed accuracies and what the rule needs to rank it."""

    point: int
    kind: str
    accs: Mapping[int, float]
    macs: float = math.nan
    label: str = ""
    coefficients: Coefficients | None = None  # what the confirm stage's dimension leaders are chosen by

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.accs.values())))

    @property
    def name(self) -> str:
        return self.label or f"point {self.point} ({self.kind})"


def rank(points: list[PointResult]) -> list[PointResult]:
    """Best first by :data:`CHOICE_RULE`."""
    def key(p: PointResult):
        macs = p.macs if math.isfinite(p.macs) else math.inf  # an uncosted point loses a tie
        return (-round(p.mean / TIE), macs, p.point)
    return sorted(points, key=key)


def p_best(accs: Mapping[int, Mapping[int, float]], resamples: int = RESAMPLES,
           seed: int = BOOTSTRAP_SEED) -> dict[int, float]:
    """P(point is best) by a joint bootstrap over seeds, for points with at least one accuracy."""
    points = sorted(p for p, a in accs.items() if a)
    if not points:
        return {}
    seeds = sorted(set().union(*(accs[p].keys() for p in points)))
    table = np.full((len(points), len(seeds)), np.nan)
    for i, p in enumerate(points):
        for j, s in enumerate(seeds):
            table[i, j] = accs[p].get(s, np.nan)
    rng = np.random.default_rng(seed)
    picked = table[:, rng.integers(len(seeds), size=(resamples, len(seeds)))]  # points x resamples x seeds
    counts = np.sum(~np.isnan(picked), axis=2)
    means = np.nansum(picked, axis=2) / np.maximum(counts, 1)
    for i in range(len(points)):  # a point with none of the drawn seeds: resample its own instead
        empty = counts[i] == 0
        if empty.any():
            own = table[i][~np.isnan(table[i])]
            means[i, empty] = own[rng.integers(len(own), size=(int(empty.sum()), len(own)))].mean(axis=1)
    winners = means >= means.max(axis=0) - TIE
    share = winners / winners.sum(axis=0)  # a tie shares the resample's win
    return {p: float(share[i].mean()) for i, p in enumerate(points)}


def interval_list(m: Margin) -> list[float] | None:
    return [float(m.interval[0]), float(m.interval[1])] if m.interval else None


def compound_vs_single(ranked: list[PointResult], pbest: Mapping[int, float]) -> dict | None:
    """Best compound point's mean minus the best single-dimension point's; None without one of each."""
    compound = [p for p in ranked if p.kind == "compound"]
    single = [p for p in ranked if p.kind in SINGLE_KINDS]
    if not compound or not single:
        return None
    c, s = compound[0], single[0]
    m = margin_between(c.accs, s.accs)
    return {
        "margin": float(m.margin), "interval": interval_list(m), "test": m.test, "significant": m.significant,
        "best_compound_point": c.point, "best_single_point": s.point, "best_single_kind": s.kind,
        "p_compound_best": float(sum(pbest.get(p.point, 0.0) for p in compound)),
    }


def points_text(value: float) -> str:
    """A difference in accuracy as signed percentage points; round-off around 0 prints as +0.00, not -0.00."""
    return f"{100 * (0.0 if abs(value) < TIE else value):+.2f}"


def interval_text(interval) -> str:
    return f"95% interval [{points_text(interval[0])}, {points_text(interval[1])}]"


def verdict_text(ranked: list[PointResult], margin: Margin | None, pbest: Mapping[int, float]) -> str:
    """One line: the chosen point, and whether the evidence tells it from the runner-up (module docstring)."""
    best = ranked[0]
    if margin is None:
        return f"only {best.name} finished: chosen by default, nothing to compare it with."
    p = pbest.get(best.point, math.nan)
    runner = ranked[1]
    if margin.significant and p >= CLEAR_P_BEST:
        return (f"{best.name} is best: {points_text(margin.margin)} points over {runner.name}, "
                f"{interval_text(margin.interval)} ({margin.test}), P(best) {p:.2f}.")
    if margin.interval is None:
        why = margin.test
    else:
        why = f"{points_text(margin.margin)} points over {runner.name}, {interval_text(margin.interval)} ({margin.test})"
        why += " includes 0" if not margin.significant else ""
    why += f", P(best) {p:.2f}" + (f" < {CLEAR_P_BEST}" if p < CLEAR_P_BEST else "")
    return f"the top points cannot be told apart ({why}): chose {best.name} by the rule: {CHOICE_RULE}."


def compound_text(cvs: dict | None) -> str | None:
    """One line on compound vs the best single dimension, or None (no comparison; a run folder written before it)."""
    if not isinstance(cvs, dict) or not isinstance(cvs.get("margin"), int | float):
        return None
    text = f"best compound vs best single dimension ({cvs.get('best_single_kind', '?')}): {points_text(cvs['margin'])} points"
    interval = cvs.get("interval")
    if isinstance(interval, list | tuple) and len(interval) == 2:
        text += f", {interval_text(interval)} ({cvs.get('test')})"
        text += ": significant" if cvs.get("significant") else ": not significant"
    else:
        text += f": {cvs.get('test') or 'no interval'}"
    if isinstance(cvs.get("p_compound_best"), int | float):
        text += f"; P(a compound point is best) {cvs['p_compound_best']:.2f}"
    return text + "."


@dataclass(frozen=True)
class Verdict:
    ranked: list[PointResult]
    p_best: dict[int, float]
    margin: Margin | None  # winner minus runner-up; None with one point
    compound_vs_single: dict | None
    text: str
    rule: str = field(default=CHOICE_RULE)

    @property
    def told_apart(self) -> bool:
        return (self.margin is not None and self.margin.significant
                and self.p_best.get(self.ranked[0].point, 0.0) >= CLEAR_P_BEST)


def judge(points: list[PointResult], resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED) -> Verdict | None:
    """The verdict over finished points (each with at least one accuracy); None when there are none."""
    points = [p for p in points if p.accs]
    if not points:
        return None
    ranked = rank(points)
    pbest = p_best({p.point: p.accs for p in points}, resamples, seed)
    margin = margin_between(ranked[0].accs, ranked[1].accs) if len(ranked) > 1 else None
    return Verdict(ranked, pbest, margin, compound_vs_single(ranked, pbest), verdict_text(ranked, margin, pbest))


def winner_lines(c: dict) -> list[str]:
    """The verdict and compound-vs-single lines of a winner's record (coefficients.json); [] for one written before them."""
    lines = []
    if c.get("verdict"):
        hint = " (train with --seeds 2 or more to judge)" if isinstance(c.get("seeds"), int) and c["seeds"] < 2 else ""
        lines.append(f"verdict: {c['verdict']}{hint}")
    compound = compound_text(c.get("compound_vs_single"))
    if compound:
        lines.append(compound[0].upper() + compound[1:])
    agreement = agreement_text(c)
    if agreement:
        lines.append(agreement)
    return lines


def agreement_text(c: dict) -> str | None:
    """Screen against confirm: Kendall's tau over the confirmed points, and whether the winner changed."""
    if "winner_changed" not in c:
        return None
    ranks = (c.get("rankings") or {}).get("confirm") or []
    tau = c.get("kendall_tau")
    text = f"screen vs confirm over {len(ranks)} point(s): Kendall tau " + (f"{tau:+.2f}" if tau is not None else "n/a (under 3 points)")
    if c["winner_changed"]:
        sw = c.get("screen_winner") or {}
        return text + (f"; the longer training changed the winner (the screen chose {sw.get('kind')} point {sw.get('point')})")
    return text + "; the winner held"
