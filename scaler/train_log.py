"""Proxy runs recorded as trials of a study in a run folder, so that `scaler family --train` and
`scaler compare` resume where they stopped instead of training everything again.

Each run is a trial keyed like a search's ("curve", network index, seed) in the study ``train`` of
the folder's ``study.db``. A finished run is reused only when it trained the same network under
the same recipe on the same data (its attributes say so); anything else is trained again.
"""

from __future__ import annotations

import hashlib
import json

import optuna

from scaler.run_folder import RunFolder
from scaler.study import Key, key_distributions, key_params, latest_by_key

STUDY = "train"


def _fingerprint(**what) -> str:
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


class TrainingLog:
    """Finished proxy runs of a run folder, by key; records new ones as they finish."""

    def __init__(self, run: RunFolder) -> None:
        run.create()
        run.record(run.storage_file)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(study_name=STUDY, storage=run.storage_url, direction="maximize",
                                         load_if_exists=True)
        self._latest = latest_by_key(self.study.get_trials(deepcopy=False))

    def identity(self, baseline: str, multipliers, recipe: dict, data: str) -> str:
        return _fingerprint(baseline=baseline, multipliers=multipliers, recipe=recipe, data=data)

    def done(self, key: Key, identity: str) -> dict | None:
        """The recorded result of ``key`` when it trained the same thing, else None."""
        t = self._latest.get(key)
        if t is None or t.user_attrs.get("identity") != identity or t.state != optuna.trial.TrialState.COMPLETE:
            return None
        return {"accuracy": t.value, "seconds": t.user_attrs.get("seconds", 0.0)}

    def record(self, key: Key, identity: str, accuracy: float, seconds: float) -> None:
        trial = optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE, value=accuracy, params=key_params(key),
            distributions=key_distributions(), user_attrs={"identity": identity, "seconds": seconds},
        )
        self.study.add_trial(trial)
