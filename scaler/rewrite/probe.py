"""Shape propagation by running the network once: what each module receives and returns.

The rewrite needs the shapes that actually flow through a network (a concatenation's width, the
input of a squeeze-excite, a flattened feature map). Running the real forward on a small input of
zeros is the most faithful propagation there is: it follows any Python the forward contains, where
a symbolic tracer (torch.fx) stops at data-dependent control flow. Modules that never run on the
probe input are reported by the callers, not guessed at.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch import nn

PROBE_RESOLUTION = 64  # small enough to be cheap, large enough for a 32x-downsampling network
FALLBACK_RESOLUTION = 224  # for a network that needs more (Inception's fixed pools): ImageNet's size
PROBE_BATCH = 2  # two images, so a reshape that folds the batch away is seen in the output


@dataclass
class Probe:
    """What one forward pass on zeros showed: per module name, input and output shapes, in run order."""

    inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)  # the first tensor argument
    outputs: dict[str, tuple[int, ...]] = field(default_factory=dict)  # a tensor output only
    order: list[str] = field(default_factory=list)  # modules in the order their forward started
    output: tuple[int, ...] | None = None  # the network's own output
    resolution: int = PROBE_RESOLUTION  # the input size the probe ran at: a rewrite runs at the same


def probe_input(resolution: int = PROBE_RESOLUTION, batch: int = PROBE_BATCH) -> torch.Tensor:
    return torch.zeros(batch, 3, resolution, resolution)


def first_tensor(args) -> torch.Tensor | None:
    for a in args:
        if isinstance(a, torch.Tensor):
            return a
    return None


@contextlib.contextmanager
def evaluating(model: nn.Module):
    """Eval mode (batch norm on running statistics, no dropout) and no autograd, restored after."""
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(training)


def probe(model: nn.Module, resolution: int | None = None, batch: int = PROBE_BATCH) -> Probe:
    """Run ``model`` once on zeros, recording every module's input and output shapes.

    At ``resolution`` if given, else at 64 px, or 224 px where the network fails at 64.
    """
    if resolution is not None:
        return _probe(model, resolution, batch)
    try:
        return _probe(model, PROBE_RESOLUTION, batch)
    except Exception:
        return _probe(model, FALLBACK_RESOLUTION, batch)  # its error, if it fails here too, is the user's to see


def _probe(model: nn.Module, resolution: int, batch: int) -> Probe:
    result = Probe(resolution=resolution)
    names = {id(m): name for name, m in model.named_modules()}

    def before(module, args):
        name = names.get(id(module))
        x = first_tensor(args)
        if name is not None and name not in result.inputs:
            result.order.append(name)
            if x is not None:
                result.inputs[name] = tuple(x.shape)

    def after(module, _args, output):
        name = names.get(id(module))
        if name is not None and isinstance(output, torch.Tensor) and name not in result.outputs:
            result.outputs[name] = tuple(output.shape)

    handles = []
    for m in model.modules():
        handles += [m.register_forward_pre_hook(before), m.register_forward_hook(after)]
    try:
        with evaluating(model):
            out = model(probe_input(resolution, batch))
    finally:
        for h in handles:
            h.remove()
    result.output = tuple(out.shape) if isinstance(out, torch.Tensor) else None
    return result
