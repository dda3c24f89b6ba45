"""docs/data.md, 2026-11-27: the pair's small-letter set between `both` (4) and `hard` (10), at the glyph recipe with lr 0.2, label smoothing 0."""
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
VARIANTS = {
    "s6": dataclasses.replace(H, small="aceosu"),
    "s8": dataclasses.replace(H, small="acemnosu"),
    "both": glyphs.FOCI["both"],
}
POINTS = {"baseline": (1.0, 1.0, 1.0), "resolution": (1.0, 1.0, 1.413), "depth": (2.291, 0.9765, 1.0)}  # depth: the search's proxy of (2.157, 0.976, 1)
SIZE = {"proxy_resolution": 40, "proxy_width": 0.125, "batch_size": 64}
RECIPES = {"new": {**SIZE, "lr": 0.2, "label_smoothing": 0.0}, "old": SIZE}  # old: the default lr 0.1, label smoothing 0.1
out = Path(__file__).with_name("classes.jsonl")
done = {(r["variant"], r["epochs"], r["point"], r["seed"], r.get("recipe", "new")) for r in map(json.loads, out.read_text().splitlines())} if out.exists() else set()
set_threads(None)
baseline = get_baseline("resnet50")
for a in sys.argv[1:]:
    name, epochs, point, seed, which = (a.split(":") + ["new"])[:5]  # variant:epochs:point:seed[:recipe]
    epochs, seed = int(epochs), int(seed)
    if (name, epochs, point, seed, which) in done:
        continue
    glyphs.FOCI[f"cl-{name}"] = VARIANTS[name]
    data = dataset(f"glyphs:focus=cl-{name}")
    recipe = resolve_recipe("default", baseline, {**RECIPES[which], "epochs": epochs})
    t = time.perf_counter()
    r = train_point(baseline, Coefficients(*POINTS[point]).multipliers(1.0), data=data, recipe=recipe, seed=seed)
    row = {"recipe": which, "variant": name, "epochs": epochs, "point": point, "seed": seed, "acc": round(100 * r.accuracy, 2), "s": round(time.perf_counter() - t)}
    print(row, flush=True)
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")
