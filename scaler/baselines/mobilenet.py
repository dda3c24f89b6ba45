"""MobileNetV2 and MobileNetV3-Large built through torchvision with scaled stage depths.

Width goes through torchvision's own ``width_mult``, whose rounding (``_make_divisible``) is the
same policy as :func:`scaler.scaling.round_channels`; depth scales each stage's block count with
:func:`scaler.scaling.round_repeats`, the extra blocks being copies of the stage's last block
(stride 1, equal input and output channels), as timm's ``_scale_stage_depth`` does.
"""

from __future__ import annotations

import copy
import itertools

from torch import nn
from torchvision.models._utils import _make_divisible
from torchvision.models.mobilenetv2 import MobileNetV2
from torchvision.models.mobilenetv3 import MobileNetV3, _mobilenet_v3_conf

from scaler.baselines.base import Baseline, Stage
from scaler.complexity import Complexity
from scaler.scaling import current_divisor, round_channels, round_repeats

# MobileNetV2 (Sandler et al. 2018), Table 2: expansion t, channels c, repeats n, stride s.
MOBILENET_V2_STAGES = [
    [1, 16, 1, 1],
    [6, 24, 2, 2],
    [6, 32, 3, 2],
    [6, 64, 4, 2],
    [6, 96, 3, 1],
    [6, 160, 3, 2],
    [6, 320, 1, 1],
]


def build_mobilenet_v2(width_mult: float = 1.0, depth_mult: float = 1.0, num_classes: int = 1000) -> nn.Module:
    setting = [[t, c, round_repeats(n, depth_mult), s] for t, c, n, s in MOBILENET_V2_STAGES]
    return MobileNetV2(num_classes=num_classes, width_mult=width_mult, inverted_residual_setting=setting,
                       round_nearest=current_divisor())  # as the walk rounds: a proxy's divisor included


def mobilenet_v2_stages(width_mult: float = 1.0, depth_mult: float = 1.0) -> list[Stage]:
    rows = [Stage("stem", round_channels(32, width_mult), 1)]
    rows += [
        Stage(f"stage{i + 1}", round_channels(c, width_mult), round_repeats(n, depth_mult))
        for i, (_, c, n, _) in enumerate(MOBILENET_V2_STAGES)
    ]
    # torchvision never narrows the last layer below 1280 (width_mult < 1 keeps it).
    rows.append(Stage("head", round_channels(1280, max(1.0, width_mult)), 1))
    return rows


def mobilenet_v2_complexity(width_mult: float, depth_mult: float, resolution: int, num_classes: int) -> Complexity:
    """The cost of :func:`build_mobilenet_v2`'s network, walked as torchvision's MobileNetV2 runs."""
    c_in = round_channels(32, width_mult)
    last_channel = round_channels(1280, max(1.0, width_mult))
    cx = Complexity.image(resolution).conv_bn(3, c_in, 3, stride=2)
    for t, c, n, s in MOBILENET_V2_STAGES:
        c_out = round_channels(c, width_mult)
        for i in range(round_repeats(n, depth_mult)):
            hidden = int(round(c_in * t))  # torchvision's InvertedResidual: not rounded to 8
            if t != 1:
                cx.conv_bn(c_in, hidden, 1)
            cx.conv_bn(hidden, hidden, 3, s if i == 0 else 1, groups=hidden)
            cx.conv_bn(hidden, c_out, 1)
            c_in = c_out
    cx.conv_bn(c_in, last_channel, 1)
    return cx.adaptive_avg_pool(last_channel).linear(last_channel, num_classes)


def _v3_stages(width_mult: float, depth_mult: float):
    """torchvision's V3-Large rows grouped into stages (runs of equal output width), depth-scaled."""
    rows, last_channel = _mobilenet_v3_conf("mobilenet_v3_large", width_mult=width_mult)
    stages = [list(group) for _, group in itertools.groupby(rows, key=lambda r: r.out_channels)]
    scaled = []
    for stage in stages:
        extra = round_repeats(len(stage), depth_mult) - len(stage)
        scaled.append(stage + [copy.copy(stage[-1]) for _ in range(extra)])
    return scaled, last_channel


def build_mobilenet_v3_large(width_mult: float = 1.0, depth_mult: float = 1.0, num_classes: int = 1000) -> nn.Module:
    stages, last_channel = _v3_stages(width_mult, depth_mult)
    return MobileNetV3([row for stage in stages for row in stage], last_channel, num_classes=num_classes)


def mobilenet_v3_large_complexity(width_mult: float, depth_mult: float, resolution: int, num_classes: int) -> Complexity:
    """The cost of :func:`build_mobilenet_v3_large`'s network: the same rows, walked as torchvision's
    MobileNetV3 runs them."""
    stages, last_channel = _v3_stages(width_mult, depth_mult)
    rows = [row for stage in stages for row in stage]
    cx = Complexity.image(resolution).conv_bn(3, rows[0].input_channels, 3, stride=2)
    for row in rows:
        expanded = row.expanded_channels
        if expanded != row.input_channels:
            cx.conv_bn(row.input_channels, expanded, 1)
        stride = 1 if row.dilation > 1 else row.stride
        cx.conv_bn(expanded, expanded, row.kernel, stride, groups=expanded, dilation=row.dilation)
        if row.use_se:
            squeeze = _make_divisible(expanded // 4, 8)
            with cx.branch():
                cx.adaptive_avg_pool(expanded)
                cx.conv2d(expanded, squeeze, 1, bias=True).conv2d(squeeze, expanded, 1, bias=True)
        cx.conv_bn(expanded, row.out_channels, 1)
    c_last = rows[-1].out_channels
    cx.conv_bn(c_last, 6 * c_last, 1).adaptive_avg_pool(6 * c_last)
    return cx.linear(6 * c_last, last_channel).linear(last_channel, num_classes)


def mobilenet_v3_large_stages(width_mult: float = 1.0, depth_mult: float = 1.0) -> list[Stage]:
    stages, last_channel = _v3_stages(width_mult, depth_mult)
    rows = [Stage("stem", stages[0][0].input_channels, 1)]
    rows += [Stage(f"stage{i + 1}", s[-1].out_channels, len(s)) for i, s in enumerate(stages)]
    rows.append(Stage("head", last_channel, 1))
    return rows


def builtin() -> list[Baseline]:
    return [
        Baseline(
            "mobilenet_v2",
            build_mobilenet_v2,
            224,
            mobilenet_v2_stages,
            "MobileNetV2 (Sandler et al. 2018)",
            complexity_fn=mobilenet_v2_complexity,
            # At lr 0.1 its proxy swings 8 points between seeds and a 32-epoch run collapsed (docs/calibration.md).
            proxy_recipe={"lr": 0.05, "weight_decay": 5e-5},
        ),
        Baseline(
            "mobilenet_v3_large",
            build_mobilenet_v3_large,
            224,
            mobilenet_v3_large_stages,
            "MobileNetV3-Large (Howard et al. 2019)",
            complexity_fn=mobilenet_v3_large_complexity,
        ),
    ]
