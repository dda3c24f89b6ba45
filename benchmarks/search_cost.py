"""What pruning saves: the full grid with and without a pruner, on the built-in data.

Runs `scaler search` (library API) on the same baseline, grid, data and recipe three ways — no
pruner, median, hyperband — each in its own run folder, and prints total training seconds,
images seen, the winner and whether the top-3 ranking matches the unpruned search's. The screen
alone (no confirm stage, no curves), and every way validates after every epoch, as a pruner must:
otherwise "none" would validate once per run and pruning's saving would include validation's.

    .venv/bin/python benchmarks/search_cost.py --baseline resnet18 --seeds 1 [--preset default]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import optuna
import pandas as pd

from scaler.baselines import get_baseline
from scaler.recipe import resolve_recipe as get_recipe
from scaler.run_folder import RunFolder
from scaler.search import SearchConfig, run_search


def images_seen(run: RunFolder) -> int:
    study = optuna.load_study(study_name=run.study_name(), storage=run.storage_url)
    return sum(int(t.user_attrs.get("images_seen", 0)) for t in study.trials)


def train_seconds(run: RunFolder) -> float:
    study = optuna.load_study(study_name=run.study_name(), storage=run.storage_url)
    # pruned runs record no result; their time is the span of the trial
    return sum(
        t.user_attrs.get("seconds") or ((t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else 0)
        for t in study.trials
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="resnet18")
    parser.add_argument("--budget", default="2x")
    parser.add_argument("--data", default="animals")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    recipe = {**dataclasses.asdict(get_recipe(args.preset, get_baseline(args.baseline))), "eval_every": 1}
    rows, rankings = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for pruner in ("none", "median", "hyperband"):
            run = RunFolder(Path(tmp) / pruner)
            config = SearchConfig(args.baseline, args.budget, None, args.data, recipe, args.seeds, pruner, "cpu",
                                  confirm=0, curves="none")
            result = run_search(config, run, log=lambda line: None)
            t = result.table
            done = t[t.state == "COMPLETE"].sort_values("accuracy_mean", ascending=False)
            rankings[pruner] = list(done.point[:3])
            w = result.winner
            rows.append({
                "pruner": pruner,
                "train s": round(train_seconds(run), 1),
                "images seen": images_seen(run),
                "pruned points": int((t.state == "PRUNED").sum()),
                "winner": f"{w['kind']} ({w['alpha']:.2f}, {w['beta']:.2f}, {w['gamma']:.2f})" if w else "-",
                "winner acc %": round(100 * w["accuracy_mean"], 1) if w else None,
            })
    base = rows[0]
    for row in rows:
        row["compute vs none"] = f"{row['images seen'] / base['images seen']:.2f}"
        row["same winner"] = row["winner"] == base["winner"]
        row["same top-3"] = rankings[row["pruner"]] == rankings["none"]
    print(f"{args.baseline} {args.budget}, data {args.data}, preset {args.preset}, seeds {args.seeds}")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
