"""ResNets (He et al., 2016) with scalable stage widths and depths.

At multipliers (1, 1) each network is torchvision's model of the same name, module for module:
it reuses torchvision's blocks, ``_make_layer`` and forward, and only lets the stem and stage
widths and the stage depths vary.
"""

from __future__ import annotations

from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from scaler.baselines.base import Baseline, Stage
from scaler.complexity import Complexity
from scaler.scaling import round_channels, round_repeats

STEM_WIDTH = 64
STAGE_WIDTHS = (64, 128, 256, 512)  # bottleneck "planes"; outputs are planes * block.expansion

# name -> (block, blocks per stage), torchvision's table
ARCHS = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
}


class ScaledResNet(ResNet):
    """torchvision's ResNet with the stem width and per-stage widths as arguments."""

    def __init__(self, block, layers, widths, stem_width: int, num_classes: int = 1000) -> None:
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = stem_width
        self.dilation = 1
        self.groups = 1
        self.base_width = 64  # makes a bottleneck's inner width equal to its planes
        self.conv1 = nn.Conv2d(3, stem_width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, widths[0], layers[0])
        self.layer2 = self._make_layer(block, widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, widths[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3] * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


def _scaled(arch: str, width_mult: float, depth_mult: float):
    block, depths = ARCHS[arch]
    widths = [round_channels(w, width_mult) for w in STAGE_WIDTHS]
    return block, [round_repeats(d, depth_mult) for d in depths], widths, round_channels(STEM_WIDTH, width_mult)


def resnet_complexity(block, depths, widths, stem_width: int, resolution: int, num_classes: int) -> Complexity:
    """The cost of :class:`ScaledResNet` walked layer by layer, as torchvision's forward runs it."""
    cx = Complexity.image(resolution)
    cx.conv_bn(3, stem_width, 7, stride=2)
    cx.max_pool(3, stride=2, padding=1)
    c_in = stem_width
    for i, (planes, repeats) in enumerate(zip(widths, depths)):
        c_out = planes * block.expansion
        for j in range(repeats):
            stride = 2 if i > 0 and j == 0 else 1
            if stride != 1 or c_in != c_out:  # _make_layer's projection shortcut
                with cx.branch():
                    cx.conv_bn(c_in, c_out, 1, stride)
            if block is Bottleneck:  # ResNet v1.5: the stride sits on the 3x3
                cx.conv_bn(c_in, planes, 1).conv_bn(planes, planes, 3, stride).conv_bn(planes, c_out, 1)
            else:
                cx.conv_bn(c_in, planes, 3, stride).conv_bn(planes, planes, 3)
            c_in = c_out
    return cx.adaptive_avg_pool(c_in).linear(c_in, num_classes)


def _baseline(arch: str) -> Baseline:
    def build(width_mult: float = 1.0, depth_mult: float = 1.0, num_classes: int = 1000) -> nn.Module:
        block, depths, widths, stem = _scaled(arch, width_mult, depth_mult)
        return ScaledResNet(block, depths, widths, stem, num_classes)

    def stages(width_mult: float = 1.0, depth_mult: float = 1.0) -> list[Stage]:
        block, depths, widths, stem = _scaled(arch, width_mult, depth_mult)
        return [Stage("stem", stem, 1)] + [
            Stage(f"layer{i + 1}", w * block.expansion, d) for i, (w, d) in enumerate(zip(widths, depths))
        ]

    def complexity(width_mult: float, depth_mult: float, resolution: int, num_classes: int) -> Complexity:
        block, depths, widths, stem = _scaled(arch, width_mult, depth_mult)
        return resnet_complexity(block, depths, widths, stem, resolution, num_classes)

    return Baseline(arch, build, 224, stages, f"{arch} (He et al. 2016), torchvision's layout", complexity_fn=complexity)


def builtin() -> list[Baseline]:
    return [_baseline(arch) for arch in ARCHS]
