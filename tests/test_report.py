"""Reports: built from hand-made run folders (a real Optuna SQLite study, trials.csv, coefficients.json),
parsed as HTML: images inline and decodable, nothing from the network, user names escaped."""

from __future__ import annotations

import base64
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import optuna
import pandas as pd
import pytest

from scaler.errors import UsageError
from scaler.family import build_family
from scaler.family_files import save_family
from scaler.report import load_run, write_report
from scaler.run_folder import STUDY_NAME, RunFolder
from scaler.scaling import Coefficients

PNG = b"\x89PNG\r\n\x1a\n"
GRID = [  # (alpha, beta, gamma, accuracy mean, std, kind, state)
    (1.2, 1.1, 1.15, 0.958, 0.009, "compound", "COMPLETE"),
    (1.4, 1.05, 1.15, 0.955, 0.001, "compound", "COMPLETE"),
    (1.1, 1.15, 1.2, 0.963, 0.006, "compound", "COMPLETE"),
    (2.0, 1.0, 1.0, 0.9585, 0.005, "depth", "COMPLETE"),
    (1.0, 1.41, 1.0, None, None, "width", "FAIL"),
]


def make_run(root: Path, name: str = "resnet18-2x", baseline: str = "resnet18", family: bool = True,
             winner: bool = True, study: bool = True) -> RunFolder:
    """A run folder as `scaler search` leaves it, written by hand."""
    run = RunFolder(root / name).create()
    run.write_json(run.config, {
        "baseline": baseline, "budget": "2x", "space": "search_spaces/efficientnet.toml",
        "data": {"source": "synthetic", "images": 400}, "recipe": {"epochs": 1}, "seeds": 2, "pruner": "none",
        "storage": None, "device": "cpu", "seed": 0, "created": "2026-11-25T15:00:00+00:00", "scaler_version": "0.1.0",
    })
    rows = []
    for i, (a, b, g, acc, std, kind, state) in enumerate(GRID):
        nominal = a * b * b * g * g
        rows.append({
            "point": i, "kind": kind, "alpha": a, "beta": b, "gamma": g, "depth_mult": a, "width_mult": b,
            "resolution_mult": g, "input_px": round(224 * g), "nominal_ratio": nominal, "macs_ratio": nominal * 1.05,
            "macs": 1.81e9 * nominal * 1.05, "params": int(11.7e6 * b * b * a), "activations": int(2.5e6 * nominal),
            "accuracy_mean": acc, "accuracy_std": std, "accuracy_n": 2 if acc else 0, "seconds": 12.5,
            "state": state, "reason": "" if acc else "loss exploded",
        })
    pd.DataFrame(rows).to_csv(run.trials, index=False)
    if study:
        sampler = optuna.samplers.GridSampler({"point": list(range(len(GRID))), "seed": [0, 1]}, seed=0)
        s = optuna.create_study(study_name=STUDY_NAME, storage=run.storage_url, sampler=sampler, direction="maximize")

        def objective(trial: optuna.Trial) -> float:
            point, seed = trial.suggest_categorical("point", list(range(len(GRID)))), trial.suggest_categorical("seed", [0, 1])
            _, _, _, acc, std, *_ = GRID[point]
            for key in ("alpha", "beta", "gamma", "macs"):  # as the search's objective records them
                trial.set_user_attr(key, rows[point][key])
            if acc is None:
                raise RuntimeError("loss exploded")
            for epoch in range(2):
                trial.report(acc - 0.05 * (1 - epoch), epoch)
            return acc + (std if seed else -std)

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        s.optimize(objective, n_trials=2 * len(GRID), catch=(RuntimeError,))
    if winner:
        run.write_json(run.coefficients, {
            "baseline": baseline, "budget": "2x", "alpha": 1.1, "beta": 1.15, "gamma": 1.2, "nominal_ratio": 2.53,
            "macs_ratio": 2.6, "accuracy_mean": 0.963, "accuracy_std": 0.006, "seeds": 2,
            "runner_up": {"alpha": 2.0, "beta": 1.0, "gamma": 1.0, "accuracy_mean": 0.9585, "accuracy_std": 0.005},
            "margin": 0.0045, "margin_interval": [-0.012, 0.021], "significant": False, "test": "welch",
        })
    if family:
        fam = build_family(baseline, coefficients=Coefficients(1.1, 1.15, 1.2), phis=[0, 1, 2], latency_runs=0)
        for i, m in enumerate(fam.members):  # as --train would leave them
            m.accuracy_mean, m.accuracy_std, m.accuracy_n, m.latency_ms = 0.95 + 0.005 * i, 0.004, 2, 10.0 * (i + 1)
        save_family(fam, run.path)
    return run


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images, self.links, self.tables, self.text = [], [], 0, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        if tag == "table":
            self.tables += 1
        for key in ("src", "href"):
            if key in attrs and tag != "img":
                self.links.append(attrs[key])
        if tag in ("script", "link", "iframe"):
            self.links.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_a_full_run_reports_with_inline_images(tmp_path):
    run = make_run(tmp_path)
    html = write_report([run])
    assert html == run.path / "report.html"
    page = parse(html)
    assert page.links == []  # no script, stylesheet or link to load: opens from disk with no network
    assert len(page.images) >= 7
    for img in page.images:
        assert img["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(img["src"].split(",", 1)[1])[:8] == PNG
        assert img["alt"]
    text = " ".join(page.text)
    for words in ("Configuration", "Screen stage", "Answer", "Family", "multiply-adds", "Margin +0.45 points", "not significant"):
        assert words in text, words
    assert page.tables >= 3
    names = {p.name for p in (run.path / "plots").glob("*.png")}
    assert {"accuracy_vs_macs.png", "accuracy_vs_params.png", "accuracy_vs_latency_ms.png", "grid.png",
            "optuna_history.png", "optuna_importance.png", "family_cost.png"} <= names
    md = (run.path / "report.md").read_text()
    for target in (line.split("](", 1)[1].rstrip(")") for line in md.splitlines() if line.startswith("![")):
        assert (run.path / target).is_file()
    assert "| alpha |" in md or "| point |" in md


def test_a_run_with_trials_only_still_reports(tmp_path):
    run = make_run(tmp_path, family=False, winner=False, study=False)
    page = parse(write_report([run]))
    text = " ".join(page.text)
    assert "No answer yet" in text and "Family" not in text
    assert any("base64" in img["src"] for img in page.images)  # the grid and the accuracy charts


def test_user_names_are_escaped(tmp_path):
    evil = '<script>alert("x")</script>&'
    run = make_run(tmp_path, name="a<b>&c", family=False, study=False)
    config = json.loads(run.config.read_text())
    config["space"] = evil
    run.write_json(run.config, config)
    html = write_report([run]).read_text()
    assert "<script>" not in html and "a<b>" not in html
    assert "&lt;script&gt;alert(" in html and "&lt;/script&gt;&amp;" in html and "a&lt;b&gt;&amp;c" in html
    assert parse(run.path / "report.html").links == []


def test_several_runs_side_by_side(tmp_path):
    a = make_run(tmp_path, name="resnet18-2x", baseline="resnet18")
    b = make_run(tmp_path, name="mobilenet_v2-2x", baseline="mobilenet_v2", study=False)
    html = write_report([a, b], tmp_path / "both")
    page = parse(html)
    text = " ".join(page.text)
    assert "Runs side by side" in text and "Run resnet18-2x" in text and "Run mobilenet_v2-2x" in text
    plots = {p.name for p in (tmp_path / "both" / "plots").glob("*.png")}
    assert {"accuracy_vs_macs.png", "resnet18-2x_grid.png", "mobilenet_v2-2x_grid.png"} <= plots


def test_compare_folder_reports(tmp_path):
    run = RunFolder(tmp_path / "cmp").create()
    pd.DataFrame([
        {"strategy": "baseline", "budget": "1x", "depth_mult": 1, "width_mult": 1, "input_px": 224, "macs": 1.8e9,
         "macs_ratio": 1.0, "params": 11e6, "activations": 2.5e6, "accuracy_mean": 0.9, "accuracy_std": 0.01, "accuracy_n": 2},
        {"strategy": "width", "budget": "2x", "depth_mult": 1, "width_mult": 1.41, "input_px": 224, "macs": 3.6e9,
         "macs_ratio": 2.0, "params": 23e6, "activations": 3.5e6, "accuracy_mean": 0.92, "accuracy_std": 0.01, "accuracy_n": 2},
    ]).to_csv(run.compare, index=False)
    page = parse(write_report([run]))
    assert "Strategies compared" in " ".join(page.text) and page.images


def test_missing_or_empty_folders_are_usage_errors(tmp_path, capsys):
    with pytest.raises(UsageError, match="does not exist"):
        load_run(RunFolder(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="nothing to report"):
        write_report([RunFolder(tmp_path / "empty")])
    from scaler.cli import main

    assert main(["report", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "nothing to report" in err and len(err.strip().splitlines()) == 1


def test_report_through_the_cli(cli, tmp_path):
    run = make_run(tmp_path, family=False)
    result = cli("report", str(run.path), "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert Path(out["html"]).is_file() and Path(out["markdown"]).is_file() and out["plots"]


def test_optuna_plots_say_why_they_are_missing(tmp_path):
    from scaler import plots

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize")
    assert plots.optuna_plots(study, tmp_path) == {"history": "no finished trial in the study yet",
                                                   "importance": "no finished trial in the study yet"}
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    drawn = plots.optuna_plots(study, tmp_path)
    assert drawn["history"].read_bytes()[:8] == PNG and "two or more" in drawn["importance"]


def test_a_curve_network_that_missed_its_cost_is_labelled_with_its_proxy_cost():
    from scaler.report import curves_series
    from scaler.run_contents import RunData
    from scaler.run_folder import RunFolder

    def row(strategy, phi, kind, proxy, missed=""):
        return {"strategy": strategy, "phi": phi, "kind": kind, "alpha": 1.0, "beta": 1.2, "gamma": 1.1,
                "macs": 1e6 * 2**phi, "proxy_macs_ratio": proxy, "accuracy_mean": 0.8, "accuracy_std": 0.01,
                "cost_missed": missed}

    frame = pd.DataFrame([row("baseline", 0, "baseline", 1.0), row("chosen", 1, "compound", 2.01),
                          row("chosen", 2, "compound", 2.48, "proxy"), row("depth", 1, "depth", 1.98),
                          row("depth", 2, "depth", 3.95, "full size")])  # drawn at its true MACs: not labelled
    for curves in (frame, pd.read_csv(io.StringIO(frame.to_csv(index=False)))):  # as written, and read back
        run = RunData(name="r", folder=RunFolder("."), curves=curves)
        labels = {s.label.split(":")[0]: s.labels for s in curves_series(run, "macs", "")}
        assert labels == {"chosen": ["phi=0", "phi=1", "phi=2 (proxy x2.48)"], "depth only": ["phi=0", "phi=1", "phi=2"]}
    older = frame.drop(columns="cost_missed")  # a run from before the column: nothing marked
    assert all("proxy" not in lab for s in curves_series(RunData("r", RunFolder("."), curves=older), "macs", "")
               for lab in s.labels)


def test_a_narrow_log_axis_labels_a_tick_near_each_end_and_the_legend_covers_no_point(monkeypatch, tmp_path):
    """The example report's curves span 4.1G..16.2G MACs: every point has a labelled tick within 1.25x of it, and the
    legend sits below the axes, so no error bar hides behind it."""
    import matplotlib.pyplot as plt

    from scaler import plots

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or Path(path))
    xs = [4.09e9, 8.24e9, 16.2e9]
    plots.accuracy_vs_cost([plots.Series("chosen", xs, [0.81, 0.82, 0.81], [0.015, 0.03, 0.006]),
                            plots.Series("width only", [4.09e9, 8.2e9, 16.4e9], [0.81, 0.83, 0.84])],
                           "macs", tmp_path / "curves.png", "curves")
    fig = figures[0]
    ax = fig.axes[0]
    fig.canvas.draw()
    lo, hi = ax.get_xlim()
    labelled = [t.get_loc() for t in ax.xaxis.get_major_ticks() + ax.xaxis.get_minor_ticks()
                if t.label1.get_text() and lo <= t.get_loc() <= hi]
    assert all(min(max(x / t, t / x) for t in labelled) <= 1.25 for x in xs), labelled
    legend = ax.get_legend().get_window_extent()
    assert legend.y1 <= ax.get_window_extent().y0  # below the axes, not over the plotted points
    plt.close(fig)
