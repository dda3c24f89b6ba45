"""Screen, then confirm, then curves: the stages of a search, their evidence, and resuming them."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import optuna
import pandas as pd
import pytest
from conftest import ROOT, run_cli

from scaler.baselines import get_baseline
from scaler.errors import UsageError
from scaler.recipe import PRESETS
from scaler.results import recorded_proxy
from scaler.run_folder import RunFolder
from scaler.scaling import Coefficients
from scaler.stages import confirm_recipe, leading_dimension, promote
from scaler.verdict import PointResult, rank

STAGED = ["--preset", "smoke", "--data", "synthetic:size=16,images=400,classes=4", "--no-family", "--no-report",
          "--device", "cpu", "--confirm", "2"]


def _table(rows):
    return pd.DataFrame([{"point": p, "kind": k, "alpha": a, "beta": b, "gamma": g, "accuracy_mean": acc,
                          "macs": 1e9, "state": "COMPLETE"} for p, k, a, b, g, acc in rows])


def test_leading_dimension_is_the_largest_share_of_the_cost():
    assert leading_dimension(Coefficients(2, 1, 1)) == "depth"
    assert leading_dimension(Coefficients(1.26, 1.12, 1.12)) == "depth"  # 0.23 vs 0.23 vs 0.23: depth first
    assert leading_dimension(Coefficients(1.0, 1.26, 1.12)) == "width"
    assert leading_dimension(Coefficients(1.0, 1.12, 1.26)) == "resolution"


def _points(rows):
    return [PointResult(p, k, {0: acc, 1: acc}, 1e9, coefficients=Coefficients(a, b, g)) for p, k, a, b, g, acc in rows]


def test_promote_takes_the_top_k_and_the_best_point_led_by_each_dimension():
    points = _points([(0, "depth", 2, 1, 1, 0.70), (1, "width", 1, 1.41, 1, 0.80), (2, "resolution", 1, 1, 1.41, 0.60),
                      (3, "compound", 1, 1.26, 1.12, 0.85), (4, "compound", 1.26, 1, 1.26, 0.65)])
    # top 2: 3 and 1 (both width-led); then depth's best (0), resolution's best (4 beats 2)
    assert promote(points, 2) == [3, 1, 0, 4]
    assert promote(points, 0) == [0, 3, 4]  # the dimension leaders alone
    assert promote([], 2) == []


def test_promote_ranks_by_the_verdicts_rule():
    # equal means (to the verdict's tie tolerance): the cheaper point first, then the lower number
    tied = [PointResult(0, "width", {0: 0.8}, 2e9, coefficients=Coefficients(1, 1.41, 1)),
            PointResult(1, "width", {0: 0.8 + 1e-12}, 1e9, coefficients=Coefficients(1, 1.42, 1)),
            PointResult(2, "width", {0: 0.8}, 1e9, coefficients=Coefficients(1, 1.43, 1))]
    assert promote(tied, 1) == [1] == [rank(tied)[0].point]
    assert promote(tied, 3) == [1, 2, 0]


def test_curves_compare_the_chosen_point_with_the_other_kind():
    from scaler.search_space import Candidate
    from scaler.stages import curve_strategies

    table = _table([(0, "depth", 2, 1, 1, 0.70), (1, "width", 1, 1.41, 1, 0.80), (2, "compound", 1, 1.26, 1.12, 0.85)])
    cands = [Candidate(k, Coefficients(a, b, g), 2, 2, 1, 1, 1, 224)
             for k, a, b, g in (("depth", 2, 1, 1), ("width", 1, 1.41, 1), ("compound", 1, 1.26, 1.12))]
    names = lambda out: [(n, p) for n, p, _ in out]  # noqa: E731
    assert names(curve_strategies(table, table, 2, cands)) == [("chosen", 2), ("width", 1)]  # compound won: best single
    assert names(curve_strategies(table, table, 0, cands)) == [("chosen", 0), ("compound", 2)]  # depth won: best compound
    assert names(curve_strategies(table, table, 0, cands, "all")) == [("chosen", 0), ("compound", 2), ("width", 1)]
    assert names(curve_strategies(table, table, 2, cands, "none")) == [("chosen", 2)]


def test_confirm_recipe_is_longer_than_the_screen():
    screen = PRESETS["default"]
    longer = confirm_recipe(screen, "2x", get_baseline("resnet18"))
    assert (longer.epochs, longer.warmup_epochs) == (2 * screen.epochs, 2 * screen.warmup_epochs)
    assert confirm_recipe(screen, "long", get_baseline("resnet18")).epochs == PRESETS["long"].epochs
    # a preset's schedule, the screen's proxy network: the grid was cost-matched for that proxy
    glyphs = screen.replace(proxy_resolution=40, proxy_width=0.125, proxy_divisor=2)
    for name in ("long", "gpu", "smoke"):
        confirmed = confirm_recipe(glyphs, name, get_baseline("resnet18"))
        assert (confirmed.proxy_resolution, confirmed.proxy_width, confirmed.proxy_divisor) == (40, 0.125, 2)
        assert confirmed.epochs == PRESETS[name].epochs
    with pytest.raises(UsageError, match="unknown confirm preset"):
        confirm_recipe(screen, "forever", get_baseline("resnet18"))


def _complete(db) -> int:
    try:
        with sqlite3.connect(db) as con:
            return con.execute("select count(*) from trials t join trial_params p on p.trial_id = t.trial_id "
                               "where t.state = 'COMPLETE' and p.param_name = 'stage' and p.param_value = 1").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_screen_confirm_curves_end_to_end_and_resumed_after_a_kill(tmp_path):
    out = tmp_path / "run"
    args = ["search", "--baseline", "resnet18", "--budget", "2x", "--out", str(out), *STAGED]
    proc = subprocess.Popen([sys.executable, "-m", "scaler", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while _complete(out / "study.db") < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)  # killed inside the confirm stage (stage index 1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)

    result = run_cli(*args, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "confirm:" in result.stdout and "curve:" in result.stdout
    # the curves' baseline does not wait for the answer: it is queued behind the confirm stage's runs
    assert "then the curves' baseline x 1 seed(s) = " in result.stdout
    assert re.search(r"curve: 3 networks x 1 seed\(s\) .* = 3 run\(s\); 1 done before, 2 to run", result.stdout)

    trials = pd.read_csv(out / "trials.csv")
    assert set(trials.stage) == {"screen", "confirm"}
    confirmed = trials[trials.stage == "confirm"]
    assert (confirmed.state == "COMPLETE").all() and (confirmed.accuracy_n == 2).all()  # one more seed than the screen

    winner = json.loads((out / "coefficients.json").read_text())
    assert winner["stage"] == "confirm" and winner["point"] in set(confirmed.point)
    assert set(winner["rankings"]) == {"screen", "confirm"} and "kendall_tau" in winner
    assert isinstance(winner["winner_changed"], bool) and winner["verdict"]

    curves = pd.read_csv(out / "curves.csv")
    assert set(curves.phi) == {0, 1, 2} and (curves.accuracy_n == 1).all()  # the screen's recipe and seeds
    assert {"baseline", "chosen"} < set(curves.strategy)  # and the best single dimension
    chosen = curves[curves.strategy == "chosen"].sort_values("phi")
    assert list(chosen.phi) == [1, 2] and chosen.macs_ratio.iloc[-1] == pytest.approx(4, rel=0.06)
    assert (curves[curves.phi == 1].runs_from == "screen").all()  # phi = 1 is a grid point: reused, not retrained
    base = float(curves[curves.phi == 0].accuracy_mean.iloc[0])  # the baseline's accuracy is judged (4 classes)
    codes = {w["code"] for w in winner["warnings"]}
    assert ("baseline_near_chance" in codes) == (base < 0.5) and ("baseline_saturated" in codes) == (base > 0.95)

    study = optuna.load_study(study_name=RunFolder(out).study_name(), storage=f"sqlite:///{out / 'study.db'}")
    done = [(t.params["stage"], t.params["point"], t.params["seed"]) for t in study.trials
            if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == len(set(done))  # nothing trained twice across the kill

    again = run_cli(*args, timeout=600)
    assert again.returncode == 0 and again.stdout.count(", 0 to run") == 3  # screen, confirm, curves: all done


def test_family_train_and_compare_resume_from_their_study(tmp_path):
    from scaler.family import build_family
    from scaler.proxy import ProxyTraining

    training = ProxyTraining(data="synthetic:size=16,images=200,classes=4", preset="smoke", seeds=2)
    folder = RunFolder(tmp_path / "fam")
    first = build_family("resnet18", coefficients=Coefficients(1.2, 1.1, 1.15), phis=[0, 1], latency_runs=0,
                         num_classes=4, training=training, log_to=folder)
    study = optuna.load_study(study_name="train", storage=folder.storage_url)
    assert len(study.trials) == 4  # 2 members x 2 seeds, recorded as they finished
    again = build_family("resnet18", coefficients=Coefficients(1.2, 1.1, 1.15), phis=[0, 1], latency_runs=0,
                         num_classes=4, training=training, log_to=folder)
    assert len(optuna.load_study(study_name="train", storage=folder.storage_url).trials) == 4  # nothing retrained
    assert [m.accuracy_mean for m in again.members] == [m.accuracy_mean for m in first.members]
    other = ProxyTraining(data="synthetic:size=16,images=200,classes=4", preset="smoke", seeds=2, seed=5)
    build_family("resnet18", coefficients=Coefficients(1.2, 1.1, 1.15), phis=[0], latency_runs=0, num_classes=4,
                 training=other, log_to=folder)
    assert len(optuna.load_study(study_name="train", storage=folder.storage_url).trials) == 6  # other seeds: trained


def test_curve_runs_are_keyed_by_network_so_a_resume_never_reuses_another_networks_runs(tmp_path, monkeypatch):
    """Curve networks are chosen after the answer and matched by the installed version's rules: when a
    resume plans other networks (another winner after --confirm changed, another version's matching),
    they get runs of their own; the earlier runs are kept and found again when their network returns."""
    import dataclasses

    import scaler.search as search
    from scaler.recipe import resolve_recipe

    space = tmp_path / "space.toml"
    space.write_text("depth = [1.0]\nresolution = [0.0]\n")
    recipe = resolve_recipe("smoke", get_baseline("resnet18"), {"subset": 64, "batch_size": 32})
    config = search.SearchConfig(baseline="resnet18", budget="2x", space=str(space), recipe=dataclasses.asdict(recipe),
                                 data="synthetic:size=16,images=120,classes=4", seeds=1, confirm=0, device="cpu")
    run = RunFolder(tmp_path / "run")
    quiet = {"log": lambda line: None}
    real, planned = search.curve_points, []
    monkeypatch.setattr(search, "curve_points", lambda *a, **k: planned.append(real(*a, **k)) or planned[-1])
    first = search.run_search(config, run, **quiet).curves
    assert search.run_search(config, run, **quiet).trained_now == 0  # same networks: all reused

    def other_rule(*args, **kwargs):  # phi = 2 as another rule would have matched it
        return [dataclasses.replace(p, network=dataclasses.replace(
                    p.network, proxy_coefficients=Coefficients(*(v * 1.1 for v in p.network.proxy_point.as_tuple()))))
                if p.phi == 2 else p for p in real(*args, **kwargs)]

    monkeypatch.setattr(search, "curve_points", other_rule)
    moved = search.run_search(config, run, **quiet)
    assert moved.trained_now == (first.phi == 2).sum()  # new runs for the new networks only
    monkeypatch.setattr(search, "curve_points", real)
    again = search.run_search(config, run, **quiet)
    assert again.trained_now == 0  # the first networks' runs were kept and are found by network
    pd.testing.assert_frame_equal(again.curves.drop(columns="cost_missed"), first.drop(columns="cost_missed"))
    study = optuna.load_study(study_name=run.study_name(), storage=run.storage_url)
    curve_keys = {(t.params["stage"], t.params["point"]) for t in study.trials if t.params.get("stage") == "curve"}
    assert len(curve_keys) == len(first[first.runs_from == "curve"]) + (first.phi == 2).sum()
    # a new network's number comes from the network alone: a study with no runs numbers it alike
    networks = [p.network for p in planned[0] if p.phi != 1]
    empty = optuna.create_study(storage=f"sqlite:///{tmp_path / 'empty.db'}")
    assert search._curve_indices(empty, networks) == search._curve_indices(study, networks)
    assert all(point >= search.CURVE_NUMBERS for _, point in curve_keys)
    # a run whose record is half written (another worker is writing it, or was killed doing so) is not
    # yet any network's: its attributes come one by one, and a resume once met one with alpha alone
    half = study.ask()
    half.set_user_attr("alpha", 1.5)
    assert recorded_proxy(study.trials[-1]) is None
    assert search._curve_indices(study, networks) == search._curve_indices(empty, networks)
