"""The arithmetic of compound scaling, as small pure functions.

EfficientNet (Tan & Le, 2019) scales depth by alpha**phi, width by beta**phi and input resolution
by gamma**phi, with alpha * beta**2 * gamma**2 ~= 2 so that multiply-adds grow about 2**phi.
The rounding rules below are the ones that reproduce EfficientNet-B1..B7 from B0 exactly; they
move the real cost away from the nominal product, which is why callers always report the
*measured* MACs ratio next to it.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import re
from dataclasses import dataclass

from scaler.errors import UsageError

# EfficientNet's published members (Tan & Le 2019, the official code's efficientnet_builder.py):
# name -> (width, depth, input px, dropout). Not alpha**phi, beta**phi, gamma**phi for integer phi.
EFFICIENTNET_TABLE = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
}

CHANNEL_DIVISOR = 8
# How far phi may go: beyond these the networks are either empty or absurd (and alpha**phi can
# overflow a float). The target solver (scaler.phi_solver) searches within the same limits.
PHI_LIMITS = (-8.0, 16.0)
MAX_PHI_MEMBERS = 64  # a family is a table people read; more members is a typo like 0..1e9
# MACs grow about 2**phi, so a budget above 2**16 is beyond the largest phi (and costing its grid takes minutes).
MAX_BUDGET_RATIO = 2.0 ** PHI_LIMITS[1]
# The divisor builders round to: 8, except while a proxy is built or costed (channel_divisor below).
_DIVISOR: contextvars.ContextVar[int] = contextvars.ContextVar("channel_divisor", default=CHANNEL_DIVISOR)


@contextlib.contextmanager
def channel_divisor(divisor: int):
    """Round channels to multiples of ``divisor`` inside the block (the built-in builders and walks).

    A proxy at width 0.25 rounded to multiples of 8 is a far coarser network than the full size
    at multiples of 8: a 1.12x wider candidate may get no extra channel at all, or 50% more.
    Rounding the proxy to 8 x its width keeps its rounding the full size's in miniature.
    """
    token = _DIVISOR.set(max(1, int(divisor)))
    try:
        yield
    finally:
        _DIVISOR.reset(token)


def current_divisor() -> int:
    return _DIVISOR.get()


def round_channels(channels: float, width_mult: float = 1.0, divisor: int | None = None) -> int:
    """Scale a channel count and round it to a multiple of ``divisor`` (default: :func:`current_divisor`).

    Policy (EfficientNet's official code, timm's ``make_divisible``, torchvision's
    ``_make_divisible``): round to the nearest multiple, never below ``divisor``, and never more
    than 10% below the unrounded value (if it would be, add one more ``divisor``).
    """
    divisor = divisor or _DIVISOR.get()
    value = channels * width_mult
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, depth_mult: float = 1.0) -> int:
    """Scale a stage's block count, rounding up.

    ``ceil`` so that a stage never loses its last block at a small multiplier (timm's
    ``_scale_stage_depth`` with ``depth_trunc="ceil"``, EfficientNet's ``round_repeats``). On
    small counts this adds a lot: B0's depths 1,2,2,3,3,4,1 at d = 1.2 become 2,3,3,4,4,5,2.
    """
    return int(math.ceil(repeats * depth_mult))


def round_resolution(resolution: float) -> int:
    """Input resolution in pixels: nearest integer, at least 1."""
    return max(1, int(round(resolution)))


@dataclass(frozen=True)
class Coefficients:
    """Per-unit-of-phi growth factors: depth alpha, width beta, resolution gamma."""

    alpha: float
    beta: float
    gamma: float

    @property
    def product(self) -> float:
        """The nominal cost factor alpha * beta**2 * gamma**2 for phi = 1."""
        return self.alpha * self.beta**2 * self.gamma**2

    def multipliers(self, phi: float) -> Multipliers:
        try:
            return Multipliers(depth=self.alpha**phi, width=self.beta**phi, resolution=self.gamma**phi)
        except OverflowError:  # float ** raises rather than giving inf
            raise UsageError(f"coefficients {self.as_tuple()} at phi = {phi:g} overflow; keep phi within "
                             f"[{PHI_LIMITS[0]:g}, {PHI_LIMITS[1]:g}]") from None

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.alpha, self.beta, self.gamma)


@dataclass(frozen=True, kw_only=True)
class Multipliers:
    """Width, depth and resolution multipliers of one scaled network (phi already applied); keyword-only."""

    depth: float = 1.0
    width: float = 1.0
    resolution: float = 1.0

    def __post_init__(self) -> None:
        for name in ("depth", "width", "resolution"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise UsageError(f"{name} multiplier must be a positive number, got {value!r}")

    @property
    def nominal_ratio(self) -> float:
        """The cost factor before rounding: d * w**2 * r**2."""
        return self.depth * self.width**2 * self.resolution**2

    def input_size(self, base_resolution: int) -> int:
        return round_resolution(base_resolution * self.resolution)


def check_size(m: Multipliers, what: str) -> Multipliers:
    """``m``, if neither it nor any one of its dimensions grows the cost past MAX_BUDGET_RATIO; else a
    UsageError. Given on the command line, a network past it takes minutes to build or all the memory
    (``--depth 1e9``); the grids and the phi solver stay within it by their own limits."""
    parts = {"cost": m.nominal_ratio, "depth": m.depth, "width²": m.width**2, "resolution²": m.resolution**2}
    over = [f"{name} {value:.3g}x" for name, value in parts.items() if value > MAX_BUDGET_RATIO * (1 + 1e-9)]
    if over:
        raise UsageError(f"{what} (depth {m.depth:g}, width {m.width:g}, resolution {m.resolution:g}) grows "
                         f"{', '.join(over)} the baseline's; scaler grows up to {MAX_BUDGET_RATIO:g}x "
                         f"(phi {PHI_LIMITS[1]:g} at alpha·beta²·gamma² = 2)")
    return m


@dataclass(frozen=True)
class Shares:
    """How a cost factor ``s`` is shared between the dimensions: depth ``s**depth``, width
    ``s**width``, resolution ``s**resolution``, with depth + 2 width + 2 resolution = 1 so that the
    nominal cost d * w**2 * r**2 is ``s`` exactly (checked, as pycls's scaler does). The grid's
    points (:func:`scaler.search_space.share_points`) and the compared strategies
    (:class:`scaler.compare.Strategy`) are both shares.
    """

    depth: float
    width: float
    resolution: float

    def __post_init__(self) -> None:
        total = self.depth + 2 * self.width + 2 * self.resolution
        if not math.isclose(total, 1.0, rel_tol=1e-9, abs_tol=1e-6):
            raise ValueError(f"shares d + 2 w + 2 r = {total}, not 1")

    @classmethod
    def width_takes_the_rest(cls, depth: float, resolution: float) -> Shares | None:
        """The shares with width given what depth and resolution leave; None when they leave less than nothing."""
        width = (1.0 - depth - 2 * resolution) / 2
        return None if width < -1e-9 else cls(depth, max(width, 0.0), resolution)

    def coefficients(self, factor: float) -> Coefficients:
        return Coefficients(factor**self.depth, factor**self.width, factor**self.resolution)

    def multipliers(self, factor: float) -> Multipliers:
        return self.coefficients(factor).multipliers(1.0)


def parse_coefficients(text: str) -> Coefficients:
    """Parse ``"1.2,1.1,1.15"`` into Coefficients(alpha=1.2, beta=1.1, gamma=1.15)."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 3 or not all(math.isfinite(v) and v > 0 for v in values):
        raise UsageError(
            f"coefficients must be three positive numbers 'alpha,beta,gamma' (e.g. 1.2,1.1,1.15), got {text!r}"
        )
    return Coefficients(*values)


@dataclass(frozen=True)
class Budget:
    """A compute budget: a factor of the baseline's MACs (``2x``) or an absolute MACs count (``400M``)."""

    ratio: float | None = None
    macs: float | None = None

    def target_ratio(self, baseline_macs: float) -> float:
        """The budget as a factor of ``baseline_macs``; more than MAX_BUDGET_RATIO is a UsageError."""
        ratio = self.ratio if self.ratio is not None else self.macs / baseline_macs
        if ratio > MAX_BUDGET_RATIO:
            raise UsageError(f"budget {self} is {ratio:.3g}x the baseline's MACs; scaler grows up to "
                             f"{MAX_BUDGET_RATIO:g}x (phi {PHI_LIMITS[1]:g})")
        return ratio

    def __str__(self) -> str:
        if self.ratio is not None:
            return f"{self.ratio:g}x"
        return format_macs(self.macs)


_BUDGET = re.compile(r"^\s*(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[xXkKmMgGtT])\s*$")
_UNITS = {"k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


def parse_budget(text: str) -> Budget:
    """Parse ``2x`` / ``1.5x`` (factor of the baseline) or ``400M`` / ``1.2G`` (absolute MACs)."""
    match = _BUDGET.match(str(text))
    if not match:
        raise UsageError(
            f"budget must be a factor like '2x' or '1.5x', or multiply-adds like '400M' or '1.2G'; got {text!r}"
        )
    value = float(match["num"])
    if not 0 < value < math.inf:  # a 400-digit number is inf
        raise UsageError(f"budget must be a positive, finite number, got {text!r}")
    unit = match["unit"].lower()
    if unit == "x":
        budget = Budget(ratio=value)
        budget.target_ratio(1.0)  # a factor is bounded at once, before any baseline is costed
        return budget
    return Budget(macs=value * _UNITS[unit])


def parse_phi_range(text: str) -> list[float]:
    """Parse ``"0..3"`` into [0, 1, 2, 3], ``"2"`` into [2], ``"0,0.5,1"`` into [0, 0.5, 1].

    Every value must lie within PHI_LIMITS and a range hold at most MAX_PHI_MEMBERS members;
    anything else is a one-line UsageError.
    """
    text = str(text).strip()
    try:
        if ".." in text:
            lo, hi = (check_phi(float(p)) for p in text.split(".."))
            if hi < lo:
                raise UsageError(f"phi range {text!r} runs backwards; write it low..high, e.g. 0..3")
            phis = [lo + i for i in range(int(math.floor(hi - lo + 1e-9)) + 1)]
        else:
            phis = [check_phi(float(p)) for p in text.split(",")]
    except ValueError:
        raise UsageError(f"phi must be a number, a list like 0,0.5,1 or a range like 0..3; got {text!r}") from None
    if len(phis) > MAX_PHI_MEMBERS:
        raise UsageError(f"phi {text!r} makes {len(phis)} members; at most {MAX_PHI_MEMBERS}")
    return phis


def check_phi(phi: float, name: str = "phi") -> float:
    """``phi`` itself when finite and within PHI_LIMITS; else a UsageError."""
    lo, hi = PHI_LIMITS
    if not (math.isfinite(phi) and lo <= phi <= hi):
        raise UsageError(f"{name} must be a number from {lo:g} to {hi:g}, got {phi:g}")
    return phi


def format_macs(macs: float) -> str:
    """Multiply-adds with 3 significant figures: 385.8M -> '386M', 4.09e9 -> '4.09G'."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(macs) >= scale:
            return f"{macs / scale:.3g}{unit}"
    return f"{macs:.3g}"
