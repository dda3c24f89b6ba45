"""Retrain one run of mobilenet_v2's reference (point, seed) exactly as the benchmark trains it, at another lr.

Usage, from the repository root, one thread:
    OMP_NUM_THREADS=1 python docs/measurements/fidelity-mobilenet_v2-glyphs-hard-fine/reference-lr/retrain.py POINT SEED LR
Prints one JSON line: the final validation accuracy, the seconds and the training loss per epoch.
"""
import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT))
spec = importlib.util.spec_from_file_location("fidelity", ROOT / "benchmarks" / "fidelity.py")
f = importlib.util.module_from_spec(spec)
sys.modules["fidelity"] = f
spec.loader.exec_module(f)
from scaler.objective import Planned, evaluate_point, make_job  # noqa: E402

point, seed, lr = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
M = ("--baseline mobilenet_v2 --data glyphs:focus=hard --set proxy_resolution=48 --set proxy_width=0.25 "
     "--set batch_size=64 --space compound_fine").split()
bench = f.setup(f.parse_args([*M, "--out", "runs/reference-lr", "--reference-seeds", "8"]))
recipe = dataclasses.asdict(bench.reference.replace(lr=lr))
r = evaluate_point(make_job(bench.config, Planned(bench.cands[point], recipe, ""), seed))
print(json.dumps({"point": point, "seed": seed, "lr": lr, "acc": r["val_accuracies"][-1], "seconds": r["seconds"],
                  "train_losses": [round(x, 3) for x in r["train_losses"]]}), flush=True)
