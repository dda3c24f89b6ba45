"""Export one member of a family to ONNX, rebuilt from family.json alone.

The graph takes 'image' (batch x 3 x px x px, batch dynamic) and gives 'logits'; px is the
member's input resolution. Weights are freshly initialised: the family describes architectures,
not trained models. Needs the onnx package (pip install 'scaler[onnx]').

examples:
  scaler export --run runs/resnet50-2x --phi 2 --onnx model.onnx
  scaler export --family runs/efficientnet_b0-official/family.json --member b3 --onnx b3.onnx
"""

from __future__ import annotations

from pathlib import Path

from scaler.commands._common import add_json_argument, print_json
from scaler.errors import UsageError


def add_arguments(parser) -> None:
    where = parser.add_argument_group("which family (one of)")
    where.add_argument("--run", help="a run folder holding family.json")
    where.add_argument("--family", help="a family.json file, or the folder holding it")
    which = parser.add_argument_group("which member (one of)")
    which.add_argument("--phi", type=float, help="the member's phi")
    which.add_argument("--member", help="the member's label, e.g. b3 or phi=1.5")
    parser.add_argument("--onnx", required=True, help="the .onnx file to write")
    parser.add_argument("--opset", type=int, help="ONNX opset version (default: torch's)")
    add_json_argument(parser)


def run(args) -> int:
    from scaler.export import check_opset, export_onnx
    from scaler.family_files import find_member, load_family

    check_opset(args.opset)
    if bool(args.run) == bool(args.family):
        raise UsageError("give exactly one of --run RUN_FOLDER and --family family.json")
    if (args.phi is None) == (args.member is None):
        raise UsageError("give exactly one of --phi and --member")
    family = load_family(Path(args.run or args.family))
    member = find_member(family, phi=args.phi, label=args.member)
    path = export_onnx(member, args.onnx, opset=args.opset)
    result = {"member": member["label"], "input_px": member["input_px"], "params": member["params"],
              "macs": member["macs"], "onnx": str(path), "bytes": path.stat().st_size}
    if args.json:
        print_json(result)
    else:
        print(f"wrote {path} ({result['bytes'] / 1e6:.1f} MB): {family['baseline']} {member['label']}, "
              f"input 1x3x{member['input_px']}x{member['input_px']} (batch dynamic), {member['params']:,} params")
    return 0
