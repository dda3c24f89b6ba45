"""docs/data.md, 2026-11-27: glyphs variants with low-contrast / noisy images; the resnet50 glyph recipe's baseline at 8 and 32 epochs."""
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

B = glyphs.FOCI["both"]
VARIANTS = {
    "c10-n20": dataclasses.replace(B, contrast=(0.10, 0.9), noise=0.20),
    "c05-n30": dataclasses.replace(B, contrast=(0.05, 0.9), noise=0.30),
    "c02-n25": dataclasses.replace(B, contrast=(0.02, 0.6), noise=0.25),
    "c05-n45": dataclasses.replace(B, contrast=(0.05, 0.9), noise=0.45),
}
POINTS = {"baseline": (1.0, 1.0, 1.0), "depth": (2.157, 1.0, 1.0), "width": (1.0, 1.424, 1.0), "resolution": (1.0, 1.0, 1.413)}
RECIPE = {"proxy_resolution": 40, "proxy_width": 0.125, "batch_size": 64}
out = Path(__file__).with_name("levels.jsonl")
done = {(r["variant"], r["epochs"], r["point"], r["seed"]) for r in map(json.loads, out.read_text().splitlines())} if out.exists() else set()
plan = [a.split(":") for a in sys.argv[1:]]  # variant:epochs:point:seed
set_threads(None)
baseline = get_baseline("resnet50")
for name, epochs, point, seed in plan:
    epochs, seed = int(epochs), int(seed)
    if (name, epochs, point, seed) in done:
        continue
    glyphs.FOCI[f"lv-{name}"] = VARIANTS[name]
    data = dataset(f"glyphs:focus=lv-{name}")
    recipe = resolve_recipe("default", baseline, {**RECIPE, "epochs": epochs})
    t = time.perf_counter()
    r = train_point(baseline, Coefficients(*POINTS[point]).multipliers(1.0), data=data, recipe=recipe, seed=seed)
    row = {"variant": name, "epochs": epochs, "point": point, "seed": seed, "acc": round(100 * r.accuracy, 2), "s": round(time.perf_counter() - t)}
    print(row, flush=True)
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")
