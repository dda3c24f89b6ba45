"""benchmarks/proxy_options.py: its table agrees with the grid the search trains, and matching the proxy apart."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys

from conftest import ROOT

from scaler.baselines import get_baseline
from scaler.recipe import resolve_recipe
from scaler.search_space import grid, load_space


def _load():
    spec = importlib.util.spec_from_file_location("proxy_options", ROOT / "benchmarks" / "proxy_options.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


options = _load()


def test_the_row_counts_what_the_search_grid_keeps():
    row = options.measure("resnet18", 24, 0.25, timed=False)
    recipe = resolve_recipe("default", get_baseline("resnet18"))
    miniature = dataclasses.replace(load_space(None), proxy_tolerance=0.15, proxy_match="miniature")  # the rule until 2026-11-26
    kept = grid(miniature, get_baseline("resnet18"), 2.0, recipe=recipe).kept
    assert row["kept 5%/15%"] == f"{len(kept)} of 9"
    assert row["resolution 5%/15%"] == any(c.kind == "resolution" for c in kept)
    assert row["last map"] == (1, 1) and row["proxy MACs x"] == 1.0  # the default proxy is the reference


def test_matching_the_proxy_apart_keeps_at_least_what_matching_together_keeps():
    baseline = get_baseline("resnet50")
    recipe, space = resolve_recipe("default", baseline), load_space(None)
    strict = dataclasses.replace(space, full_tolerance=0.03, proxy_tolerance=0.05, proxy_match="miniature")
    together = len(grid(strict, baseline, 2.0, recipe=recipe).kept)
    kept, spread = options.proxy_apart(baseline, recipe, space, 0.03, 0.05)
    assert together <= kept <= 9 and spread >= 1.0
    everything, _ = options.proxy_apart(baseline, recipe, space, 0.03, 10.0)  # no proxy tolerance: only the full size decides
    assert everything >= kept


def test_the_command_prints_one_row_per_option(capsys):
    assert options.main(["--baselines", "resnet18", "--options", "24:0.25", "40:0.125"]) == 0
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| resnet18 |")]
    assert [line.split(" | ")[1:3] for line in table] == [["24", "0.25"], ["40", "0.125"]]
