"""The user's own images: ``imagefolder:PATH`` (a folder per class) or a given train/validation split.

Decoded one image at a time (the header first, then a JPEG at reduced scale), centre-cropped
square and resized to min(median short side, 128) px, so a folder of large photos never needs
more than a small array per image. Unreadable files are skipped and named in one warning, and so
are pixel-identical images across classes or across the split; a class with no readable image,
or none in validation, is a one-line error.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from scaler.dataset import Dataset
from scaler.errors import DataWarning, UsageError

IMAGEFOLDER_MAX_SIZE = 128  # user images are held square at min(median short side, this) pixels


def load_imagefolder(arg: str, download: bool, seed: int) -> Dataset:
    parts = _imagefolder_parts(arg)
    listings = {part: _list_images(root) for part, root in parts.items()}
    classes = _same_classes(listings, parts)
    files = [(path, label, part) for part, (_, samples) in listings.items() for path, label in samples]
    skipped: list[tuple[str, str]] = []
    with warnings.catch_warnings():
        # PIL only warns about an image between MAX_IMAGE_PIXELS and twice that; skip it like any unreadable file.
        warnings.simplefilter("error", _pil().DecompressionBombWarning)
        files, side = _final_side(files, skipped)
        pictures = _decode_all(files, side, skipped)
    notes = [_skipped_note(skipped)] if skipped else []
    _require_every_class(pictures, classes, parts, notes)
    images = torch.from_numpy(np.stack([p.pixels for p in pictures])).permute(0, 3, 1, 2).contiguous()
    if bool((images[:, 0] == images[:, 1]).all() and (images[:, 1] == images[:, 2]).all()):
        images = images[:, :1].contiguous()  # grey pictures: one channel
    labels = torch.tensor([p.label for p in pictures], dtype=torch.int64)
    split = None
    if "val" in parts:
        in_val = torch.tensor([p.part == "val" for p in pictures])
        split = (torch.nonzero(~in_val).flatten(), torch.nonzero(in_val).flatten())
    name = os.path.commonpath([str(p.resolve()) for p in parts.values()])
    ds = Dataset(f"imagefolder:{Path(name).name}", arg, classes, images, labels, flip=True, seed=seed,
                 licence="the user's", split=split)
    _require_validation(ds)
    duplicates = _duplicate_note(pictures, ds)
    for note in notes + ([duplicates] if duplicates else []):
        ds.notes.append(note)
        warnings.warn(note, DataWarning, stacklevel=3)
    return ds


def _pil():
    from PIL import Image

    return Image


def _imagefolder_parts(arg: str) -> dict[str, Path]:
    """The folders to read: ``{"all": root}``, or ``{"train": ..., "val": ...}`` for the user's own split."""
    if arg.startswith(("train=", "val=")):
        parts: dict[str, Path] = {}
        for piece in re.split(r",(?=(?:train|val)=)", arg):  # a path may hold commas, just not ",val="
            key, _, value = piece.partition("=")
            if key in parts or not value:
                parts.clear()
                break
            parts[key] = Path(value).expanduser()
        if sorted(parts) != ["train", "val"]:
            raise UsageError(f"imagefolder: give both folders once, as imagefolder:train=PATH,val=PATH; got {arg!r}")
        return {"train": parts["train"], "val": parts["val"]}  # either order, the same data set
    root = Path(arg).expanduser()
    if (root / "train").is_dir() and (root / "val").is_dir():
        return {"train": root / "train", "val": root / "val"}
    return {"all": root}


def _list_images(root: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """Class folders and their image files, in ImageFolder's order (sorted folders, then sorted files).

    Our own walk rather than ImageFolder's: os.walk follows a symlink loop until the path is too
    long, listing every file dozens of times, and ImageFolder's errors are several lines.
    """
    from torchvision.datasets.folder import IMG_EXTENSIONS

    if not root.is_dir():
        raise UsageError(f"imagefolder: {str(root)!r} is not a folder")
    try:
        classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    except OSError as exc:
        raise UsageError(f"imagefolder: cannot list {str(root)!r}: {exc.strerror or exc}") from None
    if not classes:
        raise UsageError(f"imagefolder: {str(root)!r} holds no class folders (want one folder of images per class)")
    samples, empty = [], []
    for label, name in enumerate(classes):
        found = [(path, label) for folder, files in sorted(_walk(root / name, [_identity(root)]))
                 for path in (os.path.join(folder, f) for f in files) if path.lower().endswith(IMG_EXTENSIONS)]
        samples += found
        empty += [] if found else [name]
    if empty:
        raise UsageError(f"imagefolder: no image files ({', '.join(IMG_EXTENSIONS)}) in the class folder(s) "
                         f"{', '.join(empty)} under {str(root)!r}")
    return classes, samples


def _identity(folder: Path) -> tuple[int, int]:
    st = folder.stat()
    return st.st_dev, st.st_ino


def _walk(folder: Path, above: list[tuple[int, int]]) -> list[tuple[str, list[str]]]:
    """``(folder, sorted file names)`` for ``folder`` and every folder below it, symlinks followed."""
    try:
        here = _identity(folder)
        if here in above:
            raise UsageError(f"imagefolder: symlink loop: {str(folder)!r} leads back to a folder above it")
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
        dirs = [Path(e.path) for e in entries if e.is_dir()]
        files = [e.name for e in entries if e.is_file()]
    except OSError as exc:  # e.g. a symlink that points at itself
        raise UsageError(f"imagefolder: cannot read {str(folder)!r}: {exc.strerror or exc}") from None
    return [(str(folder), files)] + [w for d in dirs for w in _walk(d, above + [here])]


def _same_classes(listings: dict, parts: dict[str, Path]) -> list[str]:
    classes = {part: listed[0] for part, listed in listings.items()}
    first = next(iter(classes.values()))
    if len(first) < 2:
        raise UsageError(f"imagefolder: {str(next(iter(parts.values())))!r} needs at least two class folders, "
                         f"found {len(first)}")
    if "val" in classes and classes["train"] != classes["val"]:
        only_train = sorted(set(classes["train"]) - set(classes["val"])) or ["none"]
        only_val = sorted(set(classes["val"]) - set(classes["train"])) or ["none"]
        raise UsageError(f"imagefolder: train and val must hold the same class folders; only in train: "
                         f"{', '.join(only_train)}; only in val: {', '.join(only_val)}")
    return first


# What PIL raises on a file it cannot decode (corrupt, truncated, not an image); its fuzzing tests
# expect these. DecompressionBombError is not an OSError.
_UNREADABLE = (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error)
SKIPPED_NAMED = 3  # unreadable files the warning names


def _unreadable():
    Image = _pil()
    return _UNREADABLE + (Image.DecompressionBombError, Image.DecompressionBombWarning)


def _final_side(files: list, skipped: list) -> tuple[list, int]:
    """First pass, headers only (``Image.open`` is lazy): the readable files, and the side to hold them at."""
    Image, kept, sides = _pil(), [], []
    for path, label, part in files:
        try:
            with Image.open(path) as im:
                sides.append(min(im.size))
        except _unreadable() as exc:
            skipped.append((path, type(exc).__name__))
            continue
        kept.append((path, label, part))
    if not sides:
        return kept, 1
    sides.sort()
    return kept, max(1, min(sides[len(sides) // 2], IMAGEFOLDER_MAX_SIZE))


@dataclass
class _Picture:
    path: str
    label: int
    part: str  # "all", "train" or "val"
    pixels: np.ndarray  # uint8 (side, side, 3)
    digest: bytes  # of the pixels, to find duplicates


def _decode_all(files: list, side: int, skipped: list) -> list[_Picture]:
    """Second pass: decode one image at a time and keep only its small square."""
    pictures = []
    for path, label, part in files:
        try:
            pixels = _decode_square(path, side)
        except _unreadable() as exc:
            skipped.append((path, type(exc).__name__))
            continue
        pictures.append(_Picture(path, label, part, pixels, hashlib.blake2b(pixels.tobytes(), digest_size=16).digest()))
    return pictures


def _decode_square(path: str, side: int) -> np.ndarray:
    with _pil().open(path) as im:
        # JPEG only (a no-op otherwise): decode at 1/2, 1/4 or 1/8 scale while both sides stay >= ``side``,
        # so a 12-megapixel photo never exists in memory at full size.
        im.draft("RGB", (side, side))
        return np.asarray(_square(im.convert("RGB"), side), dtype=np.uint8)


def _skipped_note(skipped: list[tuple[str, str]]) -> str:
    named = ", ".join(f"{path} ({why})" for path, why in skipped[:SKIPPED_NAMED])
    more = f" and {len(skipped) - SKIPPED_NAMED} more" if len(skipped) > SKIPPED_NAMED else ""
    return f"imagefolder: skipped {len(skipped)} unreadable file(s): {named}{more}"


def _require_every_class(pictures: list[_Picture], classes: list[str], parts: dict, notes: list[str]) -> None:
    have = {(p.part, p.label) for p in pictures}
    missing = [f"{classes[c]}" + (f" ({part})" if part != "all" else "") for part in parts for c in range(len(classes))
               if (part, c) not in have]
    if missing:
        also = f"; {notes[0]}" if notes else ""
        raise UsageError(f"imagefolder: no readable image in class(es) {', '.join(missing)}{also}")


def _square(picture, side: int):
    """Centre-crop to a square and resize to ``side`` px (bicubic, antialiased by PIL)."""
    from PIL import Image

    w, h = picture.size
    s = min(w, h)
    box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
    return picture.resize((side, side), Image.Resampling.BICUBIC, box=box)


# A class needs this many validation images, or its accuracy is not measured at all (with one image per
# class the validation set is empty and every accuracy reads 0.0). One, not more: the stratified split
# gives every class of two or more images at least one, and a small folder of five images per class is
# a fair first try; what one validation image per class resolves is the user's call.
MIN_VAL_PER_CLASS = 1


def _require_validation(ds: Dataset) -> None:
    counts = torch.bincount(ds.val.labels, minlength=ds.num_classes).tolist()
    short = [c for c, n in zip(ds.classes, counts) if n < MIN_VAL_PER_CLASS]
    if short:
        fix = ("put more images in val/" if ds.user_split else
               "give each class at least two images, or your own split as PATH/train and PATH/val")
        raise UsageError(f"imagefolder: the validation split holds fewer than {MIN_VAL_PER_CLASS} image(s) of "
                         f"class(es) {', '.join(short)}; {fix}")


def _duplicate_note(pictures: list[_Picture], ds: Dataset) -> str | None:
    """A note when identical pictures (after crop and resize) sit in two classes or on both sides of the split."""
    in_val = torch.zeros(len(pictures), dtype=torch.bool)
    in_val[ds.split[1]] = True
    groups: dict[bytes, list[int]] = {}
    for i, p in enumerate(pictures):
        groups.setdefault(p.digest, []).append(i)
    clashes = [g for g in groups.values()
               if len({pictures[i].label for i in g}) > 1 or len({bool(in_val[i]) for i in g}) > 1]
    if not clashes:
        return None
    g = clashes[0]
    a = g[0]
    b = next(i for i in g[1:] if pictures[i].label != pictures[a].label or in_val[i] != in_val[a])
    where = [f"{pictures[i].path} ({ds.classes[pictures[i].label]}, {'val' if in_val[i] else 'train'})" for i in (a, b)]
    return (f"imagefolder: {sum(len(g) for g in clashes)} images are pixel-identical (after crop and resize) to "
            f"another in a different class or on the other side of the train/validation split, e.g. "
            f"{where[0]} and {where[1]}")


