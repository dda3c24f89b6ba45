"""The GPU preset and the GPU code paths, checked on a CPU: the preset's values, device selection, autocast."""

from __future__ import annotations

import importlib.util
import json
import sys
import warnings

import pytest
import torch
from conftest import ROOT, SMOKE_DATA

from scaler.baselines import get_baseline
from scaler.cost import count_cost
from scaler.data import load_dataset
from scaler.devices import autocast
from scaler.local_workers import CPU_WORKERS, GPU_WORKERS, default_workers
from scaler.options import default_confirm_preset
from scaler.proxy_checks import MIN_FEATURE, feature_sizes
from scaler.recipe import PRESETS, ProxyRecipe, resolve_recipe
from scaler.search_space import grid, load_space
from scaler.stages import confirm_recipe
from scaler.train import train


def test_the_gpu_preset_resolves_validates_and_confirms_longer():
    gpu = resolve_recipe("gpu", get_baseline("resnet50"))
    assert (gpu.proxy_width, gpu.proxy_resolution) == (0.5, 64) and gpu == ProxyRecipe(**vars(gpu))  # validates
    assert resolve_recipe("gpu", get_baseline("mobilenet_v2")).lr == 0.05  # the baseline's own fields still apply
    assert default_confirm_preset("gpu") == "4x" and default_confirm_preset("default") == "2x"
    assert confirm_recipe(gpu, default_confirm_preset("gpu"), None).epochs == 4 * PRESETS["gpu"].epochs


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2"])
def test_at_the_gpu_preset_every_grid_point_keeps_a_last_map_of_2x2_and_the_resolution_point(name):
    baseline = get_baseline(name)
    recipe = resolve_recipe("gpu", baseline)
    points = grid(load_space(None), baseline, 2.0, reference=count_cost(baseline), recipe=recipe, proxy_classes=10)
    assert "resolution" in [c.kind for c in points.kept]  # at the default's 24 px it is dropped
    sizes = [hw for _, _, hw in feature_sizes(baseline, points.kept, recipe)]
    assert sizes and all(min(hw) >= MIN_FEATURE for hw in sizes)


def test_autocast_is_bf16_on_a_gpu_and_off_on_a_cpu():
    with autocast(torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu") and not torch.is_autocast_enabled("cuda")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with warnings.catch_warnings():  # without a GPU torch warns that it disables the context it builds
        warnings.simplefilter("ignore")
        ctx = autocast(torch.device("cuda", 0))
    assert isinstance(ctx, torch.autocast) and ctx.device == "cuda" and ctx.fast_dtype == torch.bfloat16


def test_a_cpu_run_trains_and_evaluates_in_fp32():
    seen = set()

    def hook(module, inputs, output):
        if isinstance(output, torch.Tensor) and output.is_floating_point():
            seen.add((output.dtype, torch.is_autocast_enabled("cpu"), torch.is_autocast_enabled("cuda")))

    handle = torch.nn.modules.module.register_module_forward_hook(hook)  # every module's output, this run's only
    try:
        recipe = PRESETS["smoke"].replace(subset=64, batch_size=32)
        train("resnet18", width=0.125, depth=1.0, resolution_px=16, data=load_dataset(SMOKE_DATA), recipe=recipe)
    finally:
        handle.remove()
    assert seen == {(torch.float32, False, False)}  # training steps, BN recalibration and evaluation alike


def test_every_run_hands_its_device_memory_back_finished_or_stopped(monkeypatch):
    import scaler.train

    released = []
    monkeypatch.setattr(scaler.train, "release_memory", lambda device: released.append(str(device)))
    recipe = PRESETS["smoke"].replace(subset=64, batch_size=32)
    data = load_dataset(SMOKE_DATA)
    train("resnet18", width=0.125, depth=1.0, resolution_px=16, data=data, recipe=recipe)

    def stop(epoch, accuracy):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train("resnet18", width=0.125, depth=1.0, resolution_px=16, data=data, recipe=recipe, on_epoch=stop)
    assert released == ["cpu", "cpu"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_asked_for_without_a_gpu_is_one_line_and_exit_2(cli):
    done = cli("train", "--baseline", "resnet18", "--preset", "smoke", "--data", SMOKE_DATA, "--device", "cuda")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "no CUDA GPU is available" in done.stderr and "Traceback" not in done.stderr


def test_the_gpu_preset_runs_four_workers_on_a_gpu_only_and_never_beside_ray():
    assert default_workers("gpu", "cuda", "optuna") == default_workers("gpu", "cuda:1", "optuna") == GPU_WORKERS == 4
    assert default_workers("gpu", "cpu", "optuna") == default_workers("default", "cuda", "optuna") == 1
    assert default_workers("gpu", "cuda", "ray") == 1  # Ray shares the GPU by --trial-resources


def test_the_cpu_presets_run_two_workers_on_two_or_more_cores(monkeypatch):
    import scaler.local_workers as local_workers

    monkeypatch.setattr(local_workers, "cpu_count", lambda: 2)
    assert default_workers("default", "cpu", "optuna") == default_workers("long", "cpu", "optuna") == CPU_WORKERS == 2
    assert default_workers("smoke", "cpu", "optuna") == 1  # its runs are shorter than a worker's start
    assert default_workers("default", "cpu", "ray") == 1
    monkeypatch.setattr(local_workers, "cpu_count", lambda: 1)
    assert default_workers("default", "cpu", "optuna") == 1


@pytest.mark.parametrize(("argv", "workers"), [([], 4), (["--workers", "2"], 2), (["--backend", "ray"], 1)])
def test_a_gpu_preset_search_on_a_gpu_asks_for_the_default_workers(monkeypatch, argv, workers):
    import scaler.commands.search as command
    import scaler.search

    seen = {}
    monkeypatch.setattr(command, "resolve_device", lambda name: torch.device("cuda"))  # a GPU, as far as the search can tell
    # the command imports run_search when it runs (its parser loads no torch: scaler.options)
    monkeypatch.setattr(scaler.search, "run_search", lambda config, run, **kw: seen.update(kw, device=config.device))
    monkeypatch.setattr(command, "finish", lambda *a, **kw: 0)
    from scaler.cli import main

    assert main(["search", "--baseline", "resnet18", "--budget", "2x", "--preset", "gpu", "--device", "cuda", *argv]) == 0
    assert seen["device"] == "cuda" and seen["workers"] == workers


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_gpu_check_runs_resnet50_and_readme_s_job_first_and_only_what_is_named():
    check = _gpu_check()
    names = [step[1] if step[0] == "search" else f"{step[1]} x{step[2]}" for step in check.steps(quick=False)]
    assert names == ["resnet50 x1", "resnet50 x2", "resnet50 x4", "default", "mobilenet_v2 x1", "mobilenet_v2 x2",
                     "mobilenet_v2 x4", "gpu preset, 4 workers", "default, 4 workers"]
    assert dict(check.SEARCHES)["default"] == []  # README's job as it is, only --device added
    assert [s[1] for s in check.steps(False, ["default, 4 workers"])] == ["default, 4 workers"]
    assert [s[1] for s in check.steps(False, ["default, 4 workers", "default"])] == ["default, 4 workers", "default"]
    with pytest.raises(SystemExit, match="unknown search"):
        check.steps(False, ["defualt"])


def test_gpu_check_reads_nvidia_smi_lines():
    module = _gpu_check()
    samples = module.parse_smi("37, 1024\n[N/A], [N/A]\n\n100, 80000\n", 5.0)
    assert samples == [{"t": 5.0, "gpu": 0, "utilisation": 37.0, "memory_mib": 1024.0},
                       {"t": 5.0, "gpu": 2, "utilisation": 100.0, "memory_mib": 80000.0}]  # the third GPU


def test_a_search_at_the_gpu_preset_records_a_4x_confirm_recipe(cli, tmp_path):
    space = tmp_path / "tiny.toml"
    space.write_text("depth = [0.0, 1.0]\nresolution = [0.0]\n")
    done = cli("search", "--baseline", "resnet18", "--preset", "gpu", "--epochs", "1", "--subset", "32", "--batch-size", "16",
               "--data", "synthetic:size=16,images=120,classes=2", "--space", str(space), "--seeds", "1", "--confirm", "0",
               "--curves", "none", "--no-family", "--no-report", "--device", "cpu", "--out", str(tmp_path / "a"))
    assert done.returncode == 0, done.stderr
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert "local worker" not in done.stdout  # the gpu preset's own worker count is for a GPU only
    assert (config["recipe"]["proxy_width"], config["recipe"]["proxy_resolution"]) == (0.5, 64)
    assert config["confirm_recipe"]["epochs"] == 4  # 4x the screen's 1 epoch
