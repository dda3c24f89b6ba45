"""The baseline registry: built-in names, ``module.path:callable``, ``timm:NAME``, or a stage-list ``.json``.

A callable that takes ``width_mult`` and ``depth_mult`` is a builder of today's protocol; any other
callable returning an ``nn.Module`` (a torchvision builder, a class) is scaled by
:mod:`~scaler.baselines.any_model`.

The built-in families (:mod:`~scaler.baselines.resnet`, :mod:`~scaler.baselines.mobilenet`,
:mod:`~scaler.baselines.mbconv`) each list their baselines in ``builtin()``; this module registers
them, so imports run one way: registry -> families -> base.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys

from scaler.baselines import any_model, mbconv, mobilenet, resnet
from scaler.baselines.base import Baseline
from scaler.errors import UsageError

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


def get_baseline(spec: str | Baseline | dict) -> Baseline:
    """Resolve a registered name, a ``module.path:function``, an MBConv ``.json`` stage list, or a
    stage list given as a dict (a job of ``scaler nas``: plain values that travel to a worker)."""
    if isinstance(spec, Baseline):
        return spec
    if isinstance(spec, dict):
        return mbconv.baseline_from_spec(mbconv.decode(spec, str(spec.get("name", "stage list"))))
    spec = str(spec).strip()
    if spec in _REGISTRY:
        return _REGISTRY[spec]
    if spec.endswith(".json"):
        return mbconv.load_stage_list(spec)
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
    if module_name == "timm":
        return any_model.timm_baseline(spec, attr)
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
    if not any_model.takes_multipliers(fn):  # a class or a library's builder: the tool scales what it builds
        source = "torchvision" if module_name.startswith("torchvision.") else "user"
        return any_model.any_model_baseline(spec, fn, module_name, attr, resolution=int(resolution), source=source,
                                            proxy_recipe=proxy_recipe)
    return Baseline(name=spec, build_fn=fn, resolution=int(resolution), description=(fn.__doc__ or "").strip().split("\n")[0],
                    source="user", proxy_recipe=dict(proxy_recipe))


for _family in (resnet, mobilenet, mbconv):
    for _baseline in _family.builtin():
        register(_baseline)
