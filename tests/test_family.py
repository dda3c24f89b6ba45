"""The scaled family: arithmetic, rebuilding from JSON, solving phi for a budget, ONNX export, CLI."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision
from conftest import SMOKE_DATA

from scaler.baselines import builtin_dir, get_baseline
from scaler.cost import count_cost
from scaler.errors import UsageError
from scaler.family import build_family
from scaler.family_files import build_member, family_frame, find_member, load_family, save_family, write_family
from scaler.phi_solver import solve_phi
from scaler.proxy import ProxyTraining
from scaler.run_folder import RunFolder
from scaler.scaling import EFFICIENTNET_TABLE, Coefficients

EFFNET = Coefficients(1.2, 1.1, 1.15)


def shapes(model: torch.nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_official_table_reproduces_torchvision_b1_to_b7_through_the_cli(cli, tmp_path):
    result = cli("family", "--baseline", "efficientnet_b0", "--table", "official", "--latency-runs", "0",
                 "--out", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    members = {m["label"]: m for m in json.loads(result.stdout)["members"]}
    assert list(members) == list(EFFICIENTNET_TABLE)
    for name, (width, depth, px, _) in EFFICIENTNET_TABLE.items():
        with torch.device("meta"):
            reference = getattr(torchvision.models, f"efficientnet_{name}")()
        assert members[name]["params"] == sum(p.numel() for p in reference.parameters()), name
        assert (members[name]["width_mult"], members[name]["depth_mult"], members[name]["input_px"]) == (width, depth, px)
    # the paper's Table 2 "FLOPS" (multiply-adds), to its two significant figures
    assert round(members["b1"]["macs"] / 1e9, 2) == 0.69 and round(members["b7"]["macs"] / 1e9) == 38
    assert (tmp_path / "family.json").is_file() and (tmp_path / "family.csv").is_file()


def test_compound_member_arithmetic_matches_the_reference_measurement():
    family = build_family("efficientnet_b0", coefficients=EFFNET, phis=[0, 1], latency_runs=0)
    base, one = family.members
    assert (base.params, base.macs) == (5_288_548, 385_825_092)
    # measured here (2026-11-25): w 1.1, d 1.2, 258 px costs 992.6M, 2.57x B0; ceil turns depths 1,2,2,3,3,4,1 into 2,3,3,4,4,5,2
    assert one.input_px == 258 and one.macs == 992_645_882
    assert one.macs_ratio == pytest.approx(2.573, abs=1e-3) and one.nominal_ratio == pytest.approx(1.920, abs=1e-3)
    assert [s["repeats"] for s in one.stages[1:-1]] == [2, 3, 3, 4, 4, 5, 2]
    frame = family_frame(family.as_dict())
    assert frame.loc[1, "stage_depths"] == "1-2-3-3-4-4-5-2-1"


def test_fractional_phi():
    family = build_family("resnet18", coefficients=EFFNET, phis=[0, 0.5, 1.5], latency_runs=0)
    assert [m.label for m in family.members] == ["phi=0", "phi=0.5", "phi=1.5"]
    assert family.members[1].depth_mult == pytest.approx(1.2**0.5)
    assert family.members[1].input_px == round(224 * 1.15**0.5)
    assert family.members[0].macs < family.members[1].macs < family.members[2].macs


@pytest.mark.parametrize("spec", ["resnet18", "mobilenet_v2", "efficientnet_b0"])
def test_rebuild_from_json_alone_equals_the_original(tmp_path, spec):
    family = build_family(spec, coefficients=EFFNET, phis=[0.5], num_classes=10, latency_runs=0)
    save_family(family, tmp_path)
    entry = load_family(tmp_path)["members"][0]
    rebuilt = build_member(entry)
    original = get_baseline(spec).build(width=EFFNET.beta**0.5, depth=EFFNET.alpha**0.5, num_classes=10)
    assert shapes(rebuilt) == shapes(original)
    assert sum(p.numel() for p in rebuilt.parameters()) == entry["params"]


def test_a_stage_list_baseline_is_embedded_so_the_file_may_go(tmp_path):
    path = tmp_path / "mine.json"
    spec = json.loads((builtin_dir() / "efficientnet_b0.json").read_text())
    spec["stages"] = spec["stages"][:4]
    spec["name"] = "mine"
    path.write_text(json.dumps(spec))
    family = build_family(str(path), coefficients=EFFNET, phis=[1], num_classes=10, latency_runs=0)
    save_family(family, tmp_path / "out")
    path.unlink()
    entry = load_family(tmp_path / "out" / "family.json")["members"][0]
    assert entry["baseline_spec"]["name"] == "mine"
    assert sum(p.numel() for p in build_member(entry).parameters()) == entry["params"]


def test_solve_phi_finds_the_largest_that_fits():
    assert solve_phi(lambda phi: 2**phi, 3.0) == pytest.approx(1.58)  # log2(3) = 1.585
    assert solve_phi(lambda phi: 2**phi, 0.5, guess=2) == pytest.approx(-1.0)
    with pytest.raises(UsageError):
        solve_phi(lambda phi: 2**phi, 1e-9)


def test_target_macs_adds_the_largest_member_that_fits():
    family = build_family("efficientnet_b0", coefficients=EFFNET, phis=[0], target_macs=1.2e9, latency_runs=0)
    phi = family.solved["phi"]
    assert [m.phi for m in family.members] == [0.0, phi]
    assert family.members[-1].macs <= 1.2e9
    above = EFFNET.multipliers(phi + 0.01)
    assert count_cost("efficientnet_b0", width=above.width, depth=above.depth, resolution=above.input_size(224)).macs > 1.2e9


def test_target_latency_solves_with_the_measured_time(monkeypatch):
    import scaler.cost

    # a stand-in timer: 1 ms per 10 px of input side, so 25 ms fits up to 250 px
    monkeypatch.setattr(scaler.cost, "measure_latency", lambda model, px, device, batch_size=1, repeats=1: px / 10)
    family = build_family("resnet18", coefficients=EFFNET, phis=[0], target_latency_ms=25, latency_runs=1, num_classes=10)
    assert family.solved["phi_for_latency"] == pytest.approx(0.8)  # 224 * 1.15**0.8 = 250 px; 0.85 gives 252
    assert family.members[-1].input_px <= 250 and family.members[-1].latency_ms <= 25


def test_latency_is_measured_at_two_batch_sizes():
    family = build_family("resnet18", coefficients=EFFNET, phis=[-4], latency_runs=1, latency_batch=2, num_classes=10)
    member = family.members[0]
    assert member.latency_ms > 0 and member.latency_batch_ms > 0 and member.latency_batch == 2
    assert family.device == "cpu" and family.as_dict()["threads"] == torch.get_num_threads()  # timed with these


def test_proxy_accuracy_with_train(tmp_path):
    training = ProxyTraining(data=SMOKE_DATA, preset="smoke", seeds=2)
    family = build_family("resnet18", coefficients=EFFNET, phis=[0], latency_runs=0, training=training)
    member = family.members[0]
    assert member.accuracy_n == 2 and 0 <= member.accuracy_mean <= 1 and member.accuracy_std is not None
    assert family.training["preset"] == "smoke"


def test_write_family_reads_a_run_folder(tmp_path):
    run = RunFolder(tmp_path / "run").create()
    run.write_json(run.config, {"baseline": "resnet18", "budget": "2x"})
    run.write_json(run.coefficients, {"baseline": "resnet18", "alpha": 1.4, "beta": 1.05, "gamma": 1.15})
    family = write_family(run, phis=[0, 1], device="cpu", latency_runs=0)
    assert family.coefficients == Coefficients(1.4, 1.05, 1.15)
    data = load_family(run.path)
    assert [m["label"] for m in data["members"]] == ["phi=0", "phi=1"]
    assert find_member(data, phi=1)["depth_mult"] == pytest.approx(1.4)
    with pytest.raises(UsageError, match="phi 2"):
        find_member(data, phi=2)


def test_export_onnx_through_the_cli(cli, tmp_path):
    import onnx

    family = build_family("mobilenet_v2", coefficients=EFFNET, phis=[-3, 0], num_classes=10, latency_runs=0)
    save_family(family, tmp_path)
    result = cli("export", "--family", str(tmp_path), "--phi", "-3", "--onnx", str(tmp_path / "m.onnx"), "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    graph = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(graph)
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [3, out["input_px"], out["input_px"]] and dims[0].dim_param == "batch"
    assert out["input_px"] == round(224 * 1.15**-3)
    assert sum(int(__import__("math").prod(i.dims)) for i in graph.graph.initializer) >= out["params"] * 0.9


@pytest.mark.parametrize(
    "args, message",
    [
        (["--baseline", "resnet18", "--coefficients", "1.2,1.1,1.15", "--phi", "5..2"], "runs backwards"),
        (["--run", "no/such/run"], "does not exist"),
        (["--baseline", "resnet18"], "exactly one of --coefficients"),
        (["--baseline", "resnet18", "--table", "official", "--target", "1G"], "official table"),
        (["--baseline", "resnet18", "--coefficients", "1,2"], "three positive numbers"),
        (["--baseline", "resnet18", "--coefficients", "1.2,1.1,1.15", "--target-latency", "fast"], "latency target"),
    ],
)
def test_bad_input_is_one_line_and_status_2(capsys, args, message):
    from scaler.cli import main

    assert main(["family", *args, "--latency-runs", "0"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_an_incomplete_run_folder_is_a_usage_error(capsys, tmp_path):
    from scaler.cli import main

    (tmp_path / "config.json").write_text(json.dumps({"baseline": "resnet18"}))
    assert main(["family", "--run", str(tmp_path), "--latency-runs", "0"]) == 2
    assert "coefficients.json" in capsys.readouterr().err
    assert main(["export", "--run", str(tmp_path), "--phi", "1", "--onnx", str(tmp_path / "x.onnx")]) == 2
    assert "family" in capsys.readouterr().err
