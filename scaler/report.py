"""Reports: one or several run folders as a self-contained report.html and a report.md.

A report works on whatever files a run has (a search still running has trials but no winner; a
``scaler family`` folder has only a family): configuration, the grid table, the winner and its
margin over the runner-up, the family table, the strategy comparison, and plots as PNG under
``plots/``: accuracy against MACs (multiply-adds, log axis, error bars, one line per family or
strategy), against params and latency, the coefficient grid, and Optuna's optimisation history and
parameter importances. Several runs share the accuracy charts and get a side-by-side summary.

What a folder holds is read by :mod:`scaler.run_contents`; tables are formatted by
:mod:`scaler.tables`; the document is a list of :mod:`scaler.render` blocks rendered as HTML (images
inline, nothing loaded from the network) and as Markdown.

Example::

    from scaler.report import write_report
    html = write_report([RunFolder(Path("runs/resnet18-2x"))])
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from scaler import __version__, plots
from scaler.errors import UsageError
from scaler.render import Block, heading, image, para, render_html, render_markdown, table
from scaler.run_contents import RunData, load_run
from scaler.run_folder import RunFolder
from scaler.tables import compare_table, config_table, curves_table, family_table, grid_table, isnum, macs, num, pct
from scaler.verdict import winner_lines


def winner_text(c: dict) -> str:
    def coeffs(d: dict) -> str:
        return f"alpha {num(d.get('alpha'), 4)}, beta {num(d.get('beta'), 4)}, gamma {num(d.get('gamma'), 4)}"

    stage = f" (from the {c['stage']} stage)" if c.get("stage") else ""
    text = f"Chosen{stage}: {coeffs(c)}"
    if isnum(c.get("nominal_ratio")) or isnum(c.get("macs_ratio")):
        text += f" (nominal cost x{num(c.get('nominal_ratio'))}, measured x{num(c.get('macs_ratio'))})"
    text += f"; proxy accuracy {pct(c.get('accuracy_mean'), c.get('accuracy_std'))} %"
    if isnum(c.get("seeds")):
        text += f" over {int(c['seeds'])} seed(s)"
    text += "."
    runner = c.get("runner_up")
    if isinstance(runner, dict):
        text += f" Runner-up: {coeffs(runner)}, {pct(runner.get('accuracy_mean'), runner.get('accuracy_std'))} %."
        if c.get("verdict"):
            text += "".join("\n" + line[0].upper() + line[1:] for line in winner_lines(c))
        elif isnum(c.get("margin")):  # a run folder written before the verdict
            text += f" Margin {100 * float(c['margin']):+.2f} points"
            interval = c.get("margin_interval")
            if isinstance(interval, list) and len(interval) == 2 and all(isnum(v) for v in interval):
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
    return [float(v) if isnum(v) else None for v in column]


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


def curves_series(run: RunData, x: str, prefix: str) -> list[plots.Series]:
    """One line per strategy from the baseline (phi 0) to 4x (phi 2): the paper's Figure 8 for this network."""
    c = run.curves
    if c is None or x not in c or not len(c):
        return []
    base = c[c.strategy == "baseline"]
    series = []
    for name in [s for s in dict.fromkeys(c.strategy) if s != "baseline"]:
        part = pd.concat([base, c[c.strategy == name]]).sort_values("phi")
        kind = part.kind.iloc[-1]
        coeffs = f"({num(part.alpha.iloc[1], 3)}, {num(part.beta.iloc[1], 3)}, {num(part.gamma.iloc[1], 3)})"
        label = {"chosen": f"chosen: {kind} {coeffs}", "compound": f"best compound {coeffs}"}.get(name, f"{name} only")
        label = prefix + label
        series.append(plots.Series(label=label, x=_vals(part[x]), y=_vals(part.accuracy_mean),
                                   yerr=_vals(part.accuracy_std), labels=[_phi_label(row) for row in part.itertuples()]))
    return series


def _phi_label(row) -> str:
    """"phi=2", and the proxy's own cost where the proxy missed its cost (the search's ``cost_missed``):
    the point is drawn at the full size's MACs but its accuracy is that proxy's."""
    missed = str(getattr(row, "cost_missed", ""))  # absent before 2026-11-26: not marked
    if "proxy" not in missed and missed != "True":  # True: an early form that did not say which; mark it
        return f"phi={int(row.phi)}"
    cost = f"x{row.proxy_macs_ratio:.3g}" if isnum(row.proxy_macs_ratio) else "cost unknown"
    return f"phi={int(row.phi)} (proxy {cost})"


def trials_series(run: RunData, x: str, prefix: str) -> list[plots.Series]:
    t = run.trials
    if t is None or x not in t or "accuracy_mean" not in t or run.curves is not None:
        return []  # with curves, the grid's cloud of points adds nothing to read
    if "stage" in t:
        t = t[t.stage == "screen"]
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
    folder = RunFolder(Path(out) if out is not None else default_out(runs)).create()
    plot_dir = folder.record(folder.plots)  # checked before any plot is drawn into it
    blocks = build_blocks(data, plot_dir)
    title = "scaler report: " + ", ".join(d.name for d in data)
    html_path = folder.write_text(folder.path / "report.html", render_html(blocks, title))
    folder.write_text(folder.path / "report.md", render_markdown(blocks, folder.path))
    return html_path


def build_blocks(data: list[RunData], plot_dir: Path) -> list[Block]:
    several = len(data) > 1
    names = _unique([_slug(d.name) for d in data])
    blocks = [heading(1, "scaler report: " + ", ".join(d.name for d in data)),
              para(f"scaler {__version__}. MACs are multiply-adds of convolutions and linear layers (the EfficientNet "
                 "paper's \"FLOPS\") of the full-size network at its input resolution; accuracy is the proxy task's "
                 "validation accuracy in %, mean ± sample standard deviation over seeds.")]
    if several:
        blocks += [heading(2, "Runs side by side"), table(summary_table(data))]

    charts = []
    for x, what in (("macs", "MACs"), ("params", "parameters"), ("latency_ms", "latency")):
        if x == "macs" and not several and data[0].curves is not None:
            continue  # the run's own curves chart, just above, is this chart
        series = []
        for d in data:
            prefix = f"{d.name}: " if several else ""
            series += (curves_series(d, x, prefix) + (family_series(d, x, prefix) if d.curves is None else [])
                       + compare_series(d, x, prefix) + trials_series(d, x, prefix))
        path = plots.accuracy_vs_cost(series, x, plot_dir / f"accuracy_vs_{x}.png", f"Proxy accuracy vs {what}")
        if path:
            charts.append(image(path, f"Proxy accuracy (%, mean ± std over seeds) against {plots.AXES[x]}: "
                                     "one line per strategy from the baseline (phi 0) to 4x (phi 2), or per family; "
                                     "grid points as markers when a run has no curves."))
    cost = plots.family_cost([(f"{d.name}" if several else "family", d.family) for d in data if d.family],
                             plot_dir / "family_cost.png")
    if cost:
        charts.append(image(cost, "Cost of each family member: MACs (multiply-adds) and parameters, log scale."))
    sections = [run_blocks(d, plot_dir, slug if several else "", several) for d, slug in zip(data, names)]
    if not several:  # one run: its answer and curves first, then the charts, then the details
        blocks += sections[0][0]
    if charts:
        blocks += [heading(2 if several else 3, "Accuracy and cost" + (" (all runs)" if several else ""))] + charts
    for head, rest in sections:
        blocks += (head if several else []) + rest
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
            f"{num(c.get('alpha'), 4)}, {num(c.get('beta'), 4)}, {num(c.get('gamma'), 4)}" if c else "–")
        rows["winner accuracy %"].append(pct(c.get("accuracy_mean"), c.get("accuracy_std")) if c else "–")
        margin = c.get("margin")
        rows["margin over runner-up"].append(
            f"{100 * float(margin):+.2f} points" + (" (significant)" if c.get("significant") else " (not significant)")
            if isnum(margin) else "–")
        members = (d.family or {}).get("members") or []
        rows["family"].append(", ".join(f"{m.get('label')} {macs(m.get('macs'))}" for m in members) or "–")
        rows["strategies compared"].append(
            ", ".join(s for s in dict.fromkeys(d.compare["strategy"]) if s != "baseline") if d.compare is not None else "–")
    frame = pd.DataFrame(rows, index=[d.name for d in data]).T.reset_index()
    return frame.rename(columns={"index": ""})


def proxy_warnings(coefficients: dict | None) -> list[str]:
    """The search's warnings about what its proxy could not see (coefficients.json's ``warnings``), one line each."""
    out = []
    for w in (coefficients or {}).get("warnings") or []:
        if isinstance(w, dict) and w.get("message"):
            out.append(str(w["message"]) + (f"; to change: {w['fix']}" if w.get("fix") else ""))
    return out


def run_blocks(d: RunData, plot_dir: Path, slug: str, several: bool) -> tuple[list[Block], list[Block]]:
    """A run's section: (the answer — warnings, chosen coefficients, verdict, curves —, the details)."""
    prefix = f"{slug}_" if slug else ""
    return answer_blocks(d, plot_dir, prefix, several), detail_blocks(d, plot_dir, prefix)


def answer_blocks(d: RunData, plot_dir: Path, prefix: str, several: bool) -> list[Block]:
    """What a reader needs first: warnings, the chosen coefficients and how sure, the curves."""
    blocks = [heading(2, f"Run {d.name}" if several else f"Run {d.name}: {d.baseline}")]
    blocks.append(para(f"Folder: {d.folder.path}. Baseline: {d.baseline}."))
    for note in d.notes:
        blocks.append(Block("note", note))
    for w in proxy_warnings(d.coefficients):
        blocks.append(Block("note", f"Warning: {w}"))
    if d.coefficients:  # the choice, then one paragraph per line of evidence (verdict, compound vs single, stages)
        first, *evidence = winner_text(d.coefficients).split("\n")
        blocks += [heading(3, "Answer"), para(first), *(para(line) for line in evidence)]
    elif d.trials is not None:
        blocks += [heading(3, "Answer"), para("No answer yet: coefficients.json is not written (the search is running, "
                                       "or no grid point finished).")]
    if d.curves is not None and len(d.curves):
        curve = plots.accuracy_vs_cost(curves_series(d, "macs", ""), "macs", plot_dir / f"{prefix}curves.png",
                                       f"{d.name}: accuracy against MACs, phi = 0, 1, 2")
        if curve:
            blocks += [heading(3, "Curves"), image(curve, "Proxy accuracy (%, mean ± std over seeds) against MACs "
                                                           "(multiply-adds, log scale) at phi = 0, 1, 2: the chosen "
                                                           "coefficients beside their rival (the best single "
                                                           "dimension, or the best compound point).")]
        blocks.append(table(curves_table(d.curves), "One row per network of a curve; 'runs from' says which "
                                                     "stage trained it (a stage's runs are reused, never repeated)."))
    return blocks


def detail_blocks(d: RunData, plot_dir: Path, prefix: str) -> list[Block]:
    """What follows the answer: configuration, the stages' tables, the grid, Optuna, the family, strategies."""
    blocks: list[Block] = []
    if d.config:
        blocks += [heading(3, "Configuration"), table(config_table(d.config))]
    for stage, caption in (("screen", "every grid point at the short recipe"),
                           ("confirm", "the promoted points at the longer recipe: the answer comes from here")):
        rows = d.trials[d.trials.stage == stage] if d.trials is not None and "stage" in d.trials else (
            d.trials if stage == "screen" else None)
        if rows is not None and len(rows):
            blocks += [heading(3, f"{stage.capitalize()} stage"),
                       table(grid_table(rows), f"One row per grid point, {caption}; best first; ratios are MACs "
                                               "relative to the baseline (full size; 'proxy x' in the proxy's own MACs; "
                                               "'proxy at', where shown: the coefficients a proxy matched apart was built at).")]
    if d.trials is not None:
        screen = d.trials[d.trials.stage == "screen"] if "stage" in d.trials else d.trials
        grid = plots.grid(screen, plot_dir / f"{prefix}grid.png", f"{d.name}: the screen's coefficient grid")
        if grid:
            blocks.append(image(grid, "The grid: alpha (depth) against gamma (resolution), coloured by proxy accuracy (%), "
                                     "beta written beside each point."))
    if d.study is not None:
        drawn = plots.optuna_plots(d.study, plot_dir, prefix)
        images = [(k, v) for k, v in drawn.items() if isinstance(v, Path)]
        if images:
            blocks.append(heading(3, "Optuna"))
        for name, value in drawn.items():
            if isinstance(value, Path):
                what = "optimisation history (objective: proxy accuracy of one trial, 0..1)" if name == "history" \
                    else "hyperparameter importances (fANOVA) for the objective"
                blocks.append(image(value, f"Optuna's {what}."))
            else:
                blocks.append(Block("note", f"Optuna {name} plot left out: {value}"))
    return blocks + family_blocks(d) + compare_blocks(d)


def family_blocks(d: RunData) -> list[Block]:
    blocks: list[Block] = []
    if d.family:
        f = d.family
        how = f"the {f['table']} table" if f.get("table") else (
            "coefficients " + ", ".join(f"{k} {num(v, 4)}" for k, v in (f.get("coefficients") or {}).items()))
        text = f"Family of {f.get('baseline', d.baseline)} from {how}"
        if f.get("device"):
            text += f"; latency measured on {f['device']}" + (f" with {f['threads']} thread(s)" if f.get("threads") else "")
        solved = f.get("solved")
        if isinstance(solved, dict) and isnum(solved.get("phi")):
            text += f"; phi {solved['phi']:g} is the largest that fits"
            if isnum(solved.get("target_macs")):
                text += f" {macs(solved['target_macs'])} MACs"
            if isnum(solved.get("target_latency_ms")):
                text += f" {solved['target_latency_ms']:g} ms"
        blocks += [heading(3, "Family"), para(text + "."), table(family_table(f))]
    return blocks


def compare_blocks(d: RunData) -> list[Block]:
    blocks: list[Block] = []
    if d.compare is not None:
        s = d.compare_settings or {}
        text = "Scaling strategies at matched measured MACs, trained under one proxy recipe and seeds"
        if s.get("coefficients"):
            c = s["coefficients"]
            text += f"; compound uses alpha {c.get('alpha')}, beta {c.get('beta')}, gamma {c.get('gamma')}"
        if s.get("dollar_alpha") is not None:
            text += f"; dollar uses alpha {s['dollar_alpha']} (mostly width)"
        blocks += [heading(3, "Strategies compared"), para(text + "."), table(compare_table(d.compare))]
    return blocks
