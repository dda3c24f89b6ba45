"""Arguments shared by several subcommands, and how they resolve into library objects.

Nothing here imports torch, Optuna or pandas at the top (``scaler.options``): the functions that
need them import them when called.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from scaler.errors import UsageError
from scaler.options import DEFAULT_SOURCE
from scaler.scaling import Multipliers, check_size, parse_coefficients, round_resolution

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from scaler.baselines import Baseline


def add_baseline_argument(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "--baseline",
        required=required,
        help="a built-in name (see `scaler baselines`), module.path:callable (any function or class returning an "
             "nn.Module, e.g. torchvision.models:regnet_y_400mf), timm:NAME, or a stage-list .json",
    )


def add_scaling_arguments(parser: argparse.ArgumentParser, proxy: bool = False) -> None:
    """--width, --depth, --resolution, or --coefficients with --phi; with ``proxy`` (``scaler train``)
    they describe the network as trained, whose width and pixels default to the proxy's."""
    if proxy:
        group = parser.add_argument_group("the network (as trained)")
        width, resolution = "the proxy width", "the proxy resolution"
        coefficients = "alpha,beta,gamma, e.g. 1.2,1.1,1.15 (with --phi): proxy settings apply"
    else:
        group = parser.add_argument_group("scaling (either explicit multipliers or coefficients and phi)")
        width, resolution = "1", "the baseline's"
        coefficients = "alpha,beta,gamma, e.g. 1.2,1.1,1.15 (with --phi)"
    group.add_argument("--width", type=float, help=f"width multiplier (default: {width})")
    group.add_argument("--depth", type=float, help="depth multiplier (default: 1)")
    group.add_argument("--resolution", type=int, help=f"input resolution in pixels (default: {resolution})")
    group.add_argument("--coefficients", help=coefficients)
    group.add_argument("--phi", type=float, help="compound exponent for --coefficients (default 1)")


RECIPE_FLAGS = {  # flag -> (recipe field, type, help)
    "--epochs": ("epochs", int, "passes over the training subset"),
    "--batch-size": ("batch_size", int, "images per step"),
    "--lr": ("lr", float, "peak learning rate (SGD) at --batch-size"),
    "--momentum": ("momentum", float, "SGD momentum"),
    "--weight-decay": ("weight_decay", float, "on conv and linear weights"),
    "--warmup-epochs": ("warmup_epochs", float, "linear warm-up before the cosine decay"),
    "--label-smoothing": ("label_smoothing", float, "cross-entropy label smoothing"),
    "--subset": ("subset", str, "training images used, or 'all'"),
    "--proxy-width": ("proxy_width", float, "proxy width: every width multiplier (from --coefficients or a search) is multiplied by it"),
    "--proxy-resolution": ("proxy_resolution", int, "pixels at resolution multiplier 1"),
    "--seed": ("seed", int, "seed of initialisation, batch order and augmentation"),
}


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """--preset and one flag per recipe field; resolve them with :func:`resolve_recipe`."""
    recipe = parser.add_argument_group("proxy recipe (defaults: --preset, then the baseline's own fields, e.g. mobilenet_v2 lr 0.05)")
    recipe.add_argument("--preset", default="default", help="smoke, default, long or gpu (default: default)")
    for flag, (_, kind, text) in RECIPE_FLAGS.items():
        recipe.add_argument(flag, type=kind, help=text)
    recipe.add_argument("--no-augment", action="store_true", help="no random crops or flips")


def resolve_recipe(args):
    """The --preset's recipe, with the baseline's own recipe fields, then the command line's flags, applied."""
    from scaler.baselines import get_baseline
    from scaler.recipe import resolve_recipe as resolve

    changes = {}
    for flag, (field, _, _) in RECIPE_FLAGS.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is None:
            continue
        if field == "subset":
            if value.lower() == "all":
                value = None
            else:
                try:
                    value = int(value)
                except ValueError:
                    raise UsageError(f"--subset must be a number of images or 'all', got {value!r}") from None
        changes[field] = value
    if args.no_augment:
        changes["augment"] = False
    return resolve(args.preset, get_baseline(args.baseline), changes)


def resolve_device(name: str | None) -> torch.device:
    """:func:`scaler.devices.resolve_device`, the commands' one way to a device, imported when called."""
    from scaler.devices import resolve_device as resolve

    return resolve(name)


def check_numbers(args: argparse.Namespace, minimum: dict[str, float], positive: tuple[str, ...] = ()) -> None:
    """Refuse a numeric option out of bounds before any work (a run must not fail after its training).

    ``minimum`` maps an option's attribute to its smallest allowed value (counts, seeds); ``positive``
    names float options that must be finite and above 0. An option left out (None) passes.
    """
    for name, lowest in minimum.items():
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value >= lowest):
            raise UsageError(f"--{name.replace('_', '-')} must be {lowest:g} or more, got {value:g}")
    for name in positive:
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UsageError(f"--{name.replace('_', '-')} must be a positive number, got {value:g}")


def check_scaling(args: argparse.Namespace) -> None:
    """The scaling options (:func:`add_scaling_arguments`) in bounds: multipliers, pixels and phi."""
    from scaler.scaling import check_phi

    check_numbers(args, {"resolution": 1}, positive=("width", "depth"))
    if args.phi is not None and args.coefficients is None:  # else it would be ignored without a word
        raise UsageError("--phi scales --coefficients: give --coefficients alpha,beta,gamma with it")
    args.phi = 1.0 if args.phi is None else args.phi
    check_phi(args.phi, "--phi")


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (a GPU when present), cpu, cuda, cuda:N (default auto)")


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")


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
    from scaler.baselines import get_baseline

    baseline = get_baseline(args.baseline)
    if args.coefficients is not None:
        if any(v is not None for v in (args.width, args.depth, args.resolution)):
            raise UsageError("give either --coefficients with --phi, or --width/--depth/--resolution, not both")
        m = check_size(parse_coefficients(args.coefficients).multipliers(args.phi), "the scaled network")
        return ScaledModel(baseline, m, m.input_size(baseline.resolution))
    resolution = baseline.resolution if args.resolution is None else args.resolution
    m = check_size(Multipliers(
        width=1.0 if args.width is None else args.width,
        depth=1.0 if args.depth is None else args.depth,
        resolution=resolution / baseline.resolution if resolution and resolution > 0 else resolution,
    ), "the scaled network")
    return ScaledModel(baseline, m, round_resolution(resolution))


def print_table(frame: pd.DataFrame) -> None:
    print(frame.to_string(index=False))


def print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


def run_data(config: dict | None) -> str | None:
    """The data spec of a run's config: a string, or the data set's description with its 'source'."""
    data = (config or {}).get("data")
    if isinstance(data, str):
        return data
    if isinstance(data, dict):
        return data.get("source") or data.get("spec") or data.get("name")
    return None


def default_family_name(baseline: str, coefficients, table: str | None) -> str:
    """The default run-folder name of `scaler family` / `scaler compare`: baseline and coefficients (or table)."""
    stem = Path(baseline).stem if baseline.endswith(".json") else baseline
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-") or "baseline"
    if table:
        return f"{stem}-{table}"
    return f"{stem}-{coefficients.alpha:g}-{coefficients.beta:g}-{coefficients.gamma:g}"


def training_options_given(args) -> bool:
    """Whether --data, --preset or --seeds, which say how to train, were given (refused where nothing trains)."""
    return bool(args.data or args.preset or args.seeds is not None)


def resolve_training(args, config: dict | None):
    """The proxy training `family --train` and `compare` use: the flags, else the run's, else defaults."""
    from scaler.proxy import ProxyTraining

    config = config or {}
    recipe = config.get("recipe") if not args.preset else None  # a run's recorded recipe, unless a preset is asked
    return ProxyTraining(
        data=args.data or run_data(config) or DEFAULT_SOURCE,
        preset=args.preset or (recipe or {}).get("preset") or "default",
        seeds=args.seeds if args.seeds is not None else int(config.get("seeds") or 2),
        seed=args.seed,
        recipe=recipe,
    )
