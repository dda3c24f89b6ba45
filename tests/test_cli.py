"""The CLI as a user meets it: a subprocess, its exit status and what it prints (refused input in-process:
the same ``main``, without seconds of torch import to say one line)."""

import json
import subprocess
import sys

import pytest
from conftest import main_in_process

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
def test_bad_input_is_one_line_and_status_2(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # missing.json, nosuchmod: looked for here
    status, out, err = main_in_process(args, capsys)
    assert status == 2
    assert message in err
    assert "Traceback" not in out + err
    assert len(err.strip().splitlines()) == 1, err


def test_negative_values_need_no_equals_sign(cli, tmp_path):
    # argparse alone reads "--phi -1..1" as a missing value followed by an unknown option.
    result = cli("family", "--baseline", "resnet18", "--coefficients", "1.2,1.1,1.15", "--phi", "-1..1",
                 "--out", str(tmp_path), "--latency-runs", "0", "--json")
    assert result.returncode == 0, result.stderr
    assert [m["phi"] for m in json.loads(result.stdout)["members"]] == [-1, 0, 1]


def test_no_command_loads_torch_to_build_its_parser():
    """`scaler <command> --help` and argparse's errors answer at once (scaler.options), and `scaler
    worker` sets OpenMP's wait policy before torch loads (libgomp reads it once, then:
    benchmarks/wait_policy.py)."""
    code = ("import sys; from scaler.cli import COMMANDS, build_parser, shares_the_machine; "
            "parsers = {name: build_parser([name]) for name in COMMANDS}; "
            "worker = parsers['worker'].parse_args(['worker', '--study', 's']); "
            "search = parsers['search'].parse_args(['search', '--baseline', 'resnet18', '--workers', '2']); "
            "print(shares_the_machine(worker), shares_the_machine(search), "
            "*[m in sys.modules for m in ('torch', 'optuna', 'pandas', 'ray')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # a search's own process keeps OpenMP's default policy (it times the family on every core); its
    # local workers are `scaler worker` processes, and a local Ray's get PASSIVE from ray_backend
    assert out.split() == ["True", "False", "False", "False", "False", "False"]
