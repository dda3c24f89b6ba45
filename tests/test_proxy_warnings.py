"""Warnings when the proxy cannot see what it judges: each check once triggered and once quiet,
the smallest proxy resolution held against the analytic walks, and the warnings carried through a
search into its log, coefficients.json, printed results and report."""

from __future__ import annotations

import dataclasses
import json

import pytest

from scaler.baselines import get_baseline
from scaler.commands._common import RECIPE_FLAGS
from scaler.cost import final_feature_size, last_conv_size
from scaler.data import load_dataset
from scaler.proxy_checks import (
    PROXY_RESOLUTION_FLAG,
    check_baseline_accuracy,
    check_curve_costs,
    check_feature_map,
    check_upsampling,
    check_winners_agree,
    curve_cost_missed,
    feature_sizes,
    run_checks,
    size_function,
    smallest_proxy_resolution,
)
from scaler.recipe import ProxyRecipe, proxy_settings, resolve_recipe
from scaler.search_space import candidates, grid, load_space
from scaler.stages import curve_tolerances


def _grid(name: str):
    baseline = get_baseline(name)
    return baseline, candidates(load_space(), baseline, 2.0)


def _tiny_data(size: int):
    return load_dataset(f"synthetic:size={size},images=40,classes=4")


# --- 1. tiny last feature map -------------------------------------------------------------------


def test_resnet50_at_24px_has_a_tiny_last_feature_map_and_the_fix_names_the_real_flag():
    baseline, cands = _grid("resnet50")
    recipe = ProxyRecipe()  # proxy_resolution 24
    smallest = smallest_proxy_resolution(baseline, cands, recipe)
    w = check_feature_map(feature_sizes(baseline, cands, recipe), recipe.proxy_resolution, smallest)
    assert w is not None and w.code == "tiny_feature_map"
    assert "24 px" in w.message and "1×1" in w.message and "depth point" in w.message
    assert w.fix.startswith(f"--proxy-resolution {smallest} ")
    assert RECIPE_FLAGS[PROXY_RESOLUTION_FLAG][0] == "proxy_resolution"  # the flag the fix names exists


def test_resnet50_at_64px_has_no_tiny_feature_map():
    baseline, cands = _grid("resnet50")
    recipe = ProxyRecipe(proxy_resolution=64)
    assert check_feature_map(feature_sizes(baseline, cands, recipe), 64, None) is None


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2"])
def test_smallest_proxy_resolution_is_what_the_analytic_walk_says(name):
    baseline, cands = _grid(name)
    recipe = ProxyRecipe()
    smallest = smallest_proxy_resolution(baseline, cands, recipe)
    assert smallest == 33  # both downsample by 32: 33 px is the first input whose last map is 2×2

    def sizes_at(resolution: int):
        r = recipe.replace(proxy_resolution=resolution)
        out = []
        for c in cands:
            width, depth, px = proxy_settings(c.coefficients.multipliers(1.0), r)
            out.append(final_feature_size(baseline, width, depth, px))
        return out

    assert all(min(hw) >= 2 for hw in sizes_at(smallest))
    assert any(min(hw) < 2 for hw in sizes_at(smallest - 1))


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_large", "efficientnet_b0"])
def test_the_walks_last_feature_map_equals_a_forward_hook(name):
    baseline = get_baseline(name)  # squeeze-excite pools inside blocks: the head's pool must be the one kept
    model = baseline.build(width=0.25, num_classes=2)
    for px in (24, 33, 57):
        assert final_feature_size(baseline, 0.25, 1.0, px) == last_conv_size(model, px)


def test_a_traced_network_falls_back_to_the_forward_hook():
    traced = dataclasses.replace(get_baseline("resnet18"), name="user", complexity_fn=None)
    points = grid(load_space(), get_baseline("resnet18"), 2.0)  # the single-dimension points, kept or dropped
    cands = sorted((dataclasses.replace(c, reason="") for c in points.kept + points.dropped
                    if c.kind in ("depth", "width", "resolution")),
                   key=lambda c: ("depth", "width", "resolution").index(c.kind))
    recipe = ProxyRecipe()
    size = size_function(traced)
    hooked = feature_sizes(traced, cands, recipe, size)
    assert [hw for _, _, hw in hooked] == [(1, 1), (1, 1), (2, 2)]  # depth, width at 24 px; resolution at 34 px
    assert hooked == feature_sizes(get_baseline("resnet18"), cands, recipe)  # the analytic walk agrees
    assert smallest_proxy_resolution(traced, cands, recipe, size) == 33


# --- 2. upsampling only -------------------------------------------------------------------------


def test_proxy_above_the_native_size_is_upsampling():
    w = check_upsampling(24, 1.0, _tiny_data(16).image_size)
    assert w is not None and w.code == "upsampling_only"
    assert "24 px" in w.message and "16×16" in w.message and "imagefolder" in w.fix


def test_proxy_within_the_native_size_is_not():
    assert check_upsampling(24, 1.0, _tiny_data(32).image_size) is None
    # the grid's resolution point (gamma 1.41 at 2x) takes 24 px to 34: above 32 again
    assert check_upsampling(24, 2 ** 0.5, (32, 32)) is not None


# --- 3. saturated or chance-level baseline ------------------------------------------------------


@pytest.mark.parametrize("accuracy, code", [(0.97, "baseline_saturated"), (0.15, "baseline_near_chance")])
def test_saturated_or_near_chance_baseline_warns(accuracy, code):
    w = check_baseline_accuracy(accuracy, 10)
    assert w is not None and w.code == code


def test_a_learning_baseline_or_no_accuracy_does_not_warn():
    assert check_baseline_accuracy(0.7, 10) is None
    assert check_baseline_accuracy(None, 10) is None
    # two classes: twice chance would be 100%; halfway between chance and perfect is the bar
    assert check_baseline_accuracy(0.8, 2) is None
    assert check_baseline_accuracy(0.6, 2).code == "baseline_near_chance"


# --- 4. screen and confirm winners --------------------------------------------------------------


def test_winners_that_differ_warn_and_equal_ones_do_not():
    assert check_winners_agree((1.41, 1.0, 1.0), (1.0, 1.0, 1.41)).code == "winners_disagree"
    assert check_winners_agree((1.41, 1.0, 1.0), [1.4100000001, 1.0, 1.0]) is None  # a JSON round trip
    assert check_winners_agree("depth", "depth") is None


# --- 4b. a curve network off its cost -----------------------------------------------------------


def _curve_costs(name: str, space: str, proxy_resolution: int):
    """(strategy, phi, full ratio, proxy ratio) of every grid point's curve, matched as a search matches it."""
    from scaler.matching import Coster
    from scaler.stages import baseline_point, curve_points

    baseline = get_baseline(name)
    recipe = resolve_recipe("default", baseline).replace(proxy_resolution=proxy_resolution)
    rules = load_space(space).matching_rules()
    kept = grid(load_space(space), baseline, 2.0, recipe=recipe).kept
    coster = Coster(baseline, recipe)
    points = curve_points(baseline_point(coster), [(c.kind, i, c) for i, c in enumerate(kept)], 2.0, coster, rules)
    return [(p.strategy, p.phi, p.network.macs_ratio, p.network.proxy_macs_ratio) for p in points], rules


def test_a_curve_whose_proxy_misses_its_cost_warns_and_names_the_point():
    # resnet18's depth at phi = 2: whole blocks step its proxy from x3.74 past x4.2 (measured 2026-11-26)
    points, rules = _curve_costs("resnet18", "compound", 24)
    warning = check_curve_costs(points, 2.0, *curve_tolerances(rules))
    assert warning.code == "curve_cost_missed" and PROXY_RESOLUTION_FLAG in warning.fix
    missed = [p for p in points if p[1] == 2 and abs(p[3] / 4 - 1) > rules["proxy_tolerance"]]
    assert missed and all(f"{name} phi = 2 (proxy: x{full:.3g} at full size, proxy x{proxy:.3g})" in warning.message
                          for name, _, full, proxy in missed)
    assert "nothing to change" not in warning.fix  # no full size missed here


def test_a_curves_phi_2_proxy_may_be_apart_by_the_limit_squared():
    """Squared coefficients, squared reach: mobilenet_v2's compound phi = 2 proxies, which reached only
    x2.48-2.65 of x4 within APART_LIMIT, are matched within APART_LIMIT ** 2 (24 px barely prices resolution),
    their full size within the curves' 5% where the grid's 3% leaves no full size whose proxy can be matched."""
    from scaler.matching import APART_LIMIT, FREE, Coster
    from scaler.stages import CURVE_FULL_TOLERANCE, baseline_point, curve_points

    baseline = get_baseline("mobilenet_v2")
    recipe = resolve_recipe("default", baseline)
    space = load_space("compound_coarse")
    kept = grid(space, baseline, 2.0, recipe=recipe).kept
    coster = Coster(baseline, recipe)
    points = curve_points(baseline_point(coster), [(c.kind, i, c) for i, c in enumerate(kept)], 2.0, coster,
                          space.matching_rules())
    reach = []
    for p in (p for p in points if p.phi == 2):
        assert abs(p.network.proxy_macs_ratio / 4 - 1) <= space.proxy_tolerance, p
        assert abs(p.network.macs_ratio / 4 - 1) <= CURVE_FULL_TOLERANCE, p
        if p.network.proxy_coefficients is not None:
            name = FREE[p.network.kind]
            reach.append(getattr(p.network.proxy_coefficients, name) / getattr(p.network.coefficients, name))
    assert all(1 / APART_LIMIT**2 - 1e-9 <= r <= APART_LIMIT**2 + 1e-9 for r in reach)
    assert max(reach) > APART_LIMIT  # the wider reach is what matched them


def test_curves_within_their_costs_do_not_warn():
    points, rules = _curve_costs("resnet50", "compound", 24)
    assert check_curve_costs(points, 2.0, *curve_tolerances(rules)) is None
    assert check_curve_costs([("chosen", 2, 4.0, 3.0)], 2.0, 0.05, 0.05).code == "curve_cost_missed"
    assert check_curve_costs([("chosen", 2, 4.0, float("nan"))], 2.0, 0.05, 0.05) is not None  # not costed: not trusted
    full_only = check_curve_costs([("depth", 2, 4.4, 4.0), ("depth", 1, 2.0, 2.0)], 2.0, 0.05, 0.05)
    assert "depth phi = 2 (full size:" in full_only.message and "1 curve network(s)" in full_only.message
    assert "nothing to change" in full_only.fix and PROXY_RESOLUTION_FLAG not in full_only.fix
    assert curve_cost_missed([("b", 0, 9.0, 9.0), ("c", 2, 4.4, 3.0), ("c", 1, 2.0, 2.0)], 2.0, 0.05, 0.05) == [
        "", "full size and proxy", ""]


# --- 5. through a search ------------------------------------------------------------------------


def test_run_checks_is_quiet_when_the_proxy_can_see():
    baseline, cands = _grid("resnet18")
    assert run_checks(baseline, cands, ProxyRecipe(proxy_resolution=40), _tiny_data(64)) == []


def test_search_logs_stores_and_prints_its_warnings(tmp_path, capsys):
    from scaler.commands.search import print_results
    from scaler.run_folder import RunFolder
    from scaler.search import SearchConfig, run_search

    space = tmp_path / "space.toml"
    space.write_text("depth = [1.0]\nresolution = [0.0]\n")  # only the three single-dimension points
    recipe = resolve_recipe("smoke", get_baseline("resnet18"), {"subset": 64, "batch_size": 32})
    config = SearchConfig(baseline="resnet18", budget="2x", space=str(space), data="synthetic:size=16,images=120,classes=4",
                          recipe=dataclasses.asdict(recipe), seeds=1, device="cpu", confirm=0, curves="none")
    lines: list[str] = []
    result = run_search(config, RunFolder(tmp_path / "run"), log=lines.append)
    warned = [line for line in lines if line.startswith("warning:")]
    assert len(warned) == 2 and "--proxy-resolution 33" in warned[0] and "16×16" in warned[1]
    stored = json.loads((tmp_path / "run" / "coefficients.json").read_text())["warnings"]
    assert [w["code"] for w in stored] == ["tiny_feature_map", "upsampling_only"]
    assert all(set(w) == {"code", "message", "fix"} for w in stored)
    print_results(result)
    printed = capsys.readouterr().out
    # the resolution point is dropped at 24 px (its proxy costs x2.7), so the largest input is 24 px
    assert printed.rstrip().splitlines()[-1].startswith("warning: the largest proxy input is 24 px")


def test_report_shows_the_warnings_before_the_configuration(tmp_path):
    from scaler.report import write_report
    from scaler.run_folder import RunFolder

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"baseline": "resnet50", "budget": "2x", "scaler_version": "0.1.0"}))
    warning = {"code": "tiny_feature_map", "message": "at proxy resolution 24 px the last feature map is 1×1",
               "fix": "--proxy-resolution 33"}
    (run / "coefficients.json").write_text(json.dumps({"baseline": "resnet50", "alpha": 1.0, "beta": 1.0, "gamma": 1.41,
                                                       "accuracy_mean": 0.8, "warnings": [warning]}))
    write_report([RunFolder(run)])
    md = (run / "report.md").read_text()
    at = md.index("at proxy resolution 24 px the last feature map is 1×1; to change: --proxy-resolution 33")
    assert at < md.index("Configuration")
