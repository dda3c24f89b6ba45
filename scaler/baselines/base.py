"""What a baseline is: a network as a function of its width and depth multipliers.

Every baseline, built-in or the user's, follows one protocol::

    build(width_mult: float, depth_mult: float, num_classes: int) -> torch.nn.Module

plus a base input resolution. Resolution is applied by the data pipeline, never by the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from scaler.complexity import Complexity
from scaler.errors import UsageError

BuildFn = Callable[[float, float, int], nn.Module]
BUILDER_SCALING = "the builder's own width_mult and depth_mult"


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
    # How the multipliers reach the network: the builder's own arguments, a library's knobs, or a
    # rewrite of the built module (scaler.baselines.any_model); said by `scaler baselines --show`.
    scaling: str = BUILDER_SCALING

    def build(self, *, width: float = 1.0, depth: float = 1.0, num_classes: int = 1000) -> nn.Module:
        """Build the network; a user builder that raises or returns no module is a UsageError."""
        for label, value in (("width", width), ("depth", depth)):
            if not value > 0:
                raise UsageError(f"{label} multiplier must be positive, got {value!r}")
        try:
            model = self.build_fn(width, depth, num_classes)  # the protocol's order
        except UsageError:
            raise
        except Exception as exc:  # the user's own code: report its message, not our traceback
            raise UsageError(
                f"baseline {self.name!r} failed to build (width {width:g}, depth {depth:g}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(model, nn.Module):
            raise UsageError(
                f"baseline {self.name!r} returned {type(model).__name__}, not a torch.nn.Module"
            )
        return model

    def ignored_multipliers(self, num_classes: int = 10) -> list[str]:
        """The multipliers a baseline takes but does not use: a user's builder whose network is the
        same size at 2 as at 1, or a rewritten network with no stage for depth to grow. Named before
        any training, else its "width" or "depth" points would silently be copies of the baseline."""
        if self.source == "built-in":
            return []
        if self.scaling != BUILDER_SCALING:  # a library's knobs or a rewrite: width always moves;
            return [] if self.stages(depth=2.0) else ["depth_mult"]  # depth only where stages were found

        def params(width: float, depth: float) -> int:
            return sum(p.numel() for p in self.build(width=width, depth=depth, num_classes=num_classes).parameters())

        base = params(1.0, 1.0)
        return [name for name, (w, d) in (("width_mult", (2.0, 1.0)), ("depth_mult", (1.0, 2.0))) if params(w, d) == base]

    def stages(self, *, width: float = 1.0, depth: float = 1.0) -> list[Stage]:
        return self.stages_fn(width, depth) if self.stages_fn else []
