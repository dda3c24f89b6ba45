"""Arguments shared by several subcommands, and how they resolve into library objects."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

import pandas as pd
import torch

from scaler.baselines import Baseline, get_baseline
from scaler.errors import UsageError
from scaler.scaling import Multipliers, parse_coefficients, round_resolution


def add_baseline_argument(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "--baseline",
        required=required,
        help="a built-in name (see `scaler baselines`), module.path:function, or a stage-list .json",
    )


def add_scaling_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scaling (either explicit multipliers or coefficients and phi)")
    group.add_argument("--width", type=float, help="width multiplier (default 1)")
    group.add_argument("--depth", type=float, help="depth multiplier (default 1)")
    group.add_argument("--resolution", type=int, help="input resolution in pixels (default: the baseline's)")
    group.add_argument("--coefficients", help="alpha,beta,gamma, e.g. 1.2,1.1,1.15 (with --phi)")
    group.add_argument("--phi", type=float, default=1.0, help="compound exponent for --coefficients (default 1)")


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (a GPU when present), cpu, cuda, cuda:N (default auto)")


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device {name!r}; use auto, cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {name!r} asked for, but no CUDA GPU is available")
    return device


@dataclass(frozen=True)
class ScaledModel:
    """A baseline with the multipliers and input size chosen on the command line."""

    baseline: Baseline
    multipliers: Multipliers
    resolution: int  # pixels, after rounding

    @property
    def width(self) -> float:
        return self.multipliers.width

    @property
    def depth(self) -> float:
        return self.multipliers.depth


def resolve_scaled_model(args: argparse.Namespace) -> ScaledModel:
    baseline = get_baseline(args.baseline)
    if args.coefficients is not None:
        if any(v is not None for v in (args.width, args.depth, args.resolution)):
            raise UsageError("give either --coefficients with --phi, or --width/--depth/--resolution, not both")
        m = parse_coefficients(args.coefficients).multipliers(args.phi)
        return ScaledModel(baseline, m, m.input_size(baseline.resolution))
    resolution = baseline.resolution if args.resolution is None else args.resolution
    m = Multipliers(
        depth=1.0 if args.depth is None else args.depth,
        width=1.0 if args.width is None else args.width,
        resolution=resolution / baseline.resolution if resolution and resolution > 0 else resolution,
    )
    return ScaledModel(baseline, m, round_resolution(resolution))


def print_table(frame: pd.DataFrame) -> None:
    print(frame.to_string(index=False))


def print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))
