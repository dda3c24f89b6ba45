"""Checks that the proxy can see what it is asked to judge, each a small pure function.

A proxy trains every grid point at a small width and resolution on the data set; some settings
leave it blind to the very differences the search ranks (measured: at the default 24 px
resnet50's and mobilenet_v2's last feature map is 1×1, and on the 28-px `animals`
the resolution variants only upsample). Each check returns a :class:`ProxyWarning` (a code, a one-line message and what
to change) or None; :func:`run_checks` runs those a search can run before it trains.
:func:`feature_sizes` and :func:`smallest_proxy_resolution` compute what the feature-map check
judges: analytically for the built-in baselines (:func:`scaler.cost.final_feature_size`), by one
forward pass on zeros for a user's network.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from scaler.cost import final_feature_size, last_conv_size
from scaler.errors import UsageError
from scaler.recipe import ProxyRecipe, proxy_settings
from scaler.scaling import round_resolution

if TYPE_CHECKING:
    from scaler.baselines import Baseline
    from scaler.data import Dataset
    from scaler.search_space import Candidate

# The command-line flag that sets ProxyRecipe.proxy_resolution (tests hold it equal to the CLI's).
PROXY_RESOLUTION_FLAG = "--proxy-resolution"
# Below 2×2 the global pool averages one position: no spatial layout is left for the classifier.
MIN_FEATURE = 2
SATURATED = 0.95  # above this every candidate ties near the ceiling: the ranking is noise
SEARCH_LIMIT_PX = 1024  # the smallest-resolution search gives up here

Size = tuple[int, int] | None  # a last feature map (height, width); None: unknown (no pool, or failed)


@dataclass(frozen=True)
class ProxyWarning:
    code: str
    message: str  # one line: what is wrong, with the numbers
    fix: str  # what to change

    def as_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        return f"{self.message}; to change: {self.fix}"


def candidate_label(cand: Candidate) -> str:
    a, b, g = cand.coefficients.as_tuple()
    return f"{cand.kind} point (alpha {a:.3g}, beta {b:.3g}, gamma {g:.3g})"


# --- the checks ---------------------------------------------------------------------------------


def check_feature_map(sizes: Sequence[tuple[str, int, Size]], proxy_resolution: int,
                      smallest: int | None) -> ProxyWarning | None:
    """Some grid point's last feature map is under 2×2 at the proxy resolution.

    ``sizes``: (label, proxy input px, last feature map) per grid point; ``smallest``: the smallest
    proxy resolution giving every point at least 2×2, or None when none up to the limit does.
    """
    tiny = [(label, px, hw) for label, px, hw in sizes if hw is not None and min(hw) < MIN_FEATURE]
    if not tiny:
        return None
    label, px, (h, w) = min(tiny, key=lambda t: (t[2][0] * t[2][1], t[1]))
    message = (f"at proxy resolution {proxy_resolution} px the last feature map is under {MIN_FEATURE}×{MIN_FEATURE} "
               f"for {len(tiny)} of {len(sizes)} grid points (the {label}: {px} px in, {h}×{w} out), so the "
               "classifier sees a single position and the proxy judges those points blind to spatial detail")
    if smallest is None:
        fix = f"raise {PROXY_RESOLUTION_FLAG} (no value up to {SEARCH_LIMIT_PX} px gives every point {MIN_FEATURE}×{MIN_FEATURE})"
    else:
        fix = f"{PROXY_RESOLUTION_FLAG} {smallest} (the smallest giving every grid point at least {MIN_FEATURE}×{MIN_FEATURE})"
    return ProxyWarning("tiny_feature_map", message, fix)


def check_upsampling(proxy_resolution: int, max_resolution_mult: float,
                     image_size: tuple[int, int]) -> ProxyWarning | None:
    """The largest proxy input exceeds the data's native size: resolution variants see only upsampled pixels."""
    largest = round_resolution(proxy_resolution * max_resolution_mult)
    h, w = image_size
    if largest <= min(h, w):
        return None
    message = (f"the largest proxy input is {largest} px ({proxy_resolution} px × resolution multiplier "
               f"{max_resolution_mult:.3g}) but the data's images are {h}×{w} px, so resolution variants see only "
               "upsampled pixels, no new detail, and the search cannot judge resolution")
    fix = (f"train on images of at least {largest} px: your own (--data imagefolder:PATH) "
           "or a data source with more detail (see `scaler data`)")
    return ProxyWarning("upsampling_only", message, fix)


def check_baseline_accuracy(accuracy: float | None, num_classes: int) -> ProxyWarning | None:
    """The baseline's proxy accuracy is saturated (above 95%) or near chance (below twice chance).

    None (no baseline run yet) skips the check. With 2 classes twice chance is 100%, so the bar is
    halfway between chance and perfect there (the same as twice chance from 3 classes up).
    """
    if accuracy is None or not math.isfinite(accuracy) or num_classes < 2:
        return None
    chance = 1.0 / num_classes
    floor = min(2 * chance, (chance + 1.0) / 2)
    if accuracy > SATURATED:
        return ProxyWarning(
            "baseline_saturated",
            f"the baseline's proxy accuracy is {accuracy:.1%} (above {SATURATED:.0%}): every candidate ties near the "
            "ceiling, so their order is seed noise",
            "a harder task: more classes or finer data, or fewer --epochs / a smaller --subset")
    if accuracy < floor:
        return ProxyWarning(
            "baseline_near_chance",
            f"the baseline's proxy accuracy is {accuracy:.1%}, under {floor:.1%} ({num_classes} classes, chance "
            f"{chance:.1%}): the proxy barely learns, so the candidates' order is mostly seed noise",
            "more --epochs or a larger --subset, or check --lr and the data")
    return None


def check_winners_agree(screen: object, confirm: object) -> ProxyWarning | None:
    """The screen (short proxy) and confirm (longer runs) stages picked different winners.

    Identities are whatever names a point (a label, or an (alpha, beta, gamma) tuple: numbers are
    compared to 1e-6, as a JSON round trip may move the last digit).
    """
    if _same(screen, confirm):
        return None
    return ProxyWarning(
        "winners_disagree",
        f"the screen picked {_name(screen)} but the confirm stage picked {_name(confirm)}: the short proxy's ranking "
        "did not hold in longer training",
        "trust the confirm stage's winner, or confirm more of the screen's top points")


def check_curve_costs(points: Sequence[tuple[str, int, float, float]], budget: float, full_tolerance: float,
                      proxy_tolerance: float, which: Sequence[str] | None = None) -> ProxyWarning | None:
    """A curve network misses its cost, budget ** phi, at full size or as its proxy, beyond the space's tolerances.

    ``points``: (strategy, phi, full-size ratio, proxy ratio) per curve network. A curve's phi = 2 is
    matched like a grid point (its proxy apart by up to APART_LIMIT squared) but trained even when
    matching fails (measured 2026-11-26, ``benchmarks/curve_costs.py``: resnet18's depth at phi = 2
    costs x4.06 at full size and x3.74 as its 24-px proxy, whole blocks stepping past x4). A full
    size that misses is drawn at its true MACs; a proxy that misses is not: the chart shows the
    accuracy of a proxy of another cost there (and labels it). ``which``: :func:`curve_cost_missed`'s
    answer, when the caller has it already.
    """
    if which is None:
        which = curve_cost_missed(points, budget, full_tolerance, proxy_tolerance)
    missed = [(*point, what) for point, what in zip(points, which) if what]
    if not missed:
        return None
    listed = ", ".join(f"{name} phi = {phi} ({what}: x{full:.3g} at full size, proxy x{proxy:.3g})"
                       for name, phi, full, proxy, what in missed)
    fixes = []
    if any("proxy" in m[-1] for m in missed):
        fixes.append("read a proxy's miss in the curves table's 'proxy x' (the chart labels it); a larger proxy "
                     f"({PROXY_RESOLUTION_FLAG}, --proxy-width) prices each dimension in finer steps")
    if any("full size" in m[-1] for m in missed):
        fixes.append("a full size's miss is whole blocks or channels stepping past the target: it is drawn at its "
                     "true MACs, nothing to change")
    return ProxyWarning(
        "curve_cost_missed",
        f"{len(missed)} curve network(s) miss x{budget:.3g}^phi beyond the space's tolerances ({full_tolerance:.0%} "
        f"full size, {proxy_tolerance:.0%} proxy): {listed}", "; ".join(fixes))


def curve_cost_missed(points: Sequence[tuple[str, int, float, float]], budget: float, full_tolerance: float,
                      proxy_tolerance: float) -> list[str]:
    """Per curve network (as :func:`check_curve_costs` takes them): what misses budget ** phi —
    "full size", "proxy", both ("full size and proxy"), or "" (nothing; phi = 0 never)."""
    out = []
    for _, phi, full, proxy in points:
        target = budget**phi
        misses = [name for name, ratio, tolerance in (("full size", full, full_tolerance), ("proxy", proxy, proxy_tolerance))
                  if phi > 0 and _off(ratio, target) > tolerance]
        out.append(" and ".join(misses))
    return out


def _off(ratio: float, target: float) -> float:
    return abs(ratio / target - 1.0) if math.isfinite(ratio) else math.inf


def _name(point: object) -> str:
    """A point as a reader meets it: numbers to 3 significant digits."""
    if isinstance(point, (tuple, list)):
        return "(" + ", ".join(_name(v) for v in point) + ")"
    return f"{point:.3g}" if isinstance(point, float) else str(point)


def _same(a: object, b: object) -> bool:
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    return a == b


# --- what the feature-map check judges ----------------------------------------------------------


def size_function(baseline: Baseline) -> Callable[[float, float, int], Size]:
    """(width, depth, px) -> the last feature map; a user's network is built once per (width, depth)."""
    if baseline.complexity_fn is not None:
        return lambda width, depth, px: final_feature_size(baseline, width, depth, px)
    models: dict = {}

    def size(width: float, depth: float, px: int) -> Size:
        if (width, depth) not in models:
            models[width, depth] = baseline.build(width=width, depth=depth, num_classes=2)
        return last_conv_size(models[width, depth], px)

    return size


def feature_sizes(baseline: Baseline, cands: Sequence[Candidate], recipe: ProxyRecipe,
                  size: Callable[[float, float, int], Size] | None = None) -> list[tuple[str, int, Size]]:
    """(label, proxy input px, last feature map) of every grid point as the proxy trains it.

    A point that could not be costed, or a network that fails at its size, gets None: its runs
    fail with their own reason, which says more than this check could.
    """
    size = size or size_function(baseline)
    out = []
    for cand in cands:
        width, depth, px = proxy_settings(cand.proxy_point.multipliers(1.0), recipe)
        out.append((candidate_label(cand), px, _size_or_none(size, width, depth, px, cand)))
    return out


def _size_or_none(size, width: float, depth: float, px: int, cand: Candidate) -> Size:
    if cand.reason:
        return None
    try:
        return size(width, depth, px)
    except UsageError:
        return None


def smallest_proxy_resolution(baseline: Baseline, cands: Sequence[Candidate], recipe: ProxyRecipe,
                              size: Callable[[float, float, int], Size] | None = None) -> int | None:
    """The smallest proxy resolution at which every grid point's last feature map is at least 2×2.

    Output sizes never shrink as the input grows (PyTorch's floor rule is monotone), so a doubling
    search then a bisection finds it; None when nothing up to ``SEARCH_LIMIT_PX`` does.
    """
    size = size or size_function(baseline)
    points = [(cand, proxy_settings(cand.proxy_point.multipliers(1.0), recipe)) for cand in cands if not cand.reason]

    def all_ok(resolution: int) -> bool:
        r = recipe.replace(proxy_resolution=resolution)
        for cand, (width, depth, _) in points:
            px = proxy_settings(cand.proxy_point.multipliers(1.0), r)[2]
            try:
                hw = size(width, depth, px)
            except UsageError:  # too small for the network to run at all
                return False
            if hw is not None and min(hw) < MIN_FEATURE:
                return False
        return True

    hi = max(1, recipe.proxy_resolution)
    while not all_ok(hi):
        if hi >= SEARCH_LIMIT_PX:
            return None
        hi = min(SEARCH_LIMIT_PX, 2 * hi)
    lo = 0  # all_ok(lo) is taken as False; all_ok(hi) is True
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if all_ok(mid) else (mid, hi)
    return hi


def run_checks(baseline: Baseline, cands: Sequence[Candidate], recipe: ProxyRecipe, data: Dataset,
               baseline_accuracy: float | None = None) -> list[ProxyWarning]:
    """Every check a search can run before training (the winners' check needs a confirm stage)."""
    size = size_function(baseline)
    sizes = feature_sizes(baseline, cands, recipe, size)
    tiny = any(hw is not None and min(hw) < MIN_FEATURE for _, _, hw in sizes)
    smallest = smallest_proxy_resolution(baseline, cands, recipe, size) if tiny else None
    max_mult = max((c.proxy_point.multipliers(1.0).resolution for c in cands), default=1.0)
    found = [
        check_feature_map(sizes, recipe.proxy_resolution, smallest),
        check_upsampling(recipe.proxy_resolution, max_mult, data.image_size),
        check_baseline_accuracy(baseline_accuracy, data.num_classes),
    ]
    return [w for w in found if w is not None]
