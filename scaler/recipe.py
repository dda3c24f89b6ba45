"""The proxy recipe: how one short training run judges a candidate, and where its fields come from.

A recipe is resolved in one place, :func:`resolve_recipe`, in this order: the preset (``smoke``,
``default``, ``long``), then the fields the baseline trains better with (``Baseline.proxy_recipe``,
as timm keeps a default config per model), then the caller's overrides (command-line flags, or the
recipe a run recorded). :func:`proxy_settings` says at which width, depth and pixels the proxy
trains a candidate.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scaler.errors import UsageError
from scaler.scaling import CHANNEL_DIVISOR, Multipliers, channel_divisor, round_resolution

if TYPE_CHECKING:  # the baselines pull in torch; the recipe is plain data
    from scaler.baselines import Baseline

@dataclass(frozen=True)
class ProxyRecipe:
    """How one proxy training run goes. Defaults are calibrated on ``animals`` (docs/calibration.md).

    Args:
        epochs: passes over the training subset.
        batch_size: images per step; ``lr`` is the rate at this batch size.
        lr, momentum, nesterov, weight_decay: SGD; weight decay on conv and linear weights only.
        warmup_epochs: linear warm-up from 0 to ``lr``, then cosine decay to 0, per step.
        label_smoothing: for the cross-entropy loss.
        subset: training images used (a stratified prefix of the training split); None for all.
        proxy_width: every candidate's width multiplier is multiplied by this.
        proxy_resolution: input pixels at resolution multiplier 1.
        augment: random crop (padding of 1/8 of the side) and, where the data allows, flips.
        zero_init_residual: start each residual block of torchvision's ResNets, MobileNets and
            EfficientNets as the identity (:func:`zero_init_residuals`): deep narrow proxies then
            train at once instead of idling for epochs.
        head_init_std: when set, the classifier (the model's last ``nn.Linear``) starts from
            N(0, std²) with zero bias, as pycls's ``fc_init_std``; None keeps the builder's.
            EfficientNets set it (``Baseline.proxy_recipe``): torchvision draws their classifier
            from ±1/sqrt(classes), meant for 1,000 classes; with 10 the proxy starts at loss 3.6
            and its accuracy swung 13 points between seeds.
        proxy_divisor: the proxy's channels are rounded to multiples of this; None (the default)
            means 8 x proxy_width (2 at width 0.25), the full size's multiples of 8 in miniature.
            At 8 the proxy's rounding is so coarse that cost-matched candidates cannot be matched
            (docs/design.md, "Cost-matched grid"). MobileNetV3's torchvision rows always use 8.
        seed: initialisation, batch order and augmentation.
        eval_every: validate after every k-th epoch as well as after the last; 0 (the default):
            after the last only. Validation (with its batch-norm recalibration) is about a fifth of
            a default proxy run and changes nothing the run learns (a model without dropout ends
            bit-identical either way), so a search validates per epoch only when a pruner needs
            intermediate values (:meth:`scaler.search.SearchConfig.resolved`); ``scaler train``
            validates every epoch to print a learning curve.
    """

    epochs: int = 8
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    subset: int | None = 2000
    proxy_width: float = 0.25
    proxy_resolution: int = 24
    augment: bool = True
    zero_init_residual: bool = True
    head_init_std: float | None = None
    proxy_divisor: int | None = None
    seed: int = 0
    eval_every: int = 0

    def __post_init__(self) -> None:
        checks = [  # (field, holds, what it must be: said in the error)
            ("epochs", self.epochs >= 1 and isinstance(self.epochs, int), "a whole number >= 1"),
            ("batch_size", self.batch_size >= 1 and isinstance(self.batch_size, int), "a whole number >= 1"),
            ("lr", self.lr > 0, "> 0"),
            ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("warmup_epochs", self.epochs < 1 or 0 <= self.warmup_epochs <= self.epochs, f"in [0, epochs = {self.epochs!r}]"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "in [0, 1)"),
            ("subset", self.subset is None or self.subset >= 1, ">= 1 image"),
            ("proxy_width", self.proxy_width > 0, "> 0"),
            ("proxy_resolution", self.proxy_resolution >= 1, ">= 1 px"),
            ("proxy_divisor", self.proxy_divisor is None or (isinstance(self.proxy_divisor, int) and self.proxy_divisor >= 1),
             "a whole number >= 1"),
            ("head_init_std", self.head_init_std is None or self.head_init_std >= 0, ">= 0"),
            ("seed", isinstance(self.seed, int) and self.seed >= 0, "a whole number >= 0"),
            ("eval_every", isinstance(self.eval_every, int) and self.eval_every >= 0, "a whole number >= 0"),
        ]
        # inf passes the comparisons above ("lr > 0") yet trains nothing: every float must be finite
        checks += [(f.name, math.isfinite(v), "finite")
                   for f in dataclasses.fields(self) if isinstance(v := getattr(self, f.name), float)]
        bad = {}
        for name, ok, rule in checks:
            if not ok:
                bad.setdefault(name, rule)
        if bad:
            values = ", ".join(f"{n}={getattr(self, n)!r} (must be {rule})" for n, rule in bad.items())
            raise UsageError(f"invalid proxy recipe: {values}")

    def replace(self, **changes) -> ProxyRecipe:
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, ProxyRecipe] = {
    # A few seconds per candidate: for trying the tool, and for tests of the search.
    "smoke": ProxyRecipe(epochs=1, subset=1000, proxy_width=0.125, proxy_resolution=24, warmup_epochs=0.2),
    "default": ProxyRecipe(),
    # Four times the default's steps.
    "long": ProxyRecipe(epochs=32, warmup_epochs=4.0),
    # For a GPU: the proxy at half width and 64 px, where a stride-32 network's last feature map is
    # 2x2 (at the default's 24 px it is 1x1) and the resolution points can be cost-matched. The
    # step runs in bf16 autocast on a GPU (scaler.devices.autocast). One such proxy leaves a large
    # GPU mostly idle, so a search at this preset on a GPU runs local_workers.GPU_WORKERS processes
    # unless --workers says otherwise, and the confirm stage is longer (options.DEFAULT_CONFIRM_PRESETS).
    "gpu": ProxyRecipe(proxy_width=0.5, proxy_resolution=64),
}


FIELDS = frozenset(f.name for f in dataclasses.fields(ProxyRecipe))


def resolve_recipe(preset: str = "default", baseline: Baseline | None = None, overrides: dict | None = None) -> ProxyRecipe:
    """The recipe a run trains with: ``preset``, then ``baseline``'s own fields, then ``overrides``.

    A baseline's proxy size (:data:`SIZE_FIELDS`) applies only to presets of the default's size.

    ``overrides`` holds recipe fields (keys that are not fields, such as labels a run recorded
    beside them, are ignored). When it sets ``epochs`` but not ``warmup_epochs``, the warm-up is
    cut to fit the epochs.
    """
    recipe = PRESETS[check_preset(preset)]
    if baseline is not None and baseline.proxy_recipe:
        own = dict(baseline.proxy_recipe)
        if _own_size(recipe):  # a preset that chose its own proxy size (smoke) keeps it
            own = {k: v for k, v in own.items() if k not in SIZE_FIELDS}
        try:
            recipe = recipe.replace(**own)
        except TypeError as exc:
            raise UsageError(f"baseline {baseline.name!r}: bad proxy_recipe {baseline.proxy_recipe!r}: {exc}") from None
    changes = {k: v for k, v in (overrides or {}).items() if k in FIELDS}
    if "epochs" in changes and "warmup_epochs" not in changes:
        changes["warmup_epochs"] = min(recipe.warmup_epochs, changes["epochs"])
    return recipe.replace(**changes) if changes else recipe


# The proxy's size. A baseline's values of these (a user's `fn.proxy_recipe = {"proxy_resolution": 48}`)
# replace the default preset's size, which ``long`` shares, not a size a preset chose for itself (smoke, gpu).
SIZE_FIELDS = ("proxy_resolution", "proxy_width")
# What decides the proxy network a point trains (and so what the grid's cost matching costs).
NETWORK_FIELDS = (*SIZE_FIELDS, "proxy_divisor")


def _own_size(recipe: ProxyRecipe) -> bool:
    return any(getattr(recipe, f) != getattr(PRESETS["default"], f) for f in SIZE_FIELDS)


def check_preset(name: str) -> str:
    """``name`` if it is a preset; else a one-line UsageError naming those that are."""
    if name not in PRESETS:
        raise UsageError(f"unknown proxy preset {name!r} (known: {', '.join(PRESETS)})")
    return name


def recipe_from_dict(fields: dict) -> ProxyRecipe:
    """A recorded recipe; a field added since it was recorded takes its default."""
    return ProxyRecipe(**{k: v for k, v in fields.items() if k in FIELDS})


def recipe_defaults() -> dict:
    """Every field's default: what a field missing from an older run's record means."""
    return {f.name: f.default for f in dataclasses.fields(ProxyRecipe)}


def proxy_divisor(recipe: ProxyRecipe) -> int:
    """The multiple the proxy's channels are rounded to (see ``ProxyRecipe.proxy_divisor``)."""
    if recipe.proxy_divisor is not None:
        return recipe.proxy_divisor
    return max(1, round(CHANNEL_DIVISOR * recipe.proxy_width))


def proxy_rounding(recipe: ProxyRecipe):
    """The context in which a proxy is built or costed: its channels rounded to :func:`proxy_divisor`."""
    return channel_divisor(proxy_divisor(recipe))


def proxy_settings(multipliers: Multipliers, recipe: ProxyRecipe) -> tuple[float, float, int]:
    """(width, depth, pixels) at which the proxy trains a candidate with these multipliers."""
    return (
        multipliers.width * recipe.proxy_width,
        multipliers.depth,
        round_resolution(recipe.proxy_resolution * multipliers.resolution),
    )
