"""Does the proxy rank scalings the way a longer training ranks them?

Trains the baseline and six scaled variants of about 2x the multiply-adds (depth, width,
resolution, three compound points) with a proxy recipe and with the same recipe run ``--factor``
times longer, over ``--seeds`` seeds, and prints per variant the measured MACs ratio at the proxy's
settings, the accuracies (mean and seed std) and the Kendall tau between the two rankings of
the mean accuracies. Results go line by line into ``--out`` (JSON lines) and a rerun with the same
file skips what is done, so a long run survives interruption.

    .venv/bin/python benchmarks/proxy_fidelity.py                       # default recipe, resnet50, animals
    .venv/bin/python benchmarks/proxy_fidelity.py --baseline resnet18 --seeds 3 --factor 4
    .venv/bin/python benchmarks/proxy_fidelity.py --set epochs=4 --set subset=8000 --long-seeds 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

from scaler.baselines import get_baseline
from scaler.cost import count_cost
from scaler.data import load_dataset
from scaler.recipe import PRESETS, proxy_settings
from scaler.recipe import resolve_recipe as get_recipe
from scaler.scaling import Multipliers
from scaler.train import TrainingFailed, train

# (label, depth, width, resolution): about 2x the baseline's multiply-adds, nominally.
VARIANTS = [
    ("baseline", 1.0, 1.0, 1.0),
    ("depth", 2.0, 1.0, 1.0),
    ("width", 1.0, 1.414, 1.0),
    ("resolution", 1.0, 1.0, 1.414),
    ("compound 1.2,1.1,1.15", 1.2, 1.1, 1.15),
    ("compound 1.4,1.05,1.15", 1.4, 1.05, 1.15),
    ("compound 1.1,1.15,1.2", 1.1, 1.15, 1.2),
]


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-b between two score lists (ties count for neither side)."""
    n = len(a)
    concordant = discordant = ties_a = ties_b = 0
    for i in range(n):
        for j in range(i + 1, n):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                concordant += 1
            else:
                discordant += 1
    denom = ((concordant + discordant + ties_a) * (concordant + discordant + ties_b)) ** 0.5
    return (concordant - discordant) / denom if denom else float("nan")


def parse_set(items: list[str]) -> dict:
    changes = {}
    for item in items:
        key, _, value = item.partition("=")
        field_types = {f.name: f.type for f in dataclasses.fields(PRESETS["default"])}
        if key not in field_types:
            sys.exit(f"unknown recipe field {key!r}; fields: {', '.join(field_types)}")
        if value.lower() == "none":
            changes[key] = None
        elif value.lower() in ("true", "false"):
            changes[key] = value.lower() == "true"
        else:
            changes[key] = float(value) if "." in value or "e" in value else int(value)
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="resnet50")
    parser.add_argument("--data", default="animals")
    parser.add_argument("--preset", default="default", choices=sorted(PRESETS))
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a recipe field")
    parser.add_argument("--factor", type=float, default=4.0, help="the long recipe has this many times the epochs")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--long-seeds", type=int, default=None, help="seeds for the long recipe (default --seeds)")
    parser.add_argument("--variants", default=None, help="comma-separated indices into the variant list (default all)")
    parser.add_argument("--short-only", action="store_true", help="skip the long recipe")
    parser.add_argument("--out", default="runs/proxy_fidelity.jsonl")
    args = parser.parse_args(argv)

    short = get_recipe(args.preset, get_baseline(args.baseline)).replace(**parse_set(args.set))
    long = short.replace(epochs=int(round(short.epochs * args.factor)), warmup_epochs=short.warmup_epochs * args.factor)
    variants = VARIANTS if args.variants is None else [VARIANTS[int(i)] for i in args.variants.split(",")]
    data = load_dataset(args.data)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if out.exists():
        for line in out.read_text().splitlines():
            row = json.loads(line)
            done[(row["key"])] = row
    base_macs = count_cost(args.baseline, **dict(zip(("width", "depth", "resolution"), proxy_settings(Multipliers(), short)))).macs

    plans = [("short", short, args.seeds)]
    if not args.short_only:
        plans.append(("long", long, args.long_seeds or args.seeds))
    rows = []
    for label, d, w, r in variants:
        m = Multipliers(depth=d, width=w, resolution=r)
        width, depth, px = proxy_settings(m, short)
        macs = count_cost(args.baseline, width=width, depth=depth, resolution=px).macs
        row = {"variant": label, "d": d, "w": w, "r": r, "px": px, "macs_ratio": macs / base_macs}
        for name, recipe, seeds in plans:
            accs, speeds, secs = [], [], []
            for seed in range(seeds):
                key = json.dumps([args.baseline, args.data, dataclasses.asdict(recipe), d, w, r, seed], sort_keys=True)
                if key not in done:
                    started = time.strftime("%H:%M:%S")
                    try:
                        res = train(args.baseline, width=width, depth=depth, resolution_px=px, data=data, recipe=recipe, seed=seed)
                        rec = {"key": key, "accuracy": res.accuracy, "images_per_s": res.images_per_s,
                               "seconds": res.seconds, "curve": res.val_accuracies}
                    except TrainingFailed as exc:
                        rec = {"key": key, "accuracy": float("nan"), "images_per_s": 0, "seconds": 0, "failed": str(exc)}
                    done[key] = rec
                    with out.open("a") as f:
                        f.write(json.dumps(rec) + "\n")
                    print(f"  [{started}] {label:<24} {name:<5} seed {seed}: {100 * rec['accuracy']:.2f}%  "
                          f"{rec['seconds']:.1f}s  {rec['images_per_s']:.0f} img/s", file=sys.stderr, flush=True)
                rec = done[key]
                accs.append(rec["accuracy"])
                speeds.append(rec["images_per_s"])
                secs.append(rec["seconds"])
            row[f"{name}_mean"] = statistics.fmean(accs)
            row[f"{name}_std"] = statistics.stdev(accs) if len(accs) > 1 else 0.0
            row[f"{name}_seconds"] = statistics.fmean(secs)
            row[f"{name}_img_s"] = statistics.fmean(speeds)
        rows.append(row)

    print(f"\n{args.baseline} on {args.data} ({data.fingerprint}); short recipe: {dataclasses.asdict(short)}")
    header = f"{'variant':<24} {'d':>5} {'w':>6} {'r':>6} {'px':>4} {'MACs x':>7}"
    for name, _, _seeds in plans:
        header += f" | {name + ' acc %':>14} {'s/run':>6} {'img/s':>6}"
    print(header)
    for row in rows:
        line = f"{row['variant']:<24} {row['d']:>5.3g} {row['w']:>6.4g} {row['r']:>6.4g} {row['px']:>4} {row['macs_ratio']:>7.2f}"
        for name, _, _ in plans:
            line += (f" | {100 * row[name + '_mean']:>7.2f} ± {100 * row[name + '_std']:<4.2f}"
                     f" {row[name + '_seconds']:>6.1f} {row[name + '_img_s']:>6.0f}")
        print(line)
    summary = {}
    for name, _, _ in plans:
        means = [r[name + "_mean"] for r in rows]
        scaled = means[1:] if rows[0]["variant"] == "baseline" else means
        summary[name] = {
            "baseline": rows[0][name + "_mean"],
            "variant_spread": max(scaled) - min(scaled) if scaled else 0.0,
            "seed_std": statistics.fmean(r[name + "_std"] for r in rows),
        }
        print(f"{name}: baseline {100 * summary[name]['baseline']:.2f}%, spread of variants "
              f"{100 * summary[name]['variant_spread']:.2f} points, mean seed std {100 * summary[name]['seed_std']:.2f} points")
    if len(plans) == 2:
        tau = kendall_tau([r["short_mean"] for r in rows], [r["long_mean"] for r in rows])
        summary["kendall_tau"] = tau
        print(f"Kendall tau, short vs {args.factor:g}x longer ranking: {tau:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
