"""Cost matching: every grid point a search trains costs its budget at full size and in its proxy.

The ratios are recounted here with ``count_cost`` and ``proxy_settings``, not taken from the matcher.
"""

import dataclasses
import math

import pytest

from scaler import matching
from scaler.baselines import get_baseline
from scaler.compare import get_strategy, match_macs
from scaler.cost import count_cost
from scaler.errors import ScalerWarning, UsageError
from scaler.matching import APART_LIMIT, EXPONENT, FREE, FULL_TOLERANCE, PROXY_TOLERANCE, TRIM, Coster, correct
from scaler.recipe import proxy_rounding, proxy_settings, resolve_recipe
from scaler.run_folder import RunFolder
from scaler.scaling import Coefficients
from scaler.search import SearchConfig, run_search
from scaler.search_space import grid, load_space, trim_notes
from scaler.stages import leading_dimension

SINGLES = ("depth", "width", "resolution")


def recount(baseline, recipe, coefficients: Coefficients, proxy_classes: int = 10) -> tuple[float, float]:
    """(full-size ratio, proxy ratio) of a point, from scratch."""
    def proxy(c):
        w, d, px = proxy_settings(c.multipliers(1.0), recipe)
        with proxy_rounding(recipe):  # the proxy's channels round to 8 x its width
            return count_cost(baseline, width=w, depth=d, resolution=px, num_classes=proxy_classes).macs

    m = coefficients.multipliers(1.0)
    full = count_cost(baseline, width=m.width, depth=m.depth, resolution=m.input_size(baseline.resolution)).macs
    return full / count_cost(baseline).macs, proxy(coefficients) / proxy(Coefficients(1.0, 1.0, 1.0))


def assert_matched(points, baseline, recipe, budget):
    for c in points.kept:
        full = recount(baseline, recipe, c.coefficients)[0]
        prox = recount(baseline, recipe, c.proxy_point)[1]  # the proxy as trained: its own point when apart
        assert (c.macs_ratio, c.proxy_macs_ratio) == pytest.approx((full, prox))
        assert_apart_only_in_the_free_coefficient(c)
        assert abs(full / budget - 1) <= FULL_TOLERANCE, c
        assert abs(prox / budget - 1) <= PROXY_TOLERANCE, c
        assert c.nominal_ratio == pytest.approx(c.coefficients.product) and not c.reason
    for c in points.dropped:
        assert c.reason and c.planned is not None


def assert_apart_only_in_the_free_coefficient(c):
    """A proxy matched apart differs from its network only in the point's free coefficient, and by at most APART_LIMIT."""
    if c.proxy_coefficients is None:
        return
    name = FREE[c.kind]
    assert dataclasses.replace(c.proxy_coefficients, **{name: getattr(c.coefficients, name)}) == c.coefficients
    ratio = getattr(c.proxy_coefficients, name) / getattr(c.coefficients, name)
    assert 1 / APART_LIMIT - 1e-9 <= ratio <= APART_LIMIT + 1e-9 and ratio != 1.0


# What the default recipe (width 0.25, 24 px, channels to multiples of 2) allows at 2x within 3% full
# size and 5% proxy, matched apart, measured 2026-11-26 (`scaler grid --baseline NAME --budget 2x`):
# never the resolution point (24 -> 34 px moves every stage's map a step: proxy x2.7-2.9).
SINGLES_MATCHED = {
    "resnet50": {"depth", "width"},  # depth: x1.85 or x2.07 at full size, nothing between: width trimmed to 0.976
    "mobilenet_v2": {"width"},  # depth: its proxy reaches x1.83 at best (few blocks a stage): compound_coarse keeps it
    "efficientnet_b0": {"depth", "width"},
}


@pytest.mark.parametrize("name", sorted(SINGLES_MATCHED))
def test_every_point_kept_at_2x_costs_the_budget_at_full_size_and_in_the_proxy(name):
    baseline = get_baseline(name)
    recipe = resolve_recipe("default", baseline)
    points = grid(load_space(), baseline, 2.0, recipe=recipe)
    assert_matched(points, baseline, recipe, 2.0)
    kept = {c.kind for c in points.kept}
    every = {c.kind for c in points.kept + points.dropped}
    assert set(SINGLES) <= every  # each single-dimension point is tried, and kept or dropped with a reason
    assert kept & set(SINGLES) == SINGLES_MATCHED[name]


def test_single_dimension_points_move_only_their_own_dimension():
    baseline = get_baseline("resnet50")
    points = grid(load_space(), baseline, 2.0, recipe=resolve_recipe("default", baseline))
    for c in points.kept + points.dropped:
        if c.kind in SINGLES:
            own = SINGLES.index(c.kind)
            values = c.coefficients.as_tuple()
            others = {name: v for name, v in zip(("alpha", "beta", "gamma"), values, strict=True) if v != 1.0 and name != FREE[c.kind]}
            assert values[own] > 1.0 and set(others) <= {TRIM[c.kind]}  # at most the trim moved besides
            assert leading_dimension(c.coefficients) == c.kind
        else:  # compound: depth and resolution kept, width takes up the residue (in the proxy too)
            assert (c.coefficients.alpha, c.coefficients.gamma) == (c.planned.alpha, c.planned.gamma)
            assert (c.proxy_point.alpha, c.proxy_point.gamma) == (c.planned.alpha, c.planned.gamma)
    width = next(c for c in points.kept if c.kind == "width")
    assert width.planned.beta == pytest.approx(math.sqrt(2), abs=1e-4) and width.coefficients.beta != width.planned.beta


def test_reasons_say_which_cost_missed():
    baseline = get_baseline("resnet50")
    points = grid(load_space(), baseline, 2.0, recipe=resolve_recipe("default", baseline))
    reasons = {c.kind: c.reason for c in points.dropped if c.kind in SINGLES}
    assert set(reasons) == {"resolution"}
    assert reasons["resolution"].startswith("proxy costs x2.68")  # the full size itself is matched


def test_a_depth_point_whole_blocks_cannot_match_is_trimmed_by_resolution(monkeypatch):
    baseline = get_baseline("resnet50")
    recipe = resolve_recipe("default", baseline)
    depth = next(c for c in grid(load_space(), baseline, 2.0, recipe=recipe).kept if c.kind == "depth")
    # whole blocks: x1.85, then x2.07 at alpha 2.157; the channels take up the rest (beta 0.976)
    assert depth.coefficients.alpha == pytest.approx(2.157, abs=1e-3) and depth.coefficients.beta < 1.0
    assert depth.coefficients.gamma == 1.0 and abs(depth.macs_ratio / 2.0 - 1.0) <= FULL_TOLERANCE
    points = grid(load_space(), baseline, 2.0, recipe=recipe)
    assert trim_notes(load_space(), points.kept) == [  # said in the search's log and by `scaler grid`
        "note: the depth point's own steps miss the budget by more than 3%: beta trimmed to 0.976 "
        "so that it costs x1.999 (2.157, 0.976, 1.000)"]
    monkeypatch.setattr(matching, "TRIM_SPAN", 0.0)  # no trim: dropped, saying why
    untrimmed = next(c for c in grid(load_space(), baseline, 2.0, recipe=recipe).dropped if c.kind == "depth")
    assert untrimmed.reason.startswith("full size reaches x2.07") and "nor with beta trimmed" in untrimmed.reason
    wide = dataclasses.replace(load_space(), full_tolerance=0.05)  # within 5%, x2.07 itself is kept untrimmed
    plain = next(c for c in grid(wide, baseline, 2.0, recipe=recipe).kept if c.kind == "depth")
    assert plain.coefficients.beta == 1.0 and plain.macs_ratio == pytest.approx(2.068, abs=1e-3)


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2", "resnet18"])
def test_a_trim_never_outgrows_the_points_own_dimension(name):
    """At budgets where rounding steps are coarse (1.07x: a trim could carry most of the cost), every kept
    single-dimension point stays led by its dimension, its trim under half its own growth and TRIM_SPAN."""
    baseline = get_baseline(name)
    recipe = resolve_recipe("default", baseline)
    trimmed = 0
    for budget in (1.07, 1.1, 1.43, 2.0, 3.0):
        for c in grid(load_space(), baseline, budget, recipe=recipe).kept:
            if c.kind not in SINGLES:
                continue
            own = EXPONENT[FREE[c.kind]] * math.log(getattr(c.coefficients, FREE[c.kind]))
            trim = abs(EXPONENT[TRIM[c.kind]] * math.log(getattr(c.coefficients, TRIM[c.kind])))
            assert leading_dimension(c.coefficients) == c.kind and trim < own / 2 + 1e-9, (budget, c)
            assert trim <= math.log1p(matching.TRIM_SPAN) + 1e-9
            trimmed += trim > 0
    assert name != "resnet50" or trimmed  # resnet50's depth point is trimmed at 2x


def test_curves_and_families_grow_a_trimmed_point_without_its_trim(tmp_path):
    from scaler.family_files import run_coefficients
    from scaler.stages import baseline_point, curve_points

    baseline = get_baseline("resnet50")
    recipe = resolve_recipe("default", baseline)
    kept = grid(load_space(), baseline, 2.0, recipe=recipe).kept
    depth = next(c for c in kept if c.kind == "depth")
    assert depth.coefficients.beta < 1.0 and matching.direction("depth", depth.coefficients).beta == 1.0
    phi2 = curve_points(baseline_point(Coster(baseline, recipe)), [("chosen", 0, depth)], 2.0, Coster(baseline, recipe))[-1]
    assert phi2.phi == 2 and phi2.network.planned.beta == 1.0 and phi2.network.planned.alpha == pytest.approx(2.157**2, abs=1e-2)
    compound = next(c for c in kept if c.kind == "compound")
    assert matching.direction("compound", compound.coefficients) == compound.coefficients  # a compound point is its own way
    run = RunFolder(tmp_path)
    run.path.mkdir(exist_ok=True)
    run.write_json(run.config, {"baseline": "resnet50"})
    run.write_json(run.coefficients, {"kind": "depth", **dict(zip(("alpha", "beta", "gamma"), depth.coefficients.as_tuple(), strict=True))})
    with pytest.warns(ScalerWarning, match=r"trimmed to meet the budget; the family grows its direction \(2.157, 1, 1\)"):
        assert run_coefficients(run)[1] == Coefficients(depth.coefficients.alpha, 1.0, 1.0)


def test_a_tiny_budget_that_whole_blocks_cannot_meet_is_dropped():
    baseline = get_baseline("resnet50")
    points = grid(load_space(), baseline, 1.01, recipe=resolve_recipe("default", baseline))
    depth = next(c for c in points.kept + points.dropped if c.kind == "depth")
    assert depth in points.dropped and "full size reaches" in depth.reason  # one more block per stage: x1.3
    assert_matched(points, baseline, resolve_recipe("default", baseline), 1.01)


def test_resnet18_smoke_recipe():
    baseline = get_baseline("resnet18")
    recipe = resolve_recipe("smoke", baseline)
    points = grid(load_space(), baseline, 2.0, recipe=recipe)
    assert_matched(points, baseline, recipe, 2.0)
    # with channels to multiples of 1 at width 0.125: width and six compound points (all apart: at 3%
    # full size, no one value meets both sizes); depth's proxy steps from x1.78 (4 blocks a stage)
    # past x2.1 (5): dropped at 5%
    assert {c.kind for c in points.kept} == {"width", "compound"} and len(points.kept) == 7
    assert sum(c.proxy_coefficients is not None for c in points.kept) == 7


def test_a_search_with_nothing_matched_stops_with_one_line(tmp_path):
    space = tmp_path / "exact.toml"  # rounding steps never land within 0.1% of the budget at both sizes
    space.write_text("full_tolerance = 0.001\nproxy_tolerance = 0.001\n")
    recipe = resolve_recipe("smoke", get_baseline("resnet18"))
    config = SearchConfig("resnet18", space=str(space), data="synthetic:size=16,images=40,classes=4",
                          recipe=dataclasses.asdict(recipe))
    with pytest.raises(UsageError, match=r"no grid point .* within the space's tolerances"):
        run_search(config, RunFolder(tmp_path / "run"), log=lambda _: None)


def test_proxy_tolerance_from_the_space_file(tmp_path):
    path = tmp_path / "loose.toml"
    path.write_text("depth = [0.0, 0.3333]\nresolution = [0.0, 0.1667]\nproxy_tolerance = 0.5\nfull_tolerance = 0.05\n")
    space = load_space(path)
    assert (space.full_tolerance, space.proxy_tolerance) == (0.05, 0.5)
    baseline = get_baseline("resnet50")
    points = grid(space, baseline, 2.0, recipe=resolve_recipe("default", baseline))
    assert {c.kind for c in points.kept} >= {"depth", "width"}
    path.write_text("proxy_tolerance = 0")
    with pytest.raises(UsageError, match="proxy_tolerance must be"):
        load_space(path)


def test_nominal_filter_applies_to_the_matched_coefficients():
    baseline = get_baseline("resnet50")
    space = dataclasses.replace(load_space(), filter="nominal", tolerance=0.05)
    points = grid(space, baseline, 2.0, recipe=resolve_recipe("default", baseline))
    for c in points.kept:
        if c.kind == "compound":
            assert abs(c.coefficients.product / 2.0 - 1) <= 0.05
    assert any("outside the space's tolerance" in c.reason for c in points.dropped)


def test_correct_keeps_the_closest_value_of_a_staircase():
    steps = lambda v: float(math.ceil(v * 4)) / 4  # noqa: E731  a staircase of quarter steps
    assert correct(steps, 1.1, 1.0) == 1.0  # 1.0 misses by 10%, the next step (1.25) by 14%
    assert correct(lambda v: v**2, 4.0, 1.0, exponent=2.0) == pytest.approx(2.0)


def test_compare_still_matches_through_the_shared_loop():
    b = get_baseline("resnet50")
    matched = match_macs(b, get_strategy("width"), 2.0, count_cost(b).macs)
    assert abs(math.log(matched.macs_ratio / 2.0)) <= 0.01


def test_apart_matches_proxies_that_one_shared_coefficient_cannot():
    """resnet50 at 2x: with the proxy the exact miniature, 5% keeps 4 points; apart, 8, every proxy within 5%."""
    baseline = get_baseline("resnet50")
    recipe = resolve_recipe("default", baseline)
    apart = grid(load_space(), baseline, 2.0, recipe=recipe)
    miniature = grid(dataclasses.replace(load_space(), proxy_match="miniature"), baseline, 2.0, recipe=recipe)
    assert all(c.proxy_coefficients is None for c in miniature.kept + miniature.dropped)
    assert (len(miniature.kept), len(apart.kept)) == (4, 8)
    assert_matched(apart, baseline, recipe, 2.0)
    moved = [c for c in apart.kept if c.proxy_coefficients is not None]
    assert moved and {c.kind for c in moved} == {"compound"}
    # a point whose miniature fits keeps it: apart only where one value cannot meet both
    fits = {c.coefficients for c in miniature.kept}
    assert all(c.proxy_coefficients is None for c in apart.kept if c.coefficients in fits)
    assert moved[0].progress_label.endswith(f"(proxy b={moved[0].proxy_coefficients.beta:.3g})")
    assert "proxy" not in next(c for c in apart.kept if c.proxy_coefficients is None).progress_label
    row = moved[0].as_dict()
    assert (row["proxy_alpha"], row["proxy_beta"], row["proxy_gamma"]) == moved[0].proxy_coefficients.as_tuple()
    assert "proxy_beta" not in miniature.kept[0].as_dict()  # a miniature's identity is what it was before


def test_a_point_that_cannot_be_matched_even_apart_says_so():
    baseline = get_baseline("mobilenet_v2")
    points = grid(load_space(), baseline, 2.0, recipe=resolve_recipe("default", baseline))
    depth = next(c for c in points.dropped if c.kind == "depth")
    assert depth.reason.startswith("proxy costs x1.83") and f"nor with its own alpha within x{APART_LIMIT:g}" in depth.reason
    coarse = grid(load_space("compound_coarse"), baseline, 2.0, recipe=resolve_recipe("default", baseline))
    assert "depth" in {c.kind for c in coarse.kept} and len(coarse.kept) > len(points.kept)


def test_the_job_trains_the_proxy_point():
    from scaler.objective import Planned, make_job

    baseline = get_baseline("resnet50")
    recipe = resolve_recipe("default", baseline)
    cand = next(c for c in grid(load_space(), baseline, 2.0, recipe=recipe).kept if c.proxy_coefficients is not None)
    config = SearchConfig("resnet50", recipe=dataclasses.asdict(recipe))
    job = make_job(config, Planned(cand, dataclasses.asdict(recipe), "x"), 0)
    assert job["coefficients"] == list(cand.proxy_coefficients.as_tuple()) != list(cand.coefficients.as_tuple())


def test_proxy_match_from_the_space_file(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text('proxy_match = "miniature"\n')
    assert load_space(path).proxy_match == "miniature" and load_space().proxy_match == "apart"
    path.write_text('proxy_match = "near"\n')
    with pytest.raises(UsageError, match="proxy_match must be one of apart, miniature"):
        load_space(path)


def test_a_search_made_before_apart_matching_reads_as_miniature():
    from scaler.run_identity import canonical

    old = canonical({"space_rules": {"proxy_tolerance": 0.15}})
    assert old["space_rules"]["proxy_match"] == "miniature"
    assert canonical({"space_rules": {"proxy_match": "apart"}})["space_rules"]["proxy_match"] == "apart"


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_b0"])
def test_a_point_dropped_on_its_proxy_has_no_proxy_within_the_apart_limit(name):
    """The apart search covers its whole range: a brute-force scan of the proxy's free coefficient
    within APART_LIMIT of the full size's finds no proxy within tolerance for any dropped point."""
    from scaler.matching import Coster

    baseline = get_baseline(name)
    recipe = resolve_recipe("default", baseline)
    points = grid(load_space(), baseline, 2.0, recipe=recipe)
    coster = Coster(baseline, recipe)
    dropped = [c for c in points.dropped if c.reason.startswith("proxy costs")]
    assert dropped
    for c in dropped:
        free = FREE[c.kind]
        mine = getattr(c.coefficients, free)
        for k in range(-200, 201):
            value = mine * APART_LIMIT ** (k / 200)
            if c.kind != "compound" and value <= 1.0:
                continue
            ratio = coster(dataclasses.replace(c.coefficients, **{free: value})).proxy_ratio
            assert abs(ratio / 2.0 - 1) > PROXY_TOLERANCE, (c.kind, c.coefficients, free, value, ratio)
