import math

import pytest
import torchvision

from scaler.baselines import get_baseline
from scaler.errors import UsageError
from scaler.scaling import (
    Coefficients,
    Multipliers,
    format_macs,
    parse_budget,
    parse_coefficients,
    parse_phi_range,
    round_channels,
    round_repeats,
)

# EfficientNet's official per-model (width, depth, resolution): Tan & Le 2019, the official efficientnet_builder.py.
OFFICIAL = {
    "efficientnet_b1": (1.0, 1.1, 240),
    "efficientnet_b2": (1.1, 1.2, 260),
    "efficientnet_b3": (1.2, 1.4, 300),
    "efficientnet_b4": (1.4, 1.8, 380),
    "efficientnet_b5": (1.6, 2.2, 456),
    "efficientnet_b6": (1.8, 2.6, 528),
    "efficientnet_b7": (2.0, 3.1, 600),
}


@pytest.mark.parametrize(
    "channels, mult, expected",
    [
        (32, 1.0, 32),
        (32, 1.1, 32),  # 35.2 -> 32, which is within 10%
        (40, 1.1, 48),  # 44 -> rounds half up to 48
        (16, 0.25, 8),  # never below the divisor
        (320, 1.1, 352),
        (112, 1.2, 136),  # 134.4 -> 136
        (192, 1.4, 272),  # 268.8 -> 272
        (100, 0.83, 80),  # 83 -> 80 (3.6% down, allowed)
        (10, 1.4, 16),  # 14 -> 16
        (60, 1.0, 64),  # 60 -> 64 (nearest, ties up)
        (52, 1.0, 56),
        (44, 1.0, 48),
        (20, 1.0, 24),
    ],
)
def test_round_channels(channels, mult, expected):
    assert round_channels(channels, mult) == expected


def test_round_channels_never_more_than_ten_percent_down():
    for c in range(1, 400):
        for m in (0.25, 0.5, 0.75, 1.0, 1.1, 1.3, 1.7, 2.0):
            v = round_channels(c, m)
            assert v % 8 == 0 and v >= 8
            assert v >= 0.9 * c * m


def test_round_repeats_ceil():
    assert [round_repeats(n, 1.2) for n in (1, 2, 2, 3, 3, 4, 1)] == [2, 3, 3, 4, 4, 5, 2]
    assert round_repeats(3, 1.0) == 3
    assert round_repeats(4, 0.5) == 2
    assert round_repeats(1, 0.1) == 1


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_official_family_matches_torchvision_params(name):
    width, depth, _ = OFFICIAL[name]
    ours = get_baseline("efficientnet_b0").build(width=width, depth=depth)
    theirs = getattr(torchvision.models, name)(weights=None)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())


def test_coefficients_to_multipliers():
    c = Coefficients(1.2, 1.1, 1.15)
    assert c.product == pytest.approx(1.2 * 1.1**2 * 1.15**2)
    m = c.multipliers(2)
    assert (m.depth, m.width, m.resolution) == pytest.approx((1.44, 1.21, 1.3225))
    assert m.input_size(224) == round(224 * 1.3225)
    assert c.multipliers(0) == Multipliers(width=1.0, depth=1.0, resolution=1.0)


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf])
def test_multipliers_reject_non_positive(bad):
    with pytest.raises(UsageError):
        Multipliers(depth=bad)


def test_parse_budget():
    assert parse_budget("2x").ratio == 2
    assert parse_budget("1.5x").ratio == 1.5
    assert parse_budget("400M").macs == 400e6
    assert parse_budget("1.2G").macs == pytest.approx(1.2e9)
    assert parse_budget("400M").target_ratio(200e6) == 2
    assert str(parse_budget("2X")) == "2x"


@pytest.mark.parametrize("bad", ["", "2", "x", "two", "-2x", "0x", "2y", "1..2x", "2 x 3", "400MB"])
def test_parse_budget_rejects(bad):
    with pytest.raises(UsageError, match="budget"):
        parse_budget(bad)


def test_parse_coefficients():
    assert parse_coefficients("1.2,1.1,1.15").as_tuple() == (1.2, 1.1, 1.15)
    for bad in ("1.2,1.1", "a,b,c", "1,1,-1", "1,1,1,1"):
        with pytest.raises(UsageError):
            parse_coefficients(bad)


def test_parse_phi_range():
    assert parse_phi_range("0..3") == [0, 1, 2, 3]
    assert parse_phi_range("2") == [2]
    assert parse_phi_range("0,0.5,1") == [0, 0.5, 1]
    with pytest.raises(UsageError, match="backwards"):
        parse_phi_range("5..2")
    with pytest.raises(UsageError):
        parse_phi_range("a..b")


def test_format_macs():
    assert format_macs(385_825_092) == "386M"
    assert format_macs(4_089_185_256) == "4.09G"
    assert format_macs(992_645_882) == "993M"


def test_shares_split_the_budget_and_check_their_sum():
    from scaler.scaling import Shares

    shares = Shares.width_takes_the_rest(depth=1 / 3, resolution=1 / 6)
    assert shares.width == pytest.approx(1 / 6)
    assert shares.coefficients(2.0).product == pytest.approx(2.0)  # d * w**2 * r**2 is the factor, exactly
    assert Shares.width_takes_the_rest(depth=1.0, resolution=0.5) is None  # nothing left for width
    with pytest.raises(ValueError, match="not 1"):
        Shares(0.5, 0.5, 0.5)
