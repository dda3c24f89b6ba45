"""Evaluating a proxy: batch-norm statistics re-estimated for the current weights, then top-1 accuracy."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

EVAL_BATCH = 500
BN_IMAGES = 500  # training images that re-estimate batch-norm statistics before each evaluation


class NonFiniteOutputs(Exception):
    """The model's outputs became NaN or infinite in evaluation (the training run turns it into a failure)."""


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
    # Train mode draws dropout and stochastic-depth masks from the global generator: a forked one
    # keeps training's random stream the same whether or how often the run validates (eval_every).
    devices = [x.device.index if x.device.index is not None else torch.cuda.current_device()] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad(), autocast:
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
            if not torch.isfinite(logits).all():  # argmax of NaNs is 0: it would pass for a (poor) accuracy
                raise NonFiniteOutputs("the model's outputs became NaN or infinite in evaluation; try a lower lr")
            correct += (logits.argmax(1).cpu() == y[start : start + EVAL_BATCH]).sum().item()  # y on the CPU
    return correct / max(1, len(y))
