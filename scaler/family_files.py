"""A family's files and members: ``family.json``/``family.csv``, and rebuilding a member from its entry."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from scaler.baselines import Baseline, get_baseline, list_baselines
from scaler.errors import ScalerWarning, UsageError
from scaler.family import DEFAULT_LATENCY_BATCH, DEFAULT_LATENCY_RUNS, Family, build_family
from scaler.matching import direction
from scaler.proxy import ProxyTraining
from scaler.run_folder import RunFolder
from scaler.scaling import Coefficients


def save_family(family: Family, out: str | Path) -> tuple[Path, Path]:
    """Write ``family.json`` and ``family.csv`` into folder ``out``; returns both paths."""
    folder = RunFolder(Path(out)).create()
    folder.write_json(folder.family_json, family.as_dict())
    folder.write_csv(folder.family_csv, family_frame(family.as_dict()))
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
    warn_user_module(data.get("baseline"), path)
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
        latency_batch=latency_batch, training=training,
        log_to=RunFolder(Path(out) if out is not None else run.path) if training else None, **targets,
    )
    save_family(family, run.path if out is None else out)
    return family


def run_coefficients(run: RunFolder) -> tuple[str, Coefficients]:
    """The baseline spec and the chosen coefficients of a run (a single dimension's trim undone:
    :func:`scaler.matching.direction`); UsageError if the run lacks them."""
    config = run.read_json(run.config)
    chosen = run.read_json(run.coefficients)
    if "baseline" not in config:
        raise UsageError(f"{run.config} names no baseline; the run folder is damaged")
    try:
        coefficients = Coefficients(float(chosen["alpha"]), float(chosen["beta"]), float(chosen["gamma"]))
    except (KeyError, TypeError, ValueError):
        raise UsageError(f"{run.coefficients} lacks numeric alpha, beta, gamma; the run folder is damaged") from None
    # A single dimension's trim met the budget's rounding at phi = 1; the family grows that dimension alone.
    kind, trained = str(chosen.get("kind", "")), coefficients
    coefficients = direction(kind, trained)
    if coefficients != trained:
        warnings.warn(
            f"the chosen {kind} point ({_fmt(trained)}) was trimmed to meet the budget; the family grows its direction "
            f"({_fmt(coefficients)}), so its phi = 1 member is near the budget but not the network the search trained",
            ScalerWarning, stacklevel=2)
    warn_user_module(config["baseline"], run.config)
    return str(config["baseline"]), coefficients


def _fmt(c: Coefficients) -> str:
    return ", ".join(f"{v:.4g}" for v in c.as_tuple())


def warn_user_module(spec, where: Path) -> None:
    """Say so before a file's ``module:function`` baseline makes scaler import that module."""
    spec = str(spec or "")
    library = spec.partition(":")[0] in ("timm", "torchvision.models") or spec.startswith("torchvision.models.")
    if ":" in spec and not spec.endswith(".json") and spec not in list_baselines() and not library:
        warnings.warn(f"{where} names the baseline {spec!r}: importing its module {spec.partition(':')[0]!r}",
                      ScalerWarning, stacklevel=2)


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
    return baseline.build(width=float(entry["width_mult"]), depth=float(entry["depth_mult"]),
                          num_classes=int(entry.get("num_classes", 1000)))


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
