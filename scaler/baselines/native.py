"""A library's own scaling knobs, where it has them and they give the same family.

torchvision's MobileNetV2 (``width_mult`` and its block table), its EfficientNets (B0's table
scaled by the compound multipliers), its RegNets (per-stage depths and widths, as pycls's scaler
scales a RegNet: group widths kept, then made compatible) and its DenseNets (block counts and
growth rate), and timm's EfficientNets (``channel_multiplier`` / ``depth_multiplier``). Each knob
is read off the network the builder makes at (1, 1) or off the library's own table, so it follows
the library; rounding is the project's (``scaling.round_channels`` / ``round_repeats``).

:func:`native_builder` returns ``(description, build(width, depth, num_classes, model))`` for a
callable it knows, else None; ``model`` is the builder's own network at (1, 1).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

from scaler.scaling import EFFICIENTNET_TABLE, current_divisor, round_channels, round_repeats

# EfficientNet-B0..B7's (width, depth) multipliers over B0, as torchvision's and timm's builders set them.
EFFICIENTNET_MULTIPLIERS = {f"efficientnet_{name}": (w, d) for name, (w, d, _px, _dropout) in EFFICIENTNET_TABLE.items()}
Native = tuple[str, Callable[[float, float, int, nn.Module], nn.Module]]


def native_builder(module_name: str, attr: str) -> Native | None:
    """The library's own knobs for ``module_name:attr``, or None where it has none the tool uses."""
    if module_name.startswith("torchvision.models"):
        if attr == "mobilenet_v2":
            return "torchvision MobileNetV2: width_mult and its block table's repeats", _mobilenet_v2
        if attr in EFFICIENTNET_MULTIPLIERS:
            return "torchvision EfficientNet: B0's block table at the compound multipliers", partial(_efficientnet, attr)
        if attr.startswith("regnet_"):
            return "torchvision RegNet: per-stage depths and widths, group widths kept (pycls's scaler)", _regnet
        if attr.startswith("densenet"):
            return "torchvision DenseNet: blocks per dense block and growth rate", _densenet
    if module_name == "timm" and attr in EFFICIENTNET_MULTIPLIERS:
        return "timm EfficientNet: channel_multiplier and depth_multiplier", partial(_timm_efficientnet, attr)
    return None


def native_stages(model: nn.Module) -> list[tuple[str, int, int]] | None:
    """(name, output channels, blocks) of the stages a library's knob repeats where shape cannot
    find them (a DenseNet's dense layers each widen the feature map); None elsewhere."""
    from torchvision.models.densenet import _DenseBlock

    dense = [(name, m) for name, m in model.named_modules() if isinstance(m, _DenseBlock)]
    if not dense:
        return None
    rows = []
    for name, block in dense:
        layers = list(block.values())
        rows.append((f"{name} _DenseLayer", layers[0].conv1.in_channels + len(layers) * layers[0].conv2.out_channels, len(layers)))
    return rows


def _mobilenet_v2(width: float, depth: float, num_classes: int, model: nn.Module) -> nn.Module:
    from torchvision.models.mobilenetv2 import MobileNetV2

    # torchvision's table (t, c, n, s): expansion, output channels, repeats, first stride.
    table = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]
    setting = [[t, c, round_repeats(n, depth), s] for t, c, n, s in table]
    return MobileNetV2(num_classes=num_classes, width_mult=width, inverted_residual_setting=setting,
                       round_nearest=current_divisor(), dropout=model.classifier[0].p)


def _efficientnet(arch: str, width: float, depth: float, num_classes: int, model: nn.Module) -> nn.Module:
    from torchvision.models import efficientnet as tv

    w0, d0 = EFFICIENTNET_MULTIPLIERS[arch]
    base, _ = tv._efficientnet_conf("efficientnet_b0", width_mult=1.0, depth_mult=1.0)
    w, d = w0 * width, d0 * depth
    setting = [tv.MBConvConfig(c.expand_ratio, c.kernel, c.stride, round_channels(c.input_channels, w),
                               round_channels(c.out_channels, w), round_repeats(c.num_layers, d)) for c in base]
    bn = model.features[0][1]
    return tv.EfficientNet(setting, dropout=model.classifier[0].p, num_classes=num_classes,
                           norm_layer=partial(nn.BatchNorm2d, eps=bn.eps, momentum=bn.momentum))


def _regnet(width: float, depth: float, num_classes: int, model: nn.Module) -> nn.Module:
    from torchvision.models import regnet as tv

    stages = list(model.trunk_output.children())
    depths, widths, groups, bottlenecks, strides = [], [], [], [], []
    se_ratio = None
    for stage in stages:
        blocks = list(stage.children())
        first = blocks[0].f
        depths.append(len(blocks))
        widths.append(first.c[0].out_channels)
        w_b = first.b[0].out_channels
        groups.append(w_b // first.b[0].groups)
        bottlenecks.append(w_b / widths[-1])
        strides.append(first.b[0].stride[0])
        if se_ratio is None and hasattr(first, "se"):
            se_ratio = first.se.fc1.out_channels / first.a[0].in_channels
    widths = [round_channels(w, width) for w in widths]
    depths = [round_repeats(d, depth) for d in depths]
    widths, groups = tv.BlockParams._adjust_widths_groups_compatibilty(widths, bottlenecks, groups)
    params = tv.BlockParams(depths, widths, groups, bottlenecks, strides, se_ratio)
    bn = model.stem[1]
    return tv.RegNet(params, num_classes=num_classes, stem_width=model.stem[0].out_channels,
                     norm_layer=partial(nn.BatchNorm2d, eps=bn.eps, momentum=bn.momentum))


def _densenet(width: float, depth: float, num_classes: int, model: nn.Module) -> nn.Module:
    from torchvision.models.densenet import DenseNet, _DenseBlock

    blocks = [m for m in model.features if isinstance(m, _DenseBlock)]
    layer = next(iter(blocks[0].values()))
    growth = layer.conv2.out_channels
    return DenseNet(growth_rate=round_channels(growth, width),
                    block_config=tuple(round_repeats(len(b), depth) for b in blocks),
                    num_init_features=round_channels(model.features.conv0.out_channels, width),
                    bn_size=layer.conv1.out_channels // growth, drop_rate=layer.drop_rate,
                    num_classes=num_classes, memory_efficient=layer.memory_efficient)


def _timm_efficientnet(arch: str, width: float, depth: float, num_classes: int, model: nn.Module) -> nn.Module:
    from timm.models import efficientnet as timm_efficientnet

    w0, d0 = EFFICIENTNET_MULTIPLIERS[arch]
    return timm_efficientnet._gen_efficientnet(arch, channel_multiplier=w0 * width, depth_multiplier=d0 * depth,
                                               channel_divisor=current_divisor(), pretrained=False, num_classes=num_classes)
