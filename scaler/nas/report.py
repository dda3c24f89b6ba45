"""The report of ``scaler nas``: the answer first, then reward and accuracy against MACs (with the
Pareto front for ``--objective pareto``), the winner's stages beside the start's, and the confirm
stage's evidence. One document model (:mod:`scaler.render`), rendered as HTML and Markdown."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator

from scaler.files import write_text
from scaler.nas.space import stage_code
from scaler.plots import FIGSIZE, STYLE
from scaler.render import heading, image, para, render_html, render_markdown, table
from scaler.run_folder import RunFolder
from scaler.scaling import format_macs


def write_nas_report(run: RunFolder) -> Path:
    """report.html and report.md (plots under plots/) in the run folder; returns the HTML's path."""
    summary = run.read_json(run.path / "nas.json")
    trials = run.read_trials()
    best = run.read_json(run.path / "best.json") if (run.path / "best.json").is_file() else None
    run.record(run.plots)
    run.plots.mkdir(exist_ok=True)
    plot = run.record(run.plots / "nas_reward.png")
    drawn = _reward_plot(trials, summary, plot)
    blocks = [heading(1, f"scaler nas: {summary['start']} at {format_macs(summary['target'])} MACs"),
              *answer(summary)]
    if drawn:
        blocks.append(image(plot, "screen: reward and accuracy against MACs (x: rejected by cost before training, "
                                  "star: the winner; line: the Pareto front)"))
    if best:
        blocks += [heading(2, "The winner's stages beside the start's"),
                   table(stage_table(best, summary["fitted_start"]),
                         f"start: {summary['start']} width-matched x{summary['start_width']:.3f} to the target")]
    if summary.get("confirm"):
        frame = pd.DataFrame(summary["confirm"])
        frame = frame.round(4)
        frame["macs"] = frame["macs"].map(format_macs)
        blocks += [heading(2, "Confirm stage"), table(frame, "the best architectures of the screen, retrained at the "
                                                             "confirm recipe; P(best) by bootstrap over seeds, on the reward")]
    counts = summary["counts"]
    blocks += [heading(2, "Screen"),
               para(f"{counts['sampled']} architectures sampled; {counts['trained']} trained ({counts['failed']} failed); "
                    f"{counts['rejected']} outside ±{summary['band']:.0%} of the target, costed and not trained."),
               table(trials.drop(columns=["reason"]).head(200).round(4), "trials.csv (first 200 rows)")]
    html_path = run.write_text(run.path / "report.html", render_html(blocks, "scaler nas"))
    write_text(run.record(run.path / "report.md"), render_markdown(blocks, run.path))
    return html_path


def answer(s: dict) -> list:
    w, ref = s.get("winner"), s.get("reference")
    if not w:
        return [para("No architecture finished training.")]
    std = "" if w.get("accuracy_std") is None else f" ± {100 * w['accuracy_std']:.1f}"
    out = [para(f"Winner: architecture {w['number']} ({format_macs(w['macs'])} MACs, {w['params']:,} params), "
                f"proxy accuracy {100 * w['accuracy_mean']:.1f}%{std} over {w['seeds']} seed(s) at the {w['stage']} "
                f"stage; objective {s['objective']}" + (f" ({s['reward_form']}, w = {s['reward_w']:g}, "
                                                        f"T = {format_macs(s['reward_target'])})" if s['objective'] == 'reward' else "")
                + ". best.json holds its stage list: use it as --baseline.")]
    if ref and ref.get("accuracy_mean") is not None:
        interval = ref.get("interval")
        if interval and ref.get("significant"):
            verdict = "better than" if ref["margin"] > 0 else "worse than"
        else:
            verdict = "not told apart from"
        span = f"95% interval [{100 * interval[0]:+.1f}, {100 * interval[1]:+.1f}] points" if interval else "no interval"
        out.append(para(f"Against the start width-matched to the same MACs ({ref['name']}, {format_macs(ref['macs'])}): "
                        f"{100 * ref['accuracy_mean']:.1f}% over {ref['seeds']} seed(s); the searched architecture is "
                        f"{verdict} it: {100 * ref['margin']:+.1f} points, {span} ({ref['test']}), same recipe and seeds."))
    elif ref:
        out.append(para(f"The width-matched start was not compared: {ref.get('reason', '')}."))
    return out


def stage_table(best: dict, start: dict) -> pd.DataFrame:
    rows = [{"stage": "stem", "start": f"conv3x3 c{start['stem_channels']}", "winner": f"conv3x3 c{best['stem_channels']}"}]
    for i, (a, b) in enumerate(zip(start["stages"], best["stages"])):
        rows.append({"stage": str(i + 1), "start": stage_code(a), "winner": stage_code(b)})
    rows.append({"stage": "head", "start": f"conv1x1 c{start['head_channels']}", "winner": f"conv1x1 c{best['head_channels']}"})
    return pd.DataFrame(rows)


def _reward_plot(trials: pd.DataFrame, s: dict, path: Path) -> bool:
    screen = trials[trials.stage == "screen"]
    done = screen[screen.state == "COMPLETE"]
    rejected = screen[screen.state == "rejected"]
    if done.empty:
        return False
    # The front is drawn on its own cost axis: latency for --pareto-cost latency (rejected architectures have none).
    x = "latency_ms" if s["objective"] == "pareto" and s["pareto_cost"] == "latency" else "macs"
    if x == "latency_ms":
        rejected = rejected.iloc[0:0]
    with plt.rc_context(STYLE):
        fig, (left, right) = plt.subplots(1, 2, figsize=(FIGSIZE[0] * 1.6, FIGSIZE[1]))
        for ax, column, label in ((left, "reward", "reward ACC x (MACs/T)^w"), (right, "accuracy_mean", "proxy accuracy (%)")):
            scale = 100 if column == "accuracy_mean" else 1
            ax.scatter(done[x], scale * done[column], s=18, label="trained", alpha=0.8)
            if not rejected.empty:
                low = scale * done[column].min()
                ax.scatter(rejected[x], [low] * len(rejected), marker="x", color="grey", s=14, alpha=0.6,
                           label="rejected by cost (drawn at the lowest value)")
            front = done[done.on_front.astype(bool)].sort_values(x)
            if len(front):
                ax.plot(front[x], scale * front[column], "-", color="C1", label="Pareto front")
            win = done[done.number == (s.get("winner") or {}).get("number", -1)]
            if len(win):
                ax.scatter(win[x], scale * win[column], marker="*", s=160, color="C3", label="winner", zorder=3)
            ax.set_xscale("log")
            if x == "macs":
                for edge in (1 - s["band"], 1 + s["band"]):
                    ax.axvline(s["target"] * edge, color="grey", linestyle=":", linewidth=1)
                ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: format_macs(v)))
                ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
                ax.set_xlabel("MACs (multiply-adds per image, log scale; dotted: the band)")
            else:  # a narrow range: label the minor ticks too (matplotlib's own labels are mathtext)
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
                ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
                ax.set_xlabel("latency, batch 1, CPU (ms per image, log scale)")
            ax.set_ylabel(label)
            ax.grid(True, which="both", alpha=0.3)
        left.legend(loc="best", fontsize=8)
        fig.suptitle(f"screen: {len(done)} trained, {len(rejected)} rejected before training")
        fig.savefig(path)
        plt.close(fig)
    return math.isfinite(float(done[x].max()))
