"""Candidate depth controls: variants of ``glyphs:focus=depth`` and which single dimension each rewards.

The shipped depth control (the large letter is the class; every cell a random small letter) is
saturated at the controls' recipe: resnet50's proxy reads it at 99.9% and every grid point ties
(docs/data.md). A depth control needs data where, at equal cost, the deeper network leads at the
screen's length *and* at the confirm stage's. Each variant here changes the large letters, the grid
or the nuisances of :class:`scaler.glyphs.Focus` and is registered as a focus ``depth-NAME`` for
this process only; each point (the baseline and the 2x grid's three single-dimension points, as
``scaler train --coefficients A,B,G --phi 1`` trains them) is trained once per epoch count and seed
at the controls' recipe (40 px, proxy width 0.125, batch 64; docs/fidelity.md). One line per run
as it finishes, then a table.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/depth_control.py                 # every variant, 8 and 16 epochs
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/depth_control.py --variants rotated --epochs 8 --seeds 0 1
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import pandas as pd

from scaler import glyphs
from scaler.baselines import get_baseline
from scaler.devices import set_threads
from scaler.proxy import dataset, train_point
from scaler.recipe import resolve_recipe
from scaler.scaling import Coefficients

SHIPPED = glyphs.FOCI["depth"]
LOOK_ALIKE = "BDEFHKNPRU"  # large letters alike in outline at 5-7 cells
VARIANTS = {
    "shipped": SHIPPED,
    "look-alike-18": dataclasses.replace(SHIPPED, large="BDEFHKLNPRUCGOQSZJ", grids=(5, 6)),
    "scaled-18": dataclasses.replace(SHIPPED, large="BDEFHKLNPRUCGOQSZJ", grids=(5, 6, 7), rotation=0.7,
                                     scale=(0.55, 1.05), shift=0.25),
    "scaled": dataclasses.replace(SHIPPED, large=LOOK_ALIKE, grids=(5, 6, 7), rotation=0.7, scale=(0.55, 1.05), shift=0.25),
    "rotated": dataclasses.replace(SHIPPED, large=LOOK_ALIKE, grids=(5, 6, 7), rotation=0.7),
    "rotated-noisy-cells": dataclasses.replace(SHIPPED, large=LOOK_ALIKE, grids=(5, 6, 7), rotation=0.7, cell_noise=(0.3, 0.15)),
    "rotated-scaled": dataclasses.replace(SHIPPED, large=LOOK_ALIKE, grids=(5, 6, 7), rotation=0.7, scale=(0.7, 1.05), shift=0.2),
}
# The 2x grid's single-dimension points for resnet50 at the controls' recipe (docs/data.md), and the baseline.
CONTROLS_RECIPE = {"proxy_resolution": 40, "proxy_width": 0.125, "batch_size": 64}
POINTS = {"baseline": (1.0, 1.0, 1.0), "depth": (2.157, 1.0, 1.0), "width": (1.0, 1.424, 1.0), "resolution": (1.0, 1.0, 1.413)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--points", nargs="+", choices=list(POINTS), default=list(POINTS))
    parser.add_argument("--epochs", nargs="+", type=int, default=[8, 16])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    args = parser.parse_args()
    set_threads(None)
    baseline = get_baseline("resnet50")
    rows = []
    for name in args.variants:
        glyphs.FOCI[f"depth-{name}"] = VARIANTS[name]
        data = dataset(f"glyphs:focus=depth-{name}")
        for epochs in args.epochs:
            recipe = resolve_recipe("default", baseline, {**CONTROLS_RECIPE, "epochs": epochs})  # as `scaler train --epochs` does
            for point in args.points:
                for seed in args.seeds:
                    start = time.perf_counter()
                    result = train_point(baseline, Coefficients(*POINTS[point]).multipliers(1.0), data=data,
                                         recipe=recipe, seed=seed)
                    rows.append({"variant": name, "epochs": epochs, "point": point, "seed": seed,
                                 "accuracy %": round(100 * result.accuracy, 1)})
                    print(f"{name:20s} {epochs:3d} ep  {point:10s} seed {seed}  {100 * result.accuracy:5.1f}%  "
                          f"{time.perf_counter() - start:.0f} s", flush=True)
    table = pd.DataFrame(rows).pivot_table(index=["variant", "epochs"], columns="point", values="accuracy %", aggfunc="mean")
    print(table[[p for p in args.points if p in table]].round(1).to_string())


if __name__ == "__main__":
    main()
