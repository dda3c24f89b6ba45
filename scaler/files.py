"""Writing files so that a kill never leaves half of one: write beside, then rename.

Every file scaler writes into a run folder goes through here. JSON is standard JSON: a NaN or
infinity (an uncostable candidate, a run with no accuracy) is stored as ``null``, because
Python's ``NaN`` token is not JSON and never compares equal to itself on a resume.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (a temporary file in the same folder, then a rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def plain(obj):
    """numpy and pandas scalars as Python ones, recursively (tuples become lists), as JSON would hold them."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):  # numpy scalars
        try:
            return obj.item()
        except (TypeError, ValueError):
            return obj
    return obj


def standard(obj):
    """``obj`` as plain Python with every non-finite float replaced by None, so it is valid JSON."""
    return _finite(plain(obj))


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def dumps(obj) -> str:
    """Standard JSON (no NaN tokens), indented, ending in a newline."""
    return json.dumps(standard(obj), indent=2, default=str, allow_nan=False) + "\n"


def write_json(path: Path, obj) -> Path:
    return write_text(path, dumps(obj))


def write_csv(frame, path: Path) -> Path:
    """A pandas frame as CSV, atomically."""
    return write_text(path, frame.to_csv(index=False))
