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
    progress = Progress(total=8, remaining=6, log=lines.append, in_study=lambda: (study["final"], study["best"]))
    study.update(final=4, best=(0.9, "width"))  # another worker finished two runs meanwhile
    label = progress.label("depth", KEY)
    assert label == "[5/8] screen depth seed 1"  # numbered after every run the study holds
    progress.done(label, "depth", 0.8, 12)
    # best: the other worker's; 3 runs finished since this process started, in 30 s: 10 s each, 3 left
    assert lines[-1] == "[5/8] screen depth seed 1  -> 80.0% in 12s; best 90.0% (width); about 30 s left"


@pytest.mark.parametrize("mine, best", [(0.95, "95.0% (depth)"), (0.5, "90.0% (width)")])
def test_the_best_is_the_higher_of_this_run_and_the_study_s(mine, best):
    lines: list[str] = []
    progress = Progress(total=3, remaining=3, log=lines.append, in_study=lambda: (1, (0.9, "width")))
    progress.done(progress.label("depth", KEY), "depth", mine, 5)
    assert f"best {best};" in lines[-1]
