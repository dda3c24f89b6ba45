"""The search: grid arithmetic, the objective, and the CLI end to end as a user runs it."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import optuna
import pandas as pd
import pytest
from conftest import FLAKY_MODEL, ROOT, SMOKE_SEARCH, complete_trials, main_in_process, run_cli

from scaler.baselines import get_baseline
from scaler.cost import count_cost
from scaler.errors import UsageError
from scaler.run_folder import RunFolder
from scaler.search_space import DEFAULT_SPACE, grid, load_space, share_points
from scaler.stats import welch_margin

SMOKE = SMOKE_SEARCH


# --- grid arithmetic ------------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [1.5, 2.0, 4.0])
def test_share_points_meet_the_budget_exactly_before_rounding(budget):
    points = share_points(load_space(), budget)
    kinds = [k for k, _ in points]
    assert kinds[:3] == ["depth", "width", "resolution"]
    for _, c in points:
        assert c.product == pytest.approx(budget, rel=2e-3)
        assert min(c.as_tuple()) >= 1.0


def test_single_dimension_points_are_never_filtered_by_tolerance():
    space = load_space()
    tight = type(space)(**{**space.__dict__, "tolerance": 1e-6})
    points = grid(tight, get_baseline("efficientnet_b0"), 2.0)
    assert {c.kind for c in points.kept} == {"depth", "width"}  # resolution: the proxy cannot be matched
    for c in points.dropped:  # singles are dropped only by matching; compound points by it or the tolerance
        assert c.kind == "compound" or "outside the space's tolerance" not in c.reason, c
    assert any("outside the space's tolerance" in c.reason for c in points.dropped)


def test_measured_filter_reports_real_cost():
    b = get_baseline("efficientnet_b0")
    points = grid(load_space("compound_fine"), b, 2.0)
    by_planned = {c.planned.as_tuple(): c for c in points.kept + points.dropped}
    # the paper's point costs 2.57x after rounding (B0's 16 blocks become 23 at depth 1.2) ...
    paper = by_planned[(1.2, 1.1, 1.15)]
    assert paper.planned.product == pytest.approx(1.92, abs=0.01)
    m = paper.planned.multipliers(1.0)
    unmatched = count_cost(b, width=m.width, depth=m.depth, resolution=m.input_size(b.resolution)).macs
    assert unmatched == 992_645_882 and count_cost(b).macs == 385_825_092
    # ... so matching narrows it (beta < 1) to cost 2x at full size; its miniature proxy then costs 1.5x
    # (dropped under proxy_match = "miniature"); matched apart, its proxy is built at beta 1.107 instead
    assert (paper.coefficients.alpha, paper.coefficients.gamma) == (1.2, 1.15) and paper.coefficients.beta < 1
    assert abs(paper.macs_ratio / 2.0 - 1) <= 0.05 and paper in points.kept
    assert paper.proxy_coefficients.beta == pytest.approx(1.107, abs=0.001) and abs(paper.proxy_macs_ratio / 2 - 1) <= 0.05
    miniature = grid(dataclasses.replace(load_space("compound_fine"), proxy_match="miniature"), b, 2.0)
    dropped = next(c for c in miniature.dropped if c.planned.as_tuple() == (1.2, 1.1, 1.15))
    assert "proxy" in dropped.reason
    for c in points.kept:
        if c.kind == "compound":
            assert abs(c.macs_ratio / 2.0 - 1) <= 0.35


@pytest.mark.parametrize(
    "content, message",
    [
        ("depth = [", "not valid TOML"),
        ("depth = 'a'", "depth must be"),
        ("depth = [2.0]", "depth must be"),
        ("resolution = [0.7]", "resolution must be"),
        ("colour = 1", "unknown keys"),
        ("tolerance = -1", "tolerance"),
        ("filter = 'guess'", "filter must be"),
        ("points = [{alpha = 1.2}]", "points[0]"),
    ],
)
def test_broken_space_files(tmp_path, content, message):
    path = tmp_path / "space.toml"
    path.write_text(content)
    with pytest.raises(UsageError, match=message.replace("[", r"\[")):
        load_space(path)


def test_builtin_spaces_load():
    assert load_space(DEFAULT_SPACE).filter == "measured"
    assert load_space("compound_fine").points


def test_welch_margin():
    m = welch_margin([0.70, 0.72, 0.71], [0.60, 0.61, 0.62])
    assert m.significant and m.interval[0] < m.margin < m.interval[1]
    m = welch_margin([0.70, 0.60], [0.66, 0.64])
    assert not m.significant
    assert welch_margin([0.7], [0.6]).interval is None


# --- end to end -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_search_end_to_end_smoke(tmp_path):
    out = tmp_path / "run"
    result = run_cli("search", "--baseline", "resnet18", "--budget", "2x", "--out", str(out), *SMOKE, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "chosen: alpha=" in result.stdout and "[1/" in result.stdout
    table = pd.read_csv(out / "trials.csv")
    # at the smoke proxy (width 0.125, 24 px) resnet18 keeps width and six compound points, all seven
    # with their proxy matched apart; depth and resolution are dropped on the proxy's cost (config.json)
    assert {"width", "compound"} == set(table.kind)
    assert {"depth", "resolution"} == {c["kind"] for c in json.loads((out / "config.json").read_text())["dropped"]}
    assert (table.proxy_beta != table.beta).sum() == 7 and (table.proxy_macs_ratio / 2 - 1).abs().max() <= 0.05
    assert "--space compound_coarse" in result.stdout
    assert (table.state == "COMPLETE").all()
    assert table.accuracy_mean.between(0, 1).all()
    winner = json.loads((out / "coefficients.json").read_text())
    best = table.sort_values("accuracy_mean").iloc[-1]
    assert (winner["alpha"], winner["beta"], winner["gamma"]) == pytest.approx((best.alpha, best.beta, best.gamma))
    config = json.loads((out / "config.json").read_text())
    assert config["recipe"]["epochs"] >= 1 and config["data"]["fingerprint"]

    del config["recipe"]["head_init_std"]  # as a run begun before that recipe field existed
    (out / "config.json").write_text(json.dumps(config))
    again = run_cli("search", "--baseline", "resnet18", "--budget", "2x", "--out", str(out), *SMOKE)
    assert again.returncode == 0, again.stderr
    assert "0 to run" in again.stdout  # resumed, nothing retrained

    (out / "notes.txt").write_text("mine")
    fresh = run_cli("search", "--baseline", "resnet18", "--budget", "2x", "--out", str(out), *SMOKE, "--fresh")
    assert fresh.returncode == 0, fresh.stderr
    assert "0 done before" in fresh.stdout
    assert (out / "notes.txt").read_text() == "mine"  # --fresh removes only what the run owns


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_kill_and_resume_loses_nothing(tmp_path, sig):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "scaler", "search", "--baseline", "resnet18", "--out", str(out), *SMOKE]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while complete_trials(out / "study.db") < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    os.killpg(proc.pid, sig)
    proc.wait(timeout=60)
    done_before = complete_trials(out / "study.db")
    assert done_before >= 2

    result = run_cli("search", "--baseline", "resnet18", "--out", str(out), *SMOKE, timeout=600)
    assert result.returncode == 0, result.stderr
    assert f"{done_before} done before" in result.stdout
    study = optuna.load_study(study_name=RunFolder(out).study_name(), storage=f"sqlite:///{out / 'study.db'}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    keys = [(t.params["point"], t.params["seed"]) for t in complete]
    assert len(keys) == len(set(keys))  # nothing trained twice
    table = pd.read_csv(out / "trials.csv")
    assert (table.state == "COMPLETE").all() and len(complete) == len(table)


@pytest.mark.slow
def test_run_failed_outside_the_objective_is_retried_but_a_recorded_failure_is_not(tmp_path):
    # Ctrl-C can land after Optuna opened a trial but before the objective's handlers run: Optuna
    # then marks it FAIL with no reason. Only a failure scaler recorded (with its reason) is final.
    out = tmp_path / "run"
    first = run_cli("search", "--baseline", "resnet18", "--out", str(out), *SMOKE)
    assert first.returncode == 0, first.stderr
    storage = f"sqlite:///{out / 'study.db'}"
    study = optuna.load_study(study_name=RunFolder(out).study_name(), storage=storage)
    dists = study.trials[0].distributions
    for point, attrs in [(0, {}), (1, {"reason": "loss diverged"})]:
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.FAIL, params={"stage": "screen", "point": point, "seed": 0},
            distributions=dists, user_attrs=attrs))

    again = run_cli("search", "--baseline", "resnet18", "--out", str(out), *SMOKE)
    assert again.returncode == 0, again.stderr
    assert "(1 run(s) cut short or out of memory retried)" in again.stdout and ", 1 to run" in again.stdout
    latest = {}
    for t in optuna.load_study(study_name=RunFolder(out).study_name(), storage=storage).trials:
        latest[t.params["point"], t.params["seed"]] = t.state
    assert latest[0, 0] == optuna.trial.TrialState.COMPLETE
    assert latest[1, 0] == optuna.trial.TrialState.FAIL


@pytest.mark.slow
def test_resume_runs_each_pair_once_whatever_recorded_the_earlier_runs(tmp_path):
    # Runs recorded by the Ray backend carry no sampler bookkeeping; the resume must still run
    # exactly the pairs that are missing (GridSampler would have re-run some and skipped others).
    first = run_cli("search", "--baseline", "resnet18", "--out", str(tmp_path / "a"), *SMOKE)
    assert first.returncode == 0, first.stderr
    done = optuna.load_study(study_name=RunFolder(tmp_path / "a").study_name(), storage=f"sqlite:///{tmp_path / 'a' / 'study.db'}").trials
    out = tmp_path / "b"
    out.mkdir()
    (out / "config.json").write_text((tmp_path / "a" / "config.json").read_text())
    storage = f"sqlite:///{out / 'study.db'}"
    study = optuna.create_study(study_name=RunFolder(out).study_name(), storage=storage, direction="maximize")
    for t in sorted(done, key=lambda t: t.params["point"])[-3:]:  # as the Ray backend records them
        study.add_trial(optuna.trial.create_trial(
            state=t.state, value=t.value, params=t.params, distributions=t.distributions,
            user_attrs=t.user_attrs, intermediate_values=t.intermediate_values))

    again = run_cli("search", "--baseline", "resnet18", "--out", str(out), *SMOKE)
    assert again.returncode == 0, again.stderr
    assert f"3 done before, {len(done) - 3} to run" in again.stdout
    trials = optuna.load_study(study_name=RunFolder(out).study_name(), storage=storage).trials
    pairs = [(t.params["point"], t.params["seed"]) for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(pairs) == sorted((t.params["point"], t.params["seed"]) for t in done)




def test_failing_candidate_is_recorded_and_search_goes_on(tmp_path):
    (tmp_path / "flaky_net.py").write_text(FLAKY_MODEL)
    out = tmp_path / "run"
    result = run_cli("search", "--baseline", "flaky_net:build", "--out", str(out), *SMOKE, "--proxy-width", "1.0",
                     cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out / "trials.csv")
    failed = table[table.state == "FAIL"]
    assert len(failed) >= 1 and failed.reason.str.contains("too wide for me").all()
    assert (table[table.width_mult <= 1.3].state == "COMPLETE").all()


# A user's network that trains out of memory when wider than 1.3x (costed in eval mode as any model).
GREEDY_MODEL = '''
from torch import nn

class Greedy(nn.Module):
    def __init__(self, width, num_classes):
        super().__init__()
        self.conv = nn.Conv2d(3, max(1, round(8 * width)), 3)
        self.fc = nn.Linear(self.conv.out_channels, num_classes)
        self.greedy = width > 1.3

    def forward(self, x):
        if self.greedy and self.training:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 99 GB")
        return self.fc(self.conv(x).mean((2, 3)))

def build(width_mult, depth_mult, num_classes):
    return Greedy(width_mult, num_classes)
'''


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_out_of_memory_is_tried_once_per_search_and_again_by_a_resume(tmp_path, workers):
    # Memory may be held by other processes at the time (runs sharing a GPU): unlike a model's own
    # error, an out-of-memory failure is not final, but the search that met it does not loop on it,
    # nor does a worker process that joined it later.
    (tmp_path / "greedy_net.py").write_text(GREEDY_MODEL)
    out = tmp_path / "run"
    args = ("search", "--baseline", "greedy_net:build", "--out", str(out), *SMOKE, "--proxy-width", "1.0",
            "--workers", str(workers))

    def tries() -> Counter:  # failed runs per (point, seed)
        study = optuna.load_study(study_name=RunFolder(out).study_name(), storage=f"sqlite:///{out / 'study.db'}")
        return Counter((t.params["point"], t.params["seed"]) for t in study.trials if t.state == optuna.trial.TrialState.FAIL)

    first = run_cli(*args, cwd=tmp_path, timeout=600)
    assert first.returncode == 0, first.stderr
    failed = pd.read_csv(out / "trials.csv").query("state == 'FAIL'")
    assert len(failed) >= 1 and failed.reason.str.contains("out of memory").all()
    assert failed.reason.str.contains("a resume trains it again").all()
    assert set(tries().values()) == {1}
    again = run_cli(*args, cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"({len(failed)} run(s) cut short or out of memory retried)" in again.stdout
    assert set(tries().values()) == {2}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--baseline", "resnet5"], "did you mean"),
        (["--baseline", "resnet18", "--budget", "two"], "budget"),
        (["--baseline", "resnet18", "--budget", "0.5x"], "not above"),
        (["--baseline", "resnet18", "--space", "nowhere.toml"], "does not exist"),
        (["--baseline", "resnet18", "--data", "imagefolder:/no/such/dir"], "no/such/dir"),
        (["--baseline", "resnet18", "--seeds", "0"], "--seeds"),
    ],
)
def test_search_bad_input(tmp_path, args, message, capsys):
    argv = ["search", *args, "--out", str(tmp_path / "r"), "--preset", "smoke", "--no-family", "--no-report"]
    status, out, err = main_in_process(argv, capsys)
    assert status == 2, out + err
    assert message in err and "Traceback" not in out + err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()  # refused before the run folder is made


def test_grid_command_reports_nominal_and_measured():
    result = run_cli("grid", "--baseline", "efficientnet_b0", "--space", "compound_fine", "--filter", "nominal",
                     "--tolerance", "0.05", "--json")
    assert result.returncode == 0, result.stderr
    rows = {(r["planned_alpha"], r["planned_beta"], r["planned_gamma"]): r for r in json.loads(result.stdout)}
    paper = rows[(1.2, 1.1, 1.15)]  # matched: alpha and gamma kept, beta solved so that it costs 2x at full size
    assert (paper["alpha"], paper["gamma"], paper["input_px"]) == (1.2, 1.15, 258)
    assert paper["nominal_ratio"] == pytest.approx(paper["alpha"] * paper["beta"] ** 2 * paper["gamma"] ** 2)
    assert paper["macs_ratio"] == pytest.approx(2.0, rel=0.05)
    # matched at both sizes (its proxy apart, wider than its network), then filtered on alpha * beta^2 * gamma^2
    assert paper["dropped"] and paper["reason"].startswith("nominal cost x1.39")
    assert paper["proxy_macs_ratio"] == pytest.approx(2.0, rel=0.05) and paper["proxy_beta"] > paper["beta"]
    text = run_cli("grid", "--baseline", "efficientnet_b0").stdout
    assert "proxy x" in text and "proxy at" in text and "dropped (" in text and "reason" in text


def test_a_pruner_makes_the_runs_validate_every_epoch():
    """Without a pruner a run validates after its last epoch only; a pruner reads every epoch's accuracy."""
    from scaler.search import SearchConfig

    plain = SearchConfig("resnet18", recipe={"epochs": 4}).resolved()
    assert plain.recipe.get("eval_every", 0) == 0 and plain.confirm_recipe["eval_every"] == 0
    pruned = SearchConfig("resnet18", recipe={"epochs": 4}, pruner="median").resolved()
    assert pruned.recipe["eval_every"] == 1 and pruned.confirm_recipe["eval_every"] == 1
    chosen = SearchConfig("resnet18", recipe={"epochs": 4, "eval_every": 2}, pruner="median").resolved()
    assert chosen.recipe["eval_every"] == 2  # the user's own choice stands
    given = SearchConfig("resnet18", recipe={"epochs": 4}, confirm_recipe={"epochs": 8}, pruner="median").resolved()
    assert given.confirm_recipe["eval_every"] == 1  # a confirm recipe given (as the command line does) too
