"""MBConv networks described as data: a JSON stage list, built with torchvision's EfficientNet.

The format (one row per stage, EfficientNet's Table 1; see ``baselines/efficientnet_b0.json``)::

    {"name": ..., "resolution": 224, "dropout": 0.2, "stem_channels": 32, "head_channels": 1280,
     "stages": [{"expand": 1, "kernel": 3, "stride": 1, "channels": 16, "repeats": 1, "se": 0.25}, ...]}

Optional per stage: ``se`` 0.25 (default; squeeze to a quarter of the block's input channels, as
torchvision's ``MBConv``) or 0 (none); ``block`` ``"mbconv"`` (default) or ``"fused"``
(EfficientNetV2's Fused-MBConv, torchvision's ``FusedMBConv``: the expansion and depthwise
convolutions fused into one k x k convolution, without squeeze-excite).

Decode (validate into plain dicts) -> scale (round channels and repeats) -> build: three steps.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from torch import nn
from torchvision.models.efficientnet import EfficientNet, FusedMBConvConfig, MBConv, MBConvConfig

from scaler.baselines.base import Baseline, Stage
from scaler.complexity import Complexity
from scaler.errors import UsageError
from scaler.scaling import current_divisor, round_channels, round_repeats

STAGE_KEYS = ("expand", "kernel", "stride", "channels", "repeats")
OPTIONAL_KEYS = ("se", "block")
# torchvision's MBConv squeezes to a quarter of the block's input channels (0.25); 0 builds it without
# the squeeze-excite layer. No other ratio exists there.
SUPPORTED_SE = (0, 0.25)
BLOCKS = ("mbconv", "fused")


def decode(spec: dict, source: str = "stage list") -> dict:
    """Validate a stage list and return it as plain, typed dicts; raises UsageError on any fault."""
    if not isinstance(spec, dict):
        raise UsageError(f"{source}: expected a JSON object with a 'stages' list")
    stages = spec.get("stages")
    if not isinstance(stages, list) or not stages:
        raise UsageError(f"{source}: 'stages' must be a non-empty list")
    rows = []
    for i, row in enumerate(stages):
        if not isinstance(row, dict):
            raise UsageError(f"{source}: stage {i} must be an object")
        missing = [k for k in STAGE_KEYS if k not in row]
        if missing:
            raise UsageError(f"{source}: stage {i} lacks {', '.join(missing)}")
        unknown = set(row) - set(STAGE_KEYS) - set(OPTIONAL_KEYS)
        if unknown:
            raise UsageError(f"{source}: stage {i} has unknown keys {', '.join(sorted(unknown))}")
        clean = {k: row[k] for k in STAGE_KEYS}
        for key, value in clean.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"{source}: stage {i} {key} must be a positive integer, got {value!r}")
        if clean["kernel"] % 2 == 0:
            raise UsageError(f"{source}: stage {i} kernel must be odd, got {clean['kernel']}")
        if clean["stride"] not in (1, 2):  # what the analytic cost walk and torchvision's MBConv take
            raise UsageError(f"{source}: stage {i} stride must be 1 or 2, got {clean['stride']}")
        se = row.get("se", 0.25)
        if isinstance(se, bool) or se not in SUPPORTED_SE:  # a string or null is as wrong as 0.5
            raise UsageError(f"{source}: stage {i} se must be one of {SUPPORTED_SE}, got {se!r}")
        clean["se"] = float(se)
        block = row.get("block", "mbconv")
        if block not in BLOCKS:
            raise UsageError(f"{source}: stage {i} block must be one of {', '.join(BLOCKS)}, got {block!r}")
        if block == "fused" and se:  # torchvision's FusedMBConv (EfficientNetV2) has no squeeze-excite
            raise UsageError(f"{source}: stage {i} is fused: its se must be 0, got {se!r}")
        clean["block"] = block
        rows.append(clean)
    out = {
        "name": str(spec.get("name", Path(source).stem)),
        "description": str(spec.get("description", "")),
        "resolution": spec.get("resolution", 224),
        "dropout": spec.get("dropout", 0.2),
        "stem_channels": spec.get("stem_channels", 32),
        "head_channels": spec.get("head_channels", 4 * rows[-1]["channels"]),
        "stages": rows,
    }
    for key in ("resolution", "stem_channels", "head_channels"):
        if not isinstance(out[key], int) or isinstance(out[key], bool) or out[key] < 1:
            raise UsageError(f"{source}: {key} must be a positive integer, got {out[key]!r}")
    if not isinstance(out["dropout"], (int, float)) or not 0 <= out["dropout"] < 1:
        raise UsageError(f"{source}: dropout must be in [0, 1), got {out['dropout']!r}")
    return out


def scale(spec: dict, width_mult: float, depth_mult: float) -> dict:
    """The decoded stage list with channels and repeats scaled and rounded."""
    return {
        **spec,
        "stem_channels": round_channels(spec["stem_channels"], width_mult),
        "head_channels": round_channels(spec["head_channels"], width_mult),
        "stages": [
            {**row, "channels": round_channels(row["channels"], width_mult), "repeats": round_repeats(row["repeats"], depth_mult)}
            for row in spec["stages"]
        ],
    }


class _Rounded:
    """torchvision's block configs round channels to multiples of 8 always; these round to the
    current divisor (:func:`scaler.scaling.channel_divisor`), as the walk and the scaled spec do,
    so a proxy built at divisor 2 is the network its cost was counted for (8 at full size: unchanged)."""

    @staticmethod
    def adjust_channels(channels: int, width_mult: float, min_value: int | None = None) -> int:
        return round_channels(channels, width_mult, current_divisor())


class _MBConvConfig(_Rounded, MBConvConfig):
    pass


class _FusedMBConvConfig(_Rounded, FusedMBConvConfig):
    pass


def build(spec: dict, num_classes: int = 1000) -> nn.Module:
    """Build a scaled stage list with torchvision's EfficientNet."""
    setting, in_channels = [], spec["stem_channels"]
    for row in spec["stages"]:
        shape = (row["expand"], row["kernel"], row["stride"], in_channels, row["channels"], row["repeats"])
        if row.get("block", "mbconv") == "fused":
            # MBConvConfig rounds its channels (width_mult 1 included); FusedMBConvConfig does not:
            # round them alike, or a fused stage next to an MBConv one disagrees on its channels.
            adjust = _Rounded.adjust_channels
            setting.append(_FusedMBConvConfig(*shape[:3], adjust(in_channels, 1.0), adjust(row["channels"], 1.0), shape[5]))
        else:
            block = None if row.get("se", 0.25) else partial(MBConv, se_layer=_no_squeeze)
            setting.append(_MBConvConfig(*shape, 1.0, 1.0, block=block))
        in_channels = row["channels"]
    norm = partial(nn.BatchNorm2d, eps=1e-3)  # torchvision's B-models; no effect on counts
    return EfficientNet(setting, spec["dropout"], num_classes=num_classes, norm_layer=norm, last_channel=spec["head_channels"])


def _no_squeeze(expanded: int, squeeze: int, activation=None) -> nn.Module:
    """MBConv's squeeze-excite layer for ``se: 0``: none (the block's layer indices stay the same)."""
    return nn.Identity()


def complexity(spec: dict, resolution: int, num_classes: int = 1000) -> Complexity:
    """The cost of :func:`build`'s network for a scaled stage list, walked as torchvision's
    EfficientNet runs it: stem, MBConv blocks (expand, depthwise, squeeze-excite, project) or
    Fused-MBConv blocks (a k x k expansion, project), head."""
    c_in = spec["stem_channels"]
    cx = Complexity.image(resolution).conv_bn(3, c_in, 3, stride=2)
    for row in spec["stages"]:
        if row["stride"] not in (1, 2):  # torchvision's MBConv refuses it too, at build time
            raise UsageError(f"stage list {spec['name']!r}: stride must be 1 or 2, got {row['stride']}")
        c_out = row["channels"]
        for i in range(row["repeats"]):
            expanded = round_channels(c_in, row["expand"])  # MBConvConfig.adjust_channels
            stride = row["stride"] if i == 0 else 1
            if row.get("block", "mbconv") == "fused":
                if expanded != c_in:  # FusedMBConv: k x k expansion, then a 1x1 projection
                    cx.conv_bn(c_in, expanded, row["kernel"], stride).conv_bn(expanded, c_out, 1)
                else:
                    cx.conv_bn(c_in, c_out, row["kernel"], stride)
                c_in = c_out
                continue
            if expanded != c_in:
                cx.conv_bn(c_in, expanded, 1)
            cx.conv_bn(expanded, expanded, row["kernel"], stride, groups=expanded)
            if row.get("se", 0.25):
                squeeze = max(1, int(c_in * row["se"]))  # from the block's input, not its expanded width
                with cx.branch():
                    cx.adaptive_avg_pool(expanded)
                    cx.conv2d(expanded, squeeze, 1, bias=True).conv2d(squeeze, expanded, 1, bias=True)
            cx.conv_bn(expanded, c_out, 1)
            c_in = c_out
    head = spec["head_channels"]
    return cx.conv_bn(c_in, head, 1).adaptive_avg_pool(head).linear(head, num_classes)


def baseline_from_spec(spec: dict, source: str = "built-in") -> Baseline:
    def build_fn(width_mult: float = 1.0, depth_mult: float = 1.0, num_classes: int = 1000) -> nn.Module:
        return build(scale(spec, width_mult, depth_mult), num_classes)

    def stages_fn(width_mult: float = 1.0, depth_mult: float = 1.0) -> list[Stage]:
        scaled = scale(spec, width_mult, depth_mult)
        rows = [Stage("stem", scaled["stem_channels"], 1)]
        rows += [Stage(f"stage{i + 1}", r["channels"], r["repeats"]) for i, r in enumerate(scaled["stages"])]
        return rows + [Stage("head", scaled["head_channels"], 1)]

    def complexity_fn(width_mult: float, depth_mult: float, resolution: int, num_classes: int) -> Complexity:
        return complexity(scale(spec, width_mult, depth_mult), resolution, num_classes)

    # torchvision's EfficientNet classifier init is sized for 1,000 classes; proxies start it small.
    return Baseline(
        spec["name"], build_fn, spec["resolution"], stages_fn, spec["description"], source,
        complexity_fn=complexity_fn, proxy_recipe={"head_init_std": 0.01},
    )


def load_stage_list(path: str | Path) -> Baseline:
    """Read, validate and wrap a JSON stage list as a Baseline."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"stage list {str(path)!r} " + ("is a folder, not a JSON file" if path.is_dir() else "does not exist"))
    return baseline_from_spec(read_stage_list(path), source=str(path))


def read_stage_list(path: Path) -> dict:
    """A stage list read and validated (decoded); a fault is a one-line UsageError."""
    try:
        return decode(json.loads(path.read_text()), str(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"stage list {str(path)!r} is not valid JSON: {exc}") from None


def builtin_dir() -> Path:
    """The built-in stage lists: the checkout's ``baselines/`` (linked from scaler/resources/), or a wheel's copy."""
    return Path(__file__).resolve().parents[1] / "resources" / "stage_lists"


def builtin() -> list[Baseline]:
    return [baseline_from_spec(read_stage_list(path)) for path in sorted(builtin_dir().glob("*.json"))]
