"""Width by rewriting: every convolution's and linear layer's output width scaled, in place.

The rule (``scaling.round_channels``) is applied to each layer's *original* output width, so equal
widths map to equal widths and residual additions still add up. Each layer's input width is taken
from what actually flows into it: the rewrite runs the network once and resizes each layer, in a
pre-forward hook, to the tensor it is about to receive, so concatenations, squeeze-excite,
channel shuffles and projections follow by themselves. Constraints:

- the image's 3 channels and the classifier's outputs are kept (the classifier is the last
  convolution or linear layer to run; its outputs become ``num_classes``);
- a depthwise convolution stays depthwise (groups = its new input width, the same filters per
  group); a grouped convolution keeps its group count, and every width a grouped convolution
  reads or writes is rounded to a multiple of that count as well as of the divisor;
- normalization layers follow their input; a module's own parameters sized by its input width
  (ConvNeXt's layer scale) follow it too.

A layer the rewrite cannot follow (a reshape to a fixed size, a branch the probe input did not take)
is a :class:`~scaler.errors.UsageError` naming the layer and why.
"""

from __future__ import annotations

import math

from torch import nn

from scaler.errors import UsageError
from scaler.rewrite import layers
from scaler.rewrite.diagnose import fixed_reshapes
from scaler.rewrite.probe import Probe, evaluating, first_tensor, probe, probe_input
from scaler.scaling import current_divisor, round_channels


def width_rule(model: nn.Module, width: float):
    """The function original width -> new width: the rounding rule, with grouped convs' divisibility."""
    if width == 1:
        return lambda channels: channels  # (1, 1) is the network itself, whatever its rounding
    divisor = current_divisor()
    need: dict[int, int] = {}  # width -> the group count it must stay divisible by
    for m in model.modules():
        if layers.is_conv(m) and m.groups > 1 and not layers.is_depthwise(m):
            for c in (m.in_channels, m.out_channels):
                need[c] = math.lcm(need.get(c, 1), m.groups)

    def rule(channels: int) -> int:
        return round_channels(channels, width, math.lcm(divisor, need.get(channels, 1)))

    return rule


def scale_width(model: nn.Module, width: float, num_classes: int | None = None, shapes: Probe | None = None) -> nn.Module:
    """Rewrite ``model`` in place to ``width`` times its widths; returns it.

    ``num_classes``, if given, is the classifier's new output width (a builder that takes no
    ``num_classes`` gets its head this way). ``shapes`` is a probe of the unchanged model, if made.
    """
    shapes = shapes or probe(model)
    rule = width_rule(model, width)
    names = {id(m): name for name, m in model.named_modules()}
    ran = [n for n in shapes.order if layers.is_weighted(model.get_submodule(n))]
    classifier = ran[-1] if ran else None
    if classifier is None:
        raise UsageError("the network has no convolution or linear layer to widen")
    original = {name: tuple(shapes.inputs.get(name, ())) for name in shapes.inputs}
    done: set[str] = set()
    running: list[str] = []  # the modules whose forward is under way, innermost last

    def resize(module, args):
        name = names.get(id(module))
        running.append(name)
        x = first_tensor(args)
        if name in done or x is None:
            return
        done.add(name)
        old = original.get(name)
        if layers.is_conv(module):
            c_in = x.shape[1]
            if layers.is_depthwise(module):
                per_group = module.out_channels // module.in_channels
                layers.resize_conv(module, c_in, c_in * per_group, groups=c_in)
                return
            if c_in % module.groups:
                raise UsageError(f"cannot widen {name} ({type(module).__name__}): its input of {c_in} channels does not "
                                 f"divide into its {module.groups} groups")
            c_out = out_width(name, module.out_channels)
            layers.resize_conv(module, c_in, c_out, module.groups)
        elif isinstance(module, nn.Linear):
            layers.resize_linear(module, x.shape[-1], out_width(name, module.out_features))
        elif isinstance(module, layers.NORMS):
            why = layers.resize_norm(module, x, old)
            if why:
                raise UsageError(f"cannot widen {name} ({type(module).__name__}): {why}")
        elif old and len(old) > 1 and x.dim() > 1 and old[1] != x.shape[1]:
            layers.resize_owned(module, old[1], x.shape[1])

    def out_width(name: str, channels: int) -> int:
        if name == classifier:
            return channels if num_classes is None else int(num_classes)
        return rule(channels)

    def leave(_module, _args, _output):
        running.pop()

    handles = []
    for m in model.modules():
        handles += [m.register_forward_pre_hook(resize), m.register_forward_hook(leave)]
    batch = shapes.inputs[""][0] if "" in shapes.inputs else 2
    try:
        with evaluating(model):
            out = model(probe_input(shapes.resolution, batch))
    except UsageError:
        raise
    except Exception as exc:
        where = running[-1] if running else ""
        layer = model.get_submodule(where) if where else model
        raise UsageError(f"cannot widen {where or 'the network'} ({type(layer).__name__}): "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}{_reshape_hint(model)}") from None
    finally:
        for h in handles:
            h.remove()
    check_output(model, out, batch, shapes, num_classes)
    missed = [n for n, m in model.named_modules() if (layers.is_weighted(m) or isinstance(m, layers.NORMS))
              and n not in done and any(True for _ in m.parameters(recurse=False))]
    if missed:
        raise UsageError(f"cannot widen {missed[0]} ({type(model.get_submodule(missed[0])).__name__}): it never ran on a "
                         "probe input (a branch the rewrite cannot follow)")
    return model


def check_output(model: nn.Module, out, batch: int, shapes: Probe, num_classes: int | None) -> None:
    """The widened network must still give one row of class scores per image."""
    if shapes.output is None:
        return
    expected = (batch, *shapes.output[1:-1], shapes.output[-1] if num_classes is None else int(num_classes))
    got = tuple(out.shape) if hasattr(out, "shape") else None
    if got != expected:
        raise UsageError(f"cannot widen the network: its output is {got}, not {expected}, once its channels change"
                         f"{_reshape_hint(model) or ''}")


def _reshape_hint(model: nn.Module) -> str:
    """'; a reshape to a fixed size at FILE:LINE: CODE cannot follow a new width', where fx finds one."""
    found = fixed_reshapes(model)
    return f"; a reshape to a fixed size at {found[0]} cannot follow a new width" if found else ""
