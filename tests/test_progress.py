"""The progress line: numbering, best and time left, alone and beside other workers on one study."""

from __future__ import annotations

import pytest

from scaler.progress import Progress

KEY = ("screen", 0, 1)


def test_a_lone_process_counts_its_own_runs():
    lines: list[str] = []
    progress = Progress(total=6, remaining=4, log=lines.append)  # 2 done before
    label = progress.label("depth", KEY)
    assert label == "[3/6] screen depth seed 1"
    progress.done(label, "depth", 0.8, 12)
    assert lines[-1].startswith("[3/6] screen depth seed 1  -> 80.0% in 12s; best 80.0% (depth); about ")


def test_beside_other_workers_the_line_is_the_search_s(monkeypatch):
    study = {"final": 2, "best": None}
    clock = iter([0.0, 30.0])
    monkeypatch.setattr("scaler.progress.time.perf_counter", lambda: next(clock))
    lines: list[str] = []
    progress = Progress(total=8, remaining=6, log=lines.append, in_study=lambda: (study["final"], 1, study["best"]))
    study.update(final=4, best=(0.9, "width"))  # another worker finished two runs meanwhile
    label = progress.label("depth", KEY)
    assert label == "[5/8] screen depth seed 1"  # numbered after every run the study holds
    progress.done(label, "depth", 0.8, 12)
    # best: the other worker's; 3 runs finished since this process started, in 30 s: 10 s each, 3 left
    assert lines[-1] == "[5/8] screen depth seed 1  -> 80.0% in 12s; best 90.0% (width); about 30 s left"


@pytest.mark.parametrize("mine, best", [(0.95, "95.0% (depth)"), (0.5, "90.0% (width)")])
def test_the_best_is_the_higher_of_this_run_and_the_study_s(mine, best):
    lines: list[str] = []
    progress = Progress(total=3, remaining=3, log=lines.append, in_study=lambda: (1, 1, (0.9, "width")))
    progress.done(progress.label("depth", KEY), "depth", mine, 5)
    assert f"best {best};" in lines[-1]


def test_runs_started_together_by_two_workers_get_their_own_numbers():
    # Both take a run before either finishes: the study then holds 2 final runs and 2 running ones.
    study = {"final": 2, "running": 1}
    first = Progress(total=8, remaining=6, log=[].append, in_study=lambda: (study["final"], study["running"], None))
    second = Progress(total=8, remaining=6, log=[].append, in_study=lambda: (study["final"], study["running"], None))
    assert first.label("depth", KEY).startswith("[3/8]")
    study["running"] = 2  # the second worker's run is taken too
    assert second.label("width", KEY).startswith("[4/8]")


def test_the_study_counts_a_stage_s_final_and_running_runs():
    import optuna

    from scaler.study import finished_runs

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    keys = [("screen", point, 0) for point in range(4)]

    def take(point):  # a worker takes the queued run of ``point``, as the objective's suggests do
        study.enqueue_trial({"stage": "screen", "point": point, "seed": 0})
        trial = study.ask()
        trial.suggest_categorical("stage", ["screen"]), trial.suggest_int("point", 0, 9), trial.suggest_int("seed", 0, 9)
        return trial

    for point, value in ((0, 0.7), (1, 0.9)):
        trial = take(point)
        trial.set_user_attr("kind", f"p{point}")
        study.tell(trial, value)
    take(2)  # running
    study.enqueue_trial({"stage": "confirm", "point": 3, "seed": 0})  # another stage's, waiting
    assert finished_runs(study, keys) == (2, 1, (0.9, "p1"))
