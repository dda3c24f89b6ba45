"""Baselines: networks as functions of their width and depth multipliers.

Every baseline, built-in or the user's, follows one protocol::

    build(width_mult: float, depth_mult: float, num_classes: int) -> torch.nn.Module

plus a base input resolution. Resolution is applied by the data pipeline, never by the model.
A baseline is named by a registered name (``resnet50``), a user's ``module.path:function``, any
callable returning a module (``torchvision.models:regnet_y_400mf``, ``timm:resnet26d``, a class:
scaled by :mod:`~scaler.baselines.any_model`), or the path of an MBConv stage list in JSON
(``baselines/efficientnet_b0.json``).
"""

from scaler.baselines.base import Baseline, BuildFn, Stage
from scaler.baselines.mbconv import builtin_dir
from scaler.baselines.registry import get_baseline, list_baselines, register

__all__ = ["Baseline", "BuildFn", "Stage", "builtin_dir", "get_baseline", "list_baselines", "register"]
