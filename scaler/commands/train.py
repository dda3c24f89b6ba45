"""Train one (scaled) network with the proxy recipe and report accuracy, time and throughput.

--width, --depth and --resolution give the network as trained (the proxy width is NOT applied
to them; channels round to multiples of 8 as at full size); without them the network is the
baseline at the recipe's proxy width and proxy resolution. --coefficients with --phi gives
multipliers, to which the proxy width and resolution apply as in a search. Those two are proxies,
built exactly as a search builds them (channels rounded to the proxy's divisor, the recipe's
proxy_divisor). Recipe flags override the chosen --preset (smoke, default, long or gpu) and the
baseline's own recipe fields.

examples:
  scaler train --baseline resnet18 --width 0.5 --resolution 24 --epochs 5 --batch-size 128
  scaler train --baseline mobilenet_v2 --data imagefolder:./my_images --epochs 3 --json
  scaler train --baseline efficientnet_b0 --data cifar10:./cifar-10-batches-py
  scaler train --baseline resnet50 --coefficients 1.2,1.1,1.15 --phi 1 --preset smoke
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys

from scaler.commands._common import (
    add_baseline_argument,
    add_device_argument,
    add_json_argument,
    add_recipe_arguments,
    add_scaling_arguments,
    check_numbers,
    check_scaling,
    print_json,
    resolve_device,
    resolve_recipe,
)
from scaler.errors import UsageError
from scaler.options import DEFAULT_SOURCE


def add_arguments(parser) -> None:
    add_baseline_argument(parser, required=False)
    parser.set_defaults(baseline="resnet18")
    parser.add_argument("--data", default=DEFAULT_SOURCE, help=f"data source (see `scaler data`); default {DEFAULT_SOURCE}")
    parser.add_argument("--download", action="store_true", help="let torchvision download cifar10/mnist files")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the train/validation split (default 0)")
    add_scaling_arguments(parser, proxy=True)
    add_recipe_arguments(parser)
    add_device_argument(parser)
    add_json_argument(parser)


def resolve_network(args, recipe) -> tuple[float, float, int]:
    from scaler.recipe import proxy_settings
    from scaler.scaling import Multipliers, check_size, parse_coefficients

    if args.coefficients is not None:
        if any(v is not None for v in (args.width, args.depth, args.resolution)):
            raise UsageError("give either --coefficients with --phi, or --width/--depth/--resolution, not both")
        return proxy_settings(check_size(parse_coefficients(args.coefficients).multipliers(args.phi), "the network"), recipe)
    width = recipe.proxy_width if args.width is None else args.width
    depth = 1.0 if args.depth is None else args.depth
    resolution = recipe.proxy_resolution if args.resolution is None else args.resolution
    Multipliers(width=width, depth=depth, resolution=resolution)  # positive and finite, or a UsageError
    check_size(Multipliers(width=width, depth=depth), "the network")  # its px are checked against memory later
    return width, depth, int(resolution)


def run(args) -> int:
    from scaler.baselines import get_baseline
    from scaler.data import load_dataset
    from scaler.recipe import proxy_rounding
    from scaler.train import TrainingFailed, check_memory, train

    check_numbers(args, {"split_seed": 0})
    check_scaling(args)
    recipe = resolve_recipe(args)
    recipe = recipe.replace(eval_every=recipe.eval_every or 1)  # one run: its learning curve is the point
    baseline = get_baseline(args.baseline)
    width, depth, px = resolve_network(args, recipe)
    device = resolve_device(args.device)
    data = load_dataset(args.data, download=args.download, seed=args.split_seed)
    check_memory(data, px, error=UsageError)  # a size this machine cannot hold is bad input, not a failed run
    out = sys.stderr if args.json else sys.stdout
    print(f"{baseline.name}  width {width:.4g}  depth {depth:.4g}  {px} px  on {data.name} "
          f"({len(data.subset_indices(recipe.subset)):,} train / {len(data.val):,} val images)  device {device}", file=out)

    def progress(s) -> None:
        val = "     –" if s.val_accuracy is None else f"{100 * s.val_accuracy:6.2f}%"
        print(f"  epoch {s.epoch:>3}/{s.epochs}  loss {s.train_loss:.4f}  val acc {val}  "
              f"{s.images_per_s:,.0f} img/s  {s.seconds:.1f} s", file=out, flush=True)

    # A proxy (from --coefficients, or the default baseline proxy) is built as a search builds it.
    is_proxy = args.width is None and args.depth is None and args.resolution is None
    with proxy_rounding(recipe) if is_proxy else contextlib.nullcontext():
        try:
            result = train(baseline, width=width, depth=depth, resolution_px=px, data=data, recipe=recipe,
                           device=device, progress=progress)
        except TrainingFailed as exc:
            print(f"scaler train: failed: {exc}", file=sys.stderr)
            return 1
        macs = _macs(baseline, width, depth, px, data.num_classes)
    if args.json:
        print_json({
            "baseline": baseline.name, **result.as_dict(), "macs": macs,
            "recipe": dataclasses.asdict(recipe), "data": data.describe(),
        })
        return 0
    print(f"validation accuracy {100 * result.accuracy:.2f}%  in {result.seconds:.1f} s  "
          f"({result.images_per_s:,.0f} training images/s, {result.images_seen:,} images seen)")
    print(f"params {result.params:,}" + (f"  MACs (multiply-adds) {macs:,}" if macs is not None else ""))
    return 0


def _macs(baseline, width, depth, px, num_classes) -> int | None:
    from scaler.cost import count_cost

    try:
        return count_cost(baseline, width=width, depth=depth, resolution=px, num_classes=num_classes).macs
    except Exception:  # a user model the counter cannot trace: the run's result stands without it
        return None
