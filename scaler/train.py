"""The proxy task: a short, seeded training run that judges one scaled candidate.

Every candidate of a search is trained with the same :class:`~scaler.recipe.ProxyRecipe` on the
same in-memory data; the recipe's *proxy width* multiplies every candidate's width and its *proxy
resolution* is the input size at resolution multiplier 1, so a search can afford many candidates
while keeping their ratios of cost. The loop is plain PyTorch: SGD with Nesterov momentum, linear
warm-up then cosine decay per step, label smoothing, batch-tensor augmentation, channels_last,
bf16 autocast on a GPU. On a CPU a seed makes the run repeatable to the bit.

Example::

    from scaler.data import load_dataset
    from scaler.recipe import PRESETS
    from scaler.train import train
    result = train("resnet18", width=0.25, depth=1.0, resolution_px=32, data=load_dataset("animals"),
                   recipe=PRESETS["smoke"])
    result.accuracy, result.images_per_s

Note:
    ``on_epoch(epoch, val_accuracy)`` is called after every validated epoch (``ProxyRecipe.eval_every``); whatever it raises (for example
    ``optuna.TrialPruned``) leaves :func:`train` unchanged. Every failure of the run itself —
    building the model, moving it or the data to the device, a loss that becomes NaN or explodes,
    an exception inside the model, running out of memory — raises :class:`TrainingFailed` with a
    one-line reason.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from scaler.baselines import Baseline, get_baseline
from scaler.data import Dataset, augment, load_dataset, resize_pad
from scaler.devices import autocast, release_memory, set_threads
from scaler.errors import UsageError
from scaler.evaluation import NonFiniteOutputs, evaluate, recalibrate_bn
from scaler.initialisation import init_classifier, param_groups, zero_init_residuals
from scaler.options import DEFAULT_SOURCE
from scaler.recipe import ProxyRecipe, resolve_recipe
from scaler.scaling import Multipliers

# A loss above this many times max(first loss, ln classes) counts as exploded.
EXPLODE_FACTOR = 10.0
MEMORY_SHARE = 0.8  # the resized data may take at most this share of the machine's memory


class TrainingFailed(Exception):
    """The proxy run could not finish; the message is one line saying why. ``retry``: the cause may
    pass (out of memory: other processes may hold it), so a resume trains the run again."""

    def __init__(self, message: str, *, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry


@dataclass
class TrainResult:
    """What one proxy run measured."""

    accuracy: float  # final validation accuracy, 0..1
    val_accuracies: list[float]  # after each epoch of val_epochs (ProxyRecipe.eval_every; the last always)
    train_losses: list[float]  # mean training loss per epoch
    seconds: float  # wall time of the whole run, evaluation included
    images_per_s: float  # training images per second (training steps only)
    images_seen: int
    epochs_run: int
    params: int
    seed: int
    resolution: int = 0
    width: float = 0.0
    depth: float = 0.0
    device: str = "cpu"
    epoch_seconds: list[float] = field(default_factory=list)
    val_epochs: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class EpochStats:
    """Progress after one epoch, for printing."""

    epoch: int
    epochs: int
    train_loss: float
    val_accuracy: float | None  # None: not validated after this epoch (ProxyRecipe.eval_every)
    images_per_s: float
    seconds: float


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """Linear warm-up over ``warmup_steps`` (from base/warmup to base), then cosine to 0 at ``total_steps``."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        "out of memory" in text or "can't allocate memory" in text or isinstance(exc, MemoryError)
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def train(
    baseline: Baseline | str,
    *,
    width: float,
    depth: float,
    resolution_px: int,
    data: Dataset | str | None = None,
    recipe: ProxyRecipe | None = None,
    device: str | torch.device = "cpu",
    on_epoch: Callable[[int, float], None] | None = None,
    seed: int | None = None,
    progress: Callable[[EpochStats], None] | None = None,
) -> TrainResult:
    """Train ``baseline`` at (width, depth) on ``resolution_px`` inputs with ``recipe``; return what it measured.

    ``width`` and ``depth`` go to ``baseline.build`` as they are (apply the proxy width first, as
    :func:`scaler.recipe.proxy_settings` does). ``seed`` overrides ``recipe.seed``.
    ``on_epoch(epoch, val_acc)`` runs after every validated epoch (epochs count from 1) and may raise to stop
    the run; ``progress`` receives an :class:`EpochStats` for printing.

    Raises:
        TrainingFailed: the model cannot be built or moved, the data does not fit, NaN or exploding
            loss, an exception in the model, out of memory.
        UsageError: bad arguments (unknown baseline or data, non-positive sizes).
    """
    baseline = get_baseline(baseline)
    recipe = recipe or resolve_recipe("default", baseline)
    if data is None or isinstance(data, str):
        data = load_dataset(data or DEFAULT_SOURCE)
    seed = recipe.seed if seed is None else int(seed)
    device = torch.device(device)
    px = int(resolution_px)
    if px < 1:
        raise UsageError(f"resolution must be a positive number of pixels, got {resolution_px}")
    Multipliers(width=width, depth=depth)  # positive and finite
    set_threads()
    torch.set_flush_denormal(True)  # tiny weights late in a cosine schedule: denormals slow a CPU many-fold
    start = time.perf_counter()
    run = _guarded(lambda: _Run(baseline, width, depth, px, data, recipe, device, seed), px, width, depth, device, recipe)
    try:
        for epoch in range(1, recipe.epochs + 1):
            epoch_start = time.perf_counter()
            validate = epoch == recipe.epochs or (recipe.eval_every > 0 and epoch % recipe.eval_every == 0)
            mean_loss, accuracy = _guarded(lambda e=epoch, v=validate: run.epoch(e, v), px, width, depth, device, recipe)
            run.losses.append(mean_loss)
            if accuracy is not None:
                run.val_accs.append(accuracy)
                run.val_epochs.append(epoch)
            run.epoch_seconds.append(time.perf_counter() - epoch_start)
            if progress is not None:
                rate = run.steps_per_epoch * run.batch / max(1e-9, run.train_seconds / epoch)
                progress(EpochStats(epoch, recipe.epochs, mean_loss, accuracy, rate, run.epoch_seconds[-1]))
            if on_epoch is not None and accuracy is not None:
                on_epoch(epoch, accuracy)  # may raise (pruning): propagates as it is
        return TrainResult(
            accuracy=run.val_accs[-1], val_accuracies=run.val_accs, train_losses=run.losses,
            seconds=time.perf_counter() - start, images_per_s=run.images_seen / max(1e-9, run.train_seconds),
            images_seen=run.images_seen, epochs_run=len(run.losses), params=run.params, seed=seed,
            resolution=px, width=float(width), depth=float(depth), device=str(device), epoch_seconds=run.epoch_seconds,
            val_epochs=run.val_epochs,
        )
    finally:
        run = None  # the model, optimizer and data on the device: freed before their cached memory is released
        release_memory(device)


def _guarded(step: Callable, px: int, width: float, depth: float, device: torch.device, recipe: ProxyRecipe):
    """Run one part of a training run; any failure of it becomes a one-line TrainingFailed."""
    try:
        return step()
    except (TrainingFailed, UsageError):
        raise
    except NonFiniteOutputs as exc:
        raise TrainingFailed(str(exc)) from exc
    except Exception as exc:
        if _is_oom(exc):
            raise TrainingFailed(
                f"out of memory at batch {recipe.batch_size}, {px} px, width {width:.3g}, depth {depth:.3g} on {device}"
                + ("; other processes on the GPU hold memory too: run fewer at once" if device.type == "cuda" else ""),
                retry=True,
            ) from exc
        raise TrainingFailed(f"the model failed in training: {_first_line(exc)}") from exc


class _Run:
    """The state of one training run: model, optimizer, data on the device, and what it measured."""

    def __init__(self, baseline: Baseline, width: float, depth: float, px: int, data: Dataset,
                 recipe: ProxyRecipe, device: torch.device, seed: int) -> None:
        self.recipe, self.device, self.data = recipe, device, data
        check_memory(data, px)
        torch.manual_seed(seed)  # initialisation, and dropout / stochastic depth inside the model
        try:
            model = baseline.build(width=width, depth=depth, num_classes=data.num_classes)
        except UsageError as exc:
            raise TrainingFailed(str(exc)) from exc
        self.params = sum(p.numel() for p in model.parameters())
        if recipe.zero_init_residual:
            zero_init_residuals(model)
        if recipe.head_init_std is not None:
            init_classifier(model, recipe.head_init_std)
        self.model = model.to(device=device, memory_format=torch.channels_last)
        self.autocast = autocast(device)
        # In-memory data: on a GPU the whole (resized) set moves there once; no loader workers.
        self.train_x = data.train.images_at(px).to(device)
        self.val_x = data.val.images_at(px).to(device)
        self.train_y = data.train.labels.to(device)
        self.idx = data.subset_indices(recipe.subset)
        n = len(self.idx)
        self.batch = min(recipe.batch_size, n)
        self.steps_per_epoch = max(1, n // self.batch)  # the last partial batch is dropped: fixed shapes, no BN on 1 image
        self.total_steps = self.steps_per_epoch * recipe.epochs
        self.warmup_steps = int(round(recipe.warmup_epochs * self.steps_per_epoch))
        self.base_lr = recipe.lr * self.batch / recipe.batch_size  # linear scaling when the subset is smaller than a batch
        self.optimizer = torch.optim.SGD(
            param_groups(self.model, recipe.weight_decay), lr=self.base_lr, momentum=recipe.momentum,
            nesterov=recipe.nesterov and recipe.momentum > 0,
        )
        self.gen = torch.Generator().manual_seed(seed)
        self.pad = resize_pad(px)
        self.expand = data.channels == 1  # grey data feeds the 3-channel stems of torchvision's networks
        self.step, self.images_seen, self.train_seconds = 0, 0, 0.0
        self.limit: float | None = None
        self.val_accs: list[float] = []
        self.val_epochs: list[int] = []
        self.losses: list[float] = []
        self.epoch_seconds: list[float] = []

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        if self.expand:
            x = x.expand(-1, 3, -1, -1)
        return x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)

    def epoch(self, epoch: int, validate: bool = True) -> tuple[float, float | None]:
        """Train one epoch, then (when ``validate``) evaluate: (mean training loss, validation accuracy or None)."""
        start = time.perf_counter()
        self.model.train()
        order = self.idx[torch.randperm(len(self.idx), generator=self.gen)]
        loss_sum = torch.zeros((), device=self.device)
        for i in range(self.steps_per_epoch):
            loss_sum += self._step(order[i * self.batch : (i + 1) * self.batch], epoch)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.train_seconds += time.perf_counter() - start
        mean_loss = (loss_sum / self.steps_per_epoch).item()
        if not math.isfinite(mean_loss):
            raise TrainingFailed(f"loss became {mean_loss} in epoch {epoch}; try a lower lr")
        if not validate:
            return mean_loss, None
        recalibrate_bn(self.model, self.train_x, self.idx, self.prepare, self.autocast)
        return mean_loss, evaluate(self.model, self.val_x, self.data.val.labels, self.prepare, self.autocast)

    def _step(self, b: torch.Tensor, epoch: int) -> torch.Tensor:
        recipe = self.recipe
        b = b.to(self.device, non_blocking=True)
        x = self.train_x[b]
        if recipe.augment:
            x = augment(x, self.gen, self.pad, self.data.flip)
        x, y = self.prepare(x), self.train_y[b].to(self.device, non_blocking=True)
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.step, self.total_steps, self.warmup_steps, self.base_lr)
        with self.autocast:
            loss = F.cross_entropy(self.model(x), y, label_smoothing=recipe.label_smoothing)
        # On a GPU reading the loss stalls the queue: check it every 25 steps only.
        if self.device.type == "cpu" or self.step % 25 == 0:
            self._check_loss(loss.item(), epoch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        self.images_seen += len(b)
        return loss.detach().float()

    def _check_loss(self, value: float, epoch: int) -> None:
        if self.limit is None:
            self.limit = EXPLODE_FACTOR * max(value, math.log(max(2, self.data.num_classes)))
        if not math.isfinite(value):
            raise TrainingFailed(f"loss became {value} at epoch {epoch}, step {self.step + 1}; try a lower lr")
        if value > self.limit:
            raise TrainingFailed(
                f"loss exploded to {value:.3g} (> {self.limit:.3g}) at epoch {epoch}, step {self.step + 1}; try a lower lr"
            )


def check_memory(data: Dataset, px: int, error: type[Exception] = TrainingFailed) -> None:
    """Refuse, before allocating, resized data that would not fit in this machine's memory: a failed run,
    or (``error=UsageError``, for a size the user asked for before anything runs) bad input."""
    need = 4 * (len(data.train) + len(data.val)) * data.channels * px * px  # float32 copies at px
    have = _machine_memory()
    if have and need > MEMORY_SHARE * have:
        raise error(
            f"the data at {px} px needs {need / 2**30:.1f} GiB as float32, more than this machine's "
            f"{have / 2**30:.1f} GiB allows; lower the proxy resolution or the data's size"
        )


def _machine_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not on a POSIX system
        return None
