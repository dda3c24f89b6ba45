"""List the data sources, or load one and show what it holds and how it splits.

The default source, `animals`, is real images shipped inside an installed package, and `glyphs` is
generated from a seed (Navon figures: a large letter made of small letters, at 128 px, where
resolution is real; glyphs:focus=hard has 50 classes and headroom; glyphs:focus=resolution|depth|width
are positive controls), so nothing is downloaded. Your own images come in as imagefolder:PATH (one
folder per class; PATH/train and PATH/val, or imagefolder:train=PATH,val=PATH, for your own split); CIFAR-10 and MNIST are read
from torchvision's files on disk (pass --download to fetch them). Unreadable images are skipped
and duplicates named, each as one warning line.

examples:
  scaler data
  scaler data glyphs
  scaler data glyphs:focus=depth,images=2000
  scaler data animals
  scaler data imagefolder:./my_images --json
  scaler data synthetic:size=64,images=2000
"""

from __future__ import annotations

import json

from scaler.commands._common import check_numbers


def add_arguments(parser) -> None:
    parser.add_argument("spec", nargs="?", help="a source to load and describe (default: list the sources)")
    parser.add_argument("--download", action="store_true", help="let torchvision download cifar10/mnist files")
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/validation split (default 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")


def run(args) -> int:
    import torch

    from scaler.data import list_sources, load_dataset

    check_numbers(args, {"seed": 0})
    if args.spec is None:
        sources = list_sources()
        if args.json:
            print(json.dumps(sources, indent=2))
            return 0
        width = max(len(s["usage"]) for s in sources)
        for s in sources:
            missing = "" if s["available"] else f"  [unavailable: {s['install']}]"
            print(f"{s['usage']:<{width}}  {s['description']}{missing}")
        return 0
    ds = load_dataset(args.spec, download=args.download, seed=args.seed)
    info = ds.describe()
    train_counts = torch.bincount(ds.train.labels, minlength=ds.num_classes).tolist()
    val_counts = torch.bincount(ds.val.labels, minlength=ds.num_classes).tolist()
    info["per_class"] = [
        {"class": c, "train": t, "val": v} for c, t, v in zip(ds.classes, train_counts, val_counts)
    ]
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    h, w = ds.image_size
    print(f"{info['name']}  ({info['source']})  fingerprint {info['fingerprint']}")
    print(f"  {info['images']:,} images, {h}x{w} px, {ds.channels} channel(s), {ds.num_classes} classes; licence: {info['licence']}")
    how = "the user's own" if ds.user_split else f"seed {ds.seed}, stratified"
    print(f"  split ({how}): {info['train_images']:,} train, {info['val_images']:,} validation; "
          f"horizontal flips {'allowed' if ds.flip else 'off'}")
    width = max(len(c) for c in ds.classes)
    print(f"\n  {'class':<{width}}  {'train':>6}  {'val':>6}")
    for row in info["per_class"]:
        print(f"  {row['class']:<{width}}  {row['train']:>6,}  {row['val']:>6,}")
    return 0
