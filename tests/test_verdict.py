"""The verdict: intervals that respect seed noise, P(best) by a joint seed bootstrap, compound vs single,
and the one-line text — fed accuracies directly, no training."""

from __future__ import annotations

import json
import math
import shutil
import statistics
from pathlib import Path
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from scaler.commands.search import print_results
from scaler.report import winner_text, write_report
from scaler.results import choose_winner, trials_table
from scaler.run_folder import RunFolder
from scaler.scaling import Coefficients
from scaler.search_space import Candidate
from scaler.stats import margin_between, paired_margin, welch_margin
from scaler.tables import grid_table
from scaler.verdict import CHOICE_RULE, PointResult, judge, p_best, rank, winner_lines

ROOT = Path(__file__).resolve().parents[1]


def points(table: dict[str, tuple[str, list[float]]], macs: dict | None = None) -> list[PointResult]:
    """{name: (kind, per-seed accuracies)} as PointResults numbered in order; seed i is list index i."""
    return [PointResult(i, kind, dict(enumerate(accs)), (macs or {}).get(name, 1e9), name)
            for i, (name, (kind, accs)) in enumerate(table.items())]


# --- intervals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("margin", [
    welch_margin([0.5005, 0.5005], [0.5, 0.5]),
    paired_margin([0.5005, 0.5005], [0.5, 0.5]),
    margin_between({0: 0.5005, 1: 0.5005}, {0: 0.5, 1: 0.5}),
    paired_margin([0.7, 0.8], [0.6, 0.7]),  # constant difference, up to float round-off
])
def test_zero_observed_variance_is_never_significant(margin):
    assert margin.margin > 0
    assert margin.interval is None and not margin.significant
    assert "no seed-to-seed variation observed: cannot judge" in margin.test


def test_one_seed_has_no_interval():
    for m in (welch_margin([0.7], [0.6]), paired_margin([0.7], [0.6]), margin_between({0: 0.7}, {0: 0.6})):
        assert m.interval is None and not m.significant and "fewer than 2 seeds" in m.test


def test_more_than_30_degrees_of_freedom_use_scipys_quantile():
    a = [0.70 + 0.01 * math.sin(i) for i in range(40)]
    b = [0.69 + 0.02 * math.cos(3 * i) for i in range(40)]
    va, vb = statistics.variance(a) / 40, statistics.variance(b) / 40
    df = (va + vb) ** 2 / (va**2 / 39 + vb**2 / 39)
    assert df > 30
    m = welch_margin(a, b)
    half = (m.interval[1] - m.interval[0]) / 2
    assert half / math.sqrt(va + vb) == pytest.approx(scipy_stats.t.ppf(0.975, df), rel=1e-12)
    assert half / math.sqrt(va + vb) > 1.96 + 1e-3  # not the normal quantile

    p = paired_margin(a, b)
    se = statistics.stdev([x - y for x, y in zip(a, b)]) / math.sqrt(40)
    assert (p.interval[1] - p.margin) / se == pytest.approx(scipy_stats.t.ppf(0.975, 39), rel=1e-12)


def test_pairing_matters_when_seed_luck_is_shared():
    # Each seed moves every point by the same luck (up to +-0.1); a beats b by 0.01 on every seed, +-0.002.
    luck = [0.0, 0.1, -0.1, 0.05, -0.05]
    a = {s: 0.80 + u + 0.01 + 0.002 * (-1) ** s for s, u in enumerate(luck)}
    b = {s: 0.80 + u for s, u in enumerate(luck)}
    paired = margin_between(a, b)
    welch = welch_margin(list(a.values()), list(b.values()))
    assert paired.test == "paired t" and welch.test == "welch"
    assert paired.margin == pytest.approx(welch.margin)
    assert paired.significant and paired.interval[0] > 0
    assert not welch.significant and welch.interval[0] < 0 < welch.interval[1]
    # a missing seed breaks the pairing: Welch on all seeds, the difference of the two means as ranked
    del a[4]
    partial = margin_between(a, b)
    assert partial.test == "welch"
    assert partial.margin == pytest.approx(statistics.fmean(a.values()) - statistics.fmean(b.values()))


# --- P(best) --------------------------------------------------------------------------------------


NOISY = {0: {0: 0.80, 1: 0.83, 2: 0.78}, 1: {0: 0.81, 1: 0.80, 2: 0.82}, 2: {0: 0.79, 1: 0.84, 2: 0.76},
         3: {0: 0.70, 1: 0.72, 2: 0.71}}


def test_p_best_sums_to_one_and_is_repeatable():
    first = p_best(NOISY)
    assert sum(first.values()) == pytest.approx(1.0)
    assert first == p_best(NOISY)  # the default generator seed
    assert p_best(NOISY, seed=7) == p_best(NOISY, seed=7)
    assert first[3] == 0.0 and all(0.05 < first[p] < 0.95 for p in (0, 1, 2))


def test_p_best_of_a_clear_winner_and_of_identical_points():
    clear = {0: {0: 0.90, 1: 0.91, 2: 0.92}, 1: {0: 0.70, 1: 0.72, 2: 0.71}, 2: {0: 0.60, 1: 0.65, 2: 0.62}}
    assert p_best(clear)[0] == pytest.approx(1.0)
    for k in (2, 3, 5):
        same = {p: {0: 0.80, 1: 0.84, 2: 0.79} for p in range(k)}
        assert all(v == pytest.approx(1 / k) for v in p_best(same).values())


def test_p_best_with_unequal_and_missing_seeds():
    accs = {0: {0: 0.80, 1: 0.83, 2: 0.78, 3: 0.81}, 1: {0: 0.81, 2: 0.82}, 2: {5: 0.79}, 3: {}}
    result = p_best(accs)
    assert set(result) == {0, 1, 2}  # a point with no accuracy has no P(best)
    assert sum(result.values()) == pytest.approx(1.0)
    assert result == p_best(accs)


# --- choice, compound vs single, verdict text -------------------------------------------------------


def test_ties_go_to_fewer_measured_macs_then_the_lower_point():
    ranked = rank(points({"a": ("depth", [0.8, 0.7]), "b": ("compound", [0.7, 0.8]), "c": ("width", [0.75, 0.75])},
                         macs={"a": 3e9, "b": 2e9, "c": 2e9}))
    assert [p.label for p in ranked] == ["b", "c", "a"]
    assert "fewer measured MACs" in CHOICE_RULE


def test_compound_vs_single_sign_and_interval():
    table = {"depth": ("depth", [0.80, 0.82, 0.78]), "width": ("width", [0.75, 0.77, 0.74]),
             "resolution": ("resolution", [0.70, 0.71, 0.69]), "c1": ("compound", [0.84, 0.87, 0.82]),
             "c2": ("compound", [0.79, 0.80, 0.77])}
    v = judge(points(table))
    cvs = v.compound_vs_single
    assert cvs["best_single_kind"] == "depth" and cvs["best_compound_point"] == 3
    assert cvs["margin"] == pytest.approx(statistics.fmean([0.04, 0.05, 0.04]))
    assert cvs["test"] == "paired t" and cvs["interval"][0] < cvs["margin"] < cvs["interval"][1]
    assert cvs["significant"] == (cvs["interval"][0] > 0)
    assert cvs["p_compound_best"] == pytest.approx(v.p_best[3] + v.p_best[4])

    flipped = judge(points({**table, "c1": ("compound", [0.76, 0.79, 0.74])}))
    assert flipped.compound_vs_single["margin"] < 0 and flipped.compound_vs_single["best_compound_point"] == 4
    assert judge(points({"d": ("depth", [0.8, 0.7]), "w": ("width", [0.7, 0.8])})).compound_vs_single is None


def test_verdict_says_when_the_top_points_cannot_be_told_apart():
    close = judge(points({"depth 2x": ("depth", [0.8575, 0.845, 0.8385]), "c": ("compound", [0.837, 0.851, 0.8405]),
                          "w": ("width", [0.8205, 0.816, 0.8205])}))
    assert not close.told_apart
    assert close.text.startswith("the top points cannot be told apart (") and "chose depth 2x" in close.text
    assert CHOICE_RULE in close.text and "\n" not in close.text

    flat = judge(points({"x": ("compound", [0.5005, 0.5005]), "y": ("depth", [0.5, 0.5])}))
    assert "cannot be told apart" in flat.text and "no seed-to-seed variation observed" in flat.text

    clear = judge(points({"x": ("compound", [0.90, 0.91, 0.92]), "y": ("depth", [0.70, 0.72, 0.71])}))
    assert clear.told_apart and clear.text.startswith("x is best: +20.00 points over y, 95% interval [")
    assert "cannot" not in clear.text

    alone = judge(points({"x": ("compound", [0.9])}))
    assert alone.margin is None and "nothing to compare" in alone.text


# --- wiring: choose_winner, trials_table, CLI lines, report -------------------------------------------


def study_of(accs: dict[int, dict[int, float]]) -> optuna.Study:
    """An in-memory study holding one complete trial per (point, seed), as the search records them."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    dists = {"point": optuna.distributions.IntDistribution(0, 99), "seed": optuna.distributions.IntDistribution(0, 99)}
    study.add_trials([optuna.trial.create_trial(params={"point": p, "seed": s}, distributions=dists, value=v)
                      for p, seeds in accs.items() for s, v in seeds.items()])
    return study


CANDS = [Candidate(kind, Coefficients(*c), 2.0, 2.0, 2_000_000_000, 1, 1, 32) for kind, c in (
    ("depth", (2.0, 1.0, 1.0)), ("width", (1.0, 1.4142, 1.0)), ("resolution", (1.0, 1.0, 1.4142)),
    ("compound", (1.26, 1.26, 1.0)))]


def test_choose_winner_keeps_its_keys_and_adds_the_verdict(capsys):
    accs = {0: {0: 0.8575, 1: 0.845, 2: 0.8385}, 1: {0: 0.8205, 1: 0.816, 2: 0.8205},
            2: {0: 0.7785, 1: 0.787, 2: 0.768}, 3: {0: 0.837, 1: 0.851, 2: 0.8405}}
    study = study_of(accs)
    table = trials_table(study, CANDS)
    winner = choose_winner(table, study, SimpleNamespace(baseline="resnet50", budget="2x"))
    assert json.loads(json.dumps(winner)) == winner  # plain JSON as coefficients.json stores it
    assert {"margin", "margin_interval", "significant", "test", "runner_up", "p_best", "compound_vs_single",
            "verdict", "rule"} <= set(winner)
    assert winner["kind"] == "depth" and winner["runner_up"]["kind"] == "compound"
    assert winner["test"] == "paired t" and not winner["significant"]
    assert winner["margin_interval"][0] < 0 < winner["margin_interval"][1]
    assert winner["p_best"] == {str(p): v for p, v in zip(table.point, table.p_best)}
    assert sum(winner["p_best"].values()) == pytest.approx(1.0)
    assert set(winner["compound_vs_single"]) >= {"margin", "interval", "best_single_kind", "significant"}
    assert winner["compound_vs_single"]["margin"] < 0
    assert "cannot be told apart" in winner["verdict"] and winner["rule"] == CHOICE_RULE
    lines = winner_lines(winner)
    assert lines[0].startswith("verdict: the top points cannot be told apart")
    assert lines[1].startswith("Best compound vs best single dimension (depth): -")
    assert "P(best)" in grid_table(table).columns
    text = winner_text(winner)
    assert "Verdict: the top points cannot be told apart" in text and "Best compound vs best single" in text

    print_results(SimpleNamespace(table=table, winner=winner, run=SimpleNamespace(path="runs/x"), trained_now=0, seconds=0, warnings=[],
                                  screen=None, curves=None))
    printed = capsys.readouterr().out.splitlines()
    assert lines[0] in printed and lines[1] in printed


def test_a_point_not_finished_has_no_p_best():
    study = study_of({0: {0: 0.8, 1: 0.7}, 1: {0: 0.75, 1: 0.76}})
    table = trials_table(study, CANDS[:3])
    assert list(table.state) == ["COMPLETE", "COMPLETE", "WAITING"]
    assert math.isnan(table.p_best[2]) and table.p_best[:2].sum() == pytest.approx(1.0)


def test_a_run_folder_written_before_the_verdict_still_reports(tmp_path):
    old = ROOT / "tests" / "data" / "run-2026-11-25"  # written before the verdict existed
    coefficients = json.loads((old / "coefficients.json").read_text())
    assert "verdict" not in coefficients and "compound_vs_single" not in coefficients
    text = winner_text(coefficients)
    assert "Margin +0.42 points" in text and "not significant" in text
    assert winner_lines(coefficients) == []
    assert "P(best)" not in grid_table(pd.read_csv(old / "trials.csv")).columns

    run = tmp_path / "old"
    run.mkdir()
    for name in ("coefficients.json", "config.json", "trials.csv"):  # no study: the plots it needs are skipped
        shutil.copy(old / name, run / name)
    report = write_report([RunFolder(run)]).with_name("report.md").read_text()
    assert "Margin +0.42 points" in report and "Verdict" not in report
