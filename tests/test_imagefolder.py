"""The imagefolder: source on awkward folders: broken files, tiny classes, duplicates, the user's split, size."""

from __future__ import annotations

import importlib.util
import io
import os

import numpy as np
import pytest
import torch
from PIL import Image

from scaler.data import load_dataset
from scaler.errors import UsageError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _images(folder, n, seed=0, size=(30, 20), start=0):
    """``n`` random-noise PNGs (never identical) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(start, start + n):
        pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")


def _tree(root, classes=("cats", "dogs"), n=10, seed=0):
    for k, cls in enumerate(classes):
        _images(root / cls, n, seed=seed + k)


def _jpeg_bytes(size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(5).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def test_unreadable_files_are_skipped_counted_and_named(tmp_path):
    _tree(tmp_path)
    (tmp_path / "cats" / "notes.jpg").write_text("not an image")
    (tmp_path / "cats" / "empty.png").write_bytes(b"")
    jpeg = _jpeg_bytes()
    (tmp_path / "dogs" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    png = (tmp_path / "dogs" / "000.png").read_bytes()
    (tmp_path / "dogs" / "half.png").write_bytes(png[: len(png) // 2])
    with pytest.warns(UserWarning, match=r"skipped 4 unreadable") as record:
        ds = load_dataset(f"imagefolder:{tmp_path}")
    assert len(ds.labels) == 20 and torch.bincount(ds.labels).tolist() == [10, 10]
    message = str(record[0].message)
    assert "empty.png" in message and "\n" not in message
    assert any("4 unreadable" in note for note in ds.describe()["notes"])


def test_decompression_bombs_are_skipped(tmp_path, monkeypatch):
    _tree(tmp_path)  # 600 px each
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    _images(tmp_path / "cats", 1, size=(40, 40), start=50)  # over the limit: PIL warns
    _images(tmp_path / "dogs", 1, size=(50, 50), start=50)  # over twice the limit: PIL raises
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable"):
        ds = load_dataset(f"imagefolder:{tmp_path}")
    assert len(ds.labels) == 20


def test_a_class_with_no_readable_image_is_refused(tmp_path):
    _images(tmp_path / "cats", 5)
    (tmp_path / "dogs").mkdir()
    (tmp_path / "dogs" / "a.jpg").write_text("not an image")
    with pytest.raises(UsageError, match=r"no readable image in class\(es\) dogs; .*skipped 1 unreadable.*a\.jpg"):
        load_dataset(f"imagefolder:{tmp_path}")


def test_one_image_per_class_is_refused(tmp_path):
    _images(tmp_path / "cats", 5)
    _images(tmp_path / "dogs", 1, seed=1)
    _images(tmp_path / "owls", 1, seed=2)
    with pytest.raises(UsageError, match=r"validation.*dogs, owls") as info:
        load_dataset(f"imagefolder:{tmp_path}")
    assert "\n" not in str(info.value)


def test_duplicates_across_classes_are_warned(tmp_path):
    _tree(tmp_path)
    (tmp_path / "dogs" / "copy.png").write_bytes((tmp_path / "cats" / "003.png").read_bytes())
    with pytest.warns(UserWarning, match=r"2 images are pixel-identical.*cats.003\.png.*dogs.copy\.png"):
        load_dataset(f"imagefolder:{tmp_path}")


def test_duplicates_across_the_users_split_are_warned(tmp_path):
    _tree(tmp_path / "train")
    _tree(tmp_path / "val", n=3, seed=10)
    (tmp_path / "val" / "cats" / "copy.png").write_bytes((tmp_path / "train" / "cats" / "007.png").read_bytes())
    with pytest.warns(UserWarning, match=r"pixel-identical.*train.*val"):
        load_dataset(f"imagefolder:{tmp_path}")


def _check_user_split(ds):
    assert ds.classes == ["cats", "dogs"] and len(ds.train) == 20 and len(ds.val) == 6
    assert torch.bincount(ds.val.labels).tolist() == [3, 3]
    assert sorted(ds.train.labels[:2].tolist()) == [0, 1]  # class-interleaved, so any prefix is stratified
    info = ds.describe()
    assert info["split"] == "user" and info["val_images"] == 6 and info["split_fingerprint"]


def test_users_split_from_train_and_val_folders(tmp_path):
    _tree(tmp_path / "train")
    _tree(tmp_path / "val", n=3, seed=10)
    for i in range(3):  # the validation images are the val/ folder's, in order
        (tmp_path / "val" / "cats" / f"{i:03d}.png").write_bytes(_png(np.full((20, 30, 3), 10 * i + 1, np.uint8)))
    ds = load_dataset(f"imagefolder:{tmp_path}")
    _check_user_split(ds)
    assert [int(ds.val.images[i, 0, 0, 0]) for i in range(3)] == [1, 11, 21]
    assert ds.fingerprint != load_dataset(f"imagefolder:{tmp_path / 'train'}").fingerprint


def test_users_split_from_train_and_val_paths(tmp_path):
    _tree(tmp_path / "a" / "mine")
    _tree(tmp_path / "b" / "held-out", n=3, seed=10)
    ds = load_dataset(f"imagefolder:train={tmp_path / 'a' / 'mine'},val={tmp_path / 'b' / 'held-out'}")
    _check_user_split(ds)
    same = load_dataset(f"imagefolder:val={tmp_path / 'b' / 'held-out'},train={tmp_path / 'a' / 'mine'}", seed=0)
    assert same.fingerprint == ds.fingerprint and torch.equal(same.train.labels, ds.train.labels)


def _png(pixels) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("spec", ["train=T", "val=V", "train=T,val=V,val=V", "train=T,test=V", "train=,val=V"])
def test_malformed_split_specs_are_refused(tmp_path, spec):
    _tree(tmp_path / "t")
    _tree(tmp_path / "v", n=3, seed=10)
    spec = spec.replace("T", str(tmp_path / "t")).replace("V", str(tmp_path / "v"))
    with pytest.raises(UsageError, match="train=PATH,val=PATH"):
        load_dataset(f"imagefolder:{spec}")


def test_mismatched_classes_are_refused(tmp_path):
    _tree(tmp_path / "train", classes=("cats", "dogs", "owls"))
    _tree(tmp_path / "val", classes=("cats", "dogs", "rats"), n=3, seed=10)
    with pytest.raises(UsageError, match=r"owls.*rats") as info:
        load_dataset(f"imagefolder:{tmp_path}")
    assert "\n" not in str(info.value)


def test_empty_folders_are_refused(tmp_path):
    with pytest.raises(UsageError, match="no class folders"):
        load_dataset(f"imagefolder:{tmp_path}")
    (tmp_path / "cats").mkdir()
    (tmp_path / "dogs").mkdir()
    _images(tmp_path / "cats", 3)
    with pytest.raises(UsageError, match=r"no image files.*dogs"):
        load_dataset(f"imagefolder:{tmp_path}")


def test_a_symlink_loop_is_one_usage_error(tmp_path, cli):
    _tree(tmp_path)
    os.symlink(tmp_path / "dogs", tmp_path / "dogs" / "again")
    with pytest.raises(UsageError, match="symlink loop"):
        load_dataset(f"imagefolder:{tmp_path}")
    out = cli("data", f"imagefolder:{tmp_path}")
    assert out.returncode == 2 and "symlink loop" in out.stderr and len(out.stderr.strip().splitlines()) == 1


# Peak memory: phone-sized JPEGs, written and loaded by the benchmark's helpers.
_path = os.path.join(ROOT, "benchmarks", "imagefolder_memory.py")
_spec = importlib.util.spec_from_file_location("imagefolder_memory", _path)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.mark.slow
def test_peak_memory_grows_slowly_with_photo_count(tmp_path):
    """Peak RSS loading 20 and 80 photos; the growth per photo must let 2,000 fit in 2 GB.

    The full 2,000 (minutes to write) are measured by benchmarks/imagefolder_memory.py. Before the
    loader decoded at reduced scale, each photo held 36 MB: 80 of them peaked at 4.6 GB.
    """
    small, large = tmp_path / "small", tmp_path / "large"
    bench.write_photos(small, 20)
    for path in small.rglob("*.jpg"):  # the same 20, plus 60 more
        (large / path.parent.name).mkdir(parents=True, exist_ok=True)
        os.link(path, large / path.parent.name / path.name)
    bench.write_photos(large, 60, start=20)
    a, b = bench.load_in_child(small), bench.load_in_child(large)
    assert (a["images"], b["images"], b["side"], b["notes"]) == (20, 80, 128, [])
    per_photo = max(0, b["peak"] - a["peak"]) / 60
    assert b["ever"] < bench.LIMIT and b["peak"] + per_photo * (2000 - 80) < bench.LIMIT, (a, b)


def test_the_cli_prints_each_warning_as_one_line(tmp_path, capsys):
    from scaler.cli import main

    _tree(tmp_path)
    (tmp_path / "cats" / "notes.jpg").write_text("not an image")
    assert main(["data", f"imagefolder:{tmp_path}"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("scaler data: warning: imagefolder: skipped 1 unreadable"), err
