"""Data sources, the stratified split, resizing and batch augmentation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from scaler.data import augment, list_sources, load_dataset, render_shapes, stratified_split
from scaler.errors import UsageError
from scaler.options import DEFAULT_CLASSES, DEFAULT_SOURCE

SMALL = "synthetic:size=16,images=200,classes=4"


def test_sources_listed_with_availability():
    names = {s["name"]: s for s in list_sources()}
    assert {"animals", "synthetic", "imagefolder", "cifar10", "mnist", "digits"} <= set(names)
    assert names["synthetic"]["available"] and names["imagefolder"]["available"]


def test_animals_built_in():
    ds = load_dataset("animals")
    assert DEFAULT_SOURCE == "animals" and ds.num_classes == DEFAULT_CLASSES  # what `scaler grid` costs a classifier with
    assert ds.num_classes == 10 and ds.classes[0] == "bear" and ds.classes[-1] == "zebra"
    assert tuple(ds.images.shape) == (10000, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert (len(ds.train), len(ds.val)) == (8000, 2000)
    assert torch.bincount(ds.val.labels).tolist() == [200] * 10
    assert ds.fingerprint == "708a8c52ddcfe5df"  # the pixels and labels of animal-mnist 0.4


def test_stratified_split_properties():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    train, val = stratified_split(labels, 0.2, seed=3, max_val=None)
    assert sorted(torch.cat([train, val]).tolist()) == list(range(100))  # a partition
    assert torch.bincount(labels[val]).tolist() == [10, 6, 4]  # each class in proportion
    again_train, again_val = stratified_split(labels, 0.2, seed=3, max_val=None)
    assert torch.equal(train, again_train) and torch.equal(val, again_val)  # seeded
    _, other_val = stratified_split(labels, 0.2, seed=4, max_val=None)
    assert not torch.equal(val, other_val)
    # Any prefix of the (interleaved) training order is itself stratified.
    assert torch.bincount(labels[train[:20]], minlength=3).tolist() == [10, 6, 4]
    _, capped = stratified_split(labels, 0.5, seed=0, max_val=10)
    assert len(capped) == 10


def test_split_keeps_one_training_image_per_class():
    labels = torch.tensor([0, 0, 1, 1, 2])
    train, _ = stratified_split(labels, 0.9, seed=0, max_val=None)
    assert set(labels[train].tolist()) == {0, 1, 2}


def test_describe_has_fingerprint_and_split():
    ds = load_dataset(SMALL, seed=1)
    info = ds.describe()
    json.dumps(info)
    assert info["split_seed"] == 1 and info["train_images"] + info["val_images"] == 200
    assert info["fingerprint"] == load_dataset(SMALL, seed=2).fingerprint  # same pixels, other split
    assert info["split_fingerprint"] != load_dataset(SMALL, seed=2).describe()["split_fingerprint"]


def test_synthetic_renders_at_any_size_deterministically():
    a, la = render_shapes(24, 30, 10, seed=5)
    b, lb = render_shapes(24, 30, 10, seed=5)
    assert a.shape == (30, 1, 24, 24) and torch.equal(a, b) and torch.equal(la, lb)
    assert load_dataset("synthetic:40,images=20").image_size == (40, 40)
    with pytest.raises(UsageError):
        load_dataset("synthetic:colour=red")


def test_resize_once_and_cache():
    ds = load_dataset(SMALL)
    x = ds.train.images_at(20)
    assert x.shape == (len(ds.train), 1, 20, 20) and x.dtype == torch.float32
    assert ds.train.images_at(20) is x  # cached
    assert abs(float(ds.train.images_at(16).mean())) < 0.2  # normalized


def test_augment_crops_and_flips_batches():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(augment(x, gen, pad=0, flip=False), x)
    outs = [augment(x, gen, pad=1, flip=True) for _ in range(20)]
    assert all(o.shape == x.shape for o in outs)
    assert any(not torch.equal(o, x) for o in outs)
    # Without padding, a flip is the only change: each image is itself or its mirror.
    for o in (augment(x, gen, pad=0, flip=True) for _ in range(10)):
        for i in range(2):
            assert torch.equal(o[i], x[i]) or torch.equal(o[i], x[i].flip(-1))


def test_imagefolder_reads_a_tiny_folder(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (tmp_path / cls).mkdir()
        for i in range(5):
            pixels = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / cls / f"{i}.png")
    ds = load_dataset(f"imagefolder:{tmp_path}")
    assert ds.classes == ["cats", "dogs"] and ds.images.shape == (10, 3, 20, 20)
    assert torch.bincount(ds.labels).tolist() == [5, 5]
    assert torch.bincount(ds.val.labels).tolist() == [1, 1]


@pytest.mark.parametrize(
    "spec, words",
    [
        ("nosuch", "unknown data source"),
        ("imagefolder:/no/such/folder", "not a folder"),
        ("cifar10:/no/such/folder", "--download"),
        ("mnist:/no/such/folder", "--download"),
        ("imagefolder", "needs a path"),
        ("animals:extra", "takes no argument"),
    ],
)
def test_bad_specs_are_usage_errors(spec, words):
    with pytest.raises(UsageError, match=words):
        load_dataset(spec)


def test_data_cli_describes_a_source(capsys):
    from scaler.cli import main

    assert main(["data", SMALL, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["num_classes"] == 4 and sum(r["val"] for r in info["per_class"]) == info["val_images"]


def test_data_cli(cli):
    listing = cli("data")
    assert listing.returncode == 0 and "animals" in listing.stdout and "imagefolder:PATH" in listing.stdout
    bad = cli("data", "nosuch")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("download, words", [(True, "could not download CIFAR-10"), (False, "pass --download")])
def test_torchvision_source_without_network_is_a_usage_error(monkeypatch, download, words):
    """No network (torchvision raises URLError, an OSError) or no files: one line, no traceback."""
    import urllib.error

    import torchvision.datasets

    def offline(root, train=True, download=False):
        if download:
            raise urllib.error.URLError("[Errno -2] Name or service not known")
        raise RuntimeError("Dataset not found or corrupted.")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(UsageError, match=words) as info:
        load_dataset("cifar10:nowhere", download=download)
    assert "\n" not in str(info.value) and ("--download" in str(info.value)) != download
