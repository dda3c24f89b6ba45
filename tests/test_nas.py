"""`scaler nas`: the MBConv space as data, the new blocks' cost, cost-first rejection, the search end to end."""

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time

import optuna
import pandas as pd
import pytest
import torch
from conftest import ROOT, complete_trials, main_in_process, run_cli

from scaler.baselines import get_baseline
from scaler.baselines.mbconv import builtin_dir
from scaler.cost import count_cost, count_model
from scaler.errors import UsageError
from scaler.nas.reward import reward
from scaler.nas.space import architecture, extremes, fit_width, load_nas_space, read_start
from scaler.scaling import channel_divisor

DATA = "synthetic:size=16,images=400,classes=4"
SMOKE = ["--preset", "smoke", "--data", DATA, "--device", "cpu", "--confirm-seeds", "2"]


def b0() -> dict:
    return json.loads((builtin_dir() / "efficientnet_b0.json").read_text())


# --- stage lists: no squeeze-excite, Fused-MBConv ----------------------------------------------------


def test_se_none_and_fused_build_and_cost_exactly():
    spec = b0()
    spec["name"] = "mixed"
    for i, row in enumerate(spec["stages"]):
        if i < 3:
            row.update(block="fused", se=0, expand=(1, 4, 6)[i])  # fused without and with expansion
        elif i % 2:
            row["se"] = 0
    baseline = get_baseline(spec)
    for width, px in ((1.0, 64), (0.5, 33)):
        walked = count_cost(baseline, width=width, resolution=px, num_classes=10)
        traced = count_model(baseline.build(width=width, num_classes=10), px)
        assert walked.method == "analytic"
        assert (walked.macs, walked.params, walked.activations, walked.fvcore_total) == (
            traced.macs, traced.params, traced.activations, traced.fvcore_total)
    # fused stages beside MBConv ones agree on their channels at every proxy divisor (torchvision rounds MBConv's to 8)
    with channel_divisor(2):
        model = baseline.build(width=0.25, num_classes=4)
    assert model(torch.randn(2, 3, 24, 24)).shape == (2, 4)
    # se 0 removes exactly the squeeze-excite layers' parameters
    plain = get_baseline({**b0(), "name": "no_se", "stages": [{**r, "se": 0} for r in b0()["stages"]]})
    squeeze = sum(p.numel() for n, p in get_baseline("efficientnet_b0").build().named_parameters() if ".fc" in n)
    assert count_cost("efficientnet_b0").params - count_cost(plain).params == squeeze > 0


def test_efficientnet_b0_parity_kept():
    import torchvision

    assert count_cost("efficientnet_b0").macs == 385_825_092
    ours = sum(p.numel() for p in get_baseline("efficientnet_b0").build().parameters())
    assert ours == sum(p.numel() for p in torchvision.models.efficientnet_b0(weights=None).parameters())


@pytest.mark.parametrize(("change", "message"), [
    ({"block": "fused", "se": 0.25}, "se must be 0"),
    ({"block": "ghost"}, "block must be one of"),
    ({"se": 0.5}, "se must be one of"),
])
def test_stage_list_rejects_unsupported_blocks(change, message):
    spec = b0()
    spec["stages"][0].update(change)
    with pytest.raises(UsageError, match=message):
        get_baseline(spec)


# --- the space ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "message"), [
    ("kernel = [3, 4]", "kernel must be"),
    ("expand = []", "expand must be"),
    ("se = [0.5]", "se must be"),
    ("width = [1, 1]", "twice"),
    ("band = 1.5", "band must be"),
    ("fused_stages = -1", "fused_stages"),
    ("colour = 3", "unknown keys"),
    ("kernel = [3", "not valid TOML"),
])
def test_malformed_space_is_one_line(tmp_path, text, message):
    path = tmp_path / "space.toml"
    path.write_text(text + "\n")
    with pytest.raises(UsageError, match=message):
        load_nas_space(str(path))


def test_space_extremes_bound_every_architecture_and_the_start_fits_the_target():
    space = load_nas_space()
    _, fitted = fit_width(read_start(space.start), 50e6)
    assert abs(count_cost(fitted).macs / 50e6 - 1) < 0.05
    smallest, largest = extremes(space, fitted)
    rng = random.Random(0)
    for _ in range(150):
        params = {}
        for i, _ in enumerate(fitted["stages"]):
            params.update({f"s{i}_{k}": rng.choice(getattr(space, k)) for k in ("kernel", "expand", "se", "repeats", "width")})
            if i < space.fused_stages:
                params[f"s{i}_block"] = rng.choice(["mbconv", "fused"])
        assert smallest <= count_cost(architecture(params, fitted)).macs <= largest


def test_reward_soft_and_hard():
    assert reward(0.8, 400e6, 400e6) == pytest.approx(0.8)
    assert reward(0.8, 800e6, 400e6) == pytest.approx(0.8 * 2 ** -0.07)
    assert reward(0.8, 200e6, 400e6, form="hard") == pytest.approx(0.8)  # no bonus below T
    assert reward(0.8, 800e6, 400e6, form="hard") == pytest.approx(0.4)


# --- the command ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "message"), [
    ({"target": "1M"}, "below the smallest architecture"),
    ({"target": "100T"}, "above the largest architecture"),
    ({"target": "400Q"}, "--target"),
    ({"band": 2.0}, "--band"),
    ({"space": "nowhere.toml"}, "does not exist"),
    ({"start": "resnet18"}, "not an MBConv stage list"),
    ({"start": "nowhere.json"}, "does not exist"),
    ({"objective": "best"}, "--objective"),
    ({"reward_w": 0.5}, "--reward-w"),
    ({"trials": 0}, "--trials"),
])
def test_bad_input_is_refused_before_anything_runs(changes, message):
    from scaler.nas.run import NasConfig, prepare

    with pytest.raises(UsageError, match=message):
        prepare(NasConfig(**{"target": "400M", **changes}))


@pytest.mark.parametrize(("space", "args", "message"), [
    ("", ["--target", "1M"], "below the smallest architecture"),
    ("kernel = [2]\n", ["--target", "30M"], "kernel must be"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, space, args, message, capsys):
    if space:
        (tmp_path / "bad.toml").write_text(space)
        args = [*args, "--space", str(tmp_path / "bad.toml")]
    status, out, err = main_in_process(["nas", *args, "--out", str(tmp_path / "run")], capsys)
    assert status == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in out + err, err
    assert not (tmp_path / "run").exists()  # checked before anything is written


@pytest.mark.slow
def test_smoke_search_end_to_end_and_best_json_is_a_baseline(tmp_path):
    out = tmp_path / "run"
    result = run_cli("nas", "--target", "30M", "--trials", "3", "--confirm", "2", *SMOKE, "--out", str(out))
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "nas.json").read_text())
    trials = pd.read_csv(out / "trials.csv")
    screen = trials[trials.stage == "screen"]
    counts = summary["counts"]
    # cost first: every rejected architecture is recorded with its cost and reason, counted, and never trained
    rejected = screen[screen.state == "rejected"]
    assert counts["rejected"] == len(rejected) and counts["trained"] == 3 and counts["sampled"] == len(screen)
    assert (abs(rejected.macs_vs_target - 1) > summary["band"]).all() and rejected.reason.str.contains("not trained").all()
    trained = screen[screen.state == "COMPLETE"]
    assert (abs(trained.macs_vs_target - 1) <= summary["band"]).all()
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}")
    screened = {t.params["point"] for t in study.trials if t.params["stage"] == "screen"}
    assert screened == set(trained.number) and not screened & set(rejected.number)
    # confirm and the width-matched start, on the same seeds
    assert len(summary["confirm"]) == 2 and all(r["seeds"] == 2 for r in summary["confirm"])
    ref = summary["reference"]
    assert ref["seeds"] == 2 and abs(ref["macs"] / summary["winner"]["macs"] - 1) < 0.1 and ref["test"]
    assert "report.html" in result.stdout and (out / "report.md").is_file() and (out / "plots" / "nas_reward.png").is_file()
    # best.json: a stage list any command takes as --baseline
    flops = run_cli("flops", "--baseline", str(out / "best.json"), "--latency-runs", "0", "--json")
    assert flops.returncode == 0, flops.stderr
    assert json.loads(flops.stdout)["macs"] == summary["winner"]["macs"]
    # a re-run resumes: nothing left to train
    again = run_cli("nas", "--target", "30M", "--trials", "3", "--confirm", "2", *SMOKE, "--out", str(out))
    assert again.returncode == 0 and "trained 0 run(s)" in again.stdout, again.stderr


def smoke_config(**changes):
    import dataclasses

    from scaler.nas.run import NasConfig
    from scaler.recipe import resolve_recipe

    recipe = dataclasses.asdict(resolve_recipe("smoke", None))
    return NasConfig(**{"target": "30M", "trials": 2, "data": DATA, "recipe": recipe, "confirm": 0, "band": 0.3,
                        "confirm_recipe": recipe, **changes})


def test_pareto_objective_draws_the_front(tmp_path):
    from scaler.nas.report import write_nas_report
    from scaler.nas.run import run_nas
    from scaler.run_folder import RunFolder

    run = RunFolder(tmp_path / "run")
    result = run_nas(smoke_config(objective="pareto"), run, log=lambda line: None)
    front = set(result.trials[result.trials.on_front.astype(bool)].number)
    assert front and set(result.summary["front"]) == front and result.summary["winner"]["number"] in front
    assert result.summary["reference"] is None  # only a confirmed winner is compared
    assert write_nas_report(run).is_file()
    from scaler.cli import main

    (run.path / "report.html").unlink()
    assert main(["report", str(run.path)]) == 0 and (run.path / "report.html").is_file()  # `scaler report` knows a nas run


@pytest.mark.slow
def test_kill_9_and_resume_trains_nothing_twice(tmp_path):
    out = tmp_path / "run"
    args = ["nas", "--target", "30M", "--trials", "4", "--confirm", "0", *SMOKE, "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "scaler", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while complete_trials(out / "study.db") < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert complete_trials(out / "study.db") >= 3

    result = run_cli(*args, timeout=600)
    assert result.returncode == 0, result.stderr
    storage = f"sqlite:///{out / 'study.db'}"
    runs = [t for t in optuna.load_study(study_name="search", storage=storage).trials
            if t.state == optuna.trial.TrialState.COMPLETE]
    keys = [(t.params["stage"], t.params["point"], t.params["seed"]) for t in runs]
    assert len(keys) == len(set(keys))  # nothing trained twice
    nas = optuna.load_study(study_name="nas", storage=storage).trials
    assert not [t for t in nas if t.state == optuna.trial.TrialState.RUNNING]
    assert sum(bool(t.user_attrs.get("trained")) for t in nas) == 4
    assert json.loads((out / "best.json").read_text())["stages"]


def test_a_failing_architecture_is_recorded_and_the_search_goes_on(tmp_path, monkeypatch):
    from scaler import objective
    from scaler.nas.run import run_nas
    from scaler.run_folder import RunFolder
    from scaler.train import TrainingFailed

    real, calls = objective.evaluate_point, []

    def first_fails(job, on_epoch=None):
        calls.append(job)
        if len(calls) == 1:
            raise TrainingFailed("loss diverged (nan) at epoch 1")
        return real(job, on_epoch)

    monkeypatch.setattr(objective, "evaluate_point", first_fails)
    result = run_nas(smoke_config(), RunFolder(tmp_path / "run"), log=lambda line: None)
    counts = result.summary["counts"]
    assert counts["trained"] == 2 and counts["failed"] == 1 and result.summary["winner"] is not None
    failed = result.trials[(result.trials.stage == "screen") & (result.trials.state == "FAIL")]
    assert len(failed) == 1 and "loss diverged" in failed.reason.iloc[0]
    assert calls[0]["baseline"]["stages"]  # each run trains its own stage list


def test_an_architecture_sampled_but_never_told_is_finished_on_resume(tmp_path):
    from scaler.nas.run import NAS_STUDY, prepare, run_nas
    from scaler.nas.space import suggest
    from scaler.run_folder import RunFolder

    run = RunFolder(tmp_path / "run")
    config = smoke_config(trials=1)
    run_nas(config, run, log=lambda line: None)
    # a search killed between sampling an architecture and telling its result leaves it RUNNING
    study = optuna.load_study(study_name=NAS_STUDY, storage=run.storage_url)
    trial = study.ask()
    spec = suggest(trial, load_nas_space(), prepare(config).fitted)
    trial.set_user_attr("macs", count_cost(spec).macs)  # costed, in the band, marked for training: then killed
    trial.set_user_attr("trained", True)
    lines = []
    result = run_nas(dataclasses.replace(config, trials=2), run, log=lines.append)
    assert any("resuming 1 architecture" in line for line in lines)
    told = optuna.load_study(study_name=NAS_STUDY, storage=run.storage_url).trials[trial.number]
    assert told.state == optuna.trial.TrialState.COMPLETE and result.summary["counts"]["trained"] == 2
    # the same folder with another target is another search: refused in one line, nothing changed
    with pytest.raises(UsageError, match="different target"):
        run_nas(dataclasses.replace(config, target="40M"), run, log=lambda line: None)
