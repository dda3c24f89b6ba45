"""The objective a backend runs: one proxy training run of one (point, seed) pair.

:func:`evaluate_point` is a plain function from a job description (a dict of plain values) to
results, with no hidden state, so any backend — this process through Optuna, a Ray Tune worker,
another machine — runs it unchanged. :class:`OptunaObjective` adapts it to an Optuna trial:
it records the candidate on the trial, reports every epoch (for pruners) and logs progress.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import optuna

from scaler.progress import Progress
from scaler.proxy import dataset, train_point
from scaler.recipe import recipe_from_dict
from scaler.scaling import Coefficients
from scaler.search_space import Candidate
from scaler.train import TrainingFailed

# What a finished run records of train()'s result, whichever backend ran it.
RESULT_ATTRS = ("seconds", "images_seen", "images_per_s", "params")


def make_job(config, coefficients: tuple[float, float, float], seed_index: int) -> dict:
    """The job of one (point, seed) pair of a search: plain values only, so it can travel to a worker."""
    return {
        "baseline": config.baseline, "coefficients": list(coefficients), "recipe": config.recipe,
        "data": config.data, "seed": config.recipe.get("seed", 0) + seed_index, "device": config.device,
    }


def evaluate_point(job: dict, on_epoch: Callable[[int, float], None] | None = None) -> dict:
    """Proxy-train one candidate once. ``job``: baseline, coefficients [alpha, beta, gamma], recipe, data, seed, device.

    The candidate is the network at phi = 1 of its coefficients. Raises
    :class:`~scaler.train.TrainingFailed` when the run fails (divergence, an error in the model,
    out of memory); whatever ``on_epoch`` raises (``optuna.TrialPruned``) propagates.
    """
    recipe = recipe_from_dict(job["recipe"])
    multipliers = Coefficients(*job["coefficients"]).multipliers(1.0)
    data = dataset(job["data"], recipe.seed)
    result = train_point(job["baseline"], multipliers, data=data, recipe=recipe, device=job["device"],
                         seed=job["seed"], on_epoch=on_epoch)
    return dataclasses.asdict(result)


class OptunaObjective:
    """Maps a queued trial to a job for :func:`evaluate_point`, reports epochs, and logs progress."""

    def __init__(self, config, cands: list[Candidate], progress: Progress) -> None:
        self.config, self.cands, self.progress = config, cands, progress
        data = dataset(config.data, config.recipe.get("seed", 0))
        self.images_per_epoch = len(data.subset_indices(config.recipe.get("subset")))

    def __call__(self, trial: optuna.Trial) -> float:
        point = trial.suggest_categorical("point", list(range(len(self.cands))))
        seed = trial.suggest_categorical("seed", list(range(self.config.seeds)))
        cand = self.cands[point]
        # A retry inherits the old run's attributes: clear the ones that mark it cut short.
        for key, value in {**cand.as_dict(), "interrupted": False, "reason": ""}.items():
            trial.set_user_attr(key, value)
        label = self.progress.label(cand.kind, cand.coefficients.as_tuple(), seed)
        accuracies: list[float] = []

        def on_epoch(epoch: int, accuracy: float) -> None:  # epochs count from 1
            accuracies.append(accuracy)
            trial.set_user_attr("val_accuracies", accuracies)
            trial.set_user_attr("images_seen", epoch * self.images_per_epoch)  # kept if pruned
            trial.report(accuracy, epoch)
            self.progress.epoch(label, epoch, accuracy)
            if trial.should_prune():
                trial.set_user_attr("reason", f"pruned at epoch {epoch} (val {accuracy:.1%})")
                raise optuna.TrialPruned()

        try:
            if cand.reason:
                raise TrainingFailed(cand.reason)
            result = evaluate_point(make_job(self.config, cand.coefficients.as_tuple(), seed), on_epoch)
        except TrainingFailed as exc:
            trial.set_user_attr("reason", str(exc))
            self.progress.failed(label, "FAILED", str(exc))
            raise
        except KeyboardInterrupt:  # Optuna records the run as failed; the next search retries it
            trial.set_user_attr("interrupted", True)
            trial.set_user_attr("reason", "interrupted")
            raise
        for key in (*RESULT_ATTRS, "seed"):
            trial.set_user_attr(key, result[key])
        trial.set_user_attr("input_px_proxy", result.get("resolution"))
        self.progress.done(label, cand.kind, result["accuracy"], result["seconds"])
        return result["accuracy"]
