"""docs/data.md, 2026-11-28: more optimiser steps in the same 8 epochs (smaller batches, a shorter
warm-up), or more images on the glyph pair sets, resnet50's proxy baseline at the glyph recipe (40 px, width 0.125).

OMP_NUM_THREADS=1 python steps.py VARIANT:EPOCHS:RECIPE:SEED ...   (appends to steps.jsonl, skips done)
"""
import dataclasses
import json
import sys
import time
from pathlib import Path

from scaler import glyphs
from scaler.baselines import get_baseline
from scaler.devices import set_threads
from scaler.proxy import dataset, train_point
from scaler.recipe import resolve_recipe
from scaler.scaling import Coefficients

H = glyphs.FOCI["hard"]
VARIANTS = {"hard": H, "s8": dataclasses.replace(H, small="acemnosu"), "s6": dataclasses.replace(H, small="aceosu")}
SIZE = {"proxy_resolution": 40, "proxy_width": 0.125, "label_smoothing": 0.0}
RECIPES = {  # lr 0.2 and no label smoothing: the best of docs/data.md's 2026-11-27 recipe table
    "b64": {**SIZE, "batch_size": 64, "lr": 0.2},
    "b64w": {**SIZE, "batch_size": 64, "lr": 0.2, "warmup_epochs": 0.25},
    "b32": {**SIZE, "batch_size": 32, "lr": 0.2},
    "b32h": {**SIZE, "batch_size": 32, "lr": 0.1},
    "b16": {**SIZE, "batch_size": 16, "lr": 0.1},
    "b64all": {**SIZE, "batch_size": 64, "lr": 0.2, "subset": None},  # the whole training split (5,000), not 2,000
    "b64s3500": {**SIZE, "batch_size": 64, "lr": 0.2, "subset": 3500},
}
out = Path(__file__).with_name("steps.jsonl")
done = {(r["variant"], r["epochs"], r["recipe"], r["seed"]) for r in map(json.loads, out.read_text().splitlines())} if out.exists() else set()
set_threads(None)
baseline = get_baseline("resnet50")
for a in sys.argv[1:]:
    name, epochs, which, seed = a.split(":")
    epochs, seed = int(epochs), int(seed)
    if (name, epochs, which, seed) in done:
        continue
    glyphs.FOCI[f"st-{name}"] = VARIANTS[name]
    data = dataset(f"glyphs:focus=st-{name}")
    recipe = resolve_recipe("default", baseline, {**RECIPES[which], "epochs": epochs})
    t = time.perf_counter()
    r = train_point(baseline, Coefficients(1.0, 1.0, 1.0).multipliers(1.0), data=data, recipe=recipe, seed=seed)
    row = {"variant": name, "epochs": epochs, "recipe": which, "seed": seed, "acc": round(100 * r.accuracy, 2), "s": round(time.perf_counter() - t)}
    print(row, flush=True)
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")
