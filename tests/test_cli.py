"""The CLI as a user meets it: a subprocess, its exit status and what it prints."""

import json
import subprocess
import sys

import pytest

from scaler import __version__


def test_version(cli):
    result = cli("--version")
    assert result.returncode == 0 and __version__ in result.stdout


def test_help_lists_commands(cli):
    result = cli("--help")
    assert result.returncode == 0
    for command in ("baselines", "flops"):
        assert command in result.stdout


def test_baselines_lists_params_and_macs(cli):
    result = cli("baselines", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["baseline"]: row for row in json.loads(result.stdout)}
    assert rows["efficientnet_b0"]["macs"] == 385_825_092
    assert rows["resnet50"]["params"] == 25_557_032
    assert rows["mobilenet_v2"]["proxy_recipe"] == {"lr": 0.05, "weight_decay": 5e-5} and rows["resnet50"]["proxy_recipe"] == {}


def test_flops_json(cli):
    result = cli(
        "flops", "--baseline", "efficientnet_b0", "--width", "1.1", "--depth", "1.2", "--resolution", "260",
        "--json", "--latency-runs", "1",
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    for key in ("baseline", "width", "depth", "resolution", "params", "macs", "activations", "latency_ms"):
        assert key in out
    assert out["params"] == 9_109_994  # torchvision's efficientnet_b2
    assert out["resolution"] == 260


def test_flops_coefficients_reports_measured_and_nominal_ratio(cli):
    result = cli("flops", "--baseline", "efficientnet_b0", "--coefficients", "1.2,1.1,1.15", "--phi", "1",
                 "--json", "--latency-runs", "0")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["resolution"] == 258
    assert out["nominal_ratio"] == pytest.approx(1.2 * 1.1**2 * 1.15**2)
    assert out["macs_ratio"] == pytest.approx(992_645_882 / 385_825_092)


def test_flops_table_per_layer(cli):
    result = cli("flops", "--baseline", "resnet18", "--per-layer", "--latency-runs", "0")
    assert result.returncode == 0, result.stderr
    assert "MACs (multiply-adds)" in result.stdout and "layer4" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["flops", "--baseline", "resnet5"], "did you mean 'resnet50'"),
        (["flops", "--baseline", "resnet50", "--width", "0"], "--width must be a positive"),
        (["flops", "--baseline", "resnet50", "--depth", "-1"], "--depth must be a positive"),
        (["flops", "--baseline", "nosuchmod:build"], "cannot import"),
        (["flops", "--baseline", "missing.json"], "does not exist"),
        (["flops", "--baseline", "resnet50", "--coefficients", "1,2"], "coefficients"),
        (["flops", "--baseline", "resnet50", "--coefficients", "1.2,1.1,1.15", "--width", "2"], "not both"),
        (["flops"], "required"),
    ],
)
def test_bad_input_is_one_line_and_status_2(cli, args, message):
    result = cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_negative_values_need_no_equals_sign(cli, tmp_path):
    # argparse alone reads "--phi -1..1" as a missing value followed by an unknown option.
    result = cli("family", "--baseline", "resnet18", "--coefficients", "1.2,1.1,1.15", "--phi", "-1..1",
                 "--out", str(tmp_path), "--latency-runs", "0", "--json")
    assert result.returncode == 0, result.stderr
    assert [m["phi"] for m in json.loads(result.stdout)["members"]] == [-1, 0, 1]


def test_a_worker_loads_torch_only_after_its_wait_policy_is_set():
    """libgomp reads OMP_WAIT_POLICY once, when torch loads (benchmarks/wait_policy.py): main() sets
    PASSIVE for `scaler worker` after building its parser, so building it must not load torch."""
    code = ("import sys; from scaler.cli import build_parser, shares_the_machine; "
            "args = build_parser(['worker']).parse_args(['worker', '--study', 's']); "
            "print(shares_the_machine(args), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "False"]
