"""What a run folder holds, read for a report: whichever of its files exist, and notes on those that could not be read."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from scaler.errors import UsageError
from scaler.run_folder import RunFolder


@dataclass
class RunData:
    """The files of one run folder that exist, read; ``notes`` says what could not be read."""

    name: str
    folder: RunFolder
    config: dict | None = None
    trials: pd.DataFrame | None = None
    curves: pd.DataFrame | None = None
    coefficients: dict | None = None
    family: dict | None = None
    compare: pd.DataFrame | None = None
    compare_settings: dict | None = None
    study: object | None = None  # optuna.Study
    notes: list[str] = field(default_factory=list)

    @property
    def baseline(self) -> str:
        for source in (self.config, self.family, self.compare_settings, self.coefficients):
            if source and source.get("baseline"):
                return str(source["baseline"])
        return "?"


def load_run(run: RunFolder) -> RunData:
    """Read what exists in a run folder; UsageError if the folder is missing or holds nothing to report."""
    run.require_folder()
    data = RunData(name=run.path.resolve().name, folder=run)
    data.config = _json(run.config, data)
    data.coefficients = _json(run.coefficients, data)
    data.family = _json(run.family_json, data)
    data.compare_settings = _json(run.path / "compare.json", data)
    data.trials = _csv(run.trials, data)
    data.curves = _csv(run.curves, data)
    data.compare = _csv(run.compare, data)
    data.study = _study(run, data)
    if data.family is not None and not isinstance(data.family.get("members"), list):
        data.notes.append(f"{run.family_json.name} has no members list; left out")
        data.family = None
    if all(x is None for x in (data.config, data.trials, data.coefficients, data.family, data.compare)):
        if data.notes:  # the files are there but damaged: say which, not that the folder is empty
            raise UsageError(f"run folder {str(run.path)!r} has nothing readable to report: {'; '.join(data.notes)}")
        raise UsageError(
            f"run folder {str(run.path)!r} has nothing to report (no config.json, trials.csv, family.json or compare.csv)"
        )
    return data


def _json(path: Path, data: RunData) -> dict | None:
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, OSError) as exc:
        data.notes.append(f"{path.name} could not be read ({type(exc).__name__}); left out")
        return None
    if not isinstance(value, dict):
        data.notes.append(f"{path.name} is not a JSON object; left out")
        return None
    return value


def _csv(path: Path, data: RunData) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as exc:
        data.notes.append(f"{path.name} could not be read ({type(exc).__name__}); left out")
        return None


def _study(run: RunFolder, data: RunData):
    """The run's own Optuna study (its study.db), opened read-only: a report never writes to a database.

    A study in another storage (``--storage``) is left out: the report would have to connect to a
    database that a folder's config.json names, which is not the report's to decide.
    """
    if (data.config or {}).get("storage"):
        data.notes.append("the study lives in an external storage (--storage); Optuna plots left out")
        return None
    if not run.storage_file.is_file() or run.storage_file.is_symlink():
        return None
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///file:{run.storage_file.resolve()}?mode=ro&uri=true"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.load_study(study_name=run.study_name(), storage=url)
    except Exception as exc:  # not an Optuna database, another study name: report without it
        data.notes.append(f"Optuna study could not be opened ({type(exc).__name__}); Optuna plots left out")
        return None
