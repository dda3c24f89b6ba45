"""Run one stage's keys with the chosen backend, into the search's study, and say what is done.

The plan of a stage maps each key (stage, point, seed) to what it trains (:class:`Planned`). Keys
whose latest run is final are skipped, so a resumed search runs each run once, whichever backend
made the earlier ones. With Optuna, this process is one worker of the study's shared queue
(:mod:`scaler.run_queue`: other workers may take runs beside it); Ray Tune runs them on a cluster
and records each into the same study as it finishes.
"""

from __future__ import annotations

from collections.abc import Callable

import optuna

from scaler.objective import OptunaObjective, Planned
from scaler.progress import Progress
from scaler.run_folder import RunFolder
from scaler.run_queue import work_stage
from scaler.study import Key, finished_runs, keys_to_run, retire_waiting
from scaler.train import TrainingFailed


class StageRunner:
    """Runs stages of one search; ``on_record`` is called after every finished run (tables on disk)."""

    def __init__(self, config, study: optuna.Study, run: RunFolder | None, backend: str, address: str | None,
                 log: Callable[[str], None], on_record: Callable[[], None], trial_resources: dict | None = None) -> None:
        self.config, self.study, self.run, self.backend, self.address = config, study, run, backend, address
        self.trial_resources = trial_resources  # Ray: what each trial takes (cpu, gpu; fractions allowed)
        self.log, self.on_record = log, on_record
        self.trained = 0  # runs the stages made final, by any process on the study (the search's count)
        self.made_here = 0  # runs this process trained (a worker's count)

    def run_stage(self, stage: str, plan: dict[Key, Planned], what: str) -> int:
        """Run the keys of ``plan`` not yet final; log a header line; return how many were made final now
        (by this process or by workers on the same study)."""
        keys = list(plan)
        todo = keys_to_run(self.study, keys)
        self.log(f"{stage}: {what} = {len(keys)} run(s); {len(keys) - len(todo)} done before, {len(todo)} to run")
        if not todo:
            return 0
        # Optuna: other workers may train this stage beside this process, so the progress line reads the study.
        in_study = None if self.backend == "ray" else (lambda: finished_runs(self.study, keys))
        progress = Progress(len(keys), len(todo), self.log, in_study)
        if self.backend == "ray":
            from scaler.ray_backend import run_jobs  # imports Ray only when asked for

            retire_waiting(self.study)  # Ray records its runs itself: nothing may stay queued
            run_jobs(self.study, self.config, plan, todo, self.run, progress=progress, address=self.address,
                     on_record=self.on_record, resources=self.trial_resources)
            self.made_here += len(todo)
        else:  # with any other workers on the study: each run taken from the shared queue once
            objective = OptunaObjective(self.config, plan, progress)
            self.made_here += work_stage(self.study, keys, objective, catch=(TrainingFailed,), on_trial=self.on_record,
                                         stage=stage)
        # Counted in the study, not by this process: with --workers the workers train most runs, and
        # "trained N run(s)" is the search's count (a run to be retried, out of memory, is not in it).
        ran = len(todo) - len(keys_to_run(self.study, todo))
        self.trained += ran
        return ran
