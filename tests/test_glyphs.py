"""The built-in glyphs source: deterministic, balanced, big enough, with detail above the proxy's resolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scaler.data import list_sources, load_dataset
from scaler.dataset import MAX_VAL
from scaler.errors import UsageError
from scaler.glyphs import FOCI, GENERATOR_VERSION, draw_letters
from scaler.options import DEFAULT_SOURCE
from scaler.recipe import PRESETS

TINY = "glyphs:images=200,size=48"


@pytest.fixture(scope="module")
def default():
    return load_dataset("glyphs")


def test_glyphs_is_listed_beside_the_default():
    assert DEFAULT_SOURCE == "animals" and len(FOCI["both"].classes()) == 20
    names = [s["name"] for s in list_sources()]
    assert names[0] == DEFAULT_SOURCE and "glyphs" in names


def test_same_seed_same_pixels_other_seed_other_pixels():
    a, b = load_dataset(TINY), load_dataset(TINY)
    assert a.fingerprint == b.fingerprint and torch.equal(a.images, b.images)
    assert load_dataset(TINY + ",seed=1").fingerprint != a.fingerprint
    info = a.describe()
    assert info["generator"].startswith(f"scaler.glyphs {GENERATOR_VERSION},") and "focus" in info["generator"]


def test_default_is_balanced_with_5000_validation_images_at_128_px(default):
    assert default.image_size == (128, 128) and default.num_classes == 20 and not default.flip
    assert len(default.val) >= MAX_VAL == 5000
    per_class = torch.bincount(default.labels).tolist()
    assert len(set(per_class)) == 1  # balanced
    assert len(set(torch.bincount(default.val.labels).tolist())) == 1
    # ... and nested training subsets stay balanced too
    assert len(set(torch.bincount(default.train.labels[default.subset_indices(2000)]).tolist())) == 1


def test_default_pixels_are_pinned(default):
    """The default's pixels and labels as scaler.glyphs 1 draws them: a change that moves them must
    bump GENERATOR_VERSION (and this number). FreeType draws the letters, so another FreeType may differ."""
    from matplotlib import ft2font

    if ft2font.__freetype_version__ != "2.14.3":
        pytest.skip(f"pinned with FreeType 2.14.3, this is {ft2font.__freetype_version__}")
    assert GENERATOR_VERSION == 1 and default.fingerprint == "dbf17a3897ec5d5d"


def test_native_detail_is_above_the_largest_default_proxy_input(default):
    """Area-downsampling to the proxy's pixels and back loses a measurable part of the image, and
    less when the proxy input grows: a resolution variant sees detail the baseline cannot."""
    px = max(PRESETS["default"].proxy_resolution, 48)  # 48: the largest proxy tried on glyphs (docs/data.md)
    largest = round(px * 2)  # the curves' resolution member at phi = 2 of the 2x budget
    assert default.image_size[0] > largest
    x = default.images[:500].float() / 255

    def lost(at: int) -> float:
        back = F.interpolate(F.interpolate(x, size=(at, at), mode="area"), size=x.shape[-2:], mode="bilinear")
        return float((back - x).square().mean() / x.var())

    assert lost(px) > 1.5 * lost(largest) and lost(largest) > 0.02


@pytest.mark.parametrize("focus", sorted(FOCI))
def test_every_focus_loads_with_its_classes(focus):
    ds = load_dataset(f"glyphs:images=120,size=48,focus={focus}")
    spec = FOCI[focus]
    assert ds.classes == spec.classes() and ds.images.shape == (120, 1, 48, 48)
    if focus == "width":
        assert ds.num_classes > 20  # many classes of local patterns
    if focus == "hard":
        assert ds.num_classes == 50  # five large letters x ten look-alike small ones
    assert ds.images.float().std() > 10  # something is drawn


@pytest.mark.parametrize("focus, label", [("both", "pair"), ("hard", "pair"), ("resolution", "small"), ("width", "small"),
                                          ("depth", "large")])
def test_each_focus_labels_what_it_says(focus, label):
    """The label is the letter the control is about; the other letter is drawn independently of it."""
    spec = FOCI[focus]
    assert spec.label == label
    labels, large, small = draw_letters(spec, 4000, np.random.default_rng(0))
    counts = np.bincount(labels, minlength=len(spec.classes()))
    assert counts.max() - counts.min() <= 1  # balanced
    if label == "pair":
        assert (labels == large * len(spec.small) + small).all()
        return
    told, other = (large, small) if label == "large" else (small, large)
    assert (labels == told).all()
    # the other letter carries no information about the label: every label meets every other letter
    assert len(set(zip(labels.tolist(), other.tolist(), strict=True))) == len(spec.classes()) * (other.max() + 1)
    assert spec.mixed == (focus == "depth")  # depth also mixes its small letters cell by cell


@pytest.mark.parametrize(
    "spec, words",
    [
        ("glyphs:focus=colour", "focus must be one of"),
        ("glyphs:size=8", "32 <= size"),
        ("glyphs:images=ten", "must be an integer"),
        ("glyphs:shape=1", "glyphs takes images, size, focus, seed"),
        ("glyphs:images=10", "2 per class"),
    ],
)
def test_bad_glyph_options_are_usage_errors(spec, words):
    with pytest.raises(UsageError, match=words):
        load_dataset(spec)


def test_data_cli_lists_and_rejects(cli):
    listing = cli("data")
    assert listing.returncode == 0 and "glyphs[:images=10000,size=128,focus=both,seed=0]" in listing.stdout
    bad = cli("data", "glyphs:focus=nope")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "focus" in bad.stderr
