"""The proxy-training harness: repeatability, honest failure, callbacks, the CLI."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import pytest
import torch
from conftest import main_in_process
from torch import nn

from scaler.baselines import Baseline, get_baseline
from scaler.data import load_dataset
from scaler.errors import UsageError
from scaler.initialisation import init_classifier, zero_init_residuals
from scaler.recipe import PRESETS, ProxyRecipe, proxy_settings
from scaler.recipe import resolve_recipe as get_recipe
from scaler.scaling import Multipliers
from scaler.train import TrainingFailed, TrainResult, lr_at, train

TINY = ProxyRecipe(epochs=2, batch_size=32, subset=96, warmup_epochs=0.5, proxy_width=0.125, proxy_resolution=16)
DATA_SPEC = "synthetic:size=16,images=160,classes=4"


@pytest.fixture(scope="module")
def data():
    return load_dataset(DATA_SPEC)


def tiny_run(data, **kwargs) -> TrainResult:
    return train("resnet18", width=0.125, depth=1.0, resolution_px=16, data=data, recipe=kwargs.pop("recipe", TINY), **kwargs)


def test_result_fields(data):
    r = tiny_run(data)
    assert 0 <= r.accuracy <= 1 and r.accuracy == r.val_accuracies[-1]
    assert r.epochs_run == 2 and len(r.train_losses) == 2 and r.val_epochs == [2]  # validated after the last only
    assert r.images_seen == 2 * 96 and r.images_per_s > 0 and r.seconds > 0
    assert r.params == sum(p.numel() for p in __import__("scaler.baselines", fromlist=["x"]).get_baseline("resnet18").build(width=0.125, depth=1.0, num_classes=4).parameters())
    assert r.seed == TINY.seed and r.resolution == 16
    json.dumps(r.as_dict())


def test_validating_every_epoch_changes_nothing_the_run_learns(data):
    """Per-epoch validation (eval_every=1) costs time and gives a learning curve; a model without
    dropout ends bit-identical to one validated after the last epoch only (the default)."""
    every = tiny_run(data, recipe=TINY.replace(epochs=3, eval_every=1))
    last = tiny_run(data, recipe=TINY.replace(epochs=3))
    assert every.val_epochs == [1, 2, 3] and len(every.val_accuracies) == 3 and last.val_epochs == [3]
    assert every.accuracy == last.accuracy and every.train_losses == last.train_losses
    seen: list[int] = []
    tiny_run(data, recipe=TINY.replace(epochs=3, eval_every=2), on_epoch=lambda e, a: seen.append(e))
    assert seen == [2, 3]  # every 2nd epoch, and the last
    with pytest.raises(UsageError, match="eval_every"):
        TINY.replace(eval_every=-1)


def test_validating_every_epoch_changes_nothing_for_a_model_with_dropout_either(data):
    """mobilenet_v2's classifier has dropout: batch-norm recalibration runs in train mode, on a forked generator."""
    def run(every: int) -> TrainResult:
        return train("mobilenet_v2", width=0.25, depth=1.0, resolution_px=16, data=data,
                     recipe=TINY.replace(epochs=3, eval_every=every, lr=0.02))

    every, last = run(1), run(0)
    assert every.val_epochs == [1, 2, 3] and last.val_epochs == [3]
    assert every.accuracy == last.accuracy and every.train_losses == last.train_losses


def test_bit_exact_repeatability_on_cpu(data):
    a, b = tiny_run(data, seed=7), tiny_run(data, seed=7)
    assert a.train_losses == b.train_losses and a.val_accuracies == b.val_accuracies
    c = tiny_run(data, seed=8)
    assert c.train_losses != a.train_losses


def test_on_epoch_called_every_validated_epoch(data):
    seen = []
    tiny_run(data, recipe=TINY.replace(eval_every=1), on_epoch=lambda epoch, acc: seen.append((epoch, acc)))
    assert [e for e, _ in seen] == [1, 2] and all(0 <= acc <= 1 for _, acc in seen)


def test_on_epoch_exception_propagates(data):
    class Pruned(Exception):
        pass

    def prune(epoch, acc):
        raise Pruned(f"pruned at {epoch}")

    with pytest.raises(Pruned, match="pruned at 1"):
        tiny_run(data, recipe=TINY.replace(eval_every=1), on_epoch=prune)


def test_exploding_loss_stops_early(data):
    calls = []
    with pytest.raises(TrainingFailed, match="loss") as info:
        tiny_run(data, recipe=TINY.replace(lr=1e6, warmup_epochs=0), on_epoch=lambda e, a: calls.append(e))
    assert "\n" not in str(info.value) and calls == []  # stopped inside the first epoch


class _NaNNet(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.fc = nn.Linear(3, num_classes)

    def forward(self, x):
        return self.fc(x.mean((2, 3))) * float("nan")


class _BrokenNet(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.fc = nn.Linear(3, num_classes)

    def forward(self, x):
        raise ValueError("my layer cannot take 16 px\nsecond line of detail")


def _user(module_cls) -> Baseline:
    return Baseline("user:net", lambda w, d, n: module_cls(n), resolution=16, source="user")


def test_nan_loss_is_training_failed(data):
    with pytest.raises(TrainingFailed, match="nan"):
        train(_user(_NaNNet), width=1.0, depth=1.0, resolution_px=16, data=data, recipe=TINY)


def test_user_model_exception_keeps_its_message(data):
    with pytest.raises(TrainingFailed, match="ValueError: my layer cannot take 16 px") as info:
        train(_user(_BrokenNet), width=1.0, depth=1.0, resolution_px=16, data=data, recipe=TINY)
    assert "\n" not in str(info.value)


def test_user_model_that_fails_to_build(data):
    def build(w, d, n):
        raise RuntimeError("no such block")

    with pytest.raises(TrainingFailed, match="no such block"):
        train(Baseline("user:bad", build, 16), width=1.0, depth=1.0, resolution_px=16, data=data, recipe=TINY)


def test_out_of_memory_is_training_failed(data):
    class _OOMNet(_BrokenNet):
        def forward(self, x):
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried")

    with pytest.raises(TrainingFailed, match="out of memory"):
        train(_user(_OOMNet), width=1.0, depth=1.0, resolution_px=16, data=data, recipe=TINY)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0"])
def test_zero_init_makes_every_residual_block_the_identity(name):
    torch.manual_seed(0)
    model = get_baseline(name).build(width=0.25, depth=1.0, num_classes=10).eval()
    resnet = name.startswith("resnet")
    blocks = [m for m in model.modules()
              if (resnet and type(m).__name__ in ("BasicBlock", "Bottleneck")) or getattr(m, "use_res_connect", False)]
    seen = []
    for m in blocks:
        m.register_forward_hook(lambda m, args, out: seen.append((m, args[0], out)))
    assert zero_init_residuals(model) == len(blocks) > 0
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    identity = [(m, x, out) for m, x, out in seen if getattr(m, "downsample", None) is None]  # no projection shortcut
    assert identity
    for block, x, out in identity:
        expected = torch.relu(x) if resnet else x  # a ResNet block ends in a ReLU
        assert torch.allclose(out, expected, atol=1e-6), type(block).__name__


def test_classifier_starts_small():
    torch.manual_seed(0)
    model = get_baseline("efficientnet_b0").build(width=0.25, depth=1.0, num_classes=10)
    head = init_classifier(model, 0.01)
    assert head is model.classifier[-1] and head.out_features == 10
    assert 0.008 < head.weight.std().item() < 0.012 and not head.bias.any()
    assert init_classifier(nn.Sequential(nn.Conv2d(3, 4, 1)), 0.01) is None  # no Linear: left as built


def test_baseline_recipe_fields_sit_between_preset_and_flags():
    from scaler.cli import build_parser
    from scaler.commands._common import resolve_recipe

    assert get_recipe("default", get_baseline("resnet50")) == PRESETS["default"]
    mv2 = get_recipe("default", get_baseline("mobilenet_v2"))
    assert (mv2.lr, mv2.weight_decay, mv2.epochs) == (0.05, 5e-5, PRESETS["default"].epochs)
    assert get_recipe("default", get_baseline("efficientnet_b0")).head_init_std == 0.01
    # a baseline's proxy size replaces the default's (which long shares), never a preset's own (smoke)
    sized = dataclasses.replace(get_baseline("resnet18"), proxy_recipe={"proxy_resolution": 48, "lr": 0.05})
    assert get_recipe("default", sized).proxy_resolution == get_recipe("long", sized).proxy_resolution == 48
    smoke = get_recipe("smoke", sized)
    assert (smoke.proxy_resolution, smoke.lr) == (PRESETS["smoke"].proxy_resolution, 0.05)
    argv = ["train", "--baseline", "mobilenet_v2", "--lr", "0.2"]
    recipe = resolve_recipe(build_parser(argv).parse_args(argv))
    assert (recipe.lr, recipe.weight_decay) == (0.2, 5e-5)


def test_lr_schedule_warms_up_then_decays_to_zero():
    lrs = [lr_at(s, 100, 10, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.01) and lrs[9] == pytest.approx(0.1)
    assert max(lrs) == pytest.approx(0.1) and lrs[-1] < 1e-3
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))


def test_proxy_settings_and_recipe():
    width, depth, px = proxy_settings(Multipliers(depth=1.2, width=1.1, resolution=1.15), PRESETS["default"])
    assert width == pytest.approx(1.1 * PRESETS["default"].proxy_width) and depth == 1.2
    assert px == round(1.15 * PRESETS["default"].proxy_resolution)
    assert {"smoke", "default"} <= set(PRESETS)
    record = dataclasses.asdict(PRESETS["default"])
    assert {"epochs", "batch_size", "lr", "subset", "proxy_width", "proxy_resolution", "seed"} <= set(record)
    with pytest.raises(UsageError):
        ProxyRecipe(epochs=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["default"].epochs = 3


def test_train_cli_json(cli):
    proc = cli(
        "train", "--baseline", "resnet18", "--data", DATA_SPEC, "--width", "0.125", "--resolution", "16",
        "--epochs", "1", "--batch-size", "32", "--subset", "64", "--json",
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["images_per_s"] > 0 and out["epochs_run"] == 1 and math.isfinite(out["accuracy"])
    assert out["recipe"]["epochs"] == 1 and out["data"]["fingerprint"]
    assert "epoch   1/1" in proc.stderr  # progress goes to stderr under --json


def test_train_cli_bad_data_is_one_line(capsys):
    status, out, err = main_in_process(["train", "--data", "nosuch:thing", "--epochs", "1"], capsys)
    assert status == 2
    assert len(err.strip().splitlines()) == 1 and "unknown data source" in err and "Traceback" not in out + err


def test_train_cli_builds_a_proxy_as_the_search_does(cli):
    """--coefficients (and the default baseline proxy) train the search's own proxy: channels rounded to the
    proxy's divisor. resnet50's 2x width point at proxy width 0.125 has 11-channel stems there, 16 at the
    full size's divisor of 8 (measured 2026-11-26: different accuracies until scaler train used the proxy's)."""
    from scaler.proxy import train_point
    from scaler.scaling import Coefficients

    # resnet50's width point, and mobilenet_v2's baseline proxy (32 x 0.125 = 4 channels: 8 at the full size's divisor)
    for name, flags, coefficients in (("resnet50", ("--coefficients", "1,1.424,1", "--phi", "1"), (1, 1.424, 1)),
                                      ("mobilenet_v2", (), (1, 1, 1))):
        recipe = get_recipe("smoke", get_baseline(name), {"subset": 32, "batch_size": 32, "epochs": 1})
        proc = cli("train", "--baseline", name, "--data", DATA_SPEC, "--preset", "smoke", "--epochs", "1",
                   "--batch-size", "32", "--subset", "32", "--json", *flags)
        assert proc.returncode == 0, proc.stderr
        run = json.loads(proc.stdout)
        search = train_point(name, Coefficients(*coefficients).multipliers(1.0), data=load_dataset(DATA_SPEC),
                             recipe=recipe)
        assert (run["params"], run["accuracy"]) == (search.params, search.accuracy), name


def test_recipe_error_names_the_rule_and_only_the_wrong_field():
    from scaler.errors import UsageError
    from scaler.recipe import ProxyRecipe

    with pytest.raises(UsageError) as info:
        ProxyRecipe(epochs=-1, warmup_epochs=-1)
    assert str(info.value) == "invalid proxy recipe: epochs=-1 (must be a whole number >= 1)"
    with pytest.raises(UsageError, match=r"lr=inf \(must be finite\)"):
        ProxyRecipe(lr=float("inf"))
