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


# The proxy size of the mobile families (MobileNetV2/V3, EfficientNet and stage lists): at the default
# 40 px and width 0.125 their cost-matched 2x grids keep 0-5 of 9 points and lose the resolution point;
# at 48 px and 0.25 they keep 6-7 with it (docs/data.md, "Choosing the default").
MOBILE_PROXY = {"proxy_resolution": 48, "proxy_width": 0.25}

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

    def stages(self, *, width: float = 1.0, depth: float = 1.0) -> list[Stage]:
        return self.stages_fn(width, depth) if self.stages_fn else []
