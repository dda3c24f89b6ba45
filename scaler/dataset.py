"""A data set held in memory: split once, resized once per resolution, augmented a batch at a time.

Small data is decoded once and held as one uint8 tensor ``(N, C, H, W)``. The train/validation
split is stratified and seeded (unless the user gave their own), and fixed for the life of the
data set; a training subset of ``n`` images is the first ``n`` of a class-interleaved order, so
every subset is stratified too and smaller subsets are nested in larger ones. Each resolution is
resized once (bilinear with antialiasing), normalized, and cached. Augmentation works on whole
batches of tensors. The sources that make a data set are in :mod:`scaler.data`.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from scaler.errors import UsageError

VAL_FRACTION = 0.2
MAX_VAL = 5000  # validation images at most: enough to resolve 1-2 points, cheap to evaluate each epoch
CACHED_RESOLUTIONS = 3  # resized copies kept per split (least recently used dropped first; CIFAR-10 at 32 px is 0.6 GB each)


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
    generator: str = ""  # a generated source: its generator, version and options (the fingerprint has the pixels)
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
        mean, std = channel_stats(self.images)
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
            "generator": self.generator,
            "notes": list(self.notes),
        }


STATS_CHUNK_BYTES = 16 * 1024**2  # the float64 temporary of channel_stats


def channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation (at least 1e-3) of uint8 images in [0, 1], as (1, C, 1, 1).

    Summed in float64 a chunk of at most STATS_CHUNK_BYTES at a time: a float copy of 10,000 images
    at 128 px would be 655 MB, and a fixed count of images per chunk would grow with the image size.
    """
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    step = max(1, STATS_CHUNK_BYTES // max(1, images[0].numel() * 8))
    for start in range(0, len(images), step):
        chunk = images[start : start + step].to(torch.float64).div_(255)
        total += chunk.sum(dim=(0, 2, 3))
        squares += chunk.square().sum(dim=(0, 2, 3))
    n = images.numel() // images.shape[1]
    mean = total / n
    var = (squares - n * mean.square()) / max(1, n - 1)
    std = var.clamp_min(0).sqrt().clamp_min(1e-3)
    return mean.float().view(1, -1, 1, 1), std.float().view(1, -1, 1, 1)


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


def resize_pad(px: int) -> int:
    """Padding for the random crop at ``px`` pixels: an eighth of the side (4 px at 32), at least 1."""
    return max(1, int(math.ceil(px / 8)))
