"""The scaled family: one network per phi, with its cost, latency and (optionally) proxy accuracy.

A family is a baseline plus a rule that turns a label into multipliers: compound coefficients
(depth alpha**phi, width beta**phi, resolution gamma**phi, phi possibly fractional or solved from
a budget), or the published EfficientNet B0..B7 table. Each member is described by data only::

    {"label": "phi=2", "phi": 2.0, "baseline": "efficientnet_b0", "num_classes": 1000,
     "depth_mult": 1.44, "width_mult": 1.21, "resolution_mult": 1.3225, "input_px": 296,
     "stages": [{"name": "stem", "channels": 40, "repeats": 1}, ...],
     "params": ..., "macs": ..., "activations": ..., "macs_ratio": ..., "nominal_ratio": ...,
     "latency_ms": ..., "latency_batch_ms": ..., "latency_batch": 8,
     "accuracy_mean": ..., "accuracy_std": ..., "accuracy_n": ...}

so that :func:`build_member` rebuilds it as an ``nn.Module`` from the JSON alone (a stage-list
baseline read from a ``.json`` path is embedded as ``baseline_spec``, so the file need not stay).
MACs are multiply-adds of convolutions and linear layers (the paper's "FLOPS") of the full-size
network at its input resolution; ``macs_ratio`` compares with the baseline at (1, 1) and its base
resolution, measured after rounding, beside the nominal d * w**2 * r**2.

Files (``family.json``/``.csv``) and rebuilding a member are in :mod:`scaler.family_files`;
solving phi for a target in :mod:`scaler.phi_solver`; ONNX export in :mod:`scaler.export`.

Example::

    from scaler.family import build_family
    from scaler.family_files import build_member
    from scaler.scaling import Coefficients
    fam = build_family("efficientnet_b0", coefficients=Coefficients(1.2, 1.1, 1.15), phis=[0, 1])
    model = build_member(fam.members[1].as_dict())
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from scaler import __version__, cost
from scaler.baselines import Baseline, get_baseline
from scaler.devices import resolve_device
from scaler.errors import UsageError
from scaler.phi_solver import solve_targets
from scaler.proxy import ProxyTrainer, ProxyTraining
from scaler.run_folder import RunFolder
from scaler.scaling import EFFICIENTNET_TABLE, Coefficients, Multipliers
from scaler.train_log import TrainingLog

TABLES = ("official",)
OFFICIAL_BASE_PX = 224

DEFAULT_LATENCY_RUNS = 5
DEFAULT_LATENCY_BATCH = 8


@dataclass
class Member:
    """One network of a family, described by data only (see the module docstring)."""

    label: str
    phi: float | None
    baseline: str
    num_classes: int
    depth_mult: float
    width_mult: float
    resolution_mult: float
    input_px: int
    stages: list[dict]
    params: int
    macs: int
    activations: int
    macs_ratio: float
    nominal_ratio: float
    latency_ms: float | None = None
    latency_batch_ms: float | None = None
    latency_batch: int | None = None
    accuracy_mean: float | None = None
    accuracy_std: float | None = None
    accuracy_n: int = 0
    train_seconds: float | None = None
    train_failure: str | None = None
    baseline_spec: dict | None = field(default=None, repr=False)

    @property
    def multipliers(self) -> Multipliers:
        return Multipliers(width=self.width_mult, depth=self.depth_mult, resolution=self.resolution_mult)

    def as_dict(self) -> dict:
        out = asdict(self)
        if out["baseline_spec"] is None:
            del out["baseline_spec"]
        return out


@dataclass
class Family:
    """A baseline's scaled members and how they were made."""

    baseline: str
    base_resolution: int
    members: list[Member]
    coefficients: Coefficients | None = None
    table: str | None = None
    device: str | None = None
    threads: int | None = None  # CPU threads the latency was timed with
    solved: dict | None = None
    training: dict | None = None
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))

    def as_dict(self) -> dict:
        return {
            "baseline": self.baseline,
            "base_resolution": self.base_resolution,
            "coefficients": asdict(self.coefficients) if self.coefficients else None,
            "table": self.table,
            "device": self.device,
            "threads": self.threads,
            "solved": self.solved,
            "training": self.training,
            "created": self.created,
            "scaler_version": __version__,
            "units": {"macs": "multiply-adds", "latency_ms": "milliseconds per forward pass", "accuracy": "0..1"},
            "members": [m.as_dict() for m in self.members],
        }


# --- multipliers --------------------------------------------------------------------------


def official_members(base_resolution: int = OFFICIAL_BASE_PX) -> list[tuple[str, Multipliers, int]]:
    """The published B0..B7 multipliers as (label, Multipliers, input px).

    The resolutions are B0's 224 px scaled; for a baseline of another base resolution the same
    *ratios* apply (b3: 300/224 of the base).
    """
    rows = []
    for name, (width, depth, px, _dropout) in EFFICIENTNET_TABLE.items():
        ratio = px / OFFICIAL_BASE_PX
        size = px if base_resolution == OFFICIAL_BASE_PX else max(1, round(base_resolution * ratio))
        rows.append((name, Multipliers(width=width, depth=depth, resolution=ratio), size))
    return rows


def phi_label(phi: float) -> str:
    return f"phi={phi:g}"


# --- one member -----------------------------------------------------------------------------


def baseline_spec_of(spec: str | Baseline) -> dict | None:
    """The decoded stage list of a baseline given as a ``.json`` path, to embed in the family."""
    if isinstance(spec, str) and spec.strip().endswith(".json"):
        from scaler.baselines.mbconv import read_stage_list

        return read_stage_list(Path(spec.strip()))
    return None


def _baseline_name(spec: str | Baseline) -> str:
    return spec.name if isinstance(spec, Baseline) else str(spec)


def describe_member(
    baseline: str | Baseline,
    label: str,
    phi: float | None,
    multipliers: Multipliers,
    *,
    input_px: int | None = None,
    num_classes: int = 1000,
    device: str | torch.device | None = "cpu",
    latency_runs: int = DEFAULT_LATENCY_RUNS,
    latency_batch: int = DEFAULT_LATENCY_BATCH,
    reference_macs: int | None = None,
) -> Member:
    """Build one member, count its cost and, unless ``latency_runs`` is 0, time it on ``device``."""
    b = get_baseline(baseline)
    px = multipliers.input_size(b.resolution) if input_px is None else int(input_px)
    counted = cost.count_cost(b, width=multipliers.width, depth=multipliers.depth, resolution=px, num_classes=num_classes)
    if reference_macs is None:
        reference_macs = cost.count_cost(b, num_classes=num_classes).macs
    latency = latency_b = None
    if latency_runs > 0:
        dev = resolve_device(device)
        model = b.build(width=multipliers.width, depth=multipliers.depth, num_classes=num_classes)
        latency = cost.measure_latency(model, px, dev, batch_size=1, repeats=latency_runs)
        if latency_batch > 1:
            latency_b = cost.measure_latency(model, px, dev, batch_size=latency_batch, repeats=latency_runs)
    return Member(
        label=label,
        phi=phi,
        baseline=_baseline_name(baseline),
        num_classes=num_classes,
        depth_mult=multipliers.depth,
        width_mult=multipliers.width,
        resolution_mult=multipliers.resolution,
        input_px=px,
        stages=[asdict(s) for s in b.stages(width=multipliers.width, depth=multipliers.depth)],
        params=counted.params,
        macs=counted.macs,
        activations=counted.activations,
        macs_ratio=counted.macs / reference_macs,
        nominal_ratio=multipliers.nominal_ratio,
        latency_ms=latency,
        latency_batch_ms=latency_b,
        latency_batch=latency_batch if latency_b is not None else None,
        baseline_spec=baseline_spec_of(baseline),
    )


# --- the family -------------------------------------------------------------------------------


def build_family(
    baseline: str | Baseline,
    *,
    coefficients: Coefficients | None = None,
    phis: Sequence[float] = (0, 1, 2, 3),
    table: str | None = None,
    target_macs: float | None = None,
    target_latency_ms: float | None = None,
    num_classes: int = 1000,
    device: str | torch.device | None = "cpu",
    latency_runs: int = DEFAULT_LATENCY_RUNS,
    latency_batch: int = DEFAULT_LATENCY_BATCH,
    training: ProxyTraining | None = None,
    on_member: Callable[[Member], None] | None = None,
    log_to: RunFolder | None = None,
) -> Family:
    """Describe (and with ``training``, train) each member of a family.

    Args:
        baseline: a name, ``module:function``, stage-list ``.json`` path or a Baseline.
        coefficients: alpha, beta, gamma; members at ``phis`` (fractional allowed).
        table: ``"official"`` for the published B0..B7 multipliers instead of coefficients.
        target_macs / target_latency_ms: also solve for the largest phi whose measured MACs
            (multiply-adds) or batch-1 latency on ``device`` fits, and add that member.
        latency_runs: timed forward passes per batch size; 0 skips latency.

    Note:
        Latency targets are noisy on a shared CPU: the solved phi is only as good as the timer.
    """
    b = get_baseline(baseline)
    _check_family_args(table, coefficients, target_macs, target_latency_ms, latency_runs, latency_batch)
    trainer = None
    if training is not None:  # runs recorded in log_to's study: a stopped --train resumes
        trainer = ProxyTrainer(training, device, TrainingLog(log_to) if log_to is not None else None)
    reference = cost.count_cost(b, num_classes=num_classes).macs
    common = dict(num_classes=num_classes, device=device, latency_runs=latency_runs,
                  latency_batch=latency_batch, reference_macs=reference)
    solved = None
    if table == "official":
        plan = [(name, None, m, px) for name, m, px in official_members(b.resolution)]
    else:
        solved = solve_targets(b, coefficients, target_macs, target_latency_ms, num_classes, device, latency_runs)
        plan = _phi_plan(coefficients, phis, solved)
    members = []
    for label, phi, mult, px in plan:
        member = describe_member(baseline, label, phi, mult, input_px=px, **common)
        if trainer is not None:
            for key, value in trainer.accuracy(b, mult).items():
                setattr(member, key, value)
        members.append(member)
        if on_member:
            on_member(member)
    timed_on = resolve_device(device) if latency_runs else None
    return Family(
        baseline=_baseline_name(baseline), base_resolution=b.resolution, members=members,
        coefficients=coefficients if table is None else None, table=table,
        device=str(timed_on) if timed_on else None, solved=solved,
        threads=torch.get_num_threads() if timed_on and timed_on.type == "cpu" else None,
        training=training.as_dict() if training else None,
    )


def _phi_plan(coefficients: Coefficients, phis: Sequence[float], solved: dict | None) -> list[tuple]:
    """(label, phi, multipliers, input px) per member; a solved phi joins the asked ones, in order."""
    plan = [(phi_label(p), float(p), coefficients.multipliers(p), None) for p in phis]
    if solved is not None:
        phi = solved["phi"]
        plan = [row for row in plan if row[1] != phi] + [(phi_label(phi), phi, coefficients.multipliers(phi), None)]
        plan.sort(key=lambda row: row[1])
    return plan


def _check_family_args(table, coefficients, target_macs, target_latency_ms, latency_runs, latency_batch) -> None:
    if table is not None and table not in TABLES:
        raise UsageError(f"unknown table {table!r}; known: {', '.join(TABLES)}")
    if table is None and coefficients is None:
        raise UsageError("a family needs coefficients (alpha,beta,gamma) or a table (official)")
    if table is not None and (target_macs is not None or target_latency_ms is not None):
        raise UsageError("a target solves for phi, which the official table does not have; give coefficients")
    if latency_runs < 0:
        raise UsageError(f"latency runs must be 0 or more, got {latency_runs}")
    if latency_batch < 1:
        raise UsageError(f"latency batch must be positive, got {latency_batch}")
    if target_latency_ms is not None and latency_runs == 0:
        raise UsageError("a latency target needs latency runs; do not combine it with --latency-runs 0")
    for value, what in ((target_macs, "MACs target"), (target_latency_ms, "latency target")):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UsageError(f"{what} must be positive, got {value!r}")
