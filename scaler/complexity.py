"""Cost from a network's description, without building it: the per-layer arithmetic.

pycls-style (``pycls/models/blocks.py``): a walk over a network's description threads one
:class:`Complexity` through its layers in forward order; each layer adds its own cost and moves
the feature map's height and width to its output size, so a candidate is costed exactly, in
microseconds, without making a module or a tensor. The walks themselves live next to the
builders they mirror (``scaler/baselines/*.py``); tests hold every walk equal to an fvcore trace.

Units are those of :mod:`scaler.cost`:

- ``macs``: multiply-adds of convolutions and linear layers (what fvcore counts for them);
- ``bias_adds``: one add per output element of a layer with a bias (the paper and pycls count it,
  fvcore does not);
- ``norm_pool``: what fvcore adds besides: batch norm at inference, 2 per element (scale and
  shift), and adaptive average pooling, 1 per *input* element;
- ``params``: learnable parameters (batch norm's running statistics are buffers, not parameters);
- ``activations``: output elements of convolutions and linear layers (pycls's definition).

This module needs neither torch nor the rest of the package.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution or pooling window along one axis (PyTorch's floor rule)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


@dataclass
class Complexity:
    """The running cost of a network walked layer by layer, and the current feature map's size."""

    h: int
    w: int
    macs: int = 0
    bias_adds: int = 0
    norm_pool: int = 0
    params: int = 0
    activations: int = 0
    # The size of the feature map the latest global pool averaged. A classifier's head pools last,
    # so after a whole walk this is the last feature map: what the proxy's classifier sees.
    pooled_h: int | None = None
    pooled_w: int | None = None

    @classmethod
    def image(cls, resolution: int) -> Complexity:
        """The state before the first layer: a ``resolution`` x ``resolution`` input, nothing counted."""
        return cls(resolution, resolution)

    def conv2d(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int = 1,
        groups: int = 1,
        bias: bool = False,
        padding: int | None = None,
        dilation: int = 1,
    ) -> Complexity:
        """A square convolution; ``padding`` defaults to "same" for odd kernels, as torchvision pads."""
        if padding is None:
            padding = (kernel - 1) // 2 * dilation
        self.h = conv_output_size(self.h, kernel, stride, padding, dilation)
        self.w = conv_output_size(self.w, kernel, stride, padding, dilation)
        outputs = c_out * self.h * self.w
        weights = c_out * (c_in // groups) * kernel * kernel
        self.macs += weights * self.h * self.w
        self.params += weights + (c_out if bias else 0)
        self.bias_adds += outputs if bias else 0
        self.activations += outputs
        return self

    def batch_norm(self, channels: int) -> Complexity:
        """Affine batch norm at inference: fvcore counts 2 per element; 2 parameters per channel."""
        self.norm_pool += 2 * channels * self.h * self.w
        self.params += 2 * channels
        return self

    def conv_bn(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> Complexity:
        """Convolution without bias followed by batch norm (torchvision's ``Conv2dNormActivation``)."""
        self.conv2d(c_in, c_out, kernel, stride, groups, bias=False, dilation=dilation)
        return self.batch_norm(c_out)

    def max_pool(self, kernel: int, stride: int, padding: int = 0) -> Complexity:
        """Max pooling: moves the size only (fvcore ignores its cost, and so does the paper)."""
        self.h = conv_output_size(self.h, kernel, stride, padding)
        self.w = conv_output_size(self.w, kernel, stride, padding)
        return self

    def adaptive_avg_pool(self, channels: int, size: int = 1) -> Complexity:
        """Adaptive average pooling to ``size`` x ``size``: fvcore counts 1 per input element."""
        self.norm_pool += channels * self.h * self.w
        self.pooled_h, self.pooled_w = self.h, self.w
        self.h = self.w = size
        return self

    def linear(self, f_in: int, f_out: int, bias: bool = True) -> Complexity:
        """A fully connected layer on one flattened vector."""
        self.macs += f_in * f_out
        self.params += f_in * f_out + (f_out if bias else 0)
        self.bias_adds += f_out if bias else 0
        self.activations += f_out
        return self

    @contextmanager
    def branch(self):
        """A side path that reads the current feature map (a projection shortcut, squeeze-excite):
        its cost is counted, and the size is put back when it ends."""
        h, w = self.h, self.w
        try:
            yield self
        finally:
            self.h, self.w = h, w
