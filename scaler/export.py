"""ONNX export of a family member, rebuilt from its family.json entry alone."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from scaler.errors import UsageError
from scaler.family_files import build_member


def opset_range() -> tuple[int, int]:
    """The opsets torch's exporter takes: its own constants, or a range every torch 2 takes if they move."""
    try:
        from torch.onnx import _constants

        return int(_constants.ONNX_MIN_OPSET), int(_constants.ONNX_MAX_OPSET)
    except (ImportError, AttributeError):
        return 7, 17


def check_opset(opset: int | None) -> None:
    """Checked before a member is built: torch's own error on a bad opset comes after a dump of the whole graph."""
    lo, hi = opset_range()
    if opset is not None and not lo <= opset <= hi:
        raise UsageError(f"--opset must be from {lo} to {hi} (what this torch exports), got {opset}")


def _output_path(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{str(path)!r} is a folder; give the .onnx file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the folder for {str(path)!r}: {exc.strerror or exc}") from None
    return path


def export_onnx(entry: dict, path: str | Path, batch_size: int = 1, opset: int | None = None) -> Path:
    """Export a member to ONNX with a dynamic batch axis (input 'image', output 'logits')."""
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
    except ImportError:
        raise UsageError("ONNX export needs the onnx package: pip install 'scaler[onnx]'") from None
    check_opset(opset)
    path = _output_path(path)
    model = build_member(entry).eval()
    px = int(entry["input_px"])
    x = torch.zeros(batch_size, 3, px, px)
    kwargs = {"opset_version": opset} if opset else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation chatter
        torch.onnx.export(
            model, (x,), str(path), dynamo=False, input_names=["image"], output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, **kwargs,
        )
    return path
