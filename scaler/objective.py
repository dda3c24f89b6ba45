"""The objective a backend runs: one proxy training run of one (stage, point, seed).

:func:`evaluate_point` is a plain function from a job description (a dict of plain values) to
results, with no hidden state, so any backend — this process through Optuna, a Ray Tune worker,
another machine — runs it unchanged. :class:`OptunaObjective` adapts it to an Optuna trial:
it records the candidate on the trial, reports every validated epoch (for pruners) and logs progress.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import optuna

from scaler.progress import Progress
from scaler.proxy import dataset, train_point
from scaler.recipe import recipe_from_dict
from scaler.scaling import Coefficients
from scaler.search_space import Candidate
from scaler.stages import STAGES
from scaler.study import MAX_INDEX, Key
from scaler.train import TrainingFailed

# What a finished run records of train()'s result, whichever backend ran it.
RESULT_ATTRS = ("seconds", "images_seen", "images_per_s", "params")
RETRY_NOTE = " (a resume trains it again)"  # after the reason of a failure that may pass (TrainingFailed.retry)


@dataclass(frozen=True)
class Planned:
    """What a key of a stage trains: the network (its coefficients at phi = 1) and the stage's recipe."""

    cand: Candidate
    recipe: dict  # scaler.recipe.ProxyRecipe fields
    label: str  # how progress lines name it
    # The network's own stage list (``scaler nas``: each point is an architecture), else the search's baseline.
    baseline: dict | None = None

    def attrs(self, stage: str) -> dict:
        """What a trial records of its network, whichever backend ran it; written in this order, so a
        record with ``label`` is whole (:func:`scaler.results.recorded_proxy`)."""
        return {**self.cand.as_dict(), "stage": stage, "label": self.label}


def make_job(config, planned: Planned, seed_index: int) -> dict:
    """The job of one run of a search: plain values only, so it can travel to a worker.

    The data's split always follows the screen recipe's seed (one data set per search); the
    run's seed is its stage recipe's seed plus the seed index, so seed i pairs across points.
    """
    return {
        "baseline": planned.baseline or config.baseline, "coefficients": list(planned.cand.proxy_point.as_tuple()),
        "recipe": planned.recipe, "data": config.data, "data_seed": config.recipe.get("seed", 0),
        "seed": planned.recipe.get("seed", 0) + seed_index, "device": config.device,
    }


def evaluate_point(job: dict, on_epoch: Callable[[int, float], None] | None = None) -> dict:
    """Proxy-train one candidate once. ``job``: baseline, coefficients [alpha, beta, gamma], recipe, data, seed, device.

    The proxy is the network at phi = 1 of ``coefficients``: the candidate's proxy point (its own
    when matched apart, :attr:`scaler.search_space.Candidate.proxy_point`). Raises
    :class:`~scaler.train.TrainingFailed` when the run fails (divergence, an error in the model,
    out of memory); whatever ``on_epoch`` raises (``optuna.TrialPruned``) propagates.
    """
    recipe = recipe_from_dict(job["recipe"])
    multipliers = Coefficients(*job["coefficients"]).multipliers(1.0)
    data = dataset(job["data"], job.get("data_seed", recipe.seed))
    result = train_point(job["baseline"], multipliers, data=data, recipe=recipe, device=job["device"],
                         seed=job["seed"], on_epoch=on_epoch)
    return dataclasses.asdict(result)


class OptunaObjective:
    """Maps a queued trial to a job for :func:`evaluate_point`, reports epochs, and logs progress."""

    def __init__(self, config, plan: dict[Key, Planned], progress: Progress) -> None:
        self.config, self.plan, self.progress = config, plan, progress
        data = dataset(config.data, config.recipe.get("seed", 0))
        self.data = data

    def __call__(self, trial: optuna.Trial) -> float:
        key = (trial.suggest_categorical("stage", list(STAGES)), trial.suggest_int("point", 0, MAX_INDEX),
               trial.suggest_int("seed", 0, MAX_INDEX))
        planned = self.plan[key]
        images_per_epoch = len(self.data.subset_indices(planned.recipe.get("subset")))
        # A retry inherits the old run's attributes: clear the ones that mark it cut short.
        for name, value in {**planned.attrs(key[0]), "interrupted": False, "retry": False, "reason": ""}.items():
            trial.set_user_attr(name, value)
        label = self.progress.label(planned.label, key)
        accuracies: list[float] = []

        def on_epoch(epoch: int, accuracy: float) -> None:  # epochs count from 1
            accuracies.append(accuracy)
            trial.set_user_attr("val_accuracies", accuracies)
            trial.set_user_attr("images_seen", epoch * images_per_epoch)  # kept if pruned
            trial.report(accuracy, epoch)
            self.progress.epoch(label, epoch, accuracy)
            if trial.should_prune():
                trial.set_user_attr("reason", f"pruned at epoch {epoch} (val {accuracy:.1%})")
                raise optuna.TrialPruned()

        try:
            if planned.cand.reason:
                raise TrainingFailed(planned.cand.reason)
            result = evaluate_point(make_job(self.config, planned, key[2]), on_epoch)
        except TrainingFailed as exc:
            reason = str(exc) + (RETRY_NOTE if exc.retry else "")
            trial.set_user_attr("reason", reason)
            trial.set_user_attr("retry", exc.retry)
            self.progress.failed(label, "FAILED", reason)
            raise
        except KeyboardInterrupt:  # Optuna records the run as failed; the next search retries it
            trial.set_user_attr("interrupted", True)
            trial.set_user_attr("reason", "interrupted")
            raise
        for name in (*RESULT_ATTRS, "seed"):
            trial.set_user_attr(name, result[name])
        trial.set_user_attr("input_px_proxy", result.get("resolution"))
        self.progress.done(label, planned.cand.kind, result["accuracy"], result["seconds"])
        return result["accuracy"]
