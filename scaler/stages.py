"""The stages of a search: screen every grid point, confirm the promising ones longer, then train the curves.

Short training biases whole dimensions (Bello et al. 2021, *Revisiting ResNets*: which dimension
wins flips with training length), so the screen only shortlists; the answer comes from the
confirm stage (MnasNet retrains its top candidates; Hyperband keeps one fully trained bracket):

- **screen**: every grid point at the short recipe (``--preset``), ``--seeds`` seeds;
- **confirm**: the top ``--confirm K`` points of the screen, plus the best point *led* by each
  dimension (depth, width, resolution: the one with the largest share of the cost's logarithm)
  when it is not among them, at the confirm recipe (``--confirm-preset``, default twice the
  screen's epochs) with ``--confirm-seeds`` seeds (default one more than the screen's);
- **curve**: the chosen coefficients and the best single dimension at phi = 0, 1, 2 (1x, 2x, 4x
  the baseline, cost-matched at full size), at the screen's recipe and seeds (default; its runs
  are every grid point's phi = 1) or the confirm's (``--curve-recipe confirm``): accuracy against
  MACs, one line per strategy. Runs a stage already made are reused, never repeated.

Every run of every stage is one trial of the search's study, keyed ``(stage, point, seed)``:
``point`` indexes the grid for screen and confirm, and :func:`curve_points` for curves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import pandas as pd

from scaler.baselines import Baseline
from scaler.errors import UsageError
from scaler.matching import APART_LIMIT, FULL_TOLERANCE, PROXY_TOLERANCE, Coster, Match, direction, match_point
from scaler.options import CONFIRM_FACTORS
from scaler.recipe import NETWORK_FIELDS, PRESETS, ProxyRecipe, resolve_recipe
from scaler.scaling import Coefficients
from scaler.search_space import Candidate, candidate_from_match
from scaler.verdict import PointResult, rank

STAGES = ("screen", "confirm", "curve")
DIMENSIONS = ("depth", "width", "resolution")
# A curve's full size may miss its cost by this much where the space's tolerance cannot be met with
# its proxy's (:func:`_matched`): 3% at full size drops 11 more phi = 2 proxies (benchmarks/curve_costs.py).
CURVE_FULL_TOLERANCE = 0.05


def leading_dimension(c: Coefficients) -> str:
    """The dimension with the largest share of the cost's logarithm (alpha, beta**2, gamma**2)."""
    shares = {"depth": math.log(c.alpha), "width": 2 * math.log(c.beta), "resolution": 2 * math.log(c.gamma)}
    return max(DIMENSIONS, key=lambda d: shares[d])


def promote(points: list[PointResult], k: int) -> list[int]:
    """The screen's top ``k`` points, then the best point led by each dimension not among them.

    ``points``: the screen's complete points, each with its per-seed accuracies and coefficients.
    Ranked by the verdict's rule (:func:`scaler.verdict.rank`: mean accuracy, a tie to fewer MACs,
    then the lower grid number), the rule that picks the winner; plain numbers in, so the search
    and ``benchmarks/fidelity.py`` (which replays the protocol on stored runs) call the same function.
    """
    ranked = rank([p for p in points if p.accs])
    chosen = [p.point for p in ranked[:k]]
    for dimension in DIMENSIONS:
        led = [p.point for p in ranked if p.coefficients is not None and leading_dimension(p.coefficients) == dimension]
        if led and led[0] not in chosen:
            chosen.append(led[0])
    return chosen


def confirm_recipe(screen: ProxyRecipe, spec: str, baseline: Baseline) -> ProxyRecipe:
    """The confirm stage's recipe: ``2x``/``3x``/``4x`` the screen's epochs (and warm-up), or a preset by name.

    A preset gives its schedule; the proxy network stays the screen's (:data:`NETWORK_FIELDS`): the
    grid was cost-matched for that proxy, and a confirm stage at another size would compare proxies
    of unequal cost (``long`` after ``--proxy-resolution 40`` would otherwise confirm at 24 px).
    """
    if spec in CONFIRM_FACTORS:
        factor = CONFIRM_FACTORS[spec]
        return screen.replace(epochs=int(round(screen.epochs * factor)), warmup_epochs=screen.warmup_epochs * factor)
    if spec in PRESETS:
        return resolve_recipe(spec, baseline).replace(**{f: getattr(screen, f) for f in NETWORK_FIELDS})
    known = ", ".join([*CONFIRM_FACTORS, *PRESETS])
    raise UsageError(f"unknown confirm preset {spec!r} (known: {known})")


@dataclass(frozen=True)
class CurvePoint:
    """One network of a curve: a strategy at phi; trained as the candidate ``network`` (its phi = 1)."""

    strategy: str  # "chosen" or the single dimension compared with it
    phi: int
    network: Candidate  # coefficients already raised to phi: the network is their phi = 1
    grid_point: int | None = None  # the grid point it is (phi = 1), whose confirm runs it reuses

    def as_dict(self) -> dict:
        return {"strategy": self.strategy, "phi": self.phi, "grid_point": self.grid_point, **self.network.as_dict()}


def curve_points(baseline_cost: Candidate, strategies: list[tuple[str, int, Candidate]], budget: float,
                 coster: Coster, rules: dict | None = None) -> list[CurvePoint]:
    """The networks of the curves: the baseline (phi 0), then per strategy its grid point (phi 1) and
    its coefficients squared (a single dimension's trim undone: :func:`scaler.matching.direction`),
    cost-matched to budget**2 at full size (phi 2).

    ``strategies``: (name, grid index, candidate) for the chosen point and the single dimensions
    compared with it. (Curve runs are keyed by the network they train, not by position here:
    ``search._curve_indices``.)
    ``rules``: the space's matching rules (:meth:`SearchSpace.matching_rules`); default the module's.
    """
    points = [CurvePoint("baseline", 0, baseline_cost)]
    for name, index, cand in strategies:
        points.append(CurvePoint(name, 1, cand, index))
        squared = Coefficients(*(v**2 for v in direction(cand.kind, cand.coefficients).as_tuple()))
        points.append(CurvePoint(name, 2, _matched(cand.kind, squared, budget**2, coster, rules or {})))
    return points


def curve_tolerances(rules: dict) -> tuple[float, float]:
    """(full size, proxy) tolerances a curve network is matched within and judged by: the space's, the
    full size loosened to CURVE_FULL_TOLERANCE where the proxy is matched apart (see :func:`_matched`)."""
    full = rules.get("full_tolerance", FULL_TOLERANCE)
    if rules.get("proxy_match", "apart") == "apart":
        full = max(full, CURVE_FULL_TOLERANCE)
    return full, rules.get("proxy_tolerance", PROXY_TOLERANCE)


def _matched(kind: str, planned: Coefficients, budget: float, coster: Coster, rules: dict) -> Candidate:
    """A curve's phi = 2 network, matched like a grid point, and trained even when a tolerance is
    missed (the miss shows in its ratios; a reason would fail its runs).

    Where a grid point's reach fails, the proxy may be apart by APART_LIMIT squared: squared
    coefficients, squared reach (1.2x per unit of phi); where that fails too, the full size may miss
    by CURVE_FULL_TOLERANCE: it is drawn at its true MACs, while its proxy's cost is what the
    comparison of accuracies rests on. Tried in that order, so a network that matched within the
    grid's rules stays as it was (docs/design.md, "curves").
    """
    match = match_point(kind, planned, budget, coster, **rules)
    if match.reason and rules.get("proxy_match", "apart") == "apart":
        wider = {**rules, "apart_limit": APART_LIMIT**2}
        for tried in (wider, {**wider, "full_tolerance": curve_tolerances(rules)[0]}):
            found = match_point(kind, planned, budget, coster, **tried)
            if not found.reason:
                match = found
                break
    return replace(candidate_from_match(kind, planned, match), reason="")


def baseline_point(coster: Coster) -> Candidate:
    """The baseline as a candidate (coefficients 1, 1, 1): phi = 0 of every curve."""
    unit = Coefficients(1.0, 1.0, 1.0)
    return candidate_from_match("baseline", unit, Match(coster(unit)))


def curve_strategies(judged: pd.DataFrame, screen: pd.DataFrame, chosen_point: int, cands: list[Candidate],
                     which: str = "best") -> list[tuple[str, int, Candidate]]:
    """The chosen point, then what it is compared with.

    A compound winner is compared with the best single dimension; a single-dimension winner with
    the best compound point (that is the question: does compound scaling beat one dimension?).
    ``which="all"`` adds every other single dimension; ``"none"`` draws the chosen point alone.
    Each "best" is taken from ``judged`` (the confirm stage) when it holds such a point, else from
    ``screen``.
    """
    out = [("chosen", chosen_point, cands[chosen_point])]
    if which == "none":
        return out
    winner_is_single = cands[chosen_point].kind in DIMENSIONS
    rival = ["compound"] if winner_is_single else list(DIMENSIONS)
    picked = _best(judged, screen, rival, chosen_point)[:1]
    if which == "all":
        picked += [r for r in _best(judged, screen, list(DIMENSIONS), chosen_point) if r not in picked]
    return out + [("compound" if cands[p].kind == "compound" else cands[p].kind, p, cands[p]) for p in picked]


def _best(judged: pd.DataFrame, screen: pd.DataFrame, kinds: list[str], chosen_point: int) -> list[int]:
    """Complete points of ``kinds`` other than the chosen one, best first, from ``judged`` if it has any."""
    for table in (judged, screen):
        rows = table[table.kind.isin(kinds) & (table.state == "COMPLETE") & (table.point != chosen_point)]
        if len(rows):
            order = rows.sort_values(["accuracy_mean", "macs"], ascending=[False, True])
            return [int(p) for p in order.point]
    return []
