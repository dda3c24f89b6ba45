"""Any callable that returns an ``nn.Module`` as a baseline: a class, a torchvision or timm
builder, a function with no arguments or with a ``num_classes`` keyword.

The callable is called once, as its library means it (``weights=None`` where it takes weights, so
nothing downloads; ``num_classes`` where it takes it). At multipliers (1, 1) that network *is* the
baseline, parameter for parameter. Elsewhere the network is scaled by the library's own knobs
where :mod:`~scaler.baselines.native` knows them, else rewritten (:mod:`scaler.rewrite`): depth
first (stages found by shape, grown by fresh copies of their last block), then width (every layer
resized to what flows into it). The description says which path a baseline takes.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable

from torch import nn

from scaler.baselines.base import Baseline, Stage
from scaler.baselines.native import native_builder, native_stages
from scaler.errors import UsageError
from scaler.rewrite import find_stages, probe, scale_depth, scale_width

REWRITE = "rewritten: stages found by shape grown or shrunk, every layer's width resized"


def _parameters(fn: Callable) -> dict[str, inspect.Parameter] | None:
    try:
        return dict(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # a builtin or extension callable: nothing to read
        return None


def takes_multipliers(fn: Callable) -> bool:
    """Today's protocol ``build(width_mult, depth_mult, num_classes)``: both multipliers named,
    or three positional parameters without defaults."""
    params = _parameters(fn)
    if params is None:
        return False
    if "width_mult" in params and "depth_mult" in params:
        return True
    required = [p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    return len(required) >= 3


def _accepts(params: dict | None, name: str) -> bool:
    if params is None:
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def call_builder(fn: Callable, num_classes: int) -> tuple[nn.Module, bool]:
    """Call a builder as its library means it; returns the module and whether it took ``num_classes``."""
    params = _parameters(fn)
    kwargs = {}
    if params is not None and "weights" in params:
        kwargs["weights"] = None  # torchvision: never download weights
    if params is not None and "pretrained" in params:
        kwargs["pretrained"] = False
    took = _accepts(params, "num_classes")
    if took:
        kwargs["num_classes"] = num_classes
    return fn(**kwargs), took


def any_model_baseline(spec: str, fn: Callable, module_name: str, attr: str, *, resolution: int = 224,
                       source: str = "user", proxy_recipe: dict | None = None) -> Baseline:
    """The baseline of a callable without multiplier arguments: its network at (1, 1), scaled by
    the library's knobs or by rewriting."""
    native = native_builder(module_name, attr)
    scaling = native[0] if native else REWRITE
    unit_stages: list = []  # the stages of the network at (1, 1), found once: every call builds it alike

    def stages_of(model: nn.Module):
        if not unit_stages:
            unit_stages.append(find_stages(model))
        return unit_stages[0]

    def build(width: float, depth: float, num_classes: int) -> nn.Module:
        model, took_classes = call_builder(fn, num_classes)
        if not isinstance(model, nn.Module):
            return model  # Baseline.build says what it was
        if width == 1 and depth == 1:
            return model if took_classes else scale_width(model, 1.0, num_classes)
        if native:
            return native[1](width, depth, num_classes, model)
        return rewrite(model, width, depth, None if took_classes else num_classes,
                       stages_of(model) if depth != 1 else None)

    def stages(width: float, depth: float) -> list[Stage]:
        if native:  # the library's knobs decide the blocks: read them off its network
            model = build(width, depth, 10)
            rows = native_stages(model)
            if rows is not None:
                return [Stage(*row) for row in rows]
            return [Stage(f"{s.label} {s.block}", s.channels, s.blocks) for s in find_stages(model)]
        # The rewrite grows the stages found at depth 1 (a stage cut to one block is no longer found as one).
        found = find_stages(build(width, 1.0, 10))
        return [Stage(f"{s.label} {s.block}", s.channels, s.target(depth)) for s in found]

    doc = (inspect.getdoc(fn) or "").strip().split("\n")[0]
    return Baseline(name=spec, build_fn=build, resolution=resolution, stages_fn=stages,
                    description=doc[:80], source=source, proxy_recipe=dict(proxy_recipe or {}), scaling=scaling)


def rewrite(model: nn.Module, width: float, depth: float, num_classes: int | None = None, stages=None) -> nn.Module:
    """Depth, then width, rewritten in place (see :mod:`scaler.rewrite`); ``num_classes`` sets the
    classifier's outputs for a builder that does not take it; ``stages``: the model's, if found already."""
    if depth != 1:
        scale_depth(model, depth, stages)
    if width != 1 or num_classes is not None:
        scale_width(model, width, num_classes, probe(model))
    return model


def timm_baseline(spec: str, name: str) -> Baseline:
    """``timm:NAME``: ``timm.create_model(NAME, pretrained=False, num_classes=...)``."""
    try:
        import timm
    except ImportError:
        raise UsageError(f"baseline {spec!r} needs timm: pip install 'scaler[timm]'") from None
    if not timm.is_model(name):
        hint = difflib.get_close_matches(name, timm.list_models(), n=1)
        raise UsageError(f"timm has no model {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""))

    def create(num_classes: int = 1000) -> nn.Module:
        return timm.create_model(name, pretrained=False, num_classes=num_classes)

    size = (timm.get_pretrained_cfg_value(name, "input_size") or (3, 224, 224))[-1]
    return any_model_baseline(spec, create, "timm", name, resolution=int(size), source="timm")
