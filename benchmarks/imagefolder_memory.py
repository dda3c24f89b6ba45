"""Peak memory of loading a folder of phone-sized photos with the imagefolder: source.

Writes ``--photos`` JPEGs of 4000x3000 px (quality 80; each a smooth gradient in its own colour,
so files are small and no two are alike) into a temporary folder, one class folder per
``--classes``, then loads it in a fresh interpreter and prints the resident memory before
loading, the peak while loading (the high-water mark is reset after the imports, where the
kernel allows) and the peak of the whole process (imports included). The target: 2,000 photos
under 2 GB.

    .venv/bin/python benchmarks/imagefolder_memory.py
    .venv/bin/python benchmarks/imagefolder_memory.py --photos 200 --keep ./photos
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PHOTO = (4000, 3000)
LIMIT = 2 * 1024**3  # bytes, for 2,000 photos

_CHILD = """
import json, sys, time
from scaler.data import load_dataset
import PIL.Image, torchvision

def status(key):  # kB -> bytes
    return next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith(key))

# The process's own peak so far (imports). Not ru_maxrss: after fork and exec it can keep the
# parent's high-water mark (a pytest worker's 2 GB showed up as this child's).
imports = status('VmHWM:')
try:  # reset the high-water mark, so that the peak of importing torch does not hide the loader's
    open('/proc/self/clear_refs', 'w').write('5')
except OSError:
    pass
base = status('VmRSS:')
start = time.perf_counter()
ds = load_dataset('imagefolder:' + sys.argv[1])
seconds = time.perf_counter() - start
print(json.dumps({'base': base, 'peak': max(status('VmHWM:'), base), 'seconds': seconds,
                  'ever': max(imports, status('VmHWM:')),
                  'images': len(ds.labels), 'side': ds.image_size[0], 'notes': getattr(ds, 'notes', [])}))
"""


def write_photos(folder: Path, n: int, classes: int = 2, size=PHOTO, start: int = 0) -> None:
    """Photos ``start .. start+n-1``: JPEGs of ``size`` px (quality 80) spread over ``classes`` class folders."""
    w, h = size
    ramp_x = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    ramp_y = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    for i in range(start, start + n):
        # A colour per photo, 16 levels apart per channel so JPEG cannot merge two: 4,096 distinct.
        colour = np.array([i % 16, i // 16 % 16, i // 256 % 16], np.float32) * 16 + 8
        pixels = (colour * (0.5 + 0.5 * ramp_x) * (1 - 0.5 * ramp_y)).astype(np.uint8)
        cls = folder / f"class{i % classes}"
        cls.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(cls / f"{i:04d}.jpg", quality=80)


def load_in_child(folder: Path) -> dict:
    """Load ``folder`` in a fresh interpreter (Linux): RSS in bytes before loading, the peak while
    loading, the peak ever; load seconds; images held, their side, the loader's notes."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "PYTHONWARNINGS": "ignore"}
    out = subprocess.run([sys.executable, "-c", _CHILD, str(folder)], capture_output=True, text=True, env=env,
                         timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=2000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--keep", type=Path, help="write the photos here and keep them (default: a temporary folder)")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="imagefolder-memory-"))
    try:
        start = time.perf_counter()
        write_photos(folder, args.photos, args.classes)
        written = time.perf_counter() - start
        disk = sum(p.stat().st_size for p in folder.rglob("*.jpg"))
        r = load_in_child(folder)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    mib = 1024**2
    print(f"{r['images']:,} photos of {PHOTO[0]}x{PHOTO[1]} px ({disk / mib:,.0f} MiB of JPEG, "
          f"written in {written:.0f} s), held at {r['side']} px; loaded in {r['seconds']:.1f} s")
    print(f"RSS before loading {r['base'] / mib:,.0f} MiB; peak while loading {r['peak'] / mib:,.0f} MiB "
          f"(+{(r['peak'] - r['base']) / mib:,.0f}); peak of the process {r['ever'] / mib:,.0f} MiB; "
          f"limit {LIMIT / mib:,.0f} MiB for 2,000 photos: {'ok' if max(r['peak'], r['ever']) < LIMIT else 'OVER'}")
    for note in r["notes"]:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
