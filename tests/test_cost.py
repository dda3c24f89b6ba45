"""Cost counting: pinned reference counts, the analytic walks against an fvcore trace, MACs against
torch's FlopCounterMode, unsupported operators reported, per-module tables that add up.

Units: ``macs`` are multiply-adds (bias adds included); FlopCounterMode counts FLOPs, 2 per
multiply-add, and no bias adds.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from scaler.baselines import Baseline, get_baseline, list_baselines
from scaler.cost import count_cost, count_model
from scaler.errors import UsageError
from scaler.scaling import channel_divisor

COUNTS = ("macs", "fvcore_total", "params", "activations")

# torchvision's models (weights=None, 1000 classes, batch 1), counted here and pinned (docs/design.md).
# (baseline, width, depth, resolution): (params, MACs incl. bias adds, fvcore total)
REFERENCE = {
    ("efficientnet_b0", 1.0, 1.0, 224): (5_288_548, 385_825_092, 401_659_392),
    ("efficientnet_b0", 1.0, 1.1, 240): (7_794_184, 686_817_992, 712_732_416),  # = efficientnet_b1
    ("efficientnet_b0", 1.1, 1.2, 260): (9_109_994, 993_578_282, 1_026_579_120),  # = efficientnet_b2
    ("resnet50", 1.0, 1.0, 224): (25_557_032, 4_089_185_256, 4_111_512_576),
    ("mobilenet_v2", 1.0, 1.0, 224): (3_504_872, 300_775_272, 314_193_216),
    # fvcore trace of torchvision.models.efficientnet_b7() at 600 px (activations 289,939,464)
    ("efficientnet_b0", 2.0, 3.1, 600): (66_347_960, 37_745_958_392, 38_449_437_600),
}

# Scaled points for the analytic-vs-trace check: width down and up, depth down and up, small,
# middling and odd resolutions (an odd size halves to odd sizes, where padding errors show).
SCALED = [(0.5, 0.5, 257), (1.3, 1.7, 32), (0.75, 1.2, 96)]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Traces run tiny forward passes; on a shared 2-core machine a second thread only adds contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def unit_model():
    """Each built-in at multipliers (1, 1), built once for the module."""
    cache: dict[str, nn.Module] = {}

    def get(name: str) -> nn.Module:
        if name not in cache:
            cache[name] = get_baseline(name).build(width=1.0, depth=1.0, num_classes=1000).eval()
        return cache[name]

    return get


def _counts(cost) -> dict[str, int]:
    return {k: getattr(cost, k) for k in COUNTS}


@pytest.mark.parametrize(("key", "expected"), REFERENCE.items(), ids=["-".join(map(str, k)) for k in REFERENCE])
def test_reference_counts(key, expected):
    name, width, depth, resolution = key
    cost = count_cost(name, width=width, depth=depth, resolution=resolution)
    assert cost.method == "analytic"
    assert (cost.params, cost.macs, cost.fvcore_total) == expected
    assert cost.resolution == resolution and cost.unsupported == {}


@pytest.mark.parametrize("name", list_baselines())
def test_analytic_equals_trace_at_unit_multipliers(unit_model, name):
    analytic = count_cost(name)
    traced = count_model(unit_model(name), get_baseline(name).resolution)
    assert (analytic.method, traced.method) == ("analytic", "fvcore")
    assert traced.unsupported == {}
    assert _counts(analytic) == _counts(traced)


@pytest.mark.parametrize(("width", "depth", "resolution"), SCALED)
@pytest.mark.parametrize("name", list_baselines())
def test_analytic_equals_trace_when_scaled(name, width, depth, resolution):
    analytic = count_cost(name, width=width, depth=depth, resolution=resolution)
    traced = count_model(get_baseline(name).build(width=width, depth=depth, num_classes=1000), resolution)
    assert analytic.method == "analytic"
    assert _counts(analytic) == _counts(traced)


@pytest.mark.parametrize(("width", "resolution"), [(0.25, 24), (0.3, 27)])
@pytest.mark.parametrize("name", list_baselines())
def test_a_proxy_is_built_as_its_cost_was_counted(name, width, resolution):
    # The proxy's channels round to 8 x its width (divisor 2 at width 0.25): torchvision's MBConv and
    # MobileNetV2 builders round to 8 unless told, which once made the built proxy not the one costed.
    with channel_divisor(2):
        analytic = count_cost(name, width=width, resolution=resolution, num_classes=10)
        traced = count_model(get_baseline(name).build(width=width, depth=1.0, num_classes=10), resolution)
    assert _counts(analytic) == _counts(traced)


def test_analytic_equals_trace_for_a_stage_list_file(tmp_path):
    """A user's MBConv stage list: kernel 7, expand 4 and 1 mid-network, channels off the multiple of 8."""
    spec = {
        "name": "tiny",
        "resolution": 64,
        "stem_channels": 12,
        "head_channels": 100,
        "stages": [
            {"expand": 4, "kernel": 7, "stride": 2, "channels": 20, "repeats": 2},
            {"expand": 1, "kernel": 3, "stride": 1, "channels": 20, "repeats": 1},
            {"expand": 6, "kernel": 5, "stride": 2, "channels": 44, "repeats": 2},
        ],
    }
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(spec))
    baseline = get_baseline(str(path))
    for width, depth, resolution, classes in ((1.0, 1.0, 64, 10), (1.4, 1.6, 45, 7)):
        analytic = count_cost(baseline, width=width, depth=depth, resolution=resolution, num_classes=classes)
        traced = count_model(baseline.build(width=width, depth=depth, num_classes=classes), resolution)
        assert analytic.method == "analytic"
        assert _counts(analytic) == _counts(traced)


def _bias_adds(model: nn.Module, x: torch.Tensor) -> int:
    """One add per output element of every convolution or linear layer with a bias."""
    total = 0

    def hook(module, _inputs, output):
        nonlocal total
        total += output.numel()

    hooks = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return total


@pytest.mark.parametrize("name", list_baselines())
def test_macs_match_torch_flop_counter(unit_model, name):
    resolution = 64
    model, x = unit_model(name), torch.zeros(1, 3, resolution, resolution)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    cost = count_cost(name, resolution=resolution)
    # FlopCounterMode: 2 FLOPs per multiply-add, bias adds not counted.
    assert counter.get_total_flops() == 2 * (cost.macs - _bias_adds(model, x))


class _Cumulative(nn.Module):
    """A user's network with an operator fvcore has no handle for (cumsum)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = torch.cumsum(self.conv(x), dim=1)
        return self.fc(x.mean((2, 3)))


def test_unsupported_operator_is_reported_not_zero():
    user = Baseline("user_cumsum", lambda w, d, n: _Cumulative(), resolution=16, source="user")
    cost = count_cost(user)
    assert cost.method == "fvcore"  # no complexity_fn: a user's network is traced
    assert cost.unsupported == {"aten::cumsum": 1}
    assert cost.macs == 8 * 3 * 9 * 16 * 16 + 8 * 5 + 5  # conv + linear + its bias adds
    assert cost.params == 8 * 3 * 9 + 8 * 5 + 5


@pytest.mark.parametrize(("name", "resolution"), [("resnet18", 64), ("efficientnet_b0", 64), ("mobilenet_v2", 33)])
def test_per_module_table_adds_up(name, resolution):
    cost = count_cost(name, resolution=resolution, per_module_depth=2)
    assert cost.method == "fvcore"  # module names need the built network
    assert _counts(cost) == _counts(count_cost(name, resolution=resolution))
    top = [row for row in cost.per_module if "." not in row["module"]]
    for key in ("macs", "params", "activations"):
        assert sum(row[key] for row in top) == getattr(cost, key), key
    # every second-level row sits inside a first-level one, and they add up to it where complete
    second = [row for row in cost.per_module if row["module"].count(".") == 1]
    assert second and all(row["module"].split(".")[0] in {r["module"] for r in top} for row in second)


def test_analytic_rejects_bad_input_like_the_builder():
    for kwargs in ({"width": 0}, {"depth": -1}, {"resolution": 0}, {"num_classes": 0}):
        with pytest.raises(UsageError):
            count_cost("resnet18", **kwargs)


def test_every_built_in_candidate_is_costed_without_building_it():
    # The walk is what makes costing fast (0.3 ms vs 4 s for B7's multipliers at 600 px traced:
    # benchmarks/cost.py); here, only that no built-in candidate falls back to a trace.
    candidates = [(name, 1.0, 1.0, None) for name in list_baselines()] + [("efficientnet_b0", 2.0, 3.1, 600)]
    for name, width, depth, resolution in candidates:
        assert count_cost(name, width=width, depth=depth, resolution=resolution).method == "analytic", name
