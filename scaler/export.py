"""ONNX export of a family member, rebuilt from its family.json entry alone."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from scaler.errors import UsageError
from scaler.family_files import build_member


def export_onnx(entry: dict, path: str | Path, batch_size: int = 1, opset: int | None = None) -> Path:
    """Export a member to ONNX with a dynamic batch axis (input 'image', output 'logits')."""
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
    except ImportError:
        raise UsageError("ONNX export needs the onnx package: pip install 'scaler[onnx]'") from None
    model = build_member(entry).eval()
    px = int(entry["input_px"])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = torch.zeros(batch_size, 3, px, px)
    kwargs = {"opset_version": opset} if opset else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation chatter
        torch.onnx.export(
            model, (x,), str(path), dynamo=False, input_names=["image"], output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, **kwargs,
        )
    return path
