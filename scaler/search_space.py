"""Search spaces: declarative TOML files (built-in ones in ``search_spaces/``), loaded into candidate points.

A space lists shares of the budget's logarithm (see ``search_spaces/compound.toml``): a point
with depth share ``a`` and resolution share ``g`` has width share ``(1 - a - 2g) / 2`` and
coefficients ``alpha = B**a``, ``beta = B**w``, ``gamma = B**g``, so the nominal cost factor is
exactly the budget B. Explicit ``points`` may be added. Rounding moves the real cost, so every
point is then cost-matched (:mod:`scaler.matching`): one coefficient is moved until the full-size
network and its proxy both cost the budget; a point that cannot be matched is dropped with its
reason. Compound points are then kept when their ratio (measured or nominal, as the file says) is
within the tolerance. The three single-dimension points are never filtered, so every search shows
whether compound scaling beat them (unless matching dropped them, which ``scaler grid`` shows).
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from scaler.baselines import Baseline
from scaler.errors import UsageError
from scaler.matching import FULL_TOLERANCE, PROXY_MATCHES, PROXY_TOLERANCE, TRIM, Coster, match_point
from scaler.options import FILTERS
from scaler.recipe import ProxyRecipe, resolve_recipe
from scaler.scaling import MAX_BUDGET_RATIO, Coefficients, Shares

# The built-in spaces: the checkout's search_spaces/ (linked from scaler/resources/), or a wheel's copy.
SPACES_DIR = Path(__file__).resolve().parent / "resources" / "search_spaces"
DEFAULT_SPACE = SPACES_DIR / "compound.toml"
_KEYS = {"depth", "resolution", "points", "tolerance", "filter", "full_tolerance", "proxy_tolerance", "proxy_match"}



@dataclass(frozen=True)
class SearchSpace:
    path: str
    depth_shares: tuple[float, ...]
    resolution_shares: tuple[float, ...]
    points: tuple[Coefficients, ...] = ()
    tolerance: float = 0.35
    filter: str = "measured"
    full_tolerance: float = FULL_TOLERANCE
    proxy_tolerance: float = PROXY_TOLERANCE
    proxy_match: str = "apart"  # scaler.matching: "apart" or "miniature"

    def matching_rules(self) -> dict:
        """match_point's keyword arguments: how this space's points (and the curves' networks) are matched."""
        return {"full_tolerance": self.full_tolerance, "proxy_tolerance": self.proxy_tolerance,
                "proxy_match": self.proxy_match}


@dataclass(frozen=True)
class Candidate:
    """One grid point with its nominal and measured cost, after cost matching."""

    kind: str  # "compound", "depth", "width" or "resolution"
    coefficients: Coefficients
    nominal_ratio: float
    macs_ratio: float
    macs: int
    params: int
    activations: int
    input_px: int  # full-size input at phi = 1
    reason: str = ""  # kept: why it could not be costed (its runs fail with it); dropped: why not matched
    proxy_macs_ratio: float = math.nan  # the proxy's MACs over the proxy baseline's
    planned: Coefficients | None = None  # the grid's point before matching
    proxy_coefficients: Coefficients | None = None  # the proxy's own point when matched apart; else the miniature

    @property
    def proxy_point(self) -> Coefficients:
        """The coefficients the proxy is built at: its own when matched apart, else the candidate's."""
        return self.proxy_coefficients or self.coefficients

    @property
    def progress_label(self) -> str:
        """How a progress line names the point's runs: ``depth      a=2.16 b=1 g=1``, and where its
        proxy was matched apart, what the proxy is built at: ``compound   a=1 b=1.1 g=1.26 (proxy b=1.28)``."""
        a, b, g = self.coefficients.as_tuple()
        apart = [f"{n}={p:.3g}" for n, v, p in zip("abg", (a, b, g), self.proxy_point.as_tuple()) if p != v]
        return f"{self.kind:<10} a={a:.3g} b={b:.3g} g={g:.3g}" + (f" (proxy {' '.join(apart)})" if apart else "")

    def as_dict(self) -> dict:
        a, b, g = self.coefficients.as_tuple()
        pa, pb, pg = (self.planned or self.coefficients).as_tuple()
        return {
            "kind": self.kind, "alpha": a, "beta": b, "gamma": g, "nominal_ratio": self.nominal_ratio,
            "macs_ratio": self.macs_ratio, "proxy_macs_ratio": self.proxy_macs_ratio, "macs": self.macs,
            "params": self.params, "activations": self.activations, "input_px": self.input_px,
            "planned_alpha": pa, "planned_beta": pb, "planned_gamma": pg, "reason": self.reason,
            # only when apart, so a search made before proxies could be matched apart keeps its identity
            **({"proxy_alpha": self.proxy_coefficients.alpha, "proxy_beta": self.proxy_coefficients.beta,
                "proxy_gamma": self.proxy_coefficients.gamma} if self.proxy_coefficients else {}),
        }


@dataclass(frozen=True)
class Grid:
    """The points a search trains, and those dropped, each with its reason."""

    kept: list[Candidate] = field(default_factory=list)
    dropped: list[Candidate] = field(default_factory=list)


def resolve_space_path(spec: str | Path | None) -> Path:
    """A path as given, or a name in ``search_spaces/`` (``compound_fine``)."""
    if spec is None:
        return DEFAULT_SPACE
    path = Path(spec)
    if not path.exists() and (SPACES_DIR / f"{spec}.toml").exists():
        path = SPACES_DIR / f"{spec}.toml"
    return path


def read_space_file(path: Path, keys: frozenset[str] | set[str]) -> dict:
    """The TOML table of a space file whose top-level keys are among ``keys``; else a one-line UsageError."""
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"search space {str(path)!r} is not valid TOML: {exc}") from None
    unknown = set(raw) - set(keys)
    if unknown:
        raise UsageError(f"search space {str(path)!r}: unknown keys {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(keys))})")
    return raw


def load_space(spec: str | Path | None = None) -> SearchSpace:
    """Read and validate a search-space file; every fault is a one-line UsageError."""
    path = resolve_space_path(spec)
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SPACES_DIR.glob("*.toml")))
        what = "is a folder, not a TOML file" if path.is_dir() else "does not exist"
        raise UsageError(f"search space {str(path)!r} {what} (built-in: {known})")
    raw = read_space_file(path, _KEYS)

    def shares(key: str, upper: float) -> tuple[float, ...]:
        values = raw.get(key, [0.0])
        if not isinstance(values, list) or not values or not all(_is_number(v) and 0 <= v <= upper for v in values):
            raise UsageError(f"search space {str(path)!r}: {key} must be a non-empty list of shares in [0, {upper:g}]")
        return tuple(sorted({float(v) for v in values}))

    points = raw.get("points", [])
    if not isinstance(points, list):
        raise UsageError(f"search space {str(path)!r}: points must be a list of {{alpha, beta, gamma}} tables")
    points = [_point(p, i, path) for i, p in enumerate(points)]
    tolerances = {k: raw.get(k, d) for k, d in (("tolerance", 0.35), ("full_tolerance", FULL_TOLERANCE),
                                               ("proxy_tolerance", PROXY_TOLERANCE))}
    for key, value in tolerances.items():
        if not _is_number(value) or value <= 0:
            raise UsageError(f"search space {str(path)!r}: {key} must be a positive number, got {value!r}")
    filter_ = raw.get("filter", "measured")
    if filter_ not in FILTERS:
        raise UsageError(f"search space {str(path)!r}: filter must be one of {', '.join(FILTERS)}, got {filter_!r}")
    proxy_match = raw.get("proxy_match", "apart")
    if proxy_match not in PROXY_MATCHES:
        raise UsageError(f"search space {str(path)!r}: proxy_match must be one of {', '.join(PROXY_MATCHES)}, "
                         f"got {proxy_match!r}")
    return SearchSpace(str(path), shares("depth", 1.0), shares("resolution", 0.5), tuple(points),
                       float(tolerances["tolerance"]), filter_, float(tolerances["full_tolerance"]),
                       float(tolerances["proxy_tolerance"]), proxy_match)


def _point(p, i: int, path: Path) -> Coefficients:
    """One explicit point; its nominal cost is bounded like a budget's (a huge one takes minutes to cost)."""
    if not isinstance(p, dict) or set(p) != {"alpha", "beta", "gamma"} or not all(_is_number(v) and v > 0 for v in p.values()):
        raise UsageError(f"search space {str(path)!r}: points[{i}] must be {{alpha, beta, gamma}} with positive numbers")
    log_product = math.log(p["alpha"]) + 2 * math.log(p["beta"]) + 2 * math.log(p["gamma"])
    if log_product > math.log(MAX_BUDGET_RATIO):
        raise UsageError(f"search space {str(path)!r}: points[{i}] costs more than {MAX_BUDGET_RATIO:g}x the baseline "
                         "(alpha*beta^2*gamma^2)")
    return Coefficients(float(p["alpha"]), float(p["beta"]), float(p["gamma"]))


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def share_points(space: SearchSpace, budget_ratio: float) -> list[tuple[str, Coefficients]]:
    """The grid's coefficients for a budget, single-dimension points first, then compound ones."""
    b = budget_ratio
    singles = [
        ("depth", Coefficients(b, 1.0, 1.0)),
        ("width", Coefficients(1.0, math.sqrt(b), 1.0)),
        ("resolution", Coefficients(1.0, 1.0, math.sqrt(b))),
    ]
    seen = {c.as_tuple() for _, c in singles}
    out = list(singles)
    for a in space.depth_shares:
        for g in space.resolution_shares:
            shares = Shares.width_takes_the_rest(a, g)
            if shares is None:
                continue
            c = Coefficients(*(round(v, 4) for v in shares.coefficients(b).as_tuple()))
            if _single_kind(c) is None and c.as_tuple() not in seen:
                seen.add(c.as_tuple())
                out.append(("compound", c))
    for c in space.points:
        if c.as_tuple() not in seen:
            seen.add(c.as_tuple())
            out.append((_single_kind(c) or "compound", c))
    return out


def _single_kind(c: Coefficients) -> str | None:
    grown = [name for name, v in zip(("depth", "width", "resolution"), c.as_tuple()) if abs(v - 1.0) > 1e-6]
    return grown[0] if len(grown) == 1 else None


def candidates(space: SearchSpace, baseline: Baseline, budget_ratio: float, num_classes: int = 1000,
               reference=None, *, recipe: ProxyRecipe | None = None, proxy_classes: int = 10) -> list[Candidate]:
    """The grid points a search trains: :func:`grid`'s kept points."""
    return grid(space, baseline, budget_ratio, num_classes, reference, recipe=recipe, proxy_classes=proxy_classes).kept


def grid(space: SearchSpace, baseline: Baseline, budget_ratio: float, num_classes: int = 1000,
         reference=None, *, recipe: ProxyRecipe | None = None, proxy_classes: int = 10) -> Grid:
    """Cost-match every grid point on the real network and its proxy; keep those matched and within tolerance.

    ``reference``: the baseline's cost at (1, 1) and ``num_classes``, when the caller has it already
    (a user model is traced, which takes seconds). ``recipe``: the proxy's (default: the default
    preset with the baseline's fields); ``proxy_classes``: the classes it trains on (a search
    passes its data's).
    """
    coster = Coster(baseline, recipe or resolve_recipe("default", baseline), num_classes, proxy_classes, reference)
    out = Grid()
    for kind, planned in share_points(space, budget_ratio):
        try:
            cand = candidate_from_match(kind, planned, match_point(kind, planned, budget_ratio, coster, **space.matching_rules()))
        except UsageError as exc:  # a user model that fails at some size
            cand = _failed(kind, planned, coster, baseline, exc)
            (out.kept if math.isnan(cand.macs_ratio) else out.dropped).append(cand)
            continue
        if not cand.reason and kind == "compound":
            ratio = cand.macs_ratio if space.filter == "measured" else cand.nominal_ratio
            if abs(ratio / budget_ratio - 1.0) > space.tolerance:
                cand = dataclasses.replace(cand, reason=f"{space.filter} cost x{ratio:.3g}: outside the space's "
                                                        f"tolerance {space.tolerance:g} of x{budget_ratio:.3g}")
        (out.dropped if cand.reason else out.kept).append(cand)
    return out


COARSE_SPACE = "compound_coarse"  # the default grid with the proxy matched within 10%


def coarse_hint(space: SearchSpace, dropped: list[Candidate]) -> str | None:
    """One line pointing at the looser built-in space when points were dropped on the proxy's cost."""
    on_proxy = [c for c in dropped if c.reason.startswith("proxy costs")]
    coarse = load_space(COARSE_SPACE)
    if not on_proxy or space.proxy_tolerance >= coarse.proxy_tolerance:
        return None
    return (f"note: {len(on_proxy)} point(s) dropped on the proxy's cost (within {space.proxy_tolerance:.0%}); "
            f"--space {COARSE_SPACE} matches the proxy within {coarse.proxy_tolerance:.0%}: more points, less equal cost")


def trim_notes(space: SearchSpace, kept: list[Candidate]) -> list[str]:
    """One line per single-dimension point a second coefficient trimmed to meet the budget (matching.TRIM)."""
    names = ("alpha", "beta", "gamma")
    out = []
    for c in kept:
        if c.kind not in TRIM:
            continue
        value = getattr(c.coefficients, TRIM[c.kind])
        if value != 1.0:
            px = f" ({c.input_px} px in)" if TRIM[c.kind] == "gamma" else ""
            out.append(f"note: the {c.kind} point's own steps miss the budget by more than {space.full_tolerance:.0%}: "
                       f"{TRIM[c.kind]} trimmed to {value:.3f}{px} so that it costs x{c.macs_ratio:.3f} "
                       f"({', '.join(f'{getattr(c.coefficients, n):.3f}' for n in names)})")
    return out


def _failed(kind: str, planned: Coefficients, coster: Coster, baseline: Baseline, exc: UsageError) -> Candidate:
    """Failing at the planned point itself: kept (NaN cost), its runs fail with the user's message, as before
    matching. Failing only at a size the matching tried: dropped, with the message."""
    try:
        cost = coster(planned)
    except UsageError:
        px = planned.multipliers(1.0).input_size(baseline.resolution)
        return Candidate(kind, planned, planned.product, math.nan, 0, 0, 0, px, str(exc), planned=planned)
    return Candidate(kind, planned, planned.product, cost.full_ratio, cost.full.macs, cost.full.params,
                     cost.full.activations, cost.input_px, f"matching met a size the model fails at: {exc}",
                     cost.proxy_ratio, planned)


def candidate_from_match(kind: str, planned: Coefficients, match) -> Candidate:
    """The candidate a match describes: its coefficients and costs, the planned point, the reason it missed (if so)."""
    cost = match.cost
    c = cost.coefficients
    return Candidate(kind, c, c.product, cost.full_ratio, cost.full.macs, cost.full.params, cost.full.activations,
                     cost.input_px, match.reason, cost.proxy_ratio, planned, cost.proxy_coefficients)
