"""The MBConv search space: a TOML file of per-stage choices, validated on load, and the
architectures (stage lists) it makes from a start.

A sampled architecture is a function of its parameters only (``s<i>_kernel``, ``s<i>_expand``,
``s<i>_se``, ``s<i>_repeats``, ``s<i>_width``, ``s<i>_block``): a trial's params rebuild it
exactly, so a resumed search, the report and ``best.json`` agree with what was trained.
Decode -> scale -> build, as everywhere: the start is decoded by :mod:`scaler.baselines.mbconv`,
width-matched to the target with its own rounding, then each stage takes its choices.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

from scaler.baselines import get_baseline
from scaler.baselines.mbconv import SUPPORTED_SE, decode, read_stage_list, scale
from scaler.cost import count_cost
from scaler.errors import UsageError
from scaler.scaling import round_channels
from scaler.search_space import read_space_file, resolve_space_path

DEFAULT_NAS_SPACE = "mbconv"
_KEYS = {"start", "kernel", "expand", "se", "repeats", "width", "fused_stages", "band"}
# Widths tried when the start is matched to the target: 1/64x .. 64x, far past any sensible target.
_FIT_RANGE = (1 / 64, 64.0)


@dataclass(frozen=True)
class NasSpace:
    path: str
    start: str
    kernel: tuple[int, ...]
    expand: tuple[int, ...]
    se: tuple[float, ...]
    repeats: tuple[int, ...]
    width: tuple[float, ...]
    fused_stages: int
    band: float

    def rules(self) -> dict:
        """What defines the space (its identity in a run's config): everything but where it was read."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items() if k != "path"}


def load_nas_space(spec: str | Path | None = None) -> NasSpace:
    """Read and validate an MBConv space file (default ``search_spaces/mbconv.toml``); faults are one-line UsageErrors."""
    path = resolve_space_path(spec or DEFAULT_NAS_SPACE)
    where = f"search space {str(path)!r}"
    if not path.is_file():
        raise UsageError(f"{where} does not exist")
    raw = read_space_file(path, _KEYS)

    def choices(key: str, ok, what: str, default=None) -> tuple:
        values = raw.get(key, default)
        if not isinstance(values, list) or not values or not all(ok(v) for v in values):
            raise UsageError(f"{where}: {key} must be a non-empty list of {what}, got {values!r}")
        if len(set(values)) != len(values):
            raise UsageError(f"{where}: {key} lists a choice twice: {values!r}")
        return tuple(values)

    def integer(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    start = raw.get("start", "efficientnet_b0")
    if not isinstance(start, str) or not start:
        raise UsageError(f"{where}: start must be a stage-list name or .json path, got {start!r}")
    fused = raw.get("fused_stages", 0)
    if not integer(fused) or fused < 0:
        raise UsageError(f"{where}: fused_stages must be an integer >= 0, got {fused!r}")
    band = raw.get("band", 0.1)
    if not number(band) or not 0 < band < 1:
        raise UsageError(f"{where}: band must be a fraction in (0, 1), got {band!r}")
    return NasSpace(
        path=str(path), start=start,
        kernel=choices("kernel", lambda v: integer(v) and v >= 1 and v % 2 == 1, "odd positive integers", [3, 5]),
        expand=choices("expand", lambda v: integer(v) and v >= 1, "positive integers", [1, 4, 6]),
        se=tuple(float(v) for v in choices("se", lambda v: number(v) and v in SUPPORTED_SE,
                                           f"squeeze-excite ratios in {SUPPORTED_SE}", [0, 0.25])),
        repeats=choices("repeats", lambda v: integer(v) and abs(v) <= 8, "integers in -8..8", [-1, 0, 1]),
        width=tuple(float(v) for v in choices("width", lambda v: number(v) and 0.1 <= v <= 4,
                                              "width factors in [0.1, 4]", [0.75, 1.0, 1.25])),
        fused_stages=fused, band=float(band),
    )


def read_start(spec: str) -> dict:
    """The start as a decoded stage list: a built-in MBConv name, or a stage-list .json."""
    if spec.endswith(".json"):
        path = Path(spec)
        if not path.is_file():
            raise UsageError(f"stage list {spec!r} does not exist")
        return read_stage_list(path)
    baseline = get_baseline(spec)  # an unknown name: the registry's one line
    path = Path(baseline.source) if baseline.source.endswith(".json") else None
    from scaler.baselines.mbconv import builtin_dir

    path = path or builtin_dir() / f"{baseline.name}.json"
    if not path.is_file():
        raise UsageError(f"start {spec!r} is not an MBConv stage list (a built-in efficientnet_b0, or a stage-list .json)")
    return read_stage_list(path)


def macs(spec: dict, resolution: int | None = None) -> int:
    """Full-size MACs of a stage list at ``resolution`` (default its own), analytically."""
    return count_cost(spec, resolution=resolution or spec["resolution"]).macs


def fit_width(start: dict, target: float) -> tuple[float, dict]:
    """The width multiplier whose rounded network costs closest to ``target`` MACs, and that network.

    Channels round to multiples of 8, so cost is a staircase in width: a geometric bisection finds
    the step around the target, and the nearer side wins.
    """
    lo, hi = _FIT_RANGE
    if macs(scale(start, lo, 1.0)) >= target:
        return lo, scale(start, lo, 1.0)
    for _ in range(40):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if macs(scale(start, mid, 1.0)) < target else (lo, mid)
    best = min((lo, hi), key=lambda w: abs(math.log(macs(scale(start, w, 1.0)) / target)))
    fitted = scale(start, best, 1.0)
    return best, {**fitted, "name": f"{start['name']}-w{best:.3f}"}


def suggest(trial, space: NasSpace, start: dict) -> dict:
    """Sample an architecture on an Optuna trial (ask-and-tell) and return its stage list."""
    params = {}
    for i, _ in enumerate(start["stages"]):
        block = "mbconv"
        if i < space.fused_stages:
            block = params[f"s{i}_block"] = trial.suggest_categorical(f"s{i}_block", ["mbconv", "fused"])
        for name, values in (("kernel", space.kernel), ("expand", space.expand), ("repeats", space.repeats),
                             ("width", space.width)):
            params[f"s{i}_{name}"] = trial.suggest_categorical(f"s{i}_{name}", list(values))
        if block == "mbconv":  # Fused-MBConv has no squeeze-excite: the parameter does not exist there
            params[f"s{i}_se"] = trial.suggest_categorical(f"s{i}_se", list(space.se))
    return architecture(params, start, trial.number)


def architecture(params: dict, start: dict, number: int | None = None) -> dict:
    """The stage list that ``params`` make from the (width-matched) ``start``."""
    rows = []
    for i, row in enumerate(start["stages"]):
        block = params.get(f"s{i}_block", "mbconv")
        rows.append({
            "expand": int(params[f"s{i}_expand"]), "kernel": int(params[f"s{i}_kernel"]), "stride": row["stride"],
            "channels": round_channels(row["channels"], float(params[f"s{i}_width"])),
            "repeats": max(1, row["repeats"] + int(params[f"s{i}_repeats"])),
            "se": 0.0 if block == "fused" else float(params[f"s{i}_se"]), "block": block,
        })
    name = f"nas-trial{number}" if number is not None else "nas"
    return decode({**start, "name": name, "description": f"sampled by scaler nas from {start['name']}", "stages": rows}, name)


def extremes(space: NasSpace, start: dict) -> tuple[int, int]:
    """MACs of the smallest and the largest architecture the space makes from ``start``.

    Every choice raises cost monotonically (kernel, expansion, squeeze-excite, blocks, channels,
    which also feed the next stage), except a stage's block type; so the extremes take the
    smallest (largest) of each choice and the cheapest (dearest) of the 2^fused_stages block mixes.
    """
    fused = min(space.fused_stages, len(start["stages"]))
    costs = {}
    for pick in (min, max):
        found = []
        for blocks in itertools.product(("mbconv", "fused"), repeat=fused):
            params = {}
            for i, _ in enumerate(start["stages"]):
                params.update({f"s{i}_kernel": pick(space.kernel), f"s{i}_expand": pick(space.expand),
                               f"s{i}_se": pick(space.se), f"s{i}_repeats": pick(space.repeats),
                               f"s{i}_width": pick(space.width)})
                if i < fused:
                    params[f"s{i}_block"] = blocks[i]
            found.append(macs(architecture(params, start)))
        costs[pick] = pick(found)
    return costs[min], costs[max]


def stage_code(row: dict) -> str:
    """A stage in a few characters, timm's block-string style: ``ir_k5_e6_se_c40_r2`` / ``er_k3_e4_c24_r2``."""
    kind = "er" if row.get("block") == "fused" else "ir"  # timm: edge residual = fused, inverted residual
    se = "_se" if row.get("se") else ""
    return f"{kind}_k{row['kernel']}_e{row['expand']}{se}_c{row['channels']}_r{row['repeats']}_s{row['stride']}"
