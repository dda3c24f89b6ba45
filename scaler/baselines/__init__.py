"""Baselines: networks as functions of their width and depth multipliers.

Every baseline, built-in or the user's, follows one protocol::

    build(width_mult: float, depth_mult: float, num_classes: int) -> torch.nn.Module

plus a base input resolution. Resolution is applied by the data pipeline, never by the model.
A baseline is named by a registered name (``resnet50``), a user's ``module.path:function``, or
the path of an MBConv stage list in JSON (``baselines/efficientnet_b0.json``).
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from scaler.complexity import Complexity
from scaler.errors import UsageError

BuildFn = Callable[[float, float, int], nn.Module]


@dataclass(frozen=True)
class Stage:
    """One stage of a network as reported in family tables: its name, output channels, blocks."""

    name: str
    channels: int
    repeats: int


@dataclass(frozen=True)
class Baseline:
    """A network family member factory and what the tool needs to know about it."""

    name: str
    build_fn: BuildFn = field(repr=False)
    resolution: int = 224
    # Optional: (width_mult, depth_mult) -> the stages the builder will make, for reports.
    stages_fn: Callable[[float, float], list[Stage]] | None = field(default=None, repr=False)
    description: str = ""
    source: str = "built-in"
    # Optional: (width_mult, depth_mult, resolution, num_classes) -> the cost of the network the
    # builder would make, derived from its description without building it (scaler.complexity).
    # Set by the built-in builders; scaler.cost.count_cost uses it instead of a trace.
    complexity_fn: Callable[[float, float, int, int], Complexity] | None = field(default=None, repr=False)
    # Proxy-recipe fields this family trains better with (scaler.train.ProxyRecipe names), applied
    # over the preset and under the user's flags, as timm keeps a default config per model.
    proxy_recipe: dict = field(default_factory=dict)

    def build(self, width_mult: float = 1.0, depth_mult: float = 1.0, num_classes: int = 1000) -> nn.Module:
        """Build the network; a user builder that raises or returns no module is a UsageError."""
        for label, value in (("width", width_mult), ("depth", depth_mult)):
            if not value > 0:
                raise UsageError(f"{label} multiplier must be positive, got {value!r}")
        try:
            model = self.build_fn(width_mult, depth_mult, num_classes)
        except UsageError:
            raise
        except Exception as exc:  # the user's own code: report its message, not our traceback
            raise UsageError(
                f"baseline {self.name!r} failed to build (width {width_mult:g}, depth {depth_mult:g}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(model, nn.Module):
            raise UsageError(
                f"baseline {self.name!r} returned {type(model).__name__}, not a torch.nn.Module"
            )
        return model

    def stages(self, width_mult: float = 1.0, depth_mult: float = 1.0) -> list[Stage]:
        return self.stages_fn(width_mult, depth_mult) if self.stages_fn else []


_REGISTRY: dict[str, Baseline] = {}


def register(baseline: Baseline) -> Baseline:
    """Add a baseline to the registry; names are unique."""
    if baseline.name in _REGISTRY:
        raise ValueError(f"baseline {baseline.name!r} is already registered")
    _REGISTRY[baseline.name] = baseline
    return baseline


def list_baselines() -> list[str]:
    """Names of the registered baselines, sorted."""
    return sorted(_REGISTRY)


def get_baseline(spec: str | Baseline) -> Baseline:
    """Resolve a registered name, a ``module.path:function`` or an MBConv ``.json`` stage list."""
    if isinstance(spec, Baseline):
        return spec
    spec = str(spec).strip()
    if spec in _REGISTRY:
        return _REGISTRY[spec]
    if spec.endswith(".json"):
        from scaler.baselines.mbconv import load_stage_list

        return load_stage_list(spec)
    if ":" in spec:
        return _load_user_function(spec)
    hint = difflib.get_close_matches(spec, list_baselines(), n=1)
    suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
    raise UsageError(
        f"unknown baseline {spec!r}{suggestion} (known: {', '.join(list_baselines())}; "
        "or give module.path:function or a stage-list .json)"
    )


def _load_user_function(spec: str) -> Baseline:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UsageError(f"a user baseline is written module.path:function, got {spec!r}")
    # A user's module usually sits beside where they run the command.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise UsageError(f"cannot import {module_name!r} for baseline {spec!r}: {type(exc).__name__}: {exc}") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise UsageError(f"module {module_name!r} has no function {attr!r} for baseline {spec!r}")
    resolution = getattr(fn, "resolution", 224)
    proxy_recipe = getattr(fn, "proxy_recipe", {})
    if not isinstance(proxy_recipe, dict):
        raise UsageError(f"{spec}.proxy_recipe must be a dict of recipe fields, got {type(proxy_recipe).__name__}")
    return Baseline(name=spec, build_fn=fn, resolution=int(resolution), description=(fn.__doc__ or "").strip().split("\n")[0],
                    source="user", proxy_recipe=dict(proxy_recipe))


def builtin_dir() -> Path:
    """The folder of built-in stage lists (``baselines/`` at the top of the project)."""
    return Path(__file__).resolve().parents[2] / "baselines"


# Built-ins register themselves on import.
from scaler.baselines import mbconv, mobilenet, resnet  # noqa: E402,F401
