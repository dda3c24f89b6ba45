"""Solving phi for a target: the largest member of a family whose measured MACs or latency fits."""

from __future__ import annotations

import math
from collections.abc import Callable

from scaler import cost
from scaler.devices import resolve_device
from scaler.errors import UsageError
from scaler.scaling import PHI_LIMITS

# How far a solved phi may go: the limits every phi the user gives is checked against.
PHI_SEARCH_LIMITS = PHI_LIMITS


def solve_phi(
    measure: Callable[[float], float], target: float, guess: float = 0.0, precision: float = 0.01
) -> float:
    """The largest phi (to ``precision``) whose ``measure(phi)`` is at most ``target``.

    ``measure`` is assumed non-decreasing in phi (rounding makes it a staircase). The search
    brackets from ``guess`` in steps of one, then bisects on the grid of ``precision``.
    """
    lo_limit, hi_limit = PHI_SEARCH_LIMITS
    cache: dict[int, float] = {}

    def fits(k: int) -> bool:  # k indexes the grid phi = k * precision
        if k not in cache:
            cache[k] = measure(k * precision)
        return cache[k] <= target

    step = round(1 / precision)
    k = round(guess / precision)
    if fits(k):
        lo = k
        hi = k + step
        while fits(hi):
            lo, hi = hi, hi + step
            if hi * precision > hi_limit:
                raise UsageError(f"target is beyond phi = {hi_limit:g}; is it in the right unit?")
    else:
        hi = k
        lo = k - step
        while not fits(lo):
            hi, lo = lo, lo - step
            if lo * precision < lo_limit:
                raise UsageError(f"even phi = {lo_limit:g} does not fit the target; the baseline cannot shrink that far")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return round(lo * precision, 10)


def solve_targets(b, coefficients, target_macs, target_latency_ms, num_classes, device, latency_runs) -> dict | None:
    """The largest phi that fits the MACs target, the latency target, or both (the smaller); None without targets."""
    if target_macs is None and target_latency_ms is None:
        return None
    base_macs = cost.count_cost(b, num_classes=num_classes).macs
    dev = resolve_device(device)
    results = {}
    if target_macs is not None:
        def macs_at(phi: float) -> float:
            m = coefficients.multipliers(phi)
            return cost.count_cost(b, width=m.width, depth=m.depth, resolution=m.input_size(b.resolution), num_classes=num_classes).macs

        guess = math.log(target_macs / base_macs) / math.log(coefficients.product) if coefficients.product != 1 else 0.0
        results["macs"] = solve_phi(macs_at, target_macs, guess=math.floor(guess * 100) / 100)
    if target_latency_ms is not None:
        def latency_at(phi: float) -> float:
            m = coefficients.multipliers(phi)
            model = b.build(width=m.width, depth=m.depth, num_classes=num_classes)
            return cost.measure_latency(model, m.input_size(b.resolution), dev, repeats=latency_runs)

        results["latency"] = solve_phi(latency_at, target_latency_ms, precision=0.05)
    phi = min(results.values())
    return {
        "phi": phi,
        "target_macs": target_macs,
        "target_latency_ms": target_latency_ms,
        "phi_for_macs": results.get("macs"),
        "phi_for_latency": results.get("latency"),
        "device": str(dev) if target_latency_ms is not None else None,
    }
