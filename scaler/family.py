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

Example::

    from scaler.family import build_family, build_member
    fam = build_family("efficientnet_b0", coefficients=Coefficients(1.2, 1.1, 1.15), phis=[0, 1])
    model = build_member(fam.members[1].as_dict())
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from scaler import __version__
from scaler.baselines import Baseline, get_baseline
from scaler.cost import count_cost, measure_latency
from scaler.errors import UsageError
from scaler.run_folder import RunFolder
from scaler.scaling import Coefficients, Multipliers, format_macs

# EfficientNet's published members (official code, efficientnet_builder.py; reference.md):
# name -> (width, depth, input px, dropout). Not alpha**phi, beta**phi, gamma**phi for integer phi.
OFFICIAL_TABLE = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
}
TABLES = ("official",)
OFFICIAL_BASE_PX = 224

DEFAULT_LATENCY_RUNS = 5
DEFAULT_LATENCY_BATCH = 8
# How far a solved phi may go: beyond these the networks are either empty or absurd.
PHI_SEARCH_LIMITS = (-8.0, 16.0)


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
        return Multipliers(self.depth_mult, self.width_mult, self.resolution_mult)

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
    solved: dict | None = None
    training: dict | None = None
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    def as_dict(self) -> dict:
        return {
            "baseline": self.baseline,
            "base_resolution": self.base_resolution,
            "coefficients": asdict(self.coefficients) if self.coefficients else None,
            "table": self.table,
            "device": self.device,
            "solved": self.solved,
            "training": self.training,
            "created": self.created,
            "scaler_version": __version__,
            "units": {"macs": "multiply-adds", "latency_ms": "milliseconds per forward pass", "accuracy": "0..1"},
            "members": [m.as_dict() for m in self.members],
        }

    def to_frame(self) -> pd.DataFrame:
        return family_frame(self.as_dict())


# --- multipliers --------------------------------------------------------------------------


def official_members(base_resolution: int = OFFICIAL_BASE_PX) -> list[tuple[str, Multipliers, int]]:
    """The published B0..B7 multipliers as (label, Multipliers, input px).

    The resolutions are B0's 224 px scaled; for a baseline of another base resolution the same
    *ratios* apply (b3: 300/224 of the base).
    """
    rows = []
    for name, (width, depth, px, _dropout) in OFFICIAL_TABLE.items():
        ratio = px / OFFICIAL_BASE_PX
        size = px if base_resolution == OFFICIAL_BASE_PX else max(1, round(base_resolution * ratio))
        rows.append((name, Multipliers(depth=depth, width=width, resolution=ratio), size))
    return rows


def phi_label(phi: float) -> str:
    return f"phi={phi:g}"


# --- one member -----------------------------------------------------------------------------


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def baseline_spec_of(spec: str | Baseline) -> dict | None:
    """The decoded stage list of a baseline given as a ``.json`` path, to embed in the family."""
    if isinstance(spec, str) and spec.strip().endswith(".json"):
        from scaler.baselines.mbconv import _read

        return _read(Path(spec.strip()))
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
    cost = count_cost(b, multipliers.width, multipliers.depth, px, num_classes)  # analytic where it can be
    if reference_macs is None:
        reference_macs = count_cost(b, num_classes=num_classes).macs
    latency = latency_b = None
    if latency_runs > 0:
        dev = resolve_device(device)
        model = b.build(multipliers.width, multipliers.depth, num_classes)
        latency = measure_latency(model, px, dev, batch_size=1, repeats=latency_runs)
        if latency_batch > 1:
            latency_b = measure_latency(model, px, dev, batch_size=latency_batch, repeats=latency_runs)
    return Member(
        label=label,
        phi=phi,
        baseline=_baseline_name(baseline),
        num_classes=num_classes,
        depth_mult=multipliers.depth,
        width_mult=multipliers.width,
        resolution_mult=multipliers.resolution,
        input_px=px,
        stages=[asdict(s) for s in b.stages(multipliers.width, multipliers.depth)],
        params=cost.params,
        macs=cost.macs,
        activations=cost.activations,
        macs_ratio=cost.macs / reference_macs,
        nominal_ratio=multipliers.nominal_ratio,
        latency_ms=latency,
        latency_batch_ms=latency_b,
        latency_batch=latency_batch if latency_b is not None else None,
        baseline_spec=baseline_spec_of(baseline),
    )


# --- proxy accuracy ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProxyTraining:
    """What `--train` and `scaler compare` train with: data, recipe, seeds, device."""

    data: str = "animals"
    preset: str = "default"
    seeds: int = 2
    seed: int = 0
    recipe: dict | None = None  # overrides of the preset's fields (a run's config["recipe"])

    def __post_init__(self) -> None:
        if not isinstance(self.seeds, int) or self.seeds < 1:
            raise UsageError(f"seeds must be a positive integer, got {self.seeds!r}")

    def as_dict(self) -> dict:
        return asdict(self)


class ProxyTrainer:
    """Loads the data once and trains members under one recipe and seeds."""

    def __init__(self, spec: ProxyTraining, device: str | torch.device | None) -> None:
        from scaler import data as data_mod
        from scaler import train as train_mod

        self.spec = spec
        self.train_mod = train_mod
        self.device = resolve_device(device)
        if spec.preset not in train_mod.PRESETS:
            raise UsageError(f"unknown preset {spec.preset!r}; known: {', '.join(sorted(train_mod.PRESETS))}")
        self.dataset = data_mod.load_dataset(spec.data)

    def accuracy(self, baseline: Baseline, multipliers: Multipliers, on_epoch: Callable | None = None) -> dict:
        """Proxy accuracy (0..1) over the seeds: mean, sample std, count, seconds; failures recorded."""
        recipe = _make_recipe(self.train_mod, self.spec, baseline)
        width, depth, px = self.train_mod.proxy_settings(multipliers, recipe)
        accuracies, seconds, failure = [], 0.0, None
        for i in range(self.spec.seeds):
            try:
                result = self.train_mod.train(
                    baseline, width, depth, px, data=self.dataset, recipe=recipe,
                    device=self.device, on_epoch=on_epoch, seed=self.spec.seed + i,
                )
            except self.train_mod.TrainingFailed as exc:
                failure = str(exc)
                break
            accuracies.append(float(result.accuracy))
            seconds += float(result.seconds)
        return summarize(accuracies) | {"train_seconds": seconds, "train_failure": failure}


def _make_recipe(train_mod, spec: ProxyTraining, baseline: Baseline):
    import dataclasses

    recipe = train_mod.get_recipe(spec.preset, baseline)
    if spec.recipe:  # a run's recorded recipe: its fields override the preset's; other keys are labels
        names = {f.name for f in dataclasses.fields(recipe)}
        recipe = dataclasses.replace(recipe, **{k: v for k, v in spec.recipe.items() if k in names})
    return recipe


def summarize(accuracies: Sequence[float]) -> dict:
    """Mean and sample standard deviation (None for fewer than two values) of accuracies."""
    n = len(accuracies)
    return {
        "accuracy_mean": statistics.fmean(accuracies) if n else None,
        "accuracy_std": statistics.stdev(accuracies) if n > 1 else None,
        "accuracy_n": n,
    }


# --- solving phi for a budget -----------------------------------------------------------------


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
    spec = _baseline_name(baseline)
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

    trainer = ProxyTrainer(training, device) if training is not None else None
    reference = count_cost(b, num_classes=num_classes).macs
    common = dict(num_classes=num_classes, device=device, latency_runs=latency_runs,
                  latency_batch=latency_batch, reference_macs=reference)

    plan: list[tuple[str, float | None, Multipliers, int | None]] = []
    solved = None
    if table == "official":
        plan = [(name, None, m, px) for name, m, px in official_members(b.resolution)]
    else:
        plan = [(phi_label(p), float(p), coefficients.multipliers(p), None) for p in phis]
        solved = _solve_targets(b, coefficients, target_macs, target_latency_ms, num_classes, device, latency_runs)
        if solved is not None:
            phi = solved["phi"]
            plan = [row for row in plan if row[1] != phi]
            plan.append((phi_label(phi), phi, coefficients.multipliers(phi), None))
            plan.sort(key=lambda row: row[1])

    members = []
    for label, phi, mult, px in plan:
        member = describe_member(baseline, label, phi, mult, input_px=px, **common)
        if trainer is not None:
            for key, value in trainer.accuracy(b, mult).items():
                setattr(member, key, value)
        members.append(member)
        if on_member:
            on_member(member)
    return Family(
        baseline=spec,
        base_resolution=b.resolution,
        members=members,
        coefficients=coefficients if table is None else None,
        table=table,
        device=str(resolve_device(device)) if latency_runs else None,
        solved=solved,
        training=training.as_dict() if training else None,
    )


def _solve_targets(b, coefficients, target_macs, target_latency_ms, num_classes, device, latency_runs) -> dict | None:
    if target_macs is None and target_latency_ms is None:
        return None
    base_macs = count_cost(b, num_classes=num_classes).macs
    dev = resolve_device(device)
    results = {}
    if target_macs is not None:
        def macs_at(phi: float) -> float:
            m = coefficients.multipliers(phi)
            return count_cost(b, m.width, m.depth, m.input_size(b.resolution), num_classes).macs

        guess = math.log(target_macs / base_macs) / math.log(coefficients.product) if coefficients.product != 1 else 0.0
        results["macs"] = solve_phi(macs_at, target_macs, guess=math.floor(guess * 100) / 100)
    if target_latency_ms is not None:
        def latency_at(phi: float) -> float:
            m = coefficients.multipliers(phi)
            model = b.build(m.width, m.depth, num_classes)
            return measure_latency(model, m.input_size(b.resolution), dev, repeats=latency_runs)

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


# --- files ------------------------------------------------------------------------------------


def save_family(family: Family, out: str | Path) -> tuple[Path, Path]:
    """Write ``family.json`` and ``family.csv`` into folder ``out``; returns both paths."""
    folder = RunFolder(Path(out)).create()
    folder.write_json(folder.family_json, family.as_dict())
    tmp = folder.family_csv.with_suffix(".csv.tmp")
    family.to_frame().to_csv(tmp, index=False)
    tmp.replace(folder.family_csv)
    return folder.family_json, folder.family_csv


def load_family(path: str | Path) -> dict:
    """Read a ``family.json`` (or the folder holding one) as a dict; UsageError if absent or broken."""
    path = Path(path)
    if path.is_dir():
        path = RunFolder(path).family_json
    if not path.is_file():
        raise UsageError(f"no family file at {str(path)!r}; run `scaler family` first")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("members"), list):
        raise UsageError(f"{path} is not a family file (no 'members' list)")
    return data


FRAME_COLUMNS = [
    "label", "phi", "depth_mult", "width_mult", "resolution_mult", "input_px", "nominal_ratio", "macs_ratio",
    "macs", "params", "activations", "latency_ms", "latency_batch_ms", "latency_batch",
    "accuracy_mean", "accuracy_std", "accuracy_n", "stage_depths", "stage_widths",
]


def family_frame(family: dict) -> pd.DataFrame:
    """One row per member; stages flattened into 'stage_depths' / 'stage_widths' ('1-2-2-3')."""
    rows = []
    for m in family["members"]:
        row = {k: m.get(k) for k in FRAME_COLUMNS}
        stages = m.get("stages") or []
        row["stage_depths"] = "-".join(str(s["repeats"]) for s in stages)
        row["stage_widths"] = "-".join(str(s["channels"]) for s in stages)
        rows.append(row)
    return pd.DataFrame(rows, columns=FRAME_COLUMNS)


def write_family(
    run: RunFolder,
    phis: Sequence[float] = (0, 1, 2, 3),
    device: str | torch.device | None = "cpu",
    *,
    latency_runs: int = DEFAULT_LATENCY_RUNS,
    latency_batch: int = DEFAULT_LATENCY_BATCH,
    training: ProxyTraining | None = None,
    out: str | Path | None = None,
    **targets,
) -> Family:
    """The family of a finished search: baseline from config.json, coefficients from coefficients.json."""
    baseline, coefficients = run_coefficients(run)
    family = build_family(
        baseline, coefficients=coefficients, phis=phis, device=device, latency_runs=latency_runs,
        latency_batch=latency_batch, training=training, **targets,
    )
    save_family(family, run.path if out is None else out)
    return family


def run_coefficients(run: RunFolder) -> tuple[str, Coefficients]:
    """The baseline spec and the chosen coefficients of a run; UsageError if the run lacks them."""
    config = run.read_json(run.config)
    chosen = run.read_json(run.coefficients)
    if "baseline" not in config:
        raise UsageError(f"{run.config} names no baseline; the run folder is damaged")
    try:
        coefficients = Coefficients(float(chosen["alpha"]), float(chosen["beta"]), float(chosen["gamma"]))
    except (KeyError, TypeError, ValueError):
        raise UsageError(f"{run.coefficients} lacks numeric alpha, beta, gamma; the run folder is damaged") from None
    return str(config["baseline"]), coefficients


# --- rebuilding and exporting -----------------------------------------------------------------


def member_baseline(entry: dict) -> Baseline:
    """The baseline a member was built from: embedded stage list first, else its name or spec."""
    if entry.get("baseline_spec"):
        from scaler.baselines.mbconv import baseline_from_spec, decode

        return baseline_from_spec(decode(entry["baseline_spec"], f"member {entry.get('label', '?')}"))
    if "baseline" not in entry:
        raise UsageError("a family member needs its 'baseline'")
    return get_baseline(entry["baseline"])


def build_member(entry: dict) -> nn.Module:
    """Rebuild a family member (an entry of family.json's "members") as an ``nn.Module``.

    Only the entry is needed: baseline (or embedded stage list), width and depth multipliers and
    number of classes. The input size it expects is ``entry["input_px"]``.
    """
    missing = [k for k in ("width_mult", "depth_mult") if k not in entry]
    if missing:
        raise UsageError(f"family member lacks {', '.join(missing)}")
    baseline = member_baseline(entry)
    return baseline.build(float(entry["width_mult"]), float(entry["depth_mult"]), int(entry.get("num_classes", 1000)))


def find_member(family: dict, phi: float | None = None, label: str | None = None) -> dict:
    """The member with this phi or label; UsageError naming the ones that exist."""
    for m in family["members"]:
        if label is not None and str(m.get("label")).lower() == str(label).lower():
            return m
        if phi is not None and m.get("phi") is not None and math.isclose(float(m["phi"]), float(phi), abs_tol=1e-9):
            return m
    known = ", ".join(str(m.get("label")) for m in family["members"])
    wanted = f"phi {phi:g}" if phi is not None else f"label {label!r}"
    raise UsageError(f"the family has no member with {wanted}; it has: {known}")


def export_onnx(entry: dict, path: str | Path, batch_size: int = 1, opset: int | None = None) -> Path:
    """Export a member to ONNX with a dynamic batch axis (input 'image', output 'logits')."""
    import warnings

    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
    except ImportError:
        raise UsageError("ONNX export needs the onnx package: pip install 'scaler[onnx]'") from None
    model = build_member(entry).eval()
    px = int(entry["input_px"])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = torch.zeros(batch_size, 3, px, px)
    kwargs = {"opset_version": opset} if opset else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation chatter
        torch.onnx.export(
            model, (x,), str(path), dynamo=False, input_names=["image"], output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, **kwargs,
        )
    return path


def describe(family: dict) -> str:
    """A one-line summary of a family, for the CLI."""
    coeffs = family.get("coefficients")
    how = f"table {family['table']}" if family.get("table") else (
        f"alpha {coeffs['alpha']:g}, beta {coeffs['beta']:g}, gamma {coeffs['gamma']:g}" if coeffs else "?"
    )
    sizes = ", ".join(f"{m['label']} {format_macs(m['macs'])}" for m in family["members"])
    return f"{family['baseline']} ({how}): {sizes}"
