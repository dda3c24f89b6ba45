"""Bad input to every command: exit status 2, one line on stderr, no traceback, and nothing written.

Each case runs with cwd = tmp_path, where its broken files are written, and with `--out out` where
the command writes; the checkout must not change, and no run folder may appear (the input is
refused before anything is trained or written). Most cases call ``scaler.cli.main`` in-process (``conftest.main_in_process``)
(a subprocess costs seconds of torch import); SUBPROCESS runs a few end to end as a user would.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from conftest import ROOT, main_in_process, run_cli

SEARCH = "search --baseline resnet18 --preset smoke --data synthetic:size=16,images=80,classes=2 --device cpu --out out"
TRAIN = "train --baseline resnet18 --preset smoke --data synthetic:size=16,images=80,classes=2 --device cpu"
FAMILY = "family --baseline resnet18 --coefficients 1.2,1.1,1.15 --latency-runs 0 --out out"
FLOPS = "flops --baseline resnet18 --latency-runs 0"
GRID = "grid --baseline resnet18"
COMPARE = "compare --baseline resnet18 --no-train --out out"


def _stages(**changes) -> str:
    """A one-stage list with some of its fields changed (None: a JSON null)."""
    return json.dumps({"stages": [{"expand": 1, "kernel": 3, "stride": 1, "channels": 16, "repeats": 1, **changes}]})


FILES = {  # written into tmp_path for every case: the broken inputs the cases name
    "um.py": (
        "import torch.nn as nn\n"
        "def raises(width_mult=1.0, depth_mult=1.0, num_classes=1000):\n    raise RuntimeError('boom\\nsecond line')\n"
        "def number(width_mult=1.0, depth_mult=1.0, num_classes=1000):\n    return 42\n"
        "not_callable = 3\n"
    ),
    "badimport.py": "import no_such_package_for_scaler_tests\n",
    "bad.json": '{"stages": [',
    "missing_key.json": '{"stages": [{"expand": 1, "kernel": 3, "stride": 1, "channels": 16}]}',
    "neg_repeats.json": _stages(repeats=-1),
    "zero_channels.json": _stages(channels=0),
    "se_half.json": _stages(se=0.5),
    "se_text.json": _stages(se="x"),
    "se_null.json": _stages(se=None),
    "channels_text.json": _stages(channels="16"),
    "stride3.json": _stages(stride=3),
    "a_list.json": "[1, 2]",
    "no_stages.json": '{"stages": []}',
    "foreign/config.json": '{"mine": true}',  # a folder scaler did not make
    "half/config.json": '{"baseline": "resnet18", "scaler_version": "0.1.0"',  # a run cut off mid-write
    "older/config.json": '{"baseline": "resnet18", "scaler_version": "0.0.9"}',  # an older run, never finished
    "afile": "not a folder\n",
    "damaged/config.json": "{bad",  # a run folder whose one file cannot be read
    "folder.json/x": "",  # a folder named like a stage list
    "bad.toml": "depth = [",
    "unknown_key.toml": "bogus = 1\n",
    "share_high.toml": "depth = [2.0]\n",
    "res_share_high.toml": "resolution = [0.7]\n",
    "empty_list.toml": "depth = []\n",
    "wrong_type.toml": 'depth = "x"\n',
    "bool_share.toml": "depth = [true]\n",
    "point_missing.toml": "points = [{alpha = 1.2, beta = 1.1}]\n",
    "point_zero.toml": "points = [{alpha = 0, beta = 1, gamma = 1}]\n",
    "point_huge.toml": "points = [{alpha = 1e300, beta = 1e300, gamma = 1}]\n",
    "points_text.toml": 'points = "abc"\n',
    "tolerance_neg.toml": "tolerance = -1\n",
    "tolerance_inf.toml": "tolerance = inf\n",
    "filter_bad.toml": 'filter = "x"\n',
    "oneclass/cat/0.png": "not really an image",
    "corrupt/cat/0.png": "not an image",
    "corrupt/dog/0.png": "not an image",
}
BINARY = {"binary.json": b"\xff\xfe\x00", "binary.toml": b"\xff\xfe\x00"}

CASES = [  # (id, arguments, a fragment the one line must hold)
    # arguments, every command
    ("baselines-unknown-flag", "baselines --bogus", "unrecognized"),
    ("flops-no-baseline", "flops", "required"),
    ("flops-per-layer-negative", f"{FLOPS} --per-layer -1", "--per-layer"),
    ("flops-latency-runs-negative", "flops --baseline resnet18 --latency-runs -1", "--latency-runs"),
    ("flops-num-classes-zero", f"{FLOPS} --num-classes 0", "--num-classes"),
    ("flops-resolution-zero", f"{FLOPS} --resolution 0", "--resolution"),
    ("flops-width-nan", f"{FLOPS} --width nan", "--width"),
    ("flops-phi-huge", f"{FLOPS} --coefficients 1.2,1.1,1.15 --phi 5000", "--phi"),
    ("flops-device-unknown", f"{FLOPS} --device tpu", "unknown device"),
    ("flops-coefficients-two", f"{FLOPS} --coefficients 1.2,1.1", "coefficients"),
    ("data-seed-negative", "data synthetic:size=16,images=80,classes=2 --seed -1", "--seed"),
    ("train-epochs-zero", f"{TRAIN} --epochs 0", "epochs"),
    ("train-batch-zero", f"{TRAIN} --batch-size 0", "batch_size"),
    ("train-lr-inf", f"{TRAIN} --lr inf", "lr"),
    ("train-momentum-one", f"{TRAIN} --momentum 1", "momentum"),
    ("train-subset-text", f"{TRAIN} --subset many", "--subset"),
    ("train-seed-negative", f"{TRAIN} --seed -1", "seed"),
    ("train-split-seed-negative", f"{TRAIN} --split-seed -1", "--split-seed"),
    ("train-preset-unknown", f"{TRAIN.replace('smoke', 'tiny')}", "preset"),
    ("train-phi-nan", f"{TRAIN} --coefficients 1.2,1.1,1.15 --phi nan", "--phi"),
    ("grid-tolerance-inf", f"{GRID} --tolerance inf", "--tolerance"),
    ("grid-filter-unknown", f"{GRID} --filter median", "invalid choice"),
    ("search-phi-dash", f"{SEARCH} --phi 0-3", "phi"),
    ("search-phi-inf", f"{SEARCH} --phi 0..inf", "phi"),
    ("search-phi-huge", f"{SEARCH} --phi 5000", "phi"),
    ("search-phi-billion", f"{SEARCH} --phi 0..1e9", "phi"),
    ("search-phi-many", f"{SEARCH} --phi " + ",".join(str(i / 10) for i in range(65)), "at most 64"),
    ("search-latency-runs-negative", f"{SEARCH} --latency-runs -1", "--latency-runs"),
    ("search-seeds-zero", f"{SEARCH} --seeds 0", "--seeds"),
    ("search-epochs-zero", f"{SEARCH} --epochs 0", "epochs"),
    ("search-pruner-unknown", f"{SEARCH} --pruner sometimes", "invalid choice"),
    ("family-phi-inf", f"{FAMILY} --phi 0..inf", "phi"),
    ("family-phi-huge", f"{FAMILY} --phi 5000", "phi"),
    ("family-phi-billion", f"{FAMILY} --phi 0..1e9", "phi"),
    ("family-phi-backwards", f"{FAMILY} --phi 3..0", "backwards"),
    ("family-seeds-zero", f"{FAMILY} --train --seeds 0", "--seeds"),
    ("family-seed-negative", f"{FAMILY} --train --seed -1", "--seed"),
    ("family-latency-batch-zero", f"{FAMILY} --latency-batch 0", "--latency-batch"),
    ("family-target-latency-zero", f"{FAMILY} --target-latency 0ms", "latency target"),
    ("family-nothing-to-scale", "family --latency-runs 0 --out out", "say what to scale"),
    ("compare-seeds-zero", f"{COMPARE} --seeds 0", "--seeds"),
    ("compare-seed-negative", f"{COMPARE} --seed -1", "--seed"),
    ("compare-dollar-alpha", f"{COMPARE} --dollar-alpha 2", "alpha"),
    ("compare-strategy-unknown", f"{COMPARE} --strategies depth,height", "unknown strategy"),
    ("export-opset-high", "export --family nowhere --phi 1 --onnx out/m.onnx --opset 99", "--opset"),
    ("export-opset-negative", "export --family nowhere --phi 1 --onnx out/m.onnx --opset -1", "--opset"),
    ("export-no-family", "export --family nowhere --phi 1 --onnx out/m.onnx", "no family file"),
    ("export-both-members", "export --family nowhere --phi 1 --member b1 --onnx out/m.onnx", "exactly one"),
    ("report-no-run", "report", "required"),
    # search spaces (TOML)
    ("space-bad-toml", f"{GRID} --space bad.toml", "not valid TOML"),
    ("space-not-utf8", f"{GRID} --space binary.toml", "not valid TOML"),
    ("space-missing", f"{GRID} --space nowhere.toml", "does not exist"),
    ("space-unknown-key", f"{GRID} --space unknown_key.toml", "unknown keys"),
    ("space-share-high", f"{GRID} --space share_high.toml", "depth"),
    ("space-resolution-share-high", f"{GRID} --space res_share_high.toml", "resolution"),
    ("space-empty-list", f"{GRID} --space empty_list.toml", "non-empty"),
    ("space-wrong-type", f"{GRID} --space wrong_type.toml", "depth"),
    ("space-bool-share", f"{GRID} --space bool_share.toml", "depth"),
    ("space-point-missing", f"{GRID} --space point_missing.toml", "points[0]"),
    ("space-point-zero", f"{GRID} --space point_zero.toml", "points[0]"),
    ("space-point-huge", f"{GRID} --space point_huge.toml", "points[0]"),
    ("space-points-text", f"{GRID} --space points_text.toml", "points"),
    ("space-tolerance-negative", f"{GRID} --space tolerance_neg.toml", "tolerance"),
    ("space-tolerance-inf", f"{GRID} --space tolerance_inf.toml", "tolerance"),
    ("space-filter-unknown", f"{SEARCH} --space filter_bad.toml", "filter"),
    ("search-space-bad-toml", f"{SEARCH} --space bad.toml", "not valid TOML"),
    # stage lists (JSON)
    ("stages-bad-json", f"{FLOPS.replace('resnet18', 'bad.json')}", "not valid JSON"),
    ("stages-not-utf8", f"{FLOPS.replace('resnet18', 'binary.json')}", "not valid JSON"),
    ("stages-missing-file", f"{FLOPS.replace('resnet18', 'nowhere.json')}", "does not exist"),
    ("stages-missing-key", f"{FLOPS.replace('resnet18', 'missing_key.json')}", "lacks repeats"),
    ("stages-negative-repeats", f"{FLOPS.replace('resnet18', 'neg_repeats.json')}", "repeats"),
    ("stages-zero-channels", f"{FLOPS.replace('resnet18', 'zero_channels.json')}", "channels"),
    ("stages-se-unsupported", f"{FLOPS.replace('resnet18', 'se_half.json')}", "se must be"),
    ("stages-se-text", f"{FLOPS.replace('resnet18', 'se_text.json')}", "se must be"),
    ("stages-se-null", f"{GRID.replace('resnet18', 'se_null.json')}", "se must be"),
    ("stages-channels-text", f"{FLOPS.replace('resnet18', 'channels_text.json')}", "channels"),
    ("stages-stride-3", f"{FLOPS.replace('resnet18', 'stride3.json')}", "stride"),
    ("stages-a-list", f"{FLOPS.replace('resnet18', 'a_list.json')}", "JSON object"),
    ("stages-empty", f"{SEARCH.replace('resnet18', 'no_stages.json')}", "non-empty"),
    # module:function baselines
    ("user-import-error", f"{FLOPS.replace('resnet18', 'badimport:build')}", "cannot import"),
    ("user-no-module", f"{FLOPS.replace('resnet18', 'no_such_module_xyz:build')}", "cannot import"),
    ("user-raises", f"{FLOPS.replace('resnet18', 'um:raises')}", "boom second line"),
    ("user-raises-search", f"{SEARCH.replace('resnet18', 'um:raises')}", "boom"),
    ("user-not-a-module", f"{FLOPS.replace('resnet18', 'um:number')}", "nn.Module"),
    ("user-missing-attribute", f"{FLOPS.replace('resnet18', 'um:nothing')}", "no function"),
    ("user-not-callable", f"{GRID.replace('resnet18', 'um:not_callable')}", "no function"),
    ("user-no-function", f"{FLOPS.replace('resnet18', 'um:')}", "module.path:function"),
    ("baseline-unknown", f"{FLOPS.replace('resnet18', 'resnet5')}", "did you mean"),
    # data specs and folders
    ("data-unknown-source", "data imagenet", "unknown data source"),
    ("data-imagefolder-missing", "data imagefolder:nowhere", "not a folder"),
    ("data-imagefolder-no-path", "data imagefolder:", "needs a path"),
    ("data-imagefolder-empty", "data imagefolder:empty", "no class folders"),
    ("data-imagefolder-one-class", "data imagefolder:oneclass", "two class folders"),
    ("data-imagefolder-corrupt", "data imagefolder:corrupt", "no readable image"),
    ("train-imagefolder-corrupt", TRAIN.replace("synthetic:size=16,images=80,classes=2", "imagefolder:corrupt"),
     "no readable image"),
    ("search-data-missing", SEARCH.replace("synthetic:size=16,images=80,classes=2", "imagefolder:nowhere"),
     "not a folder"),
    ("data-synthetic-size-small", "data synthetic:size=2", "size"),
    ("data-synthetic-size-huge", "data synthetic:size=100000,images=2", "size"),
    ("data-synthetic-images-huge", "data synthetic:size=16,images=100000000", "images"),
    ("data-synthetic-classes", "data synthetic:classes=11", "classes"),
    ("data-synthetic-option", "data synthetic:colour=red", "synthetic takes"),
    ("data-synthetic-not-integer", "data synthetic:size=x", "integer"),
    ("data-synthetic-seed-negative", "data synthetic:size=16,images=80,seed=-1", "seed"),
    ("data-takes-no-argument", "data animals:x", "takes no argument"),
    # budgets
    ("budget-zero", f"{GRID} --budget 0x", "budget"),
    ("budget-negative", f"{GRID} --budget -1x", "budget"),
    ("budget-unit", f"{GRID} --budget 2y", "budget"),
    ("budget-empty", f"{GRID} --budget=", "budget"),
    ("budget-overflow", f"{GRID} --budget 1e999x", "budget"),
    ("budget-400-digits", f"{GRID} --budget {'9' * 400}x", "budget"),
    ("budget-huge", f"{GRID} --budget 1000000x", "65536x"),
    ("budget-not-above-grid", f"{GRID} --budget 1x", "not above"),
    ("budget-not-above-search", f"{SEARCH} --budget 0.5x", "not above"),
    ("budget-absolute-below", f"{SEARCH} --budget 1M", "not above"),
    ("budget-search-unit", f"{SEARCH} --budget 2y", "budget"),
    ("budget-compare-empty", f"{COMPARE} --budget ,", "at least one budget"),
    ("budget-compare-not-above", f"{COMPARE} --budget 1x", "not larger"),
    ("budget-family-target", f"{FAMILY} --target 0x", "budget"),
    # run folders: foreign, half written, from an older version, unwritable
    ("run-foreign-fresh", f"{SEARCH.replace('--out out', '--out foreign')} --fresh", "not a scaler run folder"),
    ("run-foreign-compare", "compare --run foreign --no-train", "no coefficients.json"),
    ("run-half-family", "family --run half --latency-runs 0", "not valid JSON"),
    ("run-half-export", "export --run half --phi 1 --onnx m.onnx", "no family file"),
    ("run-older-family", "family --run older --latency-runs 0", "no coefficients.json"),
    ("run-empty-report", "report empty", "nothing to report"),
    ("run-missing-report", "report nowhere", "does not exist"),
    ("run-out-is-a-file", SEARCH.replace("--out out", "--out afile"), "is a file"),
    ("run-out-under-a-file", SEARCH.replace("--out out", "--out afile/run"), "cannot write the run folder"),
    ("run-damaged-report", "report damaged", "config.json could not be read"),
    ("run-report-a-file", "report afile", "is a file, not a folder"),
    ("stage-list-is-a-folder", "grid --baseline folder.json", "is a folder"),
    ("space-is-a-folder", f"{GRID} --space empty", "is a folder"),
    # sizes past what scaler grows to: refused before a network is built (they hung or ran out of memory)
    ("flops-depth-huge", f"{FLOPS} --depth 1e9", "65536x"),
    ("flops-coefficients-huge", f"{FLOPS} --coefficients 100,100,100 --phi 16", "65536x"),
    ("family-member-huge", f"{FAMILY.replace('1.2,1.1,1.15', '100,100,100')} --phi 16", "65536x"),
    ("train-width-huge", f"{TRAIN} --width 1000", "65536x"),
    ("train-resolution-huge", f"{TRAIN} --resolution 100000", "lower the proxy resolution"),
    ("search-proxy-resolution-huge", f"{SEARCH} --proxy-resolution 100000", "lower the proxy resolution"),
    # a recipe error says what the field must be, and names only the fields given wrong
    ("recipe-warmup-past-epochs", f"{TRAIN} --epochs 1 --warmup-epochs 5", "warmup_epochs=5.0 (must be in [0, epochs = 1])"),
    ("flops-phi-alone", f"{FLOPS} --phi 2", "give --coefficients"),
    ("train-phi-alone", f"{TRAIN} --phi 2", "give --coefficients"),
    ("worker-sqlite-missing", "worker --storage sqlite:///nowhere.db --study s", "no SQLite database"),
    # options that would be ignored without a word
    ("compare-budget-empty-item", f"{COMPARE} --budget 2x,,4x", "empty item"),
    ("compare-no-train-preset", f"{COMPARE} --preset smoke", "do not apply with --no-train"),
    ("baselines-depth-alone", "baselines --depth 2", "applies to --show"),
    ("nas-pareto-cost-alone", "nas --target 30M --pareto-cost latency --out out", "does not apply to --objective reward"),
    # devices torch knows but scaler does not train or time on
    ("flops-device-mps", f"{FLOPS} --latency-runs 1 --device mps", "not supported"),
    ("train-device-meta", f"{TRAIN} --device meta", "not supported"),
]
# End to end in a subprocess: the cases the issue named, and the ones that raised tracebacks.
SUBPROCESS = {"search-phi-dash", "family-phi-huge", "flops-per-layer-negative", "stages-se-text",
              "data-synthetic-seed-negative", "export-opset-high"}
NOT_WRITTEN = ("out", "runs", "nowhere.db")  # what no refused command may create


def _write_inputs(root: Path) -> None:
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    for name, data in BINARY.items():
        (root / name).write_bytes(data)
    (root / "empty").mkdir()


def _snapshot(root: Path) -> dict[str, float]:
    """Every file of the checkout with its mtime; caches that Python and tools write are not inputs."""
    skip = {".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".venv"}  # .venv: the installed tools
    files = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in names:
            path = os.path.join(folder, name)
            files[path] = os.lstat(path).st_mtime_ns
    return files


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """tmp_path holding the broken inputs, as cwd; sys.path and user modules restored afterwards."""
    _write_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    for name in ("um", "badimport"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize("case, args, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, args, fragment, workdir, capsys):
    before = _snapshot(ROOT)
    argv = args.split()
    if case in SUBPROCESS:
        result = run_cli(*argv, cwd=workdir, timeout=120)
        status, out, err = result.returncode, result.stdout, result.stderr
    else:
        status, out, err = main_in_process(argv, capsys)
    lines = err.splitlines()
    assert status == 2, err
    assert len(lines) == 1 and lines[0].strip(), err
    assert fragment in lines[0]
    assert "Traceback" not in err + out
    assert _snapshot(ROOT) == before
    assert not any((workdir / name).exists() for name in NOT_WRITTEN), "refused, yet wrote a run folder"


def test_enough_cases():
    assert len(CASES) >= 60 and len(SUBPROCESS) >= 5 and SUBPROCESS <= {c[0] for c in CASES}
