"""How a proxy network starts: residual branches as the identity, a small classifier, and which
weights decay. A proxy is a few hundred steps; these choices decide whether it learns at once.
"""

from __future__ import annotations

from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def zero_init_residuals(model: nn.Module) -> int:
    """Start every residual block of torchvision's ResNets, MobileNets and EfficientNets as the identity.

    Zeroes the scale of the last batch-norm on each block's residual branch (Goyal et al. 2017;
    torchvision's ``zero_init_residual``, timm's ``zero_init_last``, pycls's ``zero_init_final_gamma``).
    Returns how many blocks it changed; other models are left as built.
    """
    from torchvision.models import efficientnet, mobilenetv2, mobilenetv3, resnet

    inverted = (mobilenetv2.InvertedResidual, mobilenetv3.InvertedResidual, efficientnet.MBConv, efficientnet.FusedMBConv)
    count = 0
    for m in model.modules():
        if isinstance(m, (resnet.BasicBlock, resnet.Bottleneck)):
            bn = m.bn3 if isinstance(m, resnet.Bottleneck) else m.bn2
        elif isinstance(m, inverted) and m.use_res_connect:  # the projection's batch-norm ends the branch
            bn = [x for x in m.modules() if isinstance(x, nn.BatchNorm2d)][-1]
        else:
            continue
        if bn.weight is not None:
            nn.init.zeros_(bn.weight)
            count += 1
    return count


def init_classifier(model: nn.Module, std: float) -> nn.Linear | None:
    """Draw the last ``nn.Linear`` (the classifier) from N(0, std²), bias 0; returns it (None if none)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        return None
    nn.init.normal_(linears[-1].weight, std=std)
    if linears[-1].bias is not None:
        nn.init.zeros_(linears[-1].bias)
    return linears[-1]
