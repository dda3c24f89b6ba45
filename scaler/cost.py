"""The cost of a network: multiply-adds, parameters, activations and latency.

Units. ``macs`` are multiply-adds of convolutions and linear layers (matmul-like operators
included), plus one add per output element where a layer has a bias: what the EfficientNet paper
and pycls call "FLOPS" (efficientnet_b0 at 224 px: 385,825,092). ``fvcore_total`` is fvcore's own
total: the same multiply-adds without bias adds, plus normalization, pooling and upsampling. torch's
``FlopCounterMode`` counts 2 per multiply-add; we halve it. ``activations`` are output elements
of convolutions and linear layers (pycls's definition).

Counting. A built-in baseline is costed *analytically*: its ``complexity_fn`` walks the same
description its builder uses and derives each layer's output size by shape propagation
(:mod:`scaler.complexity`), without making a module — microseconds instead of the seconds a trace
takes, and exactly the trace's numbers (``tests/test_cost.py`` proves it over the registry at
scaled points). Anything else (a user's ``module:function``, a per-module table) is traced.
One fvcore trace gives everything: every operator has a handle in one table, ``None``
meaning "ignored on purpose"; any operator left over is *reported* in ``Cost.unsupported``, never
silently counted as zero. Where a trace cannot follow (the meta device, data-dependent control
flow) ``torch.utils.flop_counter.FlopCounterMode`` counts instead.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from fvcore.nn import jit_handles
from fvcore.nn.flop_count import _DEFAULT_SUPPORTED_OPS
from fvcore.nn.jit_analysis import JitModelAnalysis
from torch import nn

from scaler.baselines import Baseline, get_baseline
from scaler.complexity import Complexity
from scaler.errors import UsageError

# Operators whose cost is the paper's "FLOPS": multiply-adds of convolutions and linear maps.
MAC_OPS = ("aten::_convolution", "aten::addmm", "aten::linear", "aten::matmul", "aten::mm", "aten::bmm", "aten::einsum")
# Operators fvcore counts that the paper leaves out (normalization, pooling, resampling).
OTHER_OPS = tuple(op for op in _DEFAULT_SUPPORTED_OPS if op not in MAC_OPS)
# Cheap element-wise operators the paper does not count either: ignored on purpose, by name.
IGNORED_OPS = (
    "aten::add", "aten::add_", "aten::mul", "aten::mul_", "aten::div", "aten::sub",
    "aten::relu", "aten::relu_", "aten::relu6", "aten::hardtanh", "aten::hardtanh_",
    "aten::silu", "aten::silu_", "aten::sigmoid", "aten::sigmoid_", "aten::hardswish",
    "aten::hardswish_", "aten::hardsigmoid", "aten::hardsigmoid_", "aten::gelu", "aten::tanh",
    "aten::max_pool2d", "aten::avg_pool2d", "aten::dropout", "aten::dropout_", "aten::feature_dropout",
    "aten::softmax", "aten::mean", "aten::size", "aten::view", "aten::reshape", "aten::stochastic_depth",
)


@dataclass
class Cost:
    """What one network at one input size costs."""

    macs: int
    fvcore_total: int  # fvcore's total: no bias adds, plus normalization and pooling
    params: int
    activations: int
    resolution: int
    method: str  # "analytic" (no build), "fvcore" (traced) or "flop_counter" (dispatch-counted)
    unsupported: dict[str, int] = field(default_factory=dict)
    per_module: list[dict] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict:
        return asdict(self)


# Where each operator takes its bias, if it has one.
_BIAS_INPUT = {"aten::_convolution": 2, "aten::linear": 2, "aten::addmm": 0}


def _mac_handle(op: str) -> Callable:
    flop_handle, bias_at = _DEFAULT_SUPPORTED_OPS[op], _BIAS_INPUT.get(op)

    def handle(inputs, outputs) -> Counter:
        macs = flop_handle(inputs, outputs)
        macs = sum(macs.values()) if isinstance(macs, Counter) else macs
        acts = math.prod(jit_handles.get_shape(outputs[0]))
        # A bias is one add per output element; pycls and the paper's figures count it.
        # fvcore leaves it out, so it is kept apart to keep fvcore's own total reproducible.
        bias = acts if bias_at is not None and jit_handles.get_shape(inputs[bias_at]) is not None else 0
        return Counter({"macs": macs, "bias": bias, "activations": acts})

    return handle


def _other_handle(flop_handle: Callable) -> Callable:
    def handle(inputs, outputs) -> Counter:
        value = flop_handle(inputs, outputs)
        return Counter({"other": sum(value.values()) if isinstance(value, Counter) else value})

    return handle


class _CostAnalysis(JitModelAnalysis):
    """fvcore's tracer with one handle per operator, returning macs / activations / other."""

    def __init__(self, model: nn.Module, inputs) -> None:
        super().__init__(model, inputs)
        handles = {op: _mac_handle(op) for op in MAC_OPS}
        handles.update({op: _other_handle(_DEFAULT_SUPPORTED_OPS[op]) for op in OTHER_OPS})
        handles.update({op: None for op in IGNORED_OPS})
        self.set_op_handle(**handles)
        self.unsupported_ops_warnings(False)  # reported in Cost.unsupported instead
        self.uncalled_modules_warnings(False)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_model(model: nn.Module, resolution: int, per_module_depth: int = 0) -> Cost:
    """Count a built model on a 1x3xRxR input, by fvcore trace or, failing that, FlopCounterMode."""
    model = model.eval()
    device = next(model.parameters(), torch.empty(0)).device
    x = torch.zeros(1, 3, resolution, resolution, device=device)
    if device.type != "meta":
        try:
            return _count_traced(model, x, per_module_depth)
        except UsageError:
            raise
        except Exception as exc:  # a trace cannot follow every model; the dispatch counter can
            logging.getLogger(__name__).info("fvcore trace failed (%s); using FlopCounterMode", exc)
    try:
        return _count_dispatched(model, x)
    except Exception as exc:  # the model itself fails on this input: the user's message, one line
        raise UsageError(f"cannot run the model at {resolution} px to count it: {type(exc).__name__}: {exc}") from exc


def _count_traced(model: nn.Module, x: torch.Tensor, per_module_depth: int) -> Cost:
    analysis = _CostAnalysis(model, (x,))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter about deprecated scripting, not about counts
        totals = analysis.by_operator()
    rows = []
    if per_module_depth:
        for name, counts in analysis.by_module_and_operator().items():
            depth = 0 if name == "" else name.count(".") + 1
            if 0 < depth <= per_module_depth:
                module = model.get_submodule(name)
                rows.append(
                    {
                        "module": name,
                        "type": type(module).__name__,
                        "macs": int(counts.get("macs", 0) + counts.get("bias", 0)),
                        "params": count_params(module),
                        "activations": int(counts.get("activations", 0)),
                    }
                )
    return Cost(
        macs=int(totals.get("macs", 0) + totals.get("bias", 0)),
        fvcore_total=int(totals.get("macs", 0) + totals.get("other", 0)),
        params=count_params(model),
        activations=int(totals.get("activations", 0)),
        resolution=x.shape[-1],
        method="fvcore",
        unsupported=dict(analysis.unsupported_ops()),
        per_module=rows,
    )


def _count_dispatched(model: nn.Module, x: torch.Tensor) -> Cost:
    from torch.utils.flop_counter import FlopCounterMode

    acts = 0

    def hook(_module, _inputs, output):
        nonlocal acts
        acts += output.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        for h in handles:
            h.remove()
    flops = counter.get_total_flops()  # 2 per multiply-add
    return Cost(
        macs=flops // 2,
        fvcore_total=flops // 2,  # the dispatch counter sees no normalization or pooling cost
        params=count_params(model),
        activations=acts,
        resolution=x.shape[-1],
        method="flop_counter",
    )


def count_cost(
    baseline: str | Baseline,
    *,
    width: float = 1.0,
    depth: float = 1.0,
    resolution: int | None = None,
    num_classes: int = 1000,
    per_module_depth: int = 0,
) -> Cost:
    """Cost of ``baseline`` at the given multipliers and input resolution (pixels).

    Analytic (``method="analytic"``) where the baseline has a ``complexity_fn`` and no per-module
    table is asked for; otherwise the network is built and traced (``method="fvcore"``).
    """
    baseline = get_baseline(baseline)
    resolution = baseline.resolution if resolution is None else int(resolution)
    if resolution < 1:
        raise UsageError(f"resolution must be a positive number of pixels, got {resolution}")
    if num_classes < 1:
        raise UsageError(f"num_classes must be positive, got {num_classes}")
    if baseline.complexity_fn is not None and not per_module_depth:
        for label, value in (("width", width), ("depth", depth)):
            if not value > 0:  # the same check Baseline.build makes
                raise UsageError(f"{label} multiplier must be positive, got {value!r}")
        return cost_from_complexity(baseline.complexity_fn(width, depth, resolution, num_classes), resolution)
    model = baseline.build(width=width, depth=depth, num_classes=num_classes)
    return count_model(model, resolution, per_module_depth)


def final_feature_size(baseline: str | Baseline, width: float = 1.0, depth: float = 1.0,
                       resolution: int | None = None) -> tuple[int, int] | None:
    """(height, width) of the last feature map at ``resolution`` px: what the global pool averages.

    Analytic where the baseline has a ``complexity_fn`` (no module is made); otherwise the network
    is built and run once on zeros, the last Conv2d to run giving the size. None when the walk has
    no global pool or the network has no Conv2d. A network that fails at this size is a UsageError.
    """
    baseline = get_baseline(baseline)
    resolution = baseline.resolution if resolution is None else int(resolution)
    if baseline.complexity_fn is not None:
        cx = baseline.complexity_fn(width, depth, resolution, 1)
        return None if cx.pooled_h is None else (cx.pooled_h, cx.pooled_w)
    return last_conv_size(baseline.build(width=width, depth=depth, num_classes=2), resolution)


def last_conv_size(model: nn.Module, resolution: int) -> tuple[int, int] | None:
    """(height, width) of the output of the last Conv2d that runs on a 1x3xRxR input of zeros."""
    seen: list[tuple[int, int]] = []
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    handles = [m.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape[-2:]))) for m in convs]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, resolution, resolution))
    except Exception as exc:  # the user's model at this size: its own message, one line
        raise UsageError(f"cannot run the model at {resolution} px: {type(exc).__name__}: {exc}") from exc
    finally:
        for h in handles:
            h.remove()
    return seen[-1] if seen else None


def cost_from_complexity(cx: Complexity, resolution: int) -> Cost:
    """The :class:`Cost` of an analytic walk, in the units a trace reports."""
    return Cost(
        macs=cx.macs + cx.bias_adds,
        fvcore_total=cx.macs + cx.norm_pool,
        params=cx.params,
        activations=cx.activations,
        resolution=resolution,
        method="analytic",
    )


def measure_latency(
    model: nn.Module, resolution: int, device: torch.device | str = "cpu", batch_size: int = 1, repeats: int = 10, warmup: int = 2
) -> float:
    """Median milliseconds of one forward pass of a batch, after warm-up."""
    device = torch.device(device)
    model = model.to(device).eval()
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    x = torch.randn(batch_size, 3, resolution, resolution, device=device)
    if device.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)
