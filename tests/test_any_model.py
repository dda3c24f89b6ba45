"""Any CNN as a baseline: torchvision and timm builders, a user's class, scaled by a library's
knobs or by rewriting its width and depth (scaler/baselines/any_model.py, scaler/rewrite/)."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import torchvision
from conftest import run_cli
from torch import nn

from scaler.baselines import get_baseline
from scaler.baselines.any_model import REWRITE, rewrite
from scaler.cost import count_cost, count_params
from scaler.errors import UsageError
from scaler.family_files import build_member, load_family
from scaler.rewrite import find_stages, layers
from scaler.rewrite.width import width_rule
from scaler.scaling import round_channels

# One small member of each torchvision classification family (the smallest builds fastest).
FAMILIES = ["resnet18", "resnext50_32x4d", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "regnet_y_400mf",
            "shufflenet_v2_x0_5", "mnasnet0_5", "convnext_tiny", "densenet121", "squeezenet1_1"]
CLASSES = 10
# Parameters at width 1.5, depth 2 (10 classes), measured 2026-11-26: pinned so a change to the
# rewrite or a library path shows. Independent checks are below (torchvision's and timm's own knobs).
SCALED_PARAMS = {
    "resnet18": 53_353_066, "resnext50_32x4d": 100_219_882, "mobilenet_v2": 11_285_058, "mobilenet_v3_small": 5_872_218,
    "efficientnet_b0": 19_815_010, "regnet_y_400mf": 17_406_368, "shufflenet_v2_x0_5": 1_056_682, "mnasnet0_5": 3_516_442,
    "convnext_tiny": 121_114_810, "densenet121": 52_189_930, "squeezenet1_1": 3_293_002,
}


def torchvision_model(name: str, **kwargs) -> nn.Module:
    return getattr(torchvision.models, name)(weights=None, num_classes=CLASSES, **kwargs)


def block_counts(model: nn.Module) -> list[int]:
    """Blocks per stage: the stages found by shape, or a DenseNet's dense layers per dense block."""
    dense = [m for m in model.modules() if isinstance(m, torchvision.models.densenet._DenseBlock)]
    return [len(b) for b in dense] if dense else [s.blocks for s in find_stages(model)]


@pytest.mark.parametrize("name", FAMILIES + ["wide_resnet50_2"])
def test_unit_multipliers_give_torchvision_parameter_for_parameter(name):
    torch.manual_seed(0)
    ours = get_baseline(f"torchvision.models:{name}").build(num_classes=CLASSES)
    torch.manual_seed(0)
    reference = torchvision_model(name)
    mine, theirs = ours.state_dict(), reference.state_dict()
    assert list(mine) == list(theirs)
    assert all(torch.equal(mine[k], theirs[k]) for k in mine), name


@pytest.mark.parametrize("name", FAMILIES)
def test_width_and_depth_scale_and_run(name):
    b = get_baseline(f"torchvision.models:{name}")
    base = b.build(num_classes=CLASSES)
    scaled = b.build(width=1.5, depth=2.0, num_classes=CLASSES)
    assert count_params(scaled) > count_params(base) and count_params(scaled) == SCALED_PARAMS[name]
    with torch.no_grad():
        for px in (32, 48):
            out = scaled.eval()(torch.randn(2, 3, px, px))
            assert out.shape == (2, CLASSES) and torch.isfinite(out).all()
    before, after = block_counts(base), block_counts(scaled)
    if b.scaling == REWRITE:  # every stage found grows to ceil(2 n)
        assert after == [math.ceil(2 * n) for n in before] and before
    else:  # a library's knobs: every stage at least doubles (a one-block stage may become a stage)
        assert sum(after) >= 2 * sum(before) and sum(before) > 0


def test_the_rewrite_keeps_groups_depthwise_and_equal_widths():
    for name in ("resnext50_32x4d", "mobilenet_v3_small", "shufflenet_v2_x0_5"):
        original = torchvision_model(name)
        widened = rewrite(copy.deepcopy(original), 1.5, 1.0)
        rule = width_rule(original, 1.5)
        for (path, old), (_, new) in zip(original.named_modules(), widened.named_modules()):
            if not layers.is_conv(old):
                continue
            if layers.is_depthwise(old):
                assert layers.is_depthwise(new) and new.out_channels // new.in_channels == old.out_channels // old.in_channels
            else:
                assert new.groups == old.groups and new.in_channels % new.groups == 0, path
                assert new.out_channels == rule(old.out_channels), path  # equal widths map to equal widths
        assert next(m for m in widened.modules() if layers.is_conv(m)).in_channels == 3  # the image stays RGB
        assert [m for m in widened.modules() if isinstance(m, nn.Linear)][-1].out_features == CLASSES
    # ResNeXt's grouped 3x3s read and write widths kept divisible by their 32 groups
    assert rule(128) % 32 == 0 and width_rule(torchvision_model("resnext50_32x4d"), 1.3)(128) % 32 == 0


def test_depth_below_one_removes_from_the_end_and_keeps_a_block():
    b = get_baseline("torchvision.models:shufflenet_v2_x0_5")
    counts = block_counts(b.build(num_classes=CLASSES))  # 4, 8, 4 (each with its strided first block)
    assert counts == [4, 8, 4]
    shallow = b.build(depth=0.3, num_classes=CLASSES)
    assert [len(s) for s in (shallow.stage2, shallow.stage3, shallow.stage4)] == [2, 3, 2]  # ceil(0.3 n)
    one = b.build(depth=0.01, num_classes=CLASSES)
    assert [len(s) for s in (one.stage2, one.stage3, one.stage4)] == [1, 1, 1]
    assert one(torch.randn(2, 3, 32, 32)).shape == (2, CLASSES)


def test_mobilenet_v2_native_width_equals_torchvision_and_the_rewrite_differs_only_in_expansions():
    b = get_baseline("torchvision.models:mobilenet_v2")
    assert "width_mult" in b.scaling
    native = b.build(width=1.4, num_classes=CLASSES)
    own = torchvision_model("mobilenet_v2", width_mult=1.4)
    assert count_params(native) == count_params(own) == 4_333_706
    # The rewrite rounds every layer's own width: an expansion is round(t * c * 1.4), where
    # torchvision's knob takes t * round(c * 1.4). Everything else is the same layer for layer.
    rewritten = rewrite(torchvision_model("mobilenet_v2"), 1.4, 1.0)
    original = torchvision_model("mobilenet_v2")
    blocks = zip(original.features[1:-1], own.features[1:-1], rewritten.features[1:-1])
    for old, theirs, mine in blocks:
        convs = [[m for m in block.modules() if isinstance(m, nn.Conv2d)] for block in (old, theirs, mine)]
        assert convs[1][-1].out_channels == convs[2][-1].out_channels  # the blocks' outputs agree
        if len(convs[0]) == 3:  # expand, depthwise, project
            t = convs[0][0].out_channels // convs[0][0].in_channels
            assert convs[1][0].out_channels == t * round_channels(convs[0][0].in_channels, 1.4)
            assert convs[2][0].out_channels == round_channels(convs[0][0].out_channels, 1.4)
    assert count_params(rewritten) == 4_327_530  # 0.14% fewer than torchvision's 4,333,706, all in expansions


def test_timm_efficientnet_knobs_match_torchvision_and_timm_resnet_is_rewritten():
    pytest.importorskip("timm")
    timm_b0, tv_b0 = get_baseline("timm:efficientnet_b0"), get_baseline("torchvision.models:efficientnet_b0")
    assert "channel_multiplier" in timm_b0.scaling
    for w, d in ((1.0, 1.0), (1.5, 2.0)):
        assert count_params(timm_b0.build(width=w, depth=d, num_classes=CLASSES)) == \
            count_params(tv_b0.build(width=w, depth=d, num_classes=CLASSES))
    resnet = get_baseline("timm:resnet26d")
    assert resnet.scaling == REWRITE and resnet.source == "timm"
    scaled = resnet.build(width=0.5, depth=2.0, num_classes=CLASSES)
    assert block_counts(scaled) == [4, 4, 4, 4]
    # timm starts each residual branch at zero (zero_init_last): resized and copied blocks still do
    assert all(not block.bn3.weight.any() and block.bn1.weight.all() for block in scaled.layer1)
    assert scaled(torch.randn(1, 3, 48, 48)).shape == (1, CLASSES)
    with pytest.raises(UsageError, match="timm has no model 'resnet26e'; did you mean"):
        get_baseline("timm:resnet26e")


USER_NETS = '''
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.se = nn.Conv2d(c, c, 1)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        return x + y * torch.sigmoid(self.se(y.mean((2, 3), keepdim=True)))


class TinyNet(nn.Module):
    """A user's network without multiplier arguments."""

    def __init__(self, num_classes=1000):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.stage = nn.Sequential(Block(16), Block(16))
        self.branch = nn.Conv2d(16, 8, 1)
        self.head = nn.Linear(16 + 8, num_classes)

    def forward(self, x):
        x = self.stage(self.stem(x))
        x = torch.cat([x, self.branch(x)], 1)  # a concatenation: the head reads the sum of its parts
        return self.head(x.mean((2, 3)))


def tiny():
    return TinyNet(num_classes=3)


class Fixed(TinyNet):
    def forward(self, x):
        x = self.stage(self.stem(x)).mean((2, 3))
        return self.head(torch.cat([x, x[:, :8]], 1).view(-1, 24))


class Branchy(TinyNet):
    def forward(self, x):
        x = self.stage(self.stem(x))
        if x.sum() > 0:
            x = torch.cat([x, self.branch(x)], 1)
        else:
            x = torch.cat([x, x[:, :8]], 1)
        return self.head(x.mean((2, 3)))


def plain():
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


def ignores_depth(width_mult, depth_mult, num_classes):
    return TinyNet(num_classes) if width_mult == 1 else nn.Sequential(TinyNet(num_classes), nn.Linear(num_classes, num_classes))
'''


@pytest.fixture
def user_nets(tmp_path, monkeypatch):
    (tmp_path / "user_nets.py").write_text(USER_NETS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_a_users_class_and_no_argument_function_are_scaled(user_nets):
    b = get_baseline("user_nets:TinyNet")
    assert b.scaling == REWRITE and b.description.startswith("A user's network")
    assert [(s.channels, s.repeats) for s in b.stages()] == [(16, 2)]
    model = b.build(width=1.5, depth=2.0, num_classes=5)
    assert len(model.stage) == 4 and model.stem.out_channels == 24 and model.branch.out_channels == 16
    assert model.head.in_features == 24 + 16  # taken from what flows in: the concatenation
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    tiny = get_baseline("user_nets:tiny")  # takes no num_classes: its classifier is given the classes
    assert tiny.build(num_classes=7).head.out_features == 7
    assert tiny.build(width=0.5, num_classes=7)(torch.randn(1, 3, 32, 32)).shape == (1, 7)
    assert count_cost(b, width=1.5, depth=2.0, resolution=32).method == "fvcore"


def test_what_cannot_be_rewritten_is_named(user_nets):
    with pytest.raises(UsageError, match=r"user_nets.py:\d+: .*view\(-1, 24\)"):
        get_baseline("user_nets:Fixed").build(width=1.5)
    with pytest.raises(UsageError, match=r"cannot widen branch .*never ran on a probe input"):
        get_baseline("user_nets:Branchy").build(width=1.5)
    assert get_baseline("user_nets:ignores_depth").ignored_multipliers() == ["depth_mult"]
    assert get_baseline("user_nets:plain").ignored_multipliers() == ["depth_mult"]  # no stage for depth to grow
    assert get_baseline("user_nets:TinyNet").ignored_multipliers() == []
    result = run_cli("flops", "--baseline", "user_nets:Fixed", "--width", "1.5", "--latency-runs", "0", cwd=user_nets)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "reshape to a fixed size" in result.stderr


def test_show_lists_the_stages_depth_repeats():
    result = run_cli("baselines", "--show", "torchvision.models:shufflenet_v2_x1_0")
    assert result.returncode == 0, result.stderr
    assert "rewritten" in result.stdout
    for stage, blocks, deeper in (("stage2", 4, 8), ("stage3", 8, 16), ("stage4", 4, 8)):
        assert any(line.split()[:1] == [f"{stage}.[0..{blocks - 1}]"] and line.split()[-2:] == [str(blocks), str(deeper)]
                   for line in result.stdout.splitlines()), result.stdout


@pytest.mark.slow
def test_the_whole_pipeline_on_a_torchvision_builder(tmp_path):
    spec, out = "torchvision.models:mobilenet_v3_small", tmp_path / "run"
    # Four points (width, depth, resolution, one compound): each is cost-matched by building and tracing it.
    space = tmp_path / "small.toml"
    space.write_text("depth = [0.0, 0.3333, 1.0]\nresolution = [0.0, 0.5]\ntolerance = 0.35\n")
    result = run_cli("search", "--baseline", spec, "--budget", "2x", "--out", str(out), "--preset", "smoke", "--space", str(space),
                     "--data", "synthetic:size=16,images=400,classes=4", "--device", "cpu", "--confirm", "0",
                     "--curves", "none", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "chosen: alpha=" in result.stdout and (out / "report.html").is_file()
    assert f"baseline {spec}: scaled by {REWRITE}" in result.stdout  # which path, said before training
    family = load_family(out)
    assert family["baseline"] == spec and len(family["members"]) > 1
    for entry in family["members"]:  # a member records the callable and its multipliers, and rebuilds from them
        assert entry["baseline"] == spec
        rebuilt = build_member(entry)
        again = get_baseline(spec).build(width=entry["width_mult"], depth=entry["depth_mult"], num_classes=entry["num_classes"])
        assert count_params(rebuilt) == entry["params"] == count_params(again)
        assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in again.state_dict().items()}
    onnx = tmp_path / "member.onnx"
    exported = run_cli("export", "--run", str(out), "--phi", "1", "--onnx", str(onnx))
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert onnx.stat().st_size > 100_000
    compared = run_cli("compare", "--run", str(out), "--strategies", "compound", "--budget", "2x", "--no-train",
                       "--out", str(tmp_path / "cmp"), "--json")
    assert compared.returncode == 0, compared.stderr[-2000:]
    rows = json.loads(compared.stdout)["rows"]
    assert [r["strategy"] for r in rows] == ["baseline", "compound"] and abs(rows[1]["macs_ratio"] - 2) < 0.15


def test_a_rewrite_at_width_one_changes_only_the_classes():
    torch.manual_seed(0)
    model = torchvision_model("shufflenet_v2_x0_5")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    after = rewrite(model, 1.0, 1.0, num_classes=3).state_dict()
    changed = {k for k in before if before[k].shape != after[k].shape or not torch.equal(before[k], after[k])}
    assert changed == {"fc.weight", "fc.bias"} and after["fc.weight"].shape == (3, 1024)
