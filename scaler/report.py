"""Reports: one or several run folders as a self-contained report.html and a report.md.

A report works on whatever files a run has (a search still running has trials but no winner; a
``scaler family`` folder has only a family): configuration, the grid table, the winner and its
margin over the runner-up, the family table, the strategy comparison, and plots as PNG under
``plots/``: accuracy against MACs (multiply-adds, log axis, error bars, one line per family or
strategy), against params and latency, the coefficient grid, and Optuna's optimisation history and
parameter importances. Several runs share the accuracy charts and get a side-by-side summary.

The HTML embeds its images as base64 and loads nothing from the network; every name and value
that came from a user is escaped. The document is built once as a list of blocks and rendered
twice (HTML, Markdown), so the two never disagree.

Example::

    from scaler.report import write_report
    html = write_report([RunFolder(Path("runs/resnet18-2x"))])
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from scaler import __version__, plots
from scaler.errors import UsageError
from scaler.run_folder import STUDY_NAME, RunFolder
from scaler.scaling import format_macs


# --- what a run folder holds ----------------------------------------------------------------


@dataclass
class RunData:
    """The files of one run folder that exist, read; ``notes`` says what could not be read."""

    name: str
    folder: RunFolder
    config: dict | None = None
    trials: pd.DataFrame | None = None
    coefficients: dict | None = None
    family: dict | None = None
    compare: pd.DataFrame | None = None
    compare_settings: dict | None = None
    study: object | None = None  # optuna.Study
    notes: list[str] = field(default_factory=list)

    @property
    def baseline(self) -> str:
        for source in (self.config, self.family, self.compare_settings, self.coefficients):
            if source and source.get("baseline"):
                return str(source["baseline"])
        return "?"


def load_run(run: RunFolder) -> RunData:
    """Read what exists in a run folder; UsageError if the folder is missing or holds nothing to report."""
    if not run.path.is_dir():
        raise UsageError(f"run folder {str(run.path)!r} does not exist")
    data = RunData(name=run.path.resolve().name, folder=run)
    data.config = _json(run.config, data)
    data.coefficients = _json(run.coefficients, data)
    data.family = _json(run.family_json, data)
    data.compare_settings = _json(run.path / "compare.json", data)
    data.trials = _csv(run.trials, data)
    data.compare = _csv(run.compare, data)
    data.study = _study(run, data)
    if data.family is not None and not isinstance(data.family.get("members"), list):
        data.notes.append(f"{run.family_json.name} has no members list; left out")
        data.family = None
    if all(x is None for x in (data.config, data.trials, data.coefficients, data.family, data.compare)):
        raise UsageError(
            f"run folder {str(run.path)!r} has nothing to report (no config.json, trials.csv, family.json or compare.csv)"
        )
    return data


def _json(path: Path, data: RunData) -> dict | None:
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, OSError) as exc:
        data.notes.append(f"{path.name} could not be read ({type(exc).__name__}); left out")
        return None
    if not isinstance(value, dict):
        data.notes.append(f"{path.name} is not a JSON object; left out")
        return None
    return value


def _csv(path: Path, data: RunData) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as exc:
        data.notes.append(f"{path.name} could not be read ({type(exc).__name__}); left out")
        return None


def _study(run: RunFolder, data: RunData):
    """The run's Optuna study, if its storage exists; never creates a database."""
    url = (data.config or {}).get("storage") or None
    if url is None:
        if not run.storage_file.is_file():
            return None
        url = run.storage_url
    elif url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).is_file():
        data.notes.append("the study's SQLite file named in config.json is missing; Optuna plots left out")
        return None
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.load_study(study_name=STUDY_NAME, storage=url)
    except Exception as exc:  # an unreachable database, another study name: report without it
        data.notes.append(f"Optuna study could not be opened ({type(exc).__name__}); Optuna plots left out")
        return None


# --- a tiny document model, rendered twice --------------------------------------------------


@dataclass
class Block:
    kind: str  # "h1", "h2", "h3", "p", "table", "img", "note"
    text: str = ""
    frame: pd.DataFrame | None = None
    path: Path | None = None


def _h(level: int, text: str) -> Block:
    return Block(f"h{level}", text)


def _p(text: str) -> Block:
    return Block("p", text)


def _table(frame: pd.DataFrame, caption: str = "") -> Block:
    return Block("table", caption, frame=frame)


def _img(path: Path, alt: str) -> Block:
    return Block("img", alt, path=path)


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { font-size: 1.3em; border-bottom: 1px solid #ccc; margin-top: 2em; }
h3 { font-size: 1.1em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.6em 0 1.2em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; } img { max-width: 100%; height: auto; } figcaption { font-size: 0.9em; color: #555; }
.note { color: #8a4b00; } .caption { font-size: 0.9em; color: #555; margin-bottom: 0; }
"""


def render_html(blocks: Sequence[Block], title: str) -> str:
    """HTML with images inline (base64 PNG), no external resource; all text escaped."""
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{html.escape(title)}</title>", f"<style>{CSS}</style></head><body>"]
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append(f"<{b.kind}>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "p":
            out.append(f"<p>{html.escape(b.text)}</p>")
        elif b.kind == "note":
            out.append(f'<p class="note">{html.escape(b.text)}</p>')
        elif b.kind == "table":
            if b.text:
                out.append(f'<p class="caption">{html.escape(b.text)}</p>')
            out.append(b.frame.to_html(index=False, escape=True, na_rep="–", border=0))
        elif b.kind == "img":
            data = base64.b64encode(b.path.read_bytes()).decode("ascii")
            alt = html.escape(b.text, quote=True)
            out.append(f'<figure><img src="data:image/png;base64,{data}" alt="{alt}">'
                       f"<figcaption>{html.escape(b.text)}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _md_escape(text: str) -> str:
    return re.sub(r"([\\`*_\[\]<>|])", r"\\\1", str(text))


def _md_table(frame: pd.DataFrame) -> str:
    def cell(v) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "–"
        return _md_escape(v).replace("\n", " ")

    head = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def render_markdown(blocks: Sequence[Block], out: Path) -> str:
    lines = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            lines += ["#" * int(b.kind[1]) + " " + _md_escape(b.text), ""]
        elif b.kind in ("p", "note"):
            lines += [("> " if b.kind == "note" else "") + _md_escape(b.text), ""]
        elif b.kind == "table":
            if b.text:
                lines += [f"*{_md_escape(b.text)}*", ""]
            lines += [_md_table(b.frame), ""]
        elif b.kind == "img":
            rel = b.path.relative_to(out).as_posix()
            lines += [f"![{_md_escape(b.text)}]({rel})", ""]
    return "\n".join(lines)


# --- formatting ------------------------------------------------------------------------------


def _isnum(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v)) and not isinstance(v, str)


def pct(mean, std=None) -> str:
    """Accuracy 0..1 as '97.00 ± 0.64' (%), '–' when unknown."""
    if not _isnum(mean):
        return "–"
    text = f"{100 * float(mean):.2f}"
    return text + (f" ± {100 * float(std):.2f}" if _isnum(std) else "")


def _macs(v) -> str:
    return format_macs(float(v)) if _isnum(v) else "–"


def _int(v) -> str:
    return f"{int(v):,}" if _isnum(v) else "–"


def _num(v, digits: int = 3) -> str:
    return f"{float(v):.{digits}g}" if _isnum(v) else "–"


def config_table(config: dict) -> pd.DataFrame:
    rows = []
    for key, value in config.items():
        if key == "candidates":
            value = f"{len(value)} grid points" if isinstance(value, list) else value
        elif key == "data" and isinstance(value, dict):
            value = ", ".join(f"{k} {value[k]}" for k in ("source", "name", "images", "train_images", "val_images",
                                                          "fingerprint") if k in value)
        elif isinstance(value, (dict, list)):
            value = json.dumps(value, default=str)
        rows.append({"setting": str(key), "value": str(value)})
    return pd.DataFrame(rows, columns=["setting", "value"])


def trials_table(trials: pd.DataFrame) -> pd.DataFrame:
    """The grid, best first: coefficients, cost ratios, MACs, params, accuracy, state."""
    t = trials.copy()
    if "accuracy_mean" in t:
        t = t.sort_values("accuracy_mean", ascending=False, na_position="last")
    out = pd.DataFrame()
    for col, label in (("point", "point"), ("kind", "kind"), ("alpha", "alpha"), ("beta", "beta"), ("gamma", "gamma")):
        if col in t:
            out[label] = t[col].map(lambda v: _num(v, 4) if _isnum(v) else str(v))
    for col, label in (("nominal_ratio", "nominal x"), ("macs_ratio", "measured x")):
        if col in t:
            out[label] = t[col].map(lambda v: f"{float(v):.2f}" if _isnum(v) else "–")
    if "macs" in t:
        out["MACs (mult-adds)"] = t["macs"].map(_macs)
    if "params" in t:
        out["params"] = t["params"].map(_int)
    if "accuracy_mean" in t:
        out["accuracy %"] = [pct(m, s) for m, s in zip(t["accuracy_mean"], t.get("accuracy_std", [None] * len(t)))]
    if "accuracy_n" in t:
        out["seeds"] = t["accuracy_n"].map(_int)
    if "seconds" in t:
        out["seconds"] = t["seconds"].map(lambda v: f"{float(v):.0f}" if _isnum(v) else "–")
    for col in ("state", "reason"):
        if col in t:
            out[col] = t[col].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    return out.reset_index(drop=True)


def family_table(family: dict) -> pd.DataFrame:
    from scaler.family_files import family_frame

    f = family_frame(family)
    out = pd.DataFrame({
        "member": f["label"].astype(str),
        "depth": f["depth_mult"].map(lambda v: _num(v, 4)),
        "width": f["width_mult"].map(lambda v: _num(v, 4)),
        "px": f["input_px"].map(_int),
        "stage depths": f["stage_depths"],
        "stage widths": f["stage_widths"],
        "params": f["params"].map(_int),
        "MACs (mult-adds)": f["macs"].map(_macs),
        "x base": f["macs_ratio"].map(lambda v: f"{float(v):.2f}" if _isnum(v) else "–"),
        "activations": f["activations"].map(_macs),
    })
    if f["latency_ms"].notna().any():
        out["latency b1 (ms)"] = f["latency_ms"].map(lambda v: f"{float(v):.1f}" if _isnum(v) else "–")
        batch = f["latency_batch"].dropna()
        if len(batch):
            out[f"latency b{int(batch.iloc[0])} (ms)"] = f["latency_batch_ms"].map(lambda v: f"{float(v):.1f}" if _isnum(v) else "–")
    if f["accuracy_mean"].notna().any():
        out["accuracy %"] = [pct(m, s) for m, s in zip(f["accuracy_mean"], f["accuracy_std"])]
    return out


def compare_table(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "strategy": frame["strategy"].astype(str),
        "budget": frame["budget"].astype(str),
        "depth": frame["depth_mult"].map(lambda v: _num(v, 4)),
        "width": frame["width_mult"].map(lambda v: _num(v, 4)),
        "px": frame["input_px"].map(_int),
        "MACs (mult-adds)": frame["macs"].map(_macs),
        "measured x": frame["macs_ratio"].map(lambda v: f"{float(v):.2f}" if _isnum(v) else "–"),
        "params": frame["params"].map(_int),
        "activations": frame["activations"].map(_macs),
        "accuracy %": [pct(m, s) for m, s in zip(frame["accuracy_mean"], frame["accuracy_std"])],
        "seeds": frame["accuracy_n"].map(_int),
    })


def winner_text(c: dict) -> str:
    def coeffs(d: dict) -> str:
        return f"alpha {_num(d.get('alpha'), 4)}, beta {_num(d.get('beta'), 4)}, gamma {_num(d.get('gamma'), 4)}"

    text = f"Winner: {coeffs(c)}"
    if _isnum(c.get("nominal_ratio")) or _isnum(c.get("macs_ratio")):
        text += f" (nominal cost x{_num(c.get('nominal_ratio'))}, measured x{_num(c.get('macs_ratio'))})"
    text += f"; proxy accuracy {pct(c.get('accuracy_mean'), c.get('accuracy_std'))} %"
    if _isnum(c.get("seeds")):
        text += f" over {int(c['seeds'])} seed(s)"
    text += "."
    runner = c.get("runner_up")
    if isinstance(runner, dict):
        text += f" Runner-up: {coeffs(runner)}, {pct(runner.get('accuracy_mean'), runner.get('accuracy_std'))} %."
        if _isnum(c.get("margin")):
            text += f" Margin {100 * float(c['margin']):+.2f} points"
            interval = c.get("margin_interval")
            if isinstance(interval, list) and len(interval) == 2 and all(_isnum(v) for v in interval):
                text += f", 95% interval [{100 * interval[0]:+.2f}, {100 * interval[1]:+.2f}]"
            test = str(c.get("test") or "")
            test = f" ({test})" if " " in test else (f" ({test} test)" if test else "")
            text += f"{test}: " + ("significant." if c.get("significant") else
                                   "not significant; the two are not told apart at these seeds.")
    else:
        text += " No runner-up: only one grid point finished."
    return text


# --- series for the shared charts ------------------------------------------------------------


def _vals(column) -> list:
    return [float(v) if _isnum(v) else None for v in column]


def family_series(run: RunData, x: str, prefix: str) -> list[plots.Series]:
    if not run.family:
        return []
    members = run.family["members"]
    key = {"macs": "macs", "params": "params", "latency_ms": "latency_ms"}[x]
    return [plots.Series(
        label=f"{prefix}family",
        x=[m.get(key) for m in members], y=[m.get("accuracy_mean") for m in members],
        yerr=[m.get("accuracy_std") for m in members], labels=[str(m.get("label", "")) for m in members],
    )]


def trials_series(run: RunData, x: str, prefix: str) -> list[plots.Series]:
    t = run.trials
    if t is None or x not in t or "accuracy_mean" not in t:
        return []
    kinds = t["kind"] if "kind" in t else pd.Series(["compound"] * len(t))
    series = []
    for kind in dict.fromkeys(kinds):
        part = t[kinds == kind]
        series.append(plots.Series(
            label=f"{prefix}grid: {kind}", x=_vals(part[x]), y=_vals(part["accuracy_mean"]),
            yerr=_vals(part["accuracy_std"]) if "accuracy_std" in part else None, points_only=True,
        ))
    return series


def compare_series(run: RunData, x: str, prefix: str) -> list[plots.Series]:
    if run.compare is None or x not in run.compare:
        return []
    from scaler.compare import compare_series as series_of

    series = series_of(run.compare, prefix=prefix)
    if x != "macs":
        base = run.compare[run.compare["strategy"] == "baseline"]
        for s in series:
            name = s.label[len(prefix):]
            part = pd.concat([base, run.compare[run.compare["strategy"] == name]]).sort_values("macs")
            s.x = _vals(part[x])
    return series


# --- the report ------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "run"


def default_out(runs: Sequence[RunFolder]) -> Path:
    """One run: its own folder. Several: ``report-<a>-vs-<b>`` beside the first."""
    if len(runs) == 1:
        return runs[0].path
    names = [_slug(r.path.resolve().name) for r in runs]
    return runs[0].path.resolve().parent / ("report-" + "-vs-".join(names))[:120]


def write_report(runs: list[RunFolder], out: Path | None = None) -> Path:
    """Write report.html, report.md and plots/*.png for ``runs`` into ``out``; returns report.html's path."""
    if not runs:
        raise UsageError("give at least one run folder to report on")
    data = [load_run(r) for r in runs]
    out = Path(out) if out is not None else default_out(runs)
    out.mkdir(parents=True, exist_ok=True)
    plot_dir = out / "plots"
    blocks = build_blocks(data, plot_dir)
    title = "scaler report: " + ", ".join(d.name for d in data)
    html_path = out / "report.html"
    _write(html_path, render_html(blocks, title))
    _write(out / "report.md", render_markdown(blocks, out))
    return html_path


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def build_blocks(data: list[RunData], plot_dir: Path) -> list[Block]:
    several = len(data) > 1
    names = _unique([_slug(d.name) for d in data])
    blocks = [_h(1, "scaler report: " + ", ".join(d.name for d in data)),
              _p(f"scaler {__version__}. MACs are multiply-adds of convolutions and linear layers (the EfficientNet "
                 "paper's \"FLOPS\") of the full-size network at its input resolution; accuracy is the proxy task's "
                 "validation accuracy in %, mean ± sample standard deviation over seeds.")]
    if several:
        blocks += [_h(2, "Runs side by side"), _table(summary_table(data))]

    charts = []
    for x, what in (("macs", "MACs"), ("params", "parameters"), ("latency_ms", "latency")):
        series = []
        for d in data:
            prefix = f"{d.name}: " if several else ""
            series += family_series(d, x, prefix) + compare_series(d, x, prefix) + trials_series(d, x, prefix)
        path = plots.accuracy_vs_cost(series, x, plot_dir / f"accuracy_vs_{x}.png", f"Proxy accuracy vs {what}")
        if path:
            charts.append(_img(path, f"Proxy accuracy (%, mean ± std over seeds) against {plots.AXES[x]}: "
                                     "one line per family or strategy, grid points as markers."))
    cost = plots.family_cost([(f"{d.name}" if several else "family", d.family) for d in data if d.family],
                             plot_dir / "family_cost.png")
    if cost:
        charts.append(_img(cost, "Cost of each family member: MACs (multiply-adds) and parameters, log scale."))
    if charts:
        blocks += [_h(2, "Accuracy and cost" + (" (all runs)" if several else ""))] + charts

    for d, slug in zip(data, names):
        blocks += run_blocks(d, plot_dir, slug if several else "", several)
    return blocks


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return out


def summary_table(data: list[RunData]) -> pd.DataFrame:
    rows = {"baseline": [], "budget": [], "grid points": [], "winner (alpha, beta, gamma)": [],
            "winner accuracy %": [], "margin over runner-up": [], "family": [], "strategies compared": []}
    for d in data:
        c = d.coefficients or {}
        rows["baseline"].append(d.baseline)
        rows["budget"].append(str((d.config or {}).get("budget", c.get("budget", "–"))))
        rows["grid points"].append(str(len(d.trials)) if d.trials is not None else "–")
        rows["winner (alpha, beta, gamma)"].append(
            f"{_num(c.get('alpha'), 4)}, {_num(c.get('beta'), 4)}, {_num(c.get('gamma'), 4)}" if c else "–")
        rows["winner accuracy %"].append(pct(c.get("accuracy_mean"), c.get("accuracy_std")) if c else "–")
        margin = c.get("margin")
        rows["margin over runner-up"].append(
            f"{100 * float(margin):+.2f} points" + (" (significant)" if c.get("significant") else " (not significant)")
            if _isnum(margin) else "–")
        members = (d.family or {}).get("members") or []
        rows["family"].append(", ".join(f"{m.get('label')} {_macs(m.get('macs'))}" for m in members) or "–")
        rows["strategies compared"].append(
            ", ".join(s for s in dict.fromkeys(d.compare["strategy"]) if s != "baseline") if d.compare is not None else "–")
    frame = pd.DataFrame(rows, index=[d.name for d in data]).T.reset_index()
    return frame.rename(columns={"index": ""})


def run_blocks(d: RunData, plot_dir: Path, slug: str, several: bool) -> list[Block]:
    prefix = f"{slug}_" if slug else ""
    blocks = [_h(2, f"Run {d.name}" if several else f"Run {d.name}: {d.baseline}")]
    blocks.append(_p(f"Folder: {d.folder.path}. Baseline: {d.baseline}."))
    for note in d.notes:
        blocks.append(Block("note", note))
    if d.config:
        blocks += [_h(3, "Configuration"), _table(config_table(d.config))]
    if d.coefficients:
        blocks += [_h(3, "Winner"), _p(winner_text(d.coefficients))]
    elif d.trials is not None:
        blocks += [_h(3, "Winner"), _p("No winner yet: coefficients.json is not written (the search is running, "
                                       "or no grid point finished).")]
    if d.trials is not None:
        blocks += [_h(3, "Grid"), _table(trials_table(d.trials),
                                         "One row per grid point, best first; ratios are MACs relative to the baseline.")]
        grid = plots.grid(d.trials, plot_dir / f"{prefix}grid.png", f"{d.name}: the coefficient grid")
        if grid:
            blocks.append(_img(grid, "The grid: alpha (depth) against gamma (resolution), coloured by proxy accuracy (%), "
                                     "beta written beside each point."))
    if d.study is not None:
        drawn = plots.optuna_plots(d.study, plot_dir, prefix)
        images = [(k, v) for k, v in drawn.items() if isinstance(v, Path)]
        if images:
            blocks.append(_h(3, "Optuna"))
        for name, value in drawn.items():
            if isinstance(value, Path):
                what = "optimisation history (objective: proxy accuracy of one trial, 0..1)" if name == "history" \
                    else "hyperparameter importances (fANOVA) for the objective"
                blocks.append(_img(value, f"Optuna's {what}."))
            else:
                blocks.append(Block("note", f"Optuna {name} plot left out: {value}"))
    if d.family:
        f = d.family
        how = f"the {f['table']} table" if f.get("table") else (
            "coefficients " + ", ".join(f"{k} {_num(v, 4)}" for k, v in (f.get("coefficients") or {}).items()))
        text = f"Family of {f.get('baseline', d.baseline)} from {how}"
        if f.get("device"):
            text += f"; latency measured on {f['device']}"
        solved = f.get("solved")
        if isinstance(solved, dict) and _isnum(solved.get("phi")):
            text += f"; phi {solved['phi']:g} is the largest that fits"
            if _isnum(solved.get("target_macs")):
                text += f" {_macs(solved['target_macs'])} MACs"
            if _isnum(solved.get("target_latency_ms")):
                text += f" {solved['target_latency_ms']:g} ms"
        blocks += [_h(3, "Family"), _p(text + "."), _table(family_table(f))]
    if d.compare is not None:
        s = d.compare_settings or {}
        text = "Scaling strategies at matched measured MACs, trained under one proxy recipe and seeds"
        if s.get("coefficients"):
            c = s["coefficients"]
            text += f"; compound uses alpha {c.get('alpha')}, beta {c.get('beta')}, gamma {c.get('gamma')}"
        if s.get("dollar_alpha") is not None:
            text += f"; dollar uses alpha {s['dollar_alpha']} (mostly width)"
        blocks += [_h(3, "Strategies compared"), _p(text + "."), _table(compare_table(d.compare))]
    return blocks
