"""A `scaler nas` winner against the width-matched start on seeds the search never saw.

The search picks its winner as the best of the confirmed architectures on the confirm stage's
seeds, and compares it with the start on those same seeds: a winner's curse makes that margin
optimistic. This retrains both networks — ``best.json`` and the reference recorded in ``nas.json``
— at the run's confirm recipe, on the run's data, with seeds after the confirm stage's, and prints
each accuracy, both means and the paired 95% interval of the difference. Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/nas_fresh_seeds.py runs/nas-50M [--seeds 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from scaler.baselines import get_baseline
from scaler.proxy import dataset, train_point
from scaler.recipe import recipe_from_dict
from scaler.scaling import Multipliers
from scaler.stats import margin_between


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a finished `scaler nas` run folder (with its reference)")
    parser.add_argument("--seeds", type=int, default=4, help="fresh seeds (default 4)")
    args = parser.parse_args()
    config = json.loads((args.run / "config.json").read_text())
    summary = json.loads((args.run / "nas.json").read_text())
    ref = summary["reference"]
    if not ref or not ref.get("stages"):
        raise SystemExit(f"{args.run} has no trained reference (run scaler nas with a confirm stage, without --no-reference)")
    recipe = recipe_from_dict(config["confirm_recipe"])
    data = config["data"]["source"] if isinstance(config["data"], dict) else config["data"]
    data = dataset(data, config["recipe"].get("seed", 0))
    reference = {**summary["fitted_start"], "name": ref["name"], "stages": ref["stages"],
                 "stem_channels": ref["stem_channels"], "head_channels": ref["head_channels"]}
    nets = {"winner": get_baseline(str(args.run / "best.json")), "reference": get_baseline(reference)}
    first = config["confirm_seeds"]  # seed indices the search used: 0 .. confirm_seeds - 1
    accs: dict[str, dict[int, float]] = {name: {} for name in nets}
    for seed in range(first, first + args.seeds):
        for name, baseline in nets.items():
            result = train_point(baseline, Multipliers(width=1.0, depth=1.0, resolution=1.0), data=data, recipe=recipe,
                                 seed=recipe.seed + seed)  # the proxy width and pixels of the run's recipe, as the search
            accs[name][seed] = result.accuracy
            print(f"{name:<9} seed {seed}: {result.accuracy:.4f}", flush=True)
    for name, values in accs.items():
        print(f"{name:<9} mean {statistics.fmean(values.values()):.4f}  std {statistics.stdev(values.values()):.4f}")
    m = margin_between(accs["winner"], accs["reference"])
    span = f"[{m.interval[0]:+.4f}, {m.interval[1]:+.4f}]" if m.interval else "(no interval)"
    print(f"winner - reference: {m.margin:+.4f} {span} ({m.test})")


if __name__ == "__main__":
    main()
