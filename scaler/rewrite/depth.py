"""Depth by rewriting: the network's stages found by their shapes, grown or shrunk in place.

A *repeatable block* is a child of an ``nn.Sequential`` or ``nn.ModuleList`` that returns a tensor
of the shape it was given (so it can be repeated or left out) and holds at least one convolution
or linear layer. A *stage* is a run of consecutive repeatable blocks of one class, together with the
sibling just before the run when it is a block of the same class that changes the shape (ResNet's
first block with its projection, MobileNet's strided block): that *transition* block counts as
one of the stage's blocks but is never copied or removed. A stage needs at least two blocks: a
lone shape-keeping module (a depthwise conv, a squeeze-excite) is a part of a block, not a stage.
The search runs from the outside in and does not look inside a stage's blocks; an equal-shaped
container of blocks (a ConvNeXt stage) is looked into, since its blocks form the stage.

Depth ``d`` takes a stage of ``n`` blocks to ``ceil(n * d)`` (``scaling.round_repeats``), never
below one block: new blocks are fresh copies of the stage's last repeatable block (parameters drawn
afresh), removed blocks come off the end (EfficientNet's and timm's rule).
"""

from __future__ import annotations

import copy
from collections import Counter, OrderedDict
from dataclasses import dataclass

from torch import nn

from scaler.rewrite import layers
from scaler.rewrite.probe import Probe, probe
from scaler.scaling import round_repeats


@dataclass(frozen=True)
class FoundStage:
    """A run of repeatable blocks in one container, as found in a network."""

    container: str  # the nn.Sequential / nn.ModuleList's name in the network ("" for the network itself)
    children: tuple[str, ...]  # the run's child names, in order
    transition: str | None  # the same-class child before the run that changes the shape, if any
    block: str  # the blocks' class name
    channels: int  # channels the blocks take and give (dim 1 of their output)
    size: tuple[int, ...]  # their output shape on the probe input, batch left out

    @property
    def blocks(self) -> int:
        return len(self.children) + (self.transition is not None)

    @property
    def label(self) -> str:
        first = self.transition if self.transition is not None else self.children[0]
        where = f"{self.container}." if self.container else ""
        return f"{where}[{first}..{self.children[-1]}]"

    def target(self, depth: float) -> int:
        """How many blocks the stage has at ``depth``: ceil(n * d), at least one."""
        return max(1, round_repeats(self.blocks, depth))


def _conv_kinds(module: nn.Module) -> Counter:
    """What convolutions a block is made of (kernel and kind), to tell a stage's blocks apart from
    other modules of the same class that happen to sit next to them."""
    kinds = Counter()
    for m in module.modules():
        if layers.is_conv(m):
            kind = "dw" if layers.is_depthwise(m) else ("grouped" if m.groups > 1 else "dense")
            kinds[(tuple(m.kernel_size), kind)] += 1
        elif isinstance(m, nn.Linear):
            kinds[("linear", "dense")] += 1
    return kinds


def _repeatable(module: nn.Module, name: str, shapes: Probe) -> bool:
    if not any(True for _ in module.children()):
        return False  # a single layer is a part of a block, not a block
    if not any(layers.is_weighted(m) for m in module.modules()):
        return False
    given, out = shapes.inputs.get(name), shapes.outputs.get(name)
    return given is not None and given == out


def find_stages(model: nn.Module, shapes: Probe | None = None) -> list[FoundStage]:
    """The stages of ``model``, outermost first in forward order; ``shapes`` is a probe of it, if made."""
    shapes = shapes or probe(model)
    found: list[FoundStage] = []
    _search(model, "", shapes, found)
    order = {name: i for i, name in enumerate(shapes.order)}
    return sorted(found, key=lambda s: order.get(_join(s.container, s.children[0]), 0))


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _search(module: nn.Module, prefix: str, shapes: Probe, found: list[FoundStage]) -> None:
    inside: set[str] = set()  # children that are blocks of a stage found here: not searched
    if isinstance(module, (nn.Sequential, nn.ModuleList)):
        named = list(module.named_children())
        i = 0
        while i < len(named):
            name, child = named[i]
            full = _join(prefix, name)
            if not _repeatable(child, full, shapes):
                i += 1
                continue
            run = [name]
            while (i + len(run) < len(named) and type(named[i + len(run)][1]) is type(child)
                   and _repeatable(named[i + len(run)][1], _join(prefix, named[i + len(run)][0]), shapes)):
                run.append(named[i + len(run)][0])
            transition = None
            if i > 0:
                before_name, before = named[i - 1]
                if type(before) is type(child) and not (_conv_kinds(module.get_submodule(run[-1])) - _conv_kinds(before)):
                    transition = before_name
            if len(run) + (transition is not None) >= 2:
                out = shapes.outputs[_join(prefix, run[-1])]
                found.append(FoundStage(prefix, tuple(run), transition, type(child).__name__,
                                        out[1] if len(out) > 1 else out[-1], tuple(out[1:])))
                inside.update(run)
                if transition is not None:
                    inside.add(transition)
            i += len(run)
    for name, child in module.named_children():
        if name not in inside:
            _search(child, _join(prefix, name), shapes, found)


def scale_depth(model: nn.Module, depth: float, stages: list[FoundStage] | None = None) -> nn.Module:
    """Grow or shrink every stage of ``model`` in place to ceil(n * depth) blocks; returns it."""
    stages = find_stages(model) if stages is None else stages
    for stage in reversed(stages):  # later stages first: renumbering a container leaves earlier names as they are
        container = model.get_submodule(stage.container) if stage.container else model
        keep = stage.target(depth) - (stage.transition is not None)  # target >= 1: never below one block
        run = list(stage.children)
        if keep == len(run):
            continue
        items = list(container._modules.items())
        last_index = max(i for i, (name, _) in enumerate(items) if name == run[-1])
        if keep < len(run):
            drop = set(run[keep:])
            items = [(n, m) for n, m in items if n not in drop]
        else:
            template = container.get_submodule(run[-1])
            copies = [(f"{run[-1]}_{k}", _fresh_copy(template)) for k in range(1, keep - len(run) + 1)]
            items = items[: last_index + 1] + copies + items[last_index + 1 :]
        _replace_children(container, items)
    return model


def _fresh_copy(block: nn.Module) -> nn.Module:
    clone = copy.deepcopy(block)
    for m in clone.modules():
        if layers.is_weighted(m) or isinstance(m, layers.NORMS):
            layers.init_layer(m)
    return clone


def _replace_children(container: nn.Module, items: list[tuple[str, nn.Module]]) -> None:
    # nn.ModuleList finds its items by the names "0", "1", ...: renumber when the names are numbers.
    if all(name.split("_")[0].isdigit() for name, _ in items):
        items = [(str(i), m) for i, (_, m) in enumerate(items)]
    container._modules = OrderedDict(items)
