"""The proxy task: a short, seeded training run that judges one scaled candidate.

Every candidate of a search is trained with the same :class:`ProxyRecipe` on the same in-memory
data; the recipe's *proxy width* multiplies every candidate's width and its *proxy resolution* is
the input size at resolution multiplier 1, so a search can afford many candidates while keeping
their ratios of cost. The loop is plain PyTorch: SGD with Nesterov momentum, linear warm-up then
cosine decay per step, label smoothing, batch-tensor augmentation, channels_last, bf16 autocast on
a GPU. On a CPU a seed makes the run repeatable to the bit.

Example::

    from scaler.data import load_dataset
    from scaler.train import PRESETS, train
    result = train("resnet18", 0.25, 1.0, 32, data=load_dataset("animals"), recipe=PRESETS["smoke"])
    result.accuracy, result.images_per_s

Note:
    ``on_epoch(epoch, val_accuracy)`` is called after every epoch; whatever it raises (for example
    ``optuna.TrialPruned``) leaves :func:`train` unchanged. Failures of the run itself — a loss that
    becomes NaN or explodes, an exception inside the model, running out of memory — raise
    :class:`TrainingFailed` with a one-line reason.
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
from torch import nn

from scaler.baselines import Baseline, get_baseline
from scaler.data import DEFAULT_SOURCE, Dataset, augment, load_dataset, resize_pad
from scaler.errors import UsageError
from scaler.scaling import Multipliers, round_resolution

# A loss above this many times max(first loss, ln classes) counts as exploded.
EXPLODE_FACTOR = 10.0
EVAL_BATCH = 500
BN_IMAGES = 500  # training images that re-estimate batch-norm statistics before each evaluation


class TrainingFailed(Exception):
    """The proxy run could not finish; the message is one line saying why."""


@dataclass(frozen=True)
class ProxyRecipe:
    """How one proxy training run goes. Defaults are calibrated on ``animals`` (see README).

    Args:
        epochs: passes over the training subset.
        batch_size: images per step; ``lr`` is the rate at this batch size.
        lr, momentum, nesterov, weight_decay: SGD; weight decay on conv and linear weights only.
        warmup_epochs: linear warm-up from 0 to ``lr``, then cosine decay to 0, per step.
        label_smoothing: for the cross-entropy loss.
        subset: training images used (a stratified prefix of the training split); None for all.
        proxy_width: every candidate's width multiplier is multiplied by this.
        proxy_resolution: input pixels at resolution multiplier 1.
        augment: random crop (padding of 1/8 of the side) and, where the data allows, flips.
        zero_init_residual: start each residual block of torchvision's ResNets, MobileNets and
            EfficientNets as the identity (:func:`zero_init_residuals`): deep narrow proxies then
            train at once instead of idling for epochs.
        head_init_std: when set, the classifier (the model's last ``nn.Linear``) starts from
            N(0, std²) with zero bias, as pycls's ``fc_init_std``; None keeps the builder's.
            EfficientNets set it (``Baseline.proxy_recipe``): torchvision draws their classifier
            from ±1/sqrt(classes), meant for 1,000 classes; with 10 the proxy starts at loss 3.6
            and its accuracy swung 13 points between seeds.
        seed: initialisation, batch order and augmentation.
    """

    epochs: int = 8
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    subset: int | None = 2000
    proxy_width: float = 0.25
    proxy_resolution: int = 24
    augment: bool = True
    zero_init_residual: bool = True
    head_init_std: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            ("epochs", self.epochs >= 1 and isinstance(self.epochs, int)),
            ("batch_size", self.batch_size >= 1 and isinstance(self.batch_size, int)),
            ("lr", self.lr > 0),
            ("momentum", 0 <= self.momentum < 1),
            ("weight_decay", self.weight_decay >= 0),
            ("warmup_epochs", 0 <= self.warmup_epochs <= self.epochs),
            ("label_smoothing", 0 <= self.label_smoothing < 1),
            ("subset", self.subset is None or self.subset >= 1),
            ("proxy_width", self.proxy_width > 0),
            ("proxy_resolution", self.proxy_resolution >= 1),
            ("head_init_std", self.head_init_std is None or self.head_init_std >= 0),
        ]
        bad = [name for name, ok in checks if not ok]
        if bad:
            values = ", ".join(f"{n}={getattr(self, n)!r}" for n in bad)
            raise UsageError(f"invalid proxy recipe: {values}")

    def replace(self, **changes) -> ProxyRecipe:
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, ProxyRecipe] = {
    # A few seconds per candidate: for trying the tool, and for tests of the search.
    "smoke": ProxyRecipe(epochs=1, subset=1000, proxy_width=0.125, proxy_resolution=24, warmup_epochs=0.2),
    "default": ProxyRecipe(),
    # Four times the default's steps: the yardstick of benchmarks/proxy_fidelity.py.
    "long": ProxyRecipe(epochs=32, warmup_epochs=4.0),
}


def get_recipe(name: str, baseline: Baseline | None = None) -> ProxyRecipe:
    """The preset ``name``, with the fields ``baseline`` trains better with (``Baseline.proxy_recipe``)."""
    if name not in PRESETS:
        raise UsageError(f"unknown proxy preset {name!r} (known: {', '.join(PRESETS)})")
    recipe = PRESETS[name]
    if baseline is not None and baseline.proxy_recipe:
        try:
            recipe = recipe.replace(**baseline.proxy_recipe)
        except TypeError as exc:
            raise UsageError(f"baseline {baseline.name!r}: bad proxy_recipe {baseline.proxy_recipe!r}: {exc}") from None
    return recipe


def proxy_settings(multipliers: Multipliers, recipe: ProxyRecipe) -> tuple[float, float, int]:
    """(width, depth, pixels) at which the proxy trains a candidate with these multipliers."""
    return (
        multipliers.width * recipe.proxy_width,
        multipliers.depth,
        round_resolution(recipe.proxy_resolution * multipliers.resolution),
    )


@dataclass
class TrainResult:
    """What one proxy run measured."""

    accuracy: float  # final validation accuracy, 0..1
    val_accuracies: list[float]
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

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class EpochStats:
    """Progress after one epoch, for printing."""

    epoch: int
    epochs: int
    train_loss: float
    val_accuracy: float
    images_per_s: float
    seconds: float


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """Linear warm-up over ``warmup_steps`` (from base/warmup to base), then cosine to 0 at ``total_steps``."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


_THREADS_SET = False


def set_threads() -> int:
    """Use every core this process may run on (once; respects OMP_NUM_THREADS when set)."""
    global _THREADS_SET
    if not _THREADS_SET:
        if not os.environ.get("OMP_NUM_THREADS"):
            try:
                cores = len(os.sched_getaffinity(0))
            except AttributeError:  # not on Linux
                cores = os.cpu_count() or 1
            torch.set_num_threads(max(1, cores))
        _THREADS_SET = True
    return torch.get_num_threads()


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


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def zero_init_residuals(model: nn.Module) -> int:
    """Start every residual block of torchvision's ResNets, MobileNets and EfficientNets as the identity.

    Zeroes the scale of the last batch-norm on each block's residual branch (Goyal et al. 2017;
    torchvision's ``zero_init_residual``, timm's ``zero_init_last``, pycls's ``zero_init_final_gamma``).
    Returns how many blocks it changed; other models are left as built.
    """
    from torchvision.models import efficientnet, mobilenetv2, mobilenetv3, resnet

    inverted = (mobilenetv2.InvertedResidual, mobilenetv3.InvertedResidual, efficientnet.MBConv, efficientnet.FusedMBConv)
    count = 0
    for m in model.modules():
        if isinstance(m, (resnet.BasicBlock, resnet.Bottleneck)):
            bn = m.bn3 if isinstance(m, resnet.Bottleneck) else m.bn2
        elif isinstance(m, inverted) and m.use_res_connect:  # the projection's batch-norm ends the branch
            bn = [x for x in m.modules() if isinstance(x, nn.BatchNorm2d)][-1]
        else:
            continue
        if bn.weight is not None:
            nn.init.zeros_(bn.weight)
            count += 1
    return count


def init_classifier(model: nn.Module, std: float) -> nn.Linear | None:
    """Draw the last ``nn.Linear`` (the classifier) from N(0, std²), bias 0; returns it (None if none)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        return None
    nn.init.normal_(linears[-1].weight, std=std)
    if linears[-1].bias is not None:
        nn.init.zeros_(linears[-1].bias)
    return linears[-1]


def train(
    baseline: Baseline | str,
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
    :func:`proxy_settings` does). ``seed`` overrides ``recipe.seed``. ``on_epoch(epoch, val_acc)``
    runs after every epoch (epochs count from 1) and may raise to stop the run; ``progress``
    receives an :class:`EpochStats` for printing.

    Raises:
        TrainingFailed: NaN or exploding loss, an exception in the model, out of memory.
        UsageError: bad arguments (unknown baseline or data, non-positive sizes).
    """
    baseline = get_baseline(baseline)
    recipe = recipe or get_recipe("default", baseline)
    if data is None or isinstance(data, str):
        data = load_dataset(data or DEFAULT_SOURCE)
    seed = recipe.seed if seed is None else int(seed)
    device = torch.device(device)
    px = int(resolution_px)
    if px < 1:
        raise UsageError(f"resolution must be a positive number of pixels, got {resolution_px}")
    Multipliers(depth, width, 1.0)  # positive and finite
    set_threads()
    torch.set_flush_denormal(True)  # tiny weights late in a cosine schedule: denormals slow a CPU many-fold
    start = time.perf_counter()

    torch.manual_seed(seed)  # initialisation, and dropout / stochastic depth inside the model
    try:
        model = baseline.build(width, depth, data.num_classes)
    except UsageError as exc:
        raise TrainingFailed(str(exc)) from exc
    params = sum(p.numel() for p in model.parameters())
    if recipe.zero_init_residual:
        zero_init_residuals(model)
    if recipe.head_init_std is not None:
        init_classifier(model, recipe.head_init_std)
    model = model.to(device=device, memory_format=torch.channels_last)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else _nullcontext()

    # In-memory data: on a GPU the whole (resized) set moves there once; no loader workers.
    train_x = data.train.images_at(px).to(device)
    val_x = data.val.images_at(px).to(device)
    idx = data.subset_indices(recipe.subset)
    train_y = data.train.labels.to(device)
    n = len(idx)
    batch = min(recipe.batch_size, n)
    steps_per_epoch = max(1, n // batch)  # the last partial batch is dropped: fixed shapes, no BN on 1 image
    total_steps = steps_per_epoch * recipe.epochs
    warmup_steps = int(round(recipe.warmup_epochs * steps_per_epoch))
    lr_scale = batch / recipe.batch_size  # linear scaling when the subset is smaller than a batch
    optimizer = torch.optim.SGD(
        _param_groups(model, recipe.weight_decay), lr=recipe.lr * lr_scale, momentum=recipe.momentum,
        nesterov=recipe.nesterov and recipe.momentum > 0,
    )
    gen = torch.Generator().manual_seed(seed)
    pad = resize_pad(px)
    channels = data.channels
    expand = channels == 1  # grey data feeds the 3-channel stems of torchvision's networks

    def prepare(x: torch.Tensor) -> torch.Tensor:
        if expand:
            x = x.expand(-1, 3, -1, -1)
        return x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)

    val_accs, losses, epoch_seconds = [], [], []
    train_seconds, images_seen, step, first_loss = 0.0, 0, 0, None
    limit = None
    for epoch in range(1, recipe.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        order = idx[torch.randperm(n, generator=gen)]
        loss_sum = torch.zeros((), device=device)
        try:
            for i in range(steps_per_epoch):
                b = order[i * batch : (i + 1) * batch].to(device, non_blocking=True)
                x = train_x[b]
                if recipe.augment:
                    x = augment(x, gen, pad, data.flip)
                x, y = prepare(x), train_y[b].to(device, non_blocking=True)
                lr = lr_at(step, total_steps, warmup_steps, recipe.lr * lr_scale)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                with autocast:
                    loss = F.cross_entropy(model(x), y, label_smoothing=recipe.label_smoothing)
                value = loss.item() if device.type == "cpu" or step % 25 == 0 else None
                if value is not None:
                    if first_loss is None:
                        first_loss = value
                        limit = EXPLODE_FACTOR * max(first_loss, math.log(max(2, data.num_classes)))
                    if not math.isfinite(value):
                        raise TrainingFailed(f"loss became {value} at epoch {epoch}, step {step + 1}; try a lower lr")
                    if value > limit:
                        raise TrainingFailed(
                            f"loss exploded to {value:.3g} (> {limit:.3g}) at epoch {epoch}, step {step + 1}; try a lower lr"
                        )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach().float()
                step += 1
                images_seen += len(b)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            train_seconds += time.perf_counter() - epoch_start
            mean_loss = (loss_sum / steps_per_epoch).item()
            if not math.isfinite(mean_loss):
                raise TrainingFailed(f"loss became {mean_loss} in epoch {epoch}; try a lower lr")
            recalibrate_bn(model, train_x, idx, prepare, autocast)
            accuracy = evaluate(model, val_x, data.val.labels, prepare, autocast)
        except TrainingFailed:
            raise
        except Exception as exc:
            if _is_oom(exc):
                raise TrainingFailed(
                    f"out of memory at batch {batch}, {px} px, width {width:.3g}, depth {depth:.3g} on {device}"
                ) from exc
            raise TrainingFailed(f"the model failed in training: {_first_line(exc)}") from exc
        losses.append(mean_loss)
        val_accs.append(accuracy)
        epoch_seconds.append(time.perf_counter() - epoch_start)
        if progress is not None:
            progress(EpochStats(epoch, recipe.epochs, mean_loss, accuracy, steps_per_epoch * batch / max(1e-9, train_seconds / epoch), epoch_seconds[-1]))
        if on_epoch is not None:
            on_epoch(epoch, accuracy)  # may raise (pruning): propagates as it is

    return TrainResult(
        accuracy=val_accs[-1],
        val_accuracies=val_accs,
        train_losses=losses,
        seconds=time.perf_counter() - start,
        images_per_s=images_seen / max(1e-9, train_seconds),
        images_seen=images_seen,
        epochs_run=len(val_accs),
        params=params,
        seed=seed,
        resolution=px,
        width=float(width),
        depth=float(depth),
        device=str(device),
        epoch_seconds=epoch_seconds,
    )


def recalibrate_bn(model: nn.Module, x: torch.Tensor, idx: torch.Tensor, prepare: Callable, autocast) -> None:
    """Recompute batch-norm statistics on ``BN_IMAGES`` training images (no augmentation) for the current weights.

    A proxy run is a few hundred steps at a high learning rate: the running averages lag the
    weights so far that validation in eval mode can sit at chance while training loss falls.
    "Precise BN" (Wu & Johnson 2021) replaces them with the true averages before each evaluation.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.train()
    chosen = idx[:BN_IMAGES].to(x.device)
    with torch.no_grad(), autocast:
        for start in range(0, len(chosen), EVAL_BATCH):
            model(prepare(x[chosen[start : start + EVAL_BATCH]]))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, prepare: Callable, autocast) -> float:
    """Top-1 accuracy of ``model`` on float images ``x`` (already at the right size)."""
    model.eval()
    correct = 0
    with torch.inference_mode(), autocast:
        for start in range(0, len(y), EVAL_BATCH):
            logits = model(prepare(x[start : start + EVAL_BATCH]))
            correct += (logits.argmax(1).cpu() == y[start : start + EVAL_BATCH]).sum().item()  # y on the CPU
    return correct / max(1, len(y))


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
