"""benchmarks/fidelity.py: the regret benchmark's analysis on hand-built accuracies, and its machinery end to end."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import optuna
import pytest
from conftest import ROOT

from scaler.scaling import Coefficients
from scaler.search_space import Candidate
from scaler.study import open_storage


def _load():
    spec = importlib.util.spec_from_file_location("fidelity", ROOT / "benchmarks" / "fidelity.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


fidelity = _load()

# Four points: depth, width, resolution and a width-led compound point.
CANDS = [Candidate(kind, Coefficients(*abc), 2.0, 2.0, 1_000_000, 1, 1, 224)
         for kind, abc in (("depth", (2, 1, 1)), ("width", (1, 1.41, 1)), ("resolution", (1, 1, 1.41)),
                           ("compound", (1, 1.26, 1.12)))]
SCREEN = {0: 0.80, 1: 0.85, 2: 0.70, 3: 0.86}
CONFIRM = {0: 0.90, 1: 0.87, 2: 0.75, 3: 0.88}
REFERENCE = {0: 0.92, 1: 0.91, 2: 0.80, 3: 0.93}


def _same(means: dict, seeds) -> dict:
    return {p: {s: m for s in seeds} for p, m in means.items()}


def test_constant_seeds_give_the_regret_and_top2_computed_by_hand():
    # The screen ranks 3, 1, 0, 2: promote(k=2) takes 3 and 1 (both width-led), then the depth and
    # resolution leaders 0 and 2. The confirm stage ranks 0 first: the pick. The reference ranks
    # 3 (0.93), 0 (0.92), 1, 2: regret 0.93 - 0.92 = 1 point, the pick in the top 2; the screen
    # alone would have picked 3: no regret.
    out = fidelity.analyse(CANDS, _same(SCREEN, range(6)), _same(CONFIRM, range(6)), _same(REFERENCE, range(4)),
                           replays=5, resamples=200, confirm_k=2)
    s = out["summary"]
    assert [r["promoted"] for r in out["replays"]] == [[3, 1, 0, 2]] * 5
    assert {r["pick"] for r in out["replays"]} == {0} and {r["screen_pick"] for r in out["replays"]} == {3}
    assert s["best"] == 3 and s["top2"] == [3, 0]
    assert s["regret_median"] == pytest.approx(0.01) and s["regret_p90"] == pytest.approx(0.01)
    assert s["top2_rate"] == 1.0 and s["screen_regret_median"] == pytest.approx(0.0)
    # tau by hand: of the 6 pairs only (0, 1) is discordant, for the screen and for the confirm: 4/6
    assert s["tau_screen"] == pytest.approx(4 / 6) and s["tau_confirm"] == pytest.approx(4 / 6)
    assert s["split_half_tau"] == pytest.approx(1.0) and s["split_half_splits"] == 3  # 4 seeds: 3 splits 2 + 2
    assert s["split_half_same_leader"] == 1.0
    assert s["reference_usable"] and s["goals"] == {"regret_median": False, "top2_rate": True}
    low, high = s["tau_screen_interval"]
    assert -1 <= low <= s["tau_screen"] <= high <= 1


def test_a_lucky_seed_changes_the_pick_only_in_the_replays_that_draw_it():
    # Width's confirm seed 3 reads 0.99: any 3 of 4 seeds holding it give width (0.87 + 0.87 + 0.99) / 3
    # = 0.91 > depth's 0.90, so the pick is width (reference 0.91: regret 2 points, not in the top 2).
    confirm = _same(CONFIRM, range(4))
    confirm[1][3] = 0.99
    out = fidelity.analyse(CANDS, _same(SCREEN, range(6)), confirm, _same(REFERENCE, range(4)), replays=4,
                           confirm_seeds=3, resamples=0, confirm_k=2)
    runs = out["replays"]
    assert sorted(tuple(r["confirm_seeds"]) for r in runs) == [(0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)]  # each set once
    for r in runs:
        assert r["pick"] == (1 if 3 in r["confirm_seeds"] else 0)
        assert r["regret"] == pytest.approx(0.02 if 3 in r["confirm_seeds"] else 0.01)
    s = out["summary"]
    assert s["regret_median"] == pytest.approx(0.02) and s["top2_rate"] == 0.25
    assert s["regret_p90"] == pytest.approx(0.02) and s["tau_screen_interval"] is None  # no resamples asked


def test_seed_draws_are_distinct_sets_until_every_set_was_drawn():
    draws = fidelity.seed_draws(list(range(6)), 2, 20, np.random.default_rng(0))
    assert len(set(draws[:15])) == 15 and all(len(set(d)) == 2 for d in draws)  # C(6, 2) = 15
    assert fidelity.split_half_splits([0, 1, 2, 3]) == [((0, 1), (2, 3)), ((0, 2), (1, 3)), ((0, 3), (1, 2))]
    # past the limit, that many distinct splits drawn at random, the same each time
    drawn = fidelity.split_half_splits(list(range(16)), limit=500)
    assert len(set(drawn)) == 500 and drawn == fidelity.split_half_splits(list(range(16)), limit=500)
    assert all(0 in a and len(a) == len(b) == 8 and sorted(a + b) == list(range(16)) for a, b in drawn)
    assert len(fidelity.split_half_splits(list(range(13)))) == 1716  # C(13, 6): every one, under the limit



def test_the_halves_of_the_reference_may_crown_different_points():
    # Point 0 leads on seeds 0 and 1, point 3 on seeds 2 and 3. Halves (0, 1) | (2, 3): 0 against 3;
    # (0, 2) | (1, 3): 0 (0.930 vs 0.9275) against 3 (0.920 vs 0.9255); (0, 3) | (1, 2): 3 both times
    # (0.9255 vs 0.925, 0.9275 vs 0.925). The same leader in 1 of 3 splits.
    reference = _same(REFERENCE, range(4))
    reference[0] = {0: 0.96, 1: 0.95, 2: 0.90, 3: 0.89}
    reference[3] = {0: 0.92, 1: 0.92, 2: 0.935, 3: 0.931}
    out = fidelity.analyse(CANDS, _same(SCREEN, range(6)), _same(CONFIRM, range(6)), reference,
                           replays=2, resamples=0, confirm_k=2)
    assert out["summary"]["split_half_same_leader"] == pytest.approx(1 / 3)


def test_the_split_half_projection_follows_the_gaps_against_the_seed_noise():
    means, noisy = np.linspace(0.90, 0.99, 10), np.full(10, 0.02)  # gaps of 1 point, seed std 2 points
    few, many = (fidelity.projected_split_half(means, noisy, n, sims=300) for n in (4, 64))
    assert few["median"] < 0.8 <= many["median"] and few["usable_share"] < many["usable_share"]
    apart = fidelity.projected_split_half(means, np.full(10, 1e-4), 4, sims=50)
    assert apart == {"seeds": 4, "median": pytest.approx(1.0), "usable_share": 1.0}  # gaps far above the noise: every draw ranks
    tied = fidelity.projected_split_half(np.full(10, 0.95), noisy, 64, sims=300)
    assert abs(tied["median"]) < 0.2 and tied["usable_share"] < 0.05  # no gaps: no number of seeds ranks them


def test_the_benchmark_s_line_counts_the_runs_of_every_process_on_the_folder(monkeypatch):
    clock = iter([0.0, 60.0])
    monkeypatch.setattr(fidelity.time, "perf_counter", lambda: next(clock))
    left = [[2.0, 2.0, 1.0, 1.0, 1.0, 1.0]]  # the work of the 6 runs not final, of 10
    lines: list[str] = []
    tracker = fidelity.Tracker(lambda: left[0], 10, lines.append, work_at_start=sum(left[0]))
    left[0] = [1.0, 1.0, 1.0]  # this process finished a run of 2 and a --join'ed one a run of 2 and one of 1
    tracker.record()
    # 7 of 10 done; 5 units of work in 60 s, 3 left: 36 s
    assert lines == ["fidelity: 7/10 runs of the benchmark done; about 36 s left"]


TINY = ["--baseline", "resnet18", "--data", "synthetic:size=16,images=300", "--preset", "smoke", "--pool-seeds", "3",
        "--confirm-seeds", "2", "--reference-seeds", "2", "--reference-factor", "1", "--replays", "3", "--resamples", "50"]


def _trials(out) -> dict[str, int]:
    storage = f"sqlite:///{out / 'study.db'}"
    return {name: len(optuna.load_study(study_name=name, storage=storage).trials) for name in ("pool", "reference")}


@pytest.mark.slow
def test_pool_reference_and_analysis_end_to_end_then_resume_without_training(tmp_path):
    space = tmp_path / "tiny.toml"
    # depth and width (resolution is dropped at 24 px; at the smoke proxy depth's costs x1.78: within 15%, not 5%)
    space.write_text("depth = [0.0, 1.0]\nresolution = [0.0]\nproxy_tolerance = 0.15\n")
    out = tmp_path / "bench"
    lines: list[str] = []
    args = fidelity.parse_args([*TINY, "--space", str(space), "--out", str(out)])
    result = fidelity.run(args, "test", log=lines.append)["fidelity"]
    assert _trials(out) == {"pool": 2 * 3 * 2, "reference": 2 * 2}  # 2 points x 3 seeds x (screen, confirm); 2 x 2
    assert any(line.startswith("plan: pool screen 6 run(s) (6 to train)") and "h of training left" in line for line in lines)
    s = result["summary"]
    assert s["points"] == 2 and s["replays"] == 3
    assert 0 <= s["regret_median"] <= s["regret_p90"] <= s["regret_max"] <= 1 and 0 <= s["top2_rate"] <= 1
    for tau in (s["tau_screen"], s["tau_confirm"], s["split_half_tau"]):
        assert math.isnan(tau) or -1 <= tau <= 1
    assert json.loads((out / "fidelity.json").read_text())["summary"]["replays"] == 3
    report = (out / "fidelity.md").read_text()
    assert "| regret, median (points) |" in report and "\n- --pool-seeds 3 is under 6.\n" in report
    assert f"| both halves of the reference's seeds lead with the same point | {s['split_half_same_leader']:.0%} of splits | |" in report

    lines.clear()
    again = fidelity.run(args, "test", log=lines.append)["fidelity"]
    assert _trials(out) == {"pool": 12, "reference": 4}  # nothing retrained
    assert "plan: pool screen 6 run(s) (0 to train), pool confirm 6 run(s) (0 to train), reference confirm 4 run(s) (0 to train)" in lines
    assert again["summary"] == result["summary"]

    sweep = ["--stage", "protocols", "--sweep-confirm", "0", "1", "--sweep-screen-seeds", "1", "2", "--sweep-confirm-seeds", "2"]
    proto = fidelity.run(fidelity.parse_args([*TINY, "--space", str(space), "--out", str(out), *sweep]), "test",
                         log=lines.append)["protocols"]
    assert _trials(out) == {"pool": 12, "reference": 4}  # replays of stored runs: nothing trained
    rows = {(r["confirm"], r["screen_seeds"], r["confirm_seeds"]): r for r in proto["protocols"]}
    assert set(rows) == {(0, 1, 0), (0, 2, 0), (1, 1, 2), (1, 2, 2)}
    sec = proto["seconds"]
    assert sec["screen"] > 0 and sec["confirm"] > 0
    for (k, ss, cs), r in rows.items():  # what the protocol trains, at the stored runs' median seconds
        assert r["train_seconds"] == pytest.approx(2 * ss * sec["screen"] + r["promoted"] * cs * sec["confirm"])
        assert r["promoted"] == (2 if k else 0)  # K=1 plus the other dimension's leader
    assert rows[(0, 2, 0)]["regret_median"] == pytest.approx(s["screen_regret_median"])  # the screen alone, 2 seeds
    assert "| confirm K | screen seeds |" in (out / "protocols.md").read_text()

    other = fidelity.parse_args([*TINY, "--space", str(space), "--out", str(out), "--preset", "default"])
    with pytest.raises(fidelity.UsageError, match="different candidates, recipes"):
        fidelity.run(other, "test", log=lines.append)

    # Runs trained in another folder of the same benchmark (a second process) are copied, not retrained.
    merged = tmp_path / "merged"
    lines.clear()
    args = fidelity.parse_args([*TINY, "--space", str(space), "--out", str(merged), "--stage", "analyse", "--merge-from", str(out)])
    # Runs of keys the merge copies, left queued or running here by a process cut short, are closed:
    # none is taken, or reclaimed and queued, to be trained again.
    merged.mkdir()
    source_runs = optuna.load_study(study_name="reference", storage=f"sqlite:///{out / 'study.db'}").trials
    left = fidelity.open_study(fidelity.setup(args), "reference")
    left.enqueue_trial(source_runs[0].params)
    left.enqueue_trial(source_runs[1].params)
    with pytest.warns(UserWarning, match="Heartbeat"):  # Optuna's note on ask() with heartbeats
        left.ask()  # one of them taken: RUNNING, as a kill leaves it
    assert fidelity.run(args, "test", log=lines.append)["fidelity"]["summary"] == result["summary"]
    assert _trials(merged) == {"pool": 12, "reference": 6}  # the 4 copied and the 2 closed
    assert "merge: 4 finished run(s) of " + str(out) + "'s reference copied" in lines
    states = [t.state for t in optuna.load_study(study_name="reference", storage=f"sqlite:///{merged / 'study.db'}").trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 4 and states.count(optuna.trial.TrialState.FAIL) == 2
    fidelity.run(args, "test", log=lines.append)
    assert _trials(merged) == {"pool": 12, "reference": 6}  # merged twice: nothing copied again
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "benchmark.json").write_text('{"baseline": "resnet50"}')
    (tmp_path / "elsewhere" / "study.db").touch()
    args.merge_from = [str(tmp_path / "elsewhere")]
    with pytest.raises(fidelity.UsageError, match="holds a different benchmark"):
        fidelity.run(args, "test", log=lines.append)

    # A longer reference, in a folder of its own, is analysed beside the pool in a third folder: the
    # pool's runs come from the first folder, whose shorter reference is skipped, not mixed in.
    longer = tmp_path / "longer"
    fidelity.run(fidelity.parse_args([*TINY, "--space", str(space), "--out", str(longer), "--stage", "reference",
                                      "--reference-factor", "2"]), "test", log=lines.append)
    lines.clear()
    both = fidelity.parse_args([*TINY, "--space", str(space), "--out", str(tmp_path / "both"), "--stage", "analyse",
                                "--reference-factor", "2", "--merge-from", str(out), "--merge-from", str(longer)])
    fidelity.run(both, "test", log=lines.append)
    assert f"merge: {out}'s reference skipped: its runs train with other recipes than {tmp_path / 'both'}'s" in lines
    assert _trials(tmp_path / "both") == {"pool": 12, "reference": 4}
    assert "reference 4" in (tmp_path / "both" / "fidelity.md").read_text().split("Recipes (epochs):")[1].splitlines()[0]


def test_controls_run_the_search_and_say_which_dimension_leads(tmp_path):
    space = tmp_path / "tiny.toml"
    space.write_text("depth = [0.0, 1.0]\nresolution = [0.0]\nproxy_tolerance = 0.15\n")  # depth and width
    args = fidelity.parse_args([*TINY, "--space", str(space), "--out", str(tmp_path / "c"), "--stage", "controls",
                                "--screen-seeds", "1", "--confirm-seeds", "1", "--control-replays", "2",
                                "--control", "depth", "synthetic:size=16,images=300",
                                "--control", "width", "synthetic:size=16,images=300,seed=1"])
    lines: list[str] = []
    rows = fidelity.run(args, "test", log=lines.append)["controls"]["controls"]
    started = list(dict.fromkeys(line.split("]")[0] for line in lines if line.startswith("[control ")))
    assert [s.split()[1] + s.split()[-1] for s in started] == ["depth0", "width0", "depth1", "width1"]  # interleaved
    row = rows[0]
    assert [r["seed"] for r in row["replays"]] == [0, 100]  # fresh seeds per replay
    assert all(r["leads"] in ("depth", "width") for r in row["replays"])
    assert row["hits"] == sum(r["leads"] == "depth" for r in row["replays"]) and row["in_grid"]
    assert row["passed"] == (row["hits"] == 2)  # 4 of 5, scaled to 2 replays
    assert "| depth |" in (tmp_path / "c" / "controls.md").read_text()
    assert row["result"] == ("pass" if row["passed"] else "fail")  # every replay done: decided
    for r in row["replays"]:  # the search's own verdict, as its coefficients.json says
        folder = next((tmp_path / "c" / "controls").glob("depth-*")) / f"replay-{r['replay']}"
        assert r["told_apart"] is json.loads((folder / "coefficients.json").read_text())["told_apart"]
    assert "| told apart |" in (tmp_path / "c" / "controls.md").read_text()


def test_a_control_is_decided_as_soon_as_its_replays_allow():
    args = argparse.Namespace(baseline="resnet50", budget="2x", screen_seeds=2, confirm=1, confirm_seeds=3,
                              control_replays=5)
    bench = types.SimpleNamespace(out=None)

    def state(*leads):
        done = {("depth", "d"): [{"expected_leads": hit, "leads": "depth" if hit else "width",
                                  "dimensions_in_grid": ["depth", "width"]} for hit in leads]}
        with tempfile.TemporaryDirectory() as out:
            bench.out = Path(out)
            row = fidelity._write_controls(bench, args, "cmd", done)["controls"][0]
            assert "| depth | `d` |" in (Path(out) / "controls.md").read_text()
        return row["result"]

    assert state(True, True, True) == "under way"
    assert state(True, True, True, True) == "pass"  # 4 of 5 reached with one still to run
    assert state(True, False) == "under way"
    assert state(False, False) == "fail"  # at most 3 of 5 can hit now


@pytest.mark.parametrize("bad, message", [
    (["--pool-seeds", "1"], "--pool-seeds (1) must cover"),
    (["--stage", "controls"], "needs at least one --control"),
    (["--control", "size", "synthetic"], "one of depth, width, resolution"),
    (["--control", "depth", "synthetic", "--control", "depth", "synthetic"], "--control depth synthetic is given twice"),
    (["--reference-factor", "nan"], "--reference-factor must be 1 or more"),
    (["--set", "epochs=two"], "is not a number"),
    (["--set", "speed=3"], "--set takes FIELD=VALUE with a recipe field"),
    (["--sweep-screen-seeds", "0", "2"], "--sweep-screen-seeds takes values of 1 or more"),
    (["--stage", "pool", "--join"], "no benchmark in"),
    (["--stage", "analyse", "--join"], "--join trains beside another process"),
])
def test_bad_input_is_one_line_and_exit_2(bad, message, capsys, tmp_path):
    assert fidelity.main([*TINY, "--out", str(tmp_path / "x"), *bad]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and not (tmp_path / "x").exists()


@pytest.mark.slow
def test_a_second_process_joins_the_first_and_no_run_is_trained_twice(tmp_path):
    """``--join``: two processes on one folder's study (a core another stage freed), each run trained once."""
    import subprocess
    import time

    space = tmp_path / "tiny.toml"
    space.write_text("depth = [0.0, 1.0]\nresolution = [0.0]\nproxy_tolerance = 0.15\n")
    out = tmp_path / "bench"
    argv = [*TINY, "--space", str(space), "--out", str(out), "--stage", "pool", "--pool-seeds", "6"]
    first = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "fidelity.py"), *argv], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env={**__import__("os").environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 120
        while not (out / "study.db").exists() or not _trials_in(out, "pool"):  # the first is training
            assert first.poll() is None and time.monotonic() < deadline, first.stdout.read() if first.poll() is not None else ""
            time.sleep(0.2)
        with pytest.raises(fidelity.UsageError, match="add --join to train beside it"):
            fidelity.run(fidelity.parse_args(argv), "test", log=lambda line: None)
        lines: list[str] = []
        fidelity.run(fidelity.parse_args([*argv, "--join"]), "test", log=lines.append)
    finally:
        assert first.wait(timeout=300) == 0, first.stdout.read()
    runs = optuna.load_study(study_name="pool", storage=f"sqlite:///{out / 'study.db'}").trials
    done = [(t.params["stage"], t.params["point"], t.params["seed"]) for t in runs if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == len(set(done)) == 2 * 6 * 2  # 2 points x 6 seeds x (screen, confirm), each once
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in runs)  # none retired under the first process
    assert any(" -> " in line for line in lines)  # the joined process trained runs of its own


def test_the_benchmark_takes_the_write_lock_when_its_transactions_begin(tmp_path):
    """The join's guard: SQLite transactions that begin IMMEDIATE, so "read WAITING, write RUNNING"
    in one process cannot interleave with the same in another (both would take the run)."""
    import sqlite3

    args = fidelity.parse_args([*TINY, "--out", str(tmp_path / "bench")])
    (tmp_path / "bench").mkdir()
    study = fidelity.open_study(fidelity.setup(args), "pool")
    engine = study._storage._backend.engine
    with engine.begin() as conn:  # a transaction that has only read so far
        conn.exec_driver_sql("select count(*) from trials")
        other = sqlite3.connect(tmp_path / "bench" / "study.db", timeout=0.1, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()


def _trials_in(out, name: str) -> int:
    try:  # the search's storage: it opens a file whose tables another process is creating
        return len(optuna.load_study(study_name=name, storage=open_storage(f"sqlite:///{out / 'study.db'}")).trials)
    except KeyError:  # the study is not created yet
        return 0
