"""Proxy accuracy of a point: train it once, or over seeds. Used by search, family and compare.

One place turns multipliers into a proxy run (:func:`train_point`: the recipe's proxy width and
resolution applied, then :func:`scaler.train.train`), and one place repeats it over seeds and
summarises (:class:`ProxyTrainer`), so every command judges a network the same way.
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch

from scaler.baselines import Baseline
from scaler.data import Dataset, load_dataset
from scaler.devices import resolve_device
from scaler.errors import UsageError
from scaler.options import DEFAULT_SOURCE
from scaler.recipe import ProxyRecipe, check_preset, proxy_rounding, proxy_settings, resolve_recipe
from scaler.scaling import Multipliers
from scaler.train import TrainingFailed, TrainResult, train


@functools.lru_cache(maxsize=4)
def dataset(spec: str, seed: int = 0) -> Dataset:
    """The data set ``spec`` with split seed ``seed``, loaded once per process (its resized copies are cached)."""
    return load_dataset(spec, seed=seed)


def train_point(baseline: Baseline | str, multipliers: Multipliers, *, data: Dataset, recipe: ProxyRecipe,
                device: str | torch.device = "cpu", seed: int | None = None,
                on_epoch: Callable[[int, float], None] | None = None) -> TrainResult:
    """One proxy run of the network at ``multipliers``: proxy width and resolution applied, then trained."""
    width, depth, px = proxy_settings(multipliers, recipe)
    with proxy_rounding(recipe):
        return train(baseline, width=width, depth=depth, resolution_px=px, data=data, recipe=recipe, device=device,
                     on_epoch=on_epoch, seed=seed)


@dataclass(frozen=True)
class ProxyTraining:
    """What `--train` and `scaler compare` train with: data, recipe, seeds, device."""

    data: str = DEFAULT_SOURCE
    preset: str = "default"
    seeds: int = 2
    seed: int = 0
    recipe: dict | None = None  # overrides of the preset's fields (a run's config["recipe"])

    def __post_init__(self) -> None:
        if not isinstance(self.seeds, int) or self.seeds < 1:
            raise UsageError(f"seeds must be a positive integer, got {self.seeds!r}")
        check_preset(self.preset)

    def as_dict(self) -> dict:
        return asdict(self)


class ProxyTrainer:
    """Loads the data once and trains networks under one recipe and seeds.

    With a ``log`` (:class:`scaler.train_log.TrainingLog`) every finished run is recorded in the
    run folder's study and reused when the same network is asked for again: a stopped
    ``scaler family --train`` or ``scaler compare`` resumes instead of starting over.
    """

    def __init__(self, spec: ProxyTraining, device: str | torch.device | None, log=None) -> None:
        self.spec = spec
        self.device = resolve_device(device)
        self.dataset = dataset(spec.data)
        self.log = log
        self.calls = 0  # networks asked for so far: the index of the next one's runs

    def accuracy(self, baseline: Baseline, multipliers: Multipliers, on_epoch: Callable | None = None) -> dict:
        """Proxy accuracy (0..1) over the seeds: mean, sample std, count, seconds; a failure recorded."""
        recipe = resolve_recipe(self.spec.preset, baseline, self.spec.recipe)
        index, self.calls = self.calls, self.calls + 1
        identity = self.log.identity(baseline.name, dataclasses.asdict(multipliers), dataclasses.asdict(recipe),
                                     self.dataset.fingerprint) if self.log else ""
        accuracies, seconds, failure = [], 0.0, None
        for i in range(self.spec.seeds):
            key = ("curve", index, self.spec.seed + i)
            found = self.log.done(key, identity) if self.log else None
            if found is None:
                try:
                    result = train_point(baseline, multipliers, data=self.dataset, recipe=recipe, device=self.device,
                                         seed=self.spec.seed + i, on_epoch=on_epoch)
                except TrainingFailed as exc:
                    failure = str(exc)
                    break
                found = {"accuracy": float(result.accuracy), "seconds": float(result.seconds)}
                if self.log:
                    self.log.record(key, identity, found["accuracy"], found["seconds"])
            accuracies.append(found["accuracy"])
            seconds += found["seconds"]
        return summarize(accuracies) | {"train_seconds": seconds, "train_failure": failure}


def summarize(accuracies: Sequence[float]) -> dict:
    """Mean and sample standard deviation (None for fewer than two values) of accuracies."""
    n = len(accuracies)
    return {
        "accuracy_mean": statistics.fmean(accuracies) if n else None,
        "accuracy_std": statistics.stdev(accuracies) if n > 1 else None,
        "accuracy_n": n,
    }
