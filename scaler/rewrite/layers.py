"""The layers the rewrite resizes, and how each is resized and initialised.

One home for "what a layer's channel counts are": convolutions and linear layers have an input and
an output width; normalization layers follow their input. Resizing is done in place (the module
keeps its class, so a timm ``Conv2dSame`` or torchvision ``LayerNorm2d`` keeps its forward) and
the resized tensors are drawn afresh: a rewritten network is a new network, not a pruned one.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd
from torch.nn.modules.instancenorm import _InstanceNorm

NORMS = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm)


def is_conv(m: nn.Module) -> bool:
    return isinstance(m, _ConvNd) and not m.transposed


def is_weighted(m: nn.Module) -> bool:
    """A layer whose output width is a design choice: a convolution or a linear layer."""
    return is_conv(m) or isinstance(m, nn.Linear)


def is_depthwise(conv: nn.Module) -> bool:
    """One filter group per input channel (possibly several filters each): MobileNet's depthwise conv."""
    return conv.groups > 1 and conv.groups == conv.in_channels


def zero_scale(m: nn.Module) -> bool:
    """A norm whose scale the builder drew as zeros: the last norm of a residual branch (timm's
    ``zero_init_last``), which a redrawn layer keeps, so the block still starts as the identity."""
    weight = getattr(m, "weight", None)
    return isinstance(m, NORMS) and weight is not None and weight.numel() > 0 and not weight.detach().any()


def init_layer(m: nn.Module) -> None:
    """Draw a layer's parameters afresh: convolutions as torchvision, timm and pycls draw them
    (Kaiming normal, fan-out), everything else by its own ``reset_parameters``."""
    if is_conv(m):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif hasattr(m, "reset_parameters"):
        zero = zero_scale(m)
        m.reset_parameters()
        if zero:
            nn.init.zeros_(m.weight)


def _param(shape, like: torch.Tensor | None) -> nn.Parameter | None:
    if like is None:
        return None
    return nn.Parameter(torch.empty(shape, dtype=like.dtype, device=like.device), requires_grad=like.requires_grad)


def resize_conv(conv: nn.Module, c_in: int, c_out: int, groups: int) -> None:
    if (conv.in_channels, conv.out_channels, conv.groups) == (c_in, c_out, groups):
        return  # the same layer: its parameters stay as the builder drew them
    conv.in_channels, conv.out_channels, conv.groups = c_in, c_out, groups
    conv.weight = _param((c_out, c_in // groups, *conv.kernel_size), conv.weight)
    conv.bias = _param((c_out,), conv.bias)
    init_layer(conv)


def resize_linear(linear: nn.Linear, f_in: int, f_out: int) -> None:
    if (linear.in_features, linear.out_features) == (f_in, f_out):
        return
    linear.in_features, linear.out_features = f_in, f_out
    linear.weight = _param((f_out, f_in), linear.weight)
    linear.bias = _param((f_out,), linear.bias)
    init_layer(linear)


def resize_norm(norm: nn.Module, x: torch.Tensor, original_input: tuple[int, ...] | None) -> str | None:
    """Make a normalization layer fit its new input ``x``; a reason string where it cannot."""
    zero = zero_scale(norm)
    if isinstance(norm, nn.LayerNorm):
        dims = len(norm.normalized_shape)
        if original_input is not None and tuple(original_input[-dims:]) == tuple(norm.normalized_shape):
            shape = tuple(x.shape[-dims:])  # the last dimensions, as nn.LayerNorm normalizes
        elif dims == 1 and original_input is not None and len(original_input) > 1 and original_input[1] == norm.normalized_shape[0]:
            shape = (x.shape[1],)  # a channels-first subclass (LayerNorm2d) that permutes inside
        else:
            return f"its normalized shape {tuple(norm.normalized_shape)} matches no dimension of its input"
        if shape == tuple(norm.normalized_shape):
            return None
        norm.normalized_shape = shape
        norm.weight = _param(shape, norm.weight)
        norm.bias = _param(shape, norm.bias)
    else:
        channels = x.shape[1]
        if channels == (norm.num_channels if isinstance(norm, nn.GroupNorm) else norm.num_features):
            return None
        if isinstance(norm, nn.GroupNorm):
            if channels % norm.num_groups:
                return f"{channels} channels do not divide into its {norm.num_groups} groups"
            norm.num_channels = channels
        else:
            norm.num_features = channels
        shape = (channels,)
        norm.weight = _param(shape, norm.weight)
        norm.bias = _param(shape, norm.bias)
        for buffer, fill in (("running_mean", 0.0), ("running_var", 1.0)):
            if getattr(norm, buffer, None) is not None:
                setattr(norm, buffer, torch.full(shape, fill, device=x.device))
        if getattr(norm, "num_batches_tracked", None) is not None:
            norm.num_batches_tracked.zero_()
    if norm.weight is not None:
        (nn.init.zeros_ if zero else nn.init.ones_)(norm.weight)
    if norm.bias is not None:
        nn.init.zeros_(norm.bias)
    return None


def resize_owned(module: nn.Module, old: int, new: int) -> None:
    """A module's own parameters sized by its input width (ConvNeXt's layer scale, a channel gain):
    every dimension of size ``old`` becomes ``new``, values tiled so a constant stays that constant."""
    for name, p in list(module.named_parameters(recurse=False)):
        dims = [i for i, s in enumerate(p.shape) if s == old]
        if not dims:
            continue
        value = p.data
        for dim in dims:
            index = torch.arange(new, device=value.device) % old
            value = value.index_select(dim, index)
        setattr(module, name, nn.Parameter(value.clone(), requires_grad=p.requires_grad))
