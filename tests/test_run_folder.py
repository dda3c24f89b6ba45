"""Nothing lost, nothing guessed: run folders that resume, --fresh that deletes only its own files,
failures recorded with a reason, and reports that never write to a database."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import warnings

import pandas as pd
import pytest
from conftest import FLAKY_MODEL, SMOKE_SEARCH, complete_trials, run_cli
from torch import nn

from scaler.baselines import Baseline
from scaler.data import load_dataset
from scaler.errors import ScalerWarning, UsageError
from scaler.family import build_family
from scaler.family_files import load_family, save_family
from scaler.recipe import ProxyRecipe
from scaler.report import write_report
from scaler.run_folder import MANIFEST, RunFolder
from scaler.run_identity import canonical
from scaler.scaling import Coefficients
from scaler.train import TrainingFailed, train


@pytest.mark.slow
def test_uncostable_point_is_standard_json_and_the_search_resumes_after_kills(tmp_path):
    # A point whose model fails to run cannot be costed: its ratio is NaN, which config.json must
    # store as null, and which must compare equal to itself when the search resumes.
    (tmp_path / "flaky_net.py").write_text(FLAKY_MODEL)
    out = tmp_path / "run"
    args = ["search", "--baseline", "flaky_net:build", "--out", str(out), *SMOKE_SEARCH, "--proxy-width", "1.0", "--seeds", "2"]
    proc = subprocess.Popen([sys.executable, "-m", "scaler", *args], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while complete_trials(out / "study.db") < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    config = (out / "config.json").read_text()
    assert "NaN" not in config and json.loads(config)["candidates"]  # standard JSON
    done = complete_trials(out / "study.db")
    for _ in range(3):  # resume, and resume a finished search: nothing lost, nothing retrained
        again = run_cli(*args, cwd=tmp_path, timeout=600)
        assert again.returncode == 0, again.stderr
        assert complete_trials(out / "study.db") >= done
        done = complete_trials(out / "study.db")
    assert "0 to run" in again.stdout
    table = pd.read_csv(out / "trials.csv")
    assert set(table.state) == {"COMPLETE", "FAIL"}
    assert table[table.state == "FAIL"].reason.str.contains("too wide for me").all()


def test_fresh_refuses_a_folder_scaler_did_not_make(tmp_path):
    (tmp_path / "config.json").write_text('{"mine": true}')
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "holiday.png").write_bytes(b"not scaler's")
    result = run_cli("search", "--baseline", "resnet18", "--out", str(tmp_path), "--fresh", *SMOKE_SEARCH)
    assert result.returncode == 2 and "not a scaler run folder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert (tmp_path / "config.json").read_text() == '{"mine": true}'
    assert (tmp_path / "plots" / "holiday.png").exists()


def test_clear_deletes_only_what_the_manifest_lists(tmp_path):
    run = RunFolder(tmp_path).create()
    (tmp_path / "notes.txt").write_text("the user's")
    run.write_json(run.config, {"scaler_version": "x"})
    run.write_text(run.plots / "grid.png", "png")
    (run.plots / "mine.txt").write_text("kept? no: plots/ is scaler's folder")
    assert set(run.owned()) == {"config.json", "plots/grid.png"}
    run.clear()
    assert (tmp_path / "notes.txt").read_text() == "the user's"
    assert not run.config.exists() and not (run.plots / "grid.png").exists()
    assert (run.plots / "mine.txt").exists()  # a file scaler did not write stays, even in its folder
    assert run.owned() == []


def test_clear_refuses_a_folder_without_a_manifest(tmp_path):
    with pytest.raises(UsageError, match="not a scaler run folder"):
        RunFolder(tmp_path).clear()


def test_an_older_scalers_run_folder_is_adopted(tmp_path):
    (tmp_path / "config.json").write_text('{"scaler_version": "0.1.0", "baseline": "resnet18"}')
    (tmp_path / "trials.csv").write_text("point\n0\n")
    run = RunFolder(tmp_path).create()
    assert set(run.owned()) == {"config.json", "trials.csv"}


def test_writes_never_follow_a_symlink_out_of_the_run_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    run = RunFolder(tmp_path / "run").create()
    run.plots.symlink_to(outside, target_is_directory=True)
    with pytest.raises(UsageError, match="symbolic link"):
        run.write_text(run.plots / "a.png", "x")
    assert list(outside.iterdir()) == []
    (run.path / "family.json").symlink_to(outside / "family.json")
    with pytest.raises(UsageError, match="symbolic link"):
        run.write_json(run.family_json, {})
    assert not (outside / "family.json").exists()


def test_the_lock_does_not_follow_a_symlink(tmp_path):
    target = tmp_path / "victim.txt"
    target.write_text("keep me")
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").symlink_to(target)
    result = run_cli("search", "--baseline", "resnet18", "--out", str(run), *SMOKE_SEARCH)
    assert result.returncode == 2 and "cannot lock" in result.stderr
    assert target.read_text() == "keep me"


def test_setup_failures_are_recorded_training_failures(tmp_path):
    data = load_dataset("synthetic:size=16,images=80,classes=2")
    recipe = ProxyRecipe(epochs=1, batch_size=16, subset=32, warmup_epochs=0.5)
    with pytest.raises(TrainingFailed, match="GiB"):  # ~13 TB asked for: refused before allocating
        train("resnet18", width=0.125, depth=1.0, resolution_px=20000, data=data, recipe=recipe)
    with pytest.raises(TrainingFailed, match="model failed"):  # moving to a device that is not there
        train("resnet18", width=0.125, depth=1.0, resolution_px=16, data=data, recipe=recipe, device="meta")


class _NaNAtEval(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.fc = nn.Linear(3, num_classes)

    def forward(self, x):
        out = self.fc(x.mean((2, 3)))
        return out if self.training else out * float("nan")


def test_non_finite_outputs_in_evaluation_fail_the_run():
    data = load_dataset("synthetic:size=16,images=80,classes=2")
    user = Baseline("user:nan", lambda w, d, c: _NaNAtEval(c), 16)
    with pytest.raises(TrainingFailed, match="NaN or infinite"):
        train(user, width=1.0, depth=1.0, resolution_px=16, data=data,
              recipe=ProxyRecipe(epochs=1, batch_size=16, subset=32, warmup_epochs=0.5))


def _config(**changes) -> dict:
    base = {"baseline": "resnet18", "budget": "2x", "space_rules": {"tolerance": 0.35}, "recipe": {"epochs": 1},
            "seeds": 1, "pruner": "none", "device": "cpu", "candidates": [{"macs_ratio": float("nan")}],
            "data": {"source": "imagefolder:./imgs", "fingerprint": "abc", "split_fingerprint": "def"}}
    return {**base, **changes}


def test_identity_is_canonical():
    same = canonical(_config())
    assert canonical(json.loads(json.dumps(_config()).replace("NaN", "null"))) == same  # NaN vs null
    moved = _config(data={"source": "imagefolder:imgs", "fingerprint": "abc", "split_fingerprint": "def"})
    assert canonical(moved) == same  # the same pixels, spelled another way
    assert canonical(_config(device="cuda:0"))["device"] != same["device"]  # fp32 CPU vs bf16 GPU
    assert canonical(_config(device="cuda:1"))["device"] == canonical(_config(device="cuda:0"))["device"]


def test_report_never_writes_to_a_database(tmp_path):
    run = RunFolder(tmp_path / "run").create()
    run.write_json(run.config, {"baseline": "resnet18", "scaler_version": "x"})
    with sqlite3.connect(run.storage_file) as con:  # somebody's own SQLite file under the study's name
        con.execute("create table mine (x)")
    before = hashlib.sha256(run.storage_file.read_bytes()).hexdigest()
    write_report([run])
    assert hashlib.sha256(run.storage_file.read_bytes()).hexdigest() == before
    with sqlite3.connect(run.storage_file) as con:
        tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
    assert tables == {"mine"}


def test_a_dollar_in_a_run_name_is_text(tmp_path):
    family = build_family("resnet18", coefficients=Coefficients(1.2, 1.1, 1.15), phis=[0, 1], latency_runs=0)
    out = tmp_path / "price $5 $10"
    save_family(family, out)
    html = write_report([RunFolder(out)]).read_text()
    assert "price $5 $10" in html


def test_a_family_naming_a_user_module_says_it_will_import_it(tmp_path):
    family = build_family("resnet18", coefficients=Coefficients(1.2, 1.1, 1.15), phis=[0], latency_runs=0)
    save_family(family, tmp_path)
    data = json.loads((tmp_path / "family.json").read_text())
    data["baseline"] = "evil_module:build"
    (tmp_path / "family.json").write_text(json.dumps(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_family(tmp_path)
    assert any(issubclass(w.category, ScalerWarning) and "evil_module" in str(w.message) for w in caught)


def test_manifest_is_written_with_the_run(tmp_path):
    family = build_family("resnet18", coefficients=Coefficients(1.2, 1.1, 1.15), phis=[0], latency_runs=0)
    save_family(family, tmp_path / "f")
    listed = json.loads((tmp_path / "f" / MANIFEST).read_text())["files"]
    assert set(listed) == {"family.json", "family.csv"}
