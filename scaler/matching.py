"""Cost matching: one free dimension of a grid point takes up what rounding left of its budget.

Rounding (channels to multiples of 8, repeats up, pixels to integers; :mod:`scaler.scaling`) makes
measured cost a staircase in every multiplier, so points whose nominal alpha * beta**2 * gamma**2 is
the budget cost 0.9–1.1x of it at full size and 0.6–1.35x in the narrow proxy, where x8 rounding is
coarse. Points that are compared must cost the same, so one coefficient of each point is moved
until the measured cost hits the budget:

- the single-dimension points move their own dimension (they must stay single-dimension);
- a compound point moves width (beta): the grid gives width "what is left" of the budget already
  (``search_spaces/compound.toml``), and its depth and resolution shares are what the point is about.

Where a single dimension's own staircase has no step within ``FULL_TOLERANCE`` of the budget
(resnet50's depth: whole blocks give x1.85 or x2.07 at 2x), a second coefficient (:data:`TRIM`)
takes up the residue, moving the nominal cost by at most ``TRIM_SPAN`` and by less than half the
point's own growth, so the point stays led by its dimension (resnet50's depth point becomes
(2.157, 0.976, 1), x1.999). The trim meets one budget's rounding, it is no
way to grow: curves and families scale the point's :func:`direction`, the trim undone.

A point is matched when the full-size network is within ``FULL_TOLERANCE`` of the budget and its
proxy (:func:`scaler.recipe.proxy_settings`) within ``PROXY_TOLERANCE`` of it, in the proxy's own
MACs relative to the proxy baseline. Full size comes first. When no one value of the free
coefficient meets both — the narrow proxy's channels and pixels step far more coarsely than the full
size's — the proxy takes its **own** value of that coefficient, within ``APART_LIMIT`` of the full
size's, so that the screen compares proxies of equal cost ("apart"; the space's ``proxy_match``;
``"miniature"`` keeps the proxy the exact miniature and drops such points). When that fails too,
the closest full-size match is kept and the proxy's miss is the reason the point is dropped.
:func:`correct` is also :func:`scaler.compare.match_macs`'s loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from scaler.baselines import Baseline
from scaler.cost import Cost, count_cost
from scaler.recipe import ProxyRecipe, proxy_rounding, proxy_settings
from scaler.scaling import Coefficients

FULL_TOLERANCE = 0.03  # |measured / budget - 1| of the full-size network
PROXY_TOLERANCE = 0.05  # the same in the proxy's MACs, relative to the proxy baseline (reached apart: docs/design.md)
# Which coefficient takes up the residue, by kind of point (see the module's docstring).
FREE = {"depth": "alpha", "width": "beta", "resolution": "gamma", "compound": "beta"}
# Which coefficient trims a single-dimension point that its own staircase cannot match (see the
# module's docstring). Width where it can, as for compound points: its channels step the proxy's cost
# with the full size's, while a pixel trimmed off a 24-px proxy (a 1x1 last map at 23 or 24 px) costs
# the proxy nothing and cost resnet50's depth point 2.5 points of screen accuracy (docs/design.md).
# Pixels step the cost in stairs too (resnet50 costs 13% more at 226 px than at 224): the reach is scanned.
TRIM = {"depth": "beta", "width": "gamma", "resolution": "beta"}
TRIM_SPAN = 0.10  # the most a trim may move the nominal cost (gamma**2 or beta**2), either way
EXPONENT = {"alpha": 1.0, "beta": 2.0, "gamma": 2.0}  # cost grows as alpha * beta**2 * gamma**2
# After the full-size correction, the values within +-SCAN_SPAN of cost around it are tried in
# 2 * SCAN_STEPS steps: the proxy's staircase has other steps than the full size's.
SCAN_SPAN = 0.10
SCAN_STEPS = 24
PROXY_MATCHES = ("apart", "miniature")  # the space's proxy_match (see the module's docstring)
# How far a proxy matched apart may take its free coefficient from the full size's (either way): a
# proxy further off than this is a miniature of another point (docs/design.md, "proxy matched apart").
APART_LIMIT = 1.2


def correct(ratio_at: Callable[[float], float], target: float, start: float, exponent: float = 1.0,
            tolerance: float = 0.01, iterations: int = 8) -> float:
    """Scale ``value`` by ``(target / ratio) ** (1 / exponent)`` until ``ratio_at(value)`` is within
    ``tolerance`` (in log) of ``target``; the value that came closest.

    Cost is a staircase, so the loop keeps the closest value it met rather than insisting on convergence.
    """
    value, best, best_error = start, start, math.inf
    for _ in range(iterations):
        ratio = ratio_at(value)
        error = abs(math.log(ratio / target))
        if error < best_error:
            best, best_error = value, error
        if error <= tolerance:
            break
        value *= (target / ratio) ** (1.0 / exponent)
    return best


@dataclass(frozen=True)
class PointCost:
    """One point's cost at full size and as its proxy, each relative to the baseline's own."""

    coefficients: Coefficients
    full: Cost
    proxy: Cost
    input_px: int  # full-size input
    full_ratio: float
    proxy_ratio: float
    proxy_coefficients: Coefficients | None = None  # the proxy's own point when matched apart; else the miniature


class Coster:
    """Costs points of one baseline at full size (``num_classes``) and as proxies (``proxy_classes``).

    Memoised: the matching revisits values. ``reference``: the baseline's full-size cost, when known.
    """

    def __init__(self, baseline: Baseline, recipe: ProxyRecipe, num_classes: int = 1000, proxy_classes: int = 10,
                 reference: Cost | None = None) -> None:
        self.baseline, self.recipe = baseline, recipe
        self.num_classes, self.proxy_classes = num_classes, proxy_classes
        self.reference = reference or count_cost(baseline, num_classes=num_classes)
        self.proxy_reference = self._proxy(Coefficients(1.0, 1.0, 1.0))
        self._seen: dict[Coefficients, PointCost] = {}
        self._proxies: dict[Coefficients, Cost] = {}  # proxies costed apart from their full size

    @property
    def cheap(self) -> bool:
        """Analytic costing (microseconds): the scan is affordable; a traced model gets the correction only."""
        return self.baseline.complexity_fn is not None

    def _proxy(self, c: Coefficients) -> Cost:
        width, depth, px = proxy_settings(c.multipliers(1.0), self.recipe)
        with proxy_rounding(self.recipe):
            return count_cost(self.baseline, width=width, depth=depth, resolution=px, num_classes=self.proxy_classes)

    def __call__(self, c: Coefficients) -> PointCost:
        if c not in self._seen:
            m = c.multipliers(1.0)
            px = m.input_size(self.baseline.resolution)
            full = count_cost(self.baseline, width=m.width, depth=m.depth, resolution=px, num_classes=self.num_classes)
            proxy = self._proxy(c)
            self._seen[c] = PointCost(c, full, proxy, px, full.macs / self.reference.macs,
                                      proxy.macs / self.proxy_reference.macs)
        return self._seen[c]

    def apart(self, c: Coefficients, proxy: Coefficients) -> PointCost:
        """The network at ``c`` with the proxy of ``proxy`` (matched apart): only that proxy is costed."""
        if proxy not in self._proxies:
            self._proxies[proxy] = self._seen[proxy].proxy if proxy in self._seen else self._proxy(proxy)
        own = self._proxies[proxy]
        return replace(self(c), proxy=own, proxy_ratio=own.macs / self.proxy_reference.macs,
                       proxy_coefficients=None if proxy == c else proxy)


@dataclass(frozen=True)
class Match:
    cost: PointCost  # the matched point, or the closest one met when ``reason`` says why it is not
    reason: str = ""  # empty when both tolerances hold


def match_point(kind: str, planned: Coefficients, budget: float, coster: Coster,
                full_tolerance: float = FULL_TOLERANCE, proxy_tolerance: float = PROXY_TOLERANCE,
                proxy_match: str = "apart", apart_limit: float = APART_LIMIT) -> Match:
    """Move the point's free coefficient (:data:`FREE`) until both its costs are within tolerance of
    ``budget``; with ``proxy_match="apart"``, the proxy's own copy of it too (within ``apart_limit``)
    when one value cannot do both."""
    name = FREE[kind]
    exponent = EXPONENT[name]

    def at(value: float) -> PointCost:
        return coster(replace(planned, **{name: value}))

    start = correct(lambda v: at(v).full_ratio, budget, getattr(planned, name), exponent)
    values = _around(start, exponent, coster.cheap, kind, getattr(planned, name))
    grown = [c for c in map(at, values) if c.full_ratio > 1.0]  # the baseline itself is no scaled point
    if not grown:
        return Match(at(values[0]), f"no value of {name} near x{budget:.3g} grows the network")
    match = choose(grown, budget, full_tolerance, proxy_tolerance)
    if match.reason and kind in TRIM and off(match.cost.full_ratio, budget) > full_tolerance:
        return _trim(kind, match, grown, budget, coster, full_tolerance, proxy_tolerance, proxy_match, apart_limit)
    if match.reason and proxy_match == "apart" and off(match.cost.full_ratio, budget) <= full_tolerance:
        # Each full-size network within tolerance, the closest first.
        for full in _networks([c for c in grown if off(c.full_ratio, budget) <= full_tolerance], budget):
            found = _apart(kind, full, budget, coster, proxy_tolerance, apart_limit)
            if found:
                return found
        return replace(match, reason=f"{match.reason}, nor with its own {name} within x{apart_limit:.3g} of the full size's")
    return match


def _trim(kind: str, untrimmed: Match, grown: list[PointCost], budget: float, coster: Coster, full_tolerance: float,
          proxy_tolerance: float, proxy_match: str, apart_limit: float) -> Match:
    """The trim (:data:`TRIM`) of a single-dimension point that brings its full size closest to the
    budget while its proxy meets its own tolerance (apart if need be); else the miss, saying why."""
    name = TRIM[kind]
    trims = _trims(kind, grown, budget, coster, full_tolerance)
    for cost in trims:
        match = choose([cost], budget, full_tolerance, proxy_tolerance)
        if not match.reason:
            return match
        if proxy_match == "apart":
            found = _apart(kind, cost, budget, coster, proxy_tolerance, apart_limit)
            if found:
                return found
    if not trims:
        return replace(untrimmed, reason=f"{untrimmed.reason}, nor with {name} trimmed (by at most {TRIM_SPAN:.0%} of "
                                         f"nominal cost, and less than half the point's own growth)")
    closest = choose(trims[:1], budget, full_tolerance, proxy_tolerance)
    apart = f", nor with its own {FREE[kind]} within x{apart_limit:.3g} of the full size's" if proxy_match == "apart" else ""
    return replace(closest, reason=f"{closest.reason}{apart} (with {name} trimmed to {getattr(closest.cost.coefficients, name):.3f})")


def _trims(kind: str, grown: list[PointCost], budget: float, coster: Coster, full_tolerance: float) -> list[PointCost]:
    """Each full-size network of ``grown`` with its :data:`TRIM` coefficient moved until the full size is
    within ``full_tolerance``: by at most TRIM_SPAN of nominal cost and less than half the point's own
    growth (so the point stays led by its dimension); one per rounded network (its smallest trim), the
    closest to the budget first."""
    name, own = TRIM[kind], FREE[kind]
    exponent = EXPONENT[name]
    tried: list[tuple[float, PointCost]] = []
    for c in _networks(grown, budget):
        point = c.coefficients
        start = getattr(point, name)
        reach = min(math.log1p(TRIM_SPAN), EXPONENT[own] * math.log(getattr(point, own)) / 2) / exponent
        values = [correct(lambda v, point=point: coster(replace(point, **{name: v})).full_ratio, budget, start, exponent)]
        if coster.cheap:  # pixels and channels step the cost in stairs too: scan the whole reach
            values += _geometric(start, reach, SCAN_STEPS)
        for value in values:
            trimmed = coster(replace(point, **{name: value}))
            if abs(math.log(value / start)) <= reach + 1e-12 and off(trimmed.full_ratio, budget) <= full_tolerance:
                tried.append((abs(math.log(value / start)), trimmed))
    found: dict[float, PointCost] = {}  # one per rounded network: its smallest trim
    for _, trimmed in sorted(tried, key=lambda t: t[0]):
        found.setdefault(trimmed.full.macs, trimmed)
    return sorted(found.values(), key=lambda c: off(c.full_ratio, budget))


def _networks(costs: list[PointCost], budget: float) -> list[PointCost]:
    """One value per rounded full-size network (many values of a coefficient round to one), the
    closest to the budget first."""
    out: dict[float, PointCost] = {}
    for c in sorted(costs, key=lambda c: off(c.full_ratio, budget)):
        out.setdefault(c.full.macs, c)
    return list(out.values())


def direction(kind: str, c: Coefficients) -> Coefficients:
    """The way a matched point grows: a single dimension's trim undone (it met one budget's rounding;
    squared for the curves or raised to phi for a family it would shrink another dimension)."""
    return replace(c, **{TRIM[kind]: 1.0}) if kind in TRIM else c


def _around(start: float, exponent: float, cheap: bool, kind: str, fallback: float) -> list[float]:
    """``start``, then (for an analytically costed network) the values within +-SCAN_SPAN of cost around it."""
    values = [start]
    if cheap:
        span = math.log1p(SCAN_SPAN) / exponent
        values += [v for v in _geometric(start, span, SCAN_STEPS) if v != start]
    if kind != "compound":  # a single-dimension point grows its dimension, or it is not that point any more
        values = [v for v in values if v > 1.0] or [fallback]
    return values


def _apart(kind: str, full: PointCost, budget: float, coster: Coster, proxy_tolerance: float,
           limit: float = APART_LIMIT) -> Match | None:
    """The full size as matched; the proxy's own free coefficient moved (within ``limit`` of the full
    size's) until the proxy's cost is within tolerance. None when no such value exists."""
    name = FREE[kind]
    exponent = EXPONENT[name]
    c = full.coefficients
    mine = getattr(c, name)

    def at(value: float) -> PointCost:
        return coster.apart(c, replace(c, **{name: value}))

    span = math.log(limit)
    values = [correct(lambda v: at(v).proxy_ratio, budget, mine, exponent)]
    if coster.cheap:  # the proxy's staircase can have its step anywhere in the range: scan all of it
        steps = round(SCAN_STEPS * span / math.log(APART_LIMIT))  # a wider reach (the curves'), as fine a step
        values += _geometric(mine, span, steps)
    values = [v for v in values if abs(math.log(v / mine)) <= span + 1e-12 and (kind == "compound" or v > 1.0)]
    fits = [p for p in map(at, values) if off(p.proxy_ratio, budget) <= proxy_tolerance]
    if not fits:
        return None
    # The closest cost (equal cost is why it is apart); of equal costs (one rounded network), the first
    # tried: the correction's value.
    return Match(min(fits, key=lambda p: round(off(p.proxy_ratio, budget), 9)))


def _geometric(center: float, span: float, steps: int) -> list[float]:
    """``2 * steps + 1`` values from ``center * exp(-span)`` to ``center * exp(span)``, equal in log."""
    return [center * math.exp(span * k / steps) for k in range(-steps, steps + 1)]


def off(ratio: float, budget: float) -> float:
    return abs(ratio / budget - 1.0)


def choose(costs: list[PointCost], budget: float, full_tolerance: float = FULL_TOLERANCE,
           proxy_tolerance: float = PROXY_TOLERANCE) -> Match:
    """The best of the values tried: both tolerances with the smallest worse miss; else why not."""
    full_ok = [c for c in costs if off(c.full_ratio, budget) <= full_tolerance]
    both = [c for c in full_ok if off(c.proxy_ratio, budget) <= proxy_tolerance]
    if both:
        return Match(min(both, key=lambda c: max(off(c.full_ratio, budget) / full_tolerance,
                                                 off(c.proxy_ratio, budget) / proxy_tolerance)))
    if full_ok:  # the full size can be matched, the proxy cannot: report the proxy's miss
        best = min(full_ok, key=lambda c: off(c.proxy_ratio, budget))
        lo, hi = min(c.proxy_ratio for c in full_ok), max(c.proxy_ratio for c in full_ok)
        span = f"x{lo:.3g}" if f"{lo:.3g}" == f"{hi:.3g}" else f"x{lo:.3g}-{hi:.3g}"
        return Match(best, f"proxy costs {span} of the proxy baseline wherever the full size is within "
                           f"{full_tolerance:.0%} of x{budget:.3g}: not within {proxy_tolerance:.0%}")
    best = min(costs, key=lambda c: off(c.full_ratio, budget))
    return Match(best, f"full size reaches x{best.full_ratio:.3g} at best (rounding steps): "
                       f"not within {full_tolerance:.0%} of x{budget:.3g}")
