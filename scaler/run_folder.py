"""A run's folder: one place that names every file a run owns.

``runs/<name>/`` holds everything needed to resume, inspect and reproduce a run::

    config.json        the fully resolved configuration (baseline, budget, space, recipe, seeds, data)
    study.db           the Optuna storage (SQLite) unless --storage named another
    trials.csv         one row per grid point: coefficients, multipliers, cost, accuracy mean/std, P(best)
    coefficients.json  the chosen (alpha, beta, gamma) with its evidence (margin, P(best), verdict)
    family.json/.csv   the scaled family (phi = 0..N)
    compare.csv        `scaler compare`: one row per strategy and budget
    report.html/.md    the report; its images under plots/
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from scaler.errors import UsageError

STUDY_NAME = "search"


@dataclass(frozen=True)
class RunFolder:
    path: Path

    @classmethod
    def for_name(cls, name: str, root: str | Path = "runs") -> RunFolder:
        return cls(Path(root) / name)

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def storage_file(self) -> Path:
        return self.path / "study.db"

    @property
    def storage_url(self) -> str:
        return f"sqlite:///{self.storage_file.resolve()}"

    @property
    def trials(self) -> Path:
        return self.path / "trials.csv"

    @property
    def coefficients(self) -> Path:
        return self.path / "coefficients.json"

    @property
    def family_json(self) -> Path:
        return self.path / "family.json"

    @property
    def family_csv(self) -> Path:
        return self.path / "family.csv"

    @property
    def compare(self) -> Path:
        return self.path / "compare.csv"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    def clear(self) -> None:
        """Delete the files a run owns (never anything else the folder may hold)."""
        import shutil

        for target in (self.config, self.storage_file, self.trials, self.coefficients, self.family_json,
                       self.family_csv, self.compare, self.path / "compare.json", self.path / "report.html",
                       self.path / "report.md"):
            target.unlink(missing_ok=True)
        for folder in (self.plots, self.path / "ray"):
            shutil.rmtree(folder, ignore_errors=True)

    def create(self) -> RunFolder:
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    def write_json(self, target: Path, obj) -> None:
        """Write JSON atomically, so that a kill never leaves half a file."""
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
        tmp.replace(target)

    def read_json(self, target: Path) -> dict:
        self.require(target)
        try:
            return json.loads(target.read_text())
        except json.JSONDecodeError as exc:
            raise UsageError(f"{target} is not valid JSON ({exc}); the run folder is damaged") from None

    def read_trials(self) -> pd.DataFrame:
        self.require(self.trials)
        return pd.read_csv(self.trials)

    def require(self, target: Path) -> None:
        if not self.path.is_dir():
            raise UsageError(f"run folder {str(self.path)!r} does not exist")
        if not target.is_file():
            raise UsageError(f"run folder {str(self.path)!r} has no {target.name}; is the run complete?")
