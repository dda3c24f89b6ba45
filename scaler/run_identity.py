"""What makes two runs' config.json the same search: the canonical form a re-run is compared in.

Used by ``scaler search`` and ``scaler nas`` before they resume a run folder.
"""

from __future__ import annotations

import json

from scaler.files import dumps
from scaler.recipe import recipe_defaults

# What identifies the data: its pixels, labels and split — not how its path was spelled.
DATA_IDENTITY = ("classes", "images", "image_size", "channels", "train_images", "val_images", "split_seed",
                 "fingerprint", "split_fingerprint")
RECIPE_KEYS = ("recipe", "confirm_recipe")  # recipes as dicts of fields


def canonical(config: dict) -> dict:
    """The identity of a search in a form that compares equal across runs, moves and versions."""
    out = json.loads(dumps(config))  # standard JSON: NaN -> null, tuples -> lists
    for key in RECIPE_KEYS:  # a recipe field added since the run was made means its default
        if key == "recipe" or out.get(key):
            out[key] = {**recipe_defaults(), **(out.get(key) or {})}
    data = out.get("data")
    if isinstance(data, dict):
        out["data"] = {k: data.get(k) for k in DATA_IDENTITY}
    rules = out.get("space_rules")
    if isinstance(rules, dict):  # made before proxies could be matched apart: each was its network's miniature
        rules.setdefault("proxy_match", "miniature")
    out["device"] = str(out.get("device") or "cpu").split(":")[0]  # cpu or cuda: numerics differ, GPU index does not
    return out
