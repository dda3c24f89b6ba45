"""Scaling strategies compared at matched MACs: the small-scale equivalent of EfficientNet's Table 3.

A strategy turns a MACs factor ``s`` into multipliers with exponents that share it out:
depth ``s**e_d``, width ``s**e_w``, resolution ``s**e_r``, where ``e_d + 2 e_w + 2 e_r = 1`` so
that the nominal cost d * w**2 * r**2 is ``s`` (checked with ``isclose``, as pycls does).

    depth        (1, 0, 0)
    width        (0, 1/2, 0)
    resolution   (0, 0, 1/2)
    compound     from coefficients: (ln a, ln b, ln g) / ln(a b**2 g**2)  (EfficientNet's phi)
    dollar       ((1 - a)/2, a/2, (1 - a)/4) with a = 0.8: mostly width (Dollar et al., CVPR 2021)

Rounding moves the real cost away from ``s``, so each strategy's factor is corrected until the
*measured* MACs ratio matches the budget (a few analytic counts, no training); what remains of
the mismatch is written beside the accuracy. Then every variant trains under the same proxy
recipe and seeds.

Example::

    from scaler.compare import compare
    from scaler.proxy import ProxyTraining
    frame = compare("mobilenet_v2", budgets=["2x", "4x"], training=ProxyTraining(preset="smoke"))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch

from scaler.baselines import Baseline, get_baseline
from scaler.cost import count_cost
from scaler.devices import resolve_device
from scaler.errors import UsageError
from scaler.matching import correct
from scaler.proxy import ProxyTrainer, ProxyTraining
from scaler.run_folder import RunFolder
from scaler.scaling import Budget, Coefficients, Multipliers, Shares, parse_budget
from scaler.train_log import TrainingLog

STRATEGIES = ("depth", "width", "resolution", "compound", "dollar")
EFFICIENTNET_COEFFICIENTS = Coefficients(1.2, 1.1, 1.15)
DOLLAR_ALPHA = 0.8
MATCH_TOLERANCE = 0.01  # |ln(measured / target)|: within 1%
MATCH_ITERATIONS = 8

COLUMNS = [
    "strategy", "budget", "target_ratio", "depth_mult", "width_mult", "resolution_mult", "input_px",
    "nominal_ratio", "macs_ratio", "macs", "params", "activations",
    "accuracy_mean", "accuracy_std", "accuracy_n", "seconds", "failure",
]


@dataclass(frozen=True)
class Strategy:
    """Exponents of the MACs factor given to depth, width and resolution."""

    name: str
    e_depth: float
    e_width: float
    e_resolution: float

    @property
    def shares(self) -> Shares:
        return Shares(self.e_depth, self.e_width, self.e_resolution)  # checks e_d + 2 e_w + 2 e_r = 1

    def __post_init__(self) -> None:
        try:
            _ = self.shares  # the check lives with the shares
        except ValueError as exc:
            raise ValueError(f"strategy {self.name}: {exc}") from None

    def multipliers(self, factor: float) -> Multipliers:
        return self.shares.multipliers(factor)


def dollar_strategy(alpha: float = DOLLAR_ALPHA) -> Strategy:
    """Dollar, Singh, Girshick's fast compound scaling: alpha = 1 is width only, 1/3 uniform."""
    if not 0 <= alpha <= 1:
        raise UsageError(f"the dollar strategy's alpha must be in [0, 1], got {alpha}")
    return Strategy("dollar", (1 - alpha) / 2, alpha / 2, (1 - alpha) / 4)


def compound_strategy(coefficients: Coefficients) -> Strategy:
    """EfficientNet's compound scaling as exponents: phi = ln s / ln(alpha beta**2 gamma**2)."""
    log_product = math.log(coefficients.product)
    if log_product <= 0:
        raise UsageError(f"coefficients {coefficients.as_tuple()} do not grow the network (alpha*beta^2*gamma^2 <= 1)")
    a, b, g = (math.log(v) / log_product for v in coefficients.as_tuple())
    return Strategy("compound", a, b, g)


def get_strategy(name: str, coefficients: Coefficients | None = None, dollar_alpha: float = DOLLAR_ALPHA) -> Strategy:
    fixed = {"depth": (1.0, 0.0, 0.0), "width": (0.0, 0.5, 0.0), "resolution": (0.0, 0.0, 0.5)}
    if name in fixed:
        return Strategy(name, *fixed[name])
    if name == "compound":
        return compound_strategy(coefficients or EFFICIENTNET_COEFFICIENTS)
    if name == "dollar":
        return dollar_strategy(dollar_alpha)
    raise UsageError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")


def parse_strategies(text: str | Sequence[str]) -> list[str]:
    names = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    names = [n for n in names if n]
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown or not names:
        raise UsageError(f"unknown strategy {', '.join(unknown) or '(none)'}; known: {', '.join(STRATEGIES)}")
    return list(dict.fromkeys(names))


def parse_budgets(text: str | Sequence[str]) -> list[Budget]:
    parts = [p.strip() for p in text.split(",")] if isinstance(text, str) else [str(p) for p in text]
    if any(parts) and not all(parts):  # "2x,,4x": a budget left out by a typo, not silently dropped
        raise UsageError(f"budgets {text!r} hold an empty item; give them as 2x,4x")
    return [parse_budget(p) for p in parts if p]


@dataclass
class Matched:
    """A strategy's variant whose measured MACs ratio is closest to the budget's."""

    multipliers: Multipliers
    input_px: int
    factor: float  # the factor s given to the strategy after correction
    macs: int
    params: int
    activations: int
    macs_ratio: float


def match_macs(baseline: Baseline, strategy: Strategy, target_ratio: float, base_macs: int, num_classes: int = 1000) -> Matched:
    """Correct the strategy's factor until the measured MACs ratio is within 1% of ``target_ratio``.

    The correction is :func:`scaler.matching.correct`, the grid's too: it keeps the closest
    variant it met, as rounding makes cost a staircase.
    """
    met: dict[float, Matched] = {}

    def ratio_at(factor: float) -> float:
        m = strategy.multipliers(factor)
        px = m.input_size(baseline.resolution)
        cost = count_cost(baseline, width=m.width, depth=m.depth, resolution=px, num_classes=num_classes)
        met[factor] = Matched(m, px, factor, cost.macs, cost.params, cost.activations, cost.macs / base_macs)
        return met[factor].macs_ratio

    return met[correct(ratio_at, target_ratio, target_ratio, tolerance=MATCH_TOLERANCE, iterations=MATCH_ITERATIONS)]


def compare(
    baseline: str | Baseline,
    budgets: Sequence[str | Budget] = ("2x",),
    strategies: Sequence[str] = STRATEGIES,
    *,
    coefficients: Coefficients | None = None,
    dollar_alpha: float = DOLLAR_ALPHA,
    training: ProxyTraining | None = None,
    device: str | torch.device | None = "cpu",
    num_classes: int = 1000,
    on_row: Callable[[dict], None] | None = None,
    log_to: RunFolder | None = None,
) -> pd.DataFrame:
    """Train the baseline and each strategy at each budget; one row per (strategy, budget).

    MACs, params and activations are of the full-size network (``num_classes`` outputs, the
    baseline's resolution scaled); accuracy is the proxy's (0..1, mean and sample std over seeds).
    With ``training=None`` only the matched variants and their cost are returned.
    """
    b = get_baseline(baseline)
    strategies = parse_strategies(strategies)
    chosen = {name: get_strategy(name, coefficients, dollar_alpha) for name in strategies}
    budgets = [parse_budget(x) if isinstance(x, str) else x for x in budgets]
    if not budgets:
        raise UsageError("give at least one budget, e.g. 2x")
    base = count_cost(b, num_classes=num_classes)
    trainer = None
    if training is not None:  # runs recorded in log_to's study: a stopped compare resumes
        trainer = ProxyTrainer(training, device, TrainingLog(log_to) if log_to is not None else None)

    plan = [("baseline", "1x", 1.0, Matched(Multipliers(), b.resolution, 1.0, base.macs, base.params, base.activations, 1.0))]
    for budget in budgets:
        ratio = budget.target_ratio(base.macs)
        if ratio <= 1:
            raise UsageError(f"budget {budget} is not larger than the baseline ({ratio:.3g}x its MACs)")
        for name, strategy in chosen.items():
            plan.append((name, str(budget), ratio, match_macs(b, strategy, ratio, base.macs, num_classes)))

    rows = []
    for name, budget, ratio, matched in plan:
        m = matched.multipliers
        row = {
            "strategy": name, "budget": budget, "target_ratio": ratio,
            "depth_mult": m.depth, "width_mult": m.width, "resolution_mult": m.resolution, "input_px": matched.input_px,
            "nominal_ratio": m.nominal_ratio, "macs_ratio": matched.macs_ratio, "macs": matched.macs,
            "params": matched.params, "activations": matched.activations,
            "accuracy_mean": None, "accuracy_std": None, "accuracy_n": 0, "seconds": None, "failure": None,
        }
        if trainer is not None:
            # the proxy trains at the measured resolution (after rounding), not the unrounded one
            result = trainer.accuracy(b, Multipliers(width=m.width, depth=m.depth, resolution=matched.input_px / b.resolution))
            row.update(accuracy_mean=result["accuracy_mean"], accuracy_std=result["accuracy_std"],
                       accuracy_n=result["accuracy_n"], seconds=result["train_seconds"], failure=result["train_failure"])
        rows.append(row)
        if on_row:
            on_row(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def write_compare(frame: pd.DataFrame, out: str | Path, settings: dict) -> dict[str, Path]:
    """Write compare.csv, compare.json (settings) and plots/compare_accuracy_vs_macs.png into ``out``."""
    from scaler import plots

    folder = RunFolder(Path(out)).create()
    folder.write_csv(folder.compare, frame)
    settings_path = folder.path / "compare.json"
    folder.write_json(settings_path, settings)
    written = {"csv": folder.compare, "settings": settings_path}
    folder.record(folder.plots)
    png = plots.accuracy_vs_cost(compare_series(frame), "macs", folder.plots / "compare_accuracy_vs_macs.png",
                                 f"{settings.get('baseline', '')}: scaling strategies at matched MACs")
    if png:
        written["plot"] = png
    return written


def compare_series(frame: pd.DataFrame, prefix: str = "") -> list:
    """One line per strategy, each starting from the baseline's point."""
    from scaler import plots

    base = frame[frame["strategy"] == "baseline"]
    series = []
    for name in [s for s in dict.fromkeys(frame["strategy"]) if s != "baseline"]:
        part = pd.concat([base, frame[frame["strategy"] == name]]).sort_values("macs")
        series.append(plots.Series(
            label=f"{prefix}{name}", x=list(part["macs"]), y=_nullable(part["accuracy_mean"]),
            yerr=_nullable(part["accuracy_std"]),
        ))
    return series


def _nullable(column) -> list:
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in column]


def settings(baseline: str, budgets, strategies, coefficients, dollar_alpha, training, device) -> dict:
    """What a compare ran with, for compare.json and the report."""
    return {
        "command": "compare",
        "baseline": baseline,
        "budgets": [str(b) for b in budgets],
        "strategies": {name: asdict(get_strategy(name, coefficients, dollar_alpha)) for name in strategies},
        "coefficients": asdict(coefficients or EFFICIENTNET_COEFFICIENTS) if "compound" in strategies else None,
        "dollar_alpha": dollar_alpha if "dollar" in strategies else None,
        "training": training.as_dict() if training else None,
        "device": str(resolve_device(device)),
        "units": {"macs": "multiply-adds", "accuracy": "0..1"},
    }
