"""A wheel carries what a fresh machine needs: default data, search spaces, stage lists; and works outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, cwd=out)
    (path,) = out.glob("scaler-*.whl")
    return path


def test_wheel_carries_data_spaces_and_stage_lists(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.name for p in (ROOT / "search_spaces").glob("*.toml")} | {p.name for p in (ROOT / "baselines").glob("*.json")}
    assert shipped  # the source folders hold something
    for name in (ROOT / "search_spaces").glob("*.toml"):
        assert f"scaler/resources/search_spaces/{name.name}" in names
    for name in (ROOT / "baselines").glob("*.json"):
        assert f"scaler/resources/stage_lists/{name.name}" in names
    for name in ("animals.npz", "animals.LICENSE", "animals.README.md"):
        assert f"scaler/resources/{name}" in names
    assert "scaler/commands/search.py" in names and "scaler/baselines/registry.py" in names
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)


@pytest.mark.slow
def test_installed_wheel_works_outside_the_checkout(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(site)}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    check = ("import scaler, scaler.search_space as s, scaler.baselines as b, scaler.data as d\n"
             "print(scaler.__file__)\nprint(s.load_space().path)\nprint('efficientnet_b0' in b.list_baselines())\n"
             "print(d.load_dataset('animals').fingerprint)")
    out = subprocess.run([sys.executable, "-c", check], cwd=elsewhere, env=env, capture_output=True, text=True, check=True)
    file, space, effnet, fingerprint = out.stdout.split()
    assert file.startswith(str(site)) and space.startswith(str(site))
    assert effnet == "True" and fingerprint == "708a8c52ddcfe5df"
    # a search's first steps: cost the default grid of the packaged stage list
    grid = subprocess.run([sys.executable, "-m", "scaler", "grid", "--baseline", "efficientnet_b0", "--budget", "2x"],
                          cwd=elsewhere, env=env, capture_output=True, text=True)
    assert grid.returncode == 0, grid.stderr
    assert "compound" in grid.stdout and "depth" in grid.stdout
