import json

import pytest
import torch
import torchvision
from torch import nn

from scaler.baselines import Baseline, builtin_dir, get_baseline, list_baselines, register
from scaler.baselines.base import MOBILE_PROXY
from scaler.errors import UsageError
from scaler.recipe import resolve_recipe as get_recipe

BUILTINS = list_baselines()


def test_registry_lists_the_built_ins():
    assert set(BUILTINS) >= {
        "resnet18", "resnet34", "resnet50", "resnet101", "mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0",
    }


def test_registry_rejects_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        register(Baseline("resnet18", lambda w, d, n: nn.Identity()))


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_equals_torchvision_at_unit_multipliers(name):
    ours = get_baseline(name).build(width=1.0, depth=1.0, num_classes=1000)
    theirs = getattr(torchvision.models, name)(weights=None)
    assert [tuple(p.shape) for p in ours.parameters()] == [tuple(p.shape) for p in theirs.parameters()]


@pytest.mark.parametrize("name", BUILTINS)
@pytest.mark.parametrize("width, depth", [(0.25, 0.5), (1.3, 1.7)])
def test_builtin_scales_and_runs(name, width, depth):
    baseline = get_baseline(name)
    model = baseline.build(width=width, depth=depth, num_classes=10).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    stages = baseline.stages(width=width, depth=depth)
    assert stages and all(s.channels % 8 == 0 and s.repeats >= 1 for s in stages)


def test_depth_multiplier_adds_blocks_to_every_stage():
    base = get_baseline("mobilenet_v3_large").stages(width=1.0, depth=1.0)
    deep = get_baseline("mobilenet_v3_large").stages(width=1.0, depth=1.5)
    assert [s.repeats for s in deep] == [max(1, -(-s.repeats * 3 // 2)) if s.name.startswith("stage") else 1 for s in base]


def test_unknown_baseline_suggests_nearest():
    with pytest.raises(UsageError, match="did you mean 'resnet50'"):
        get_baseline("resnet5")


USER_MODULE = '''
from torch import nn

def build(width_mult, depth_mult, num_classes):
    c = max(8, int(16 * width_mult))
    layers = [nn.Conv2d(3, c, 3, padding=1), nn.ReLU()]
    for _ in range(max(1, round(2 * depth_mult))):
        layers += [nn.Conv2d(c, c, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))

build.resolution = 32
build.proxy_recipe = {"lr": 0.05}

def bad_recipe(width_mult, depth_mult, num_classes):
    return build(width_mult, depth_mult, num_classes)

bad_recipe.proxy_recipe = {"learning_rate": 0.05}

def not_a_module(width_mult, depth_mult, num_classes):
    return 42

def raises(width_mult, depth_mult, num_classes):
    raise RuntimeError("my model is broken")
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_nets.py").write_text(USER_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_nets"


def test_user_function(user_module):
    b = get_baseline(f"{user_module}:build")
    assert b.resolution == 32 and b.source == "user"
    assert isinstance(b.build(width=1.0, depth=1.0, num_classes=5), nn.Module)
    assert get_recipe("default", b).lr == 0.05  # its own recipe field
    with pytest.raises(UsageError, match="bad proxy_recipe"):
        get_recipe("default", get_baseline(f"{user_module}:bad_recipe"))


def test_user_function_errors(user_module):
    with pytest.raises(UsageError, match=r"not a torch\.nn\.Module"):
        get_baseline(f"{user_module}:not_a_module").build()
    with pytest.raises(UsageError, match="my model is broken"):
        get_baseline(f"{user_module}:raises").build()
    with pytest.raises(UsageError, match="no function"):
        get_baseline(f"{user_module}:missing")
    with pytest.raises(UsageError, match="cannot import"):
        get_baseline("no_such_module_xyz:build")


def test_stage_list_json(tmp_path):
    spec = json.loads((builtin_dir() / "efficientnet_b0.json").read_text())
    spec["name"] = "tiny_mbconv"
    spec["stages"] = spec["stages"][:3]
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(spec))
    b = get_baseline(str(path))
    assert b.name == "tiny_mbconv" and b.proxy_recipe == {"head_init_std": 0.01, **MOBILE_PROXY}
    out = b.build(width=1.0, depth=1.0, num_classes=7)(torch.randn(1, 3, 32, 32))
    assert out.shape == (1, 7)


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ('{"stages": []}', "non-empty"),
        ('{"stages": [{"expand": 1}]}', "lacks"),
        ('{"stages": [{"expand": 1, "kernel": 4, "stride": 1, "channels": 8, "repeats": 1}]}', "odd"),
        ('{"stages": [{"expand": 1, "kernel": 3, "stride": 1, "channels": -8, "repeats": 1}]}', "positive"),
        ('{"stages": [{"expand": 1, "kernel": 3, "stride": 1, "channels": 8, "repeats": 1, "se": 0.5}]}', "se"),
        ('{"stages": [{"expand": 1, "kernel": 3, "stride": 1, "channels": 8, "repeats": 1, "colour": 1}]}', "unknown"),
    ],
)
def test_stage_list_errors(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=message):
        get_baseline(str(path))


def test_missing_stage_list():
    with pytest.raises(UsageError, match="does not exist"):
        get_baseline("nowhere/none.json")
