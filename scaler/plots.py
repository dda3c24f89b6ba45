"""PNG plots for reports: accuracy against cost, the coefficient grid, Optuna's own plots.

Every function takes plain data (pandas frames, lists) and a path, writes one PNG with the Agg
backend and returns the path (or None when there is nothing to draw). Axes carry units; MACs are
labelled as multiply-adds; text is sized to read at normal zoom.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, LogLocator

STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "figure.dpi": 110,
    "savefig.bbox": "tight",
    "text.parse_math": False,  # a "$" in a class or run name is text, not mathtext
}
FIGSIZE = (7.0, 4.6)

# What each cost axis means, in words with units.
AXES = {
    "macs": "MACs (multiply-adds per image, log scale)",
    "params": "parameters (log scale)",
    "latency_ms": "latency, batch 1 (ms per image, log scale)",
    "activations": "activations (conv/linear output elements, log scale)",
}


@dataclass
class Series:
    """One line: a family or a strategy. ``y`` and ``yerr`` are accuracies in 0..1 (None: unknown)."""

    label: str
    x: Sequence[float]
    y: Sequence[float | None]
    yerr: Sequence[float | None] | None = None
    labels: Sequence[str] | None = None  # per point, e.g. "phi=2"
    points_only: bool = False  # markers without a line (grid points, not a family)


def _si(value: float, _pos=None) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


def _log_ticks(axis, lo: float, hi: float) -> None:
    """Readable labels on a log axis: 1-2-5 steps over a wide range; the minor ticks too over a narrow one."""
    axis.set_major_formatter(FuncFormatter(_si))
    if hi / lo >= 5:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_minor_formatter(FuncFormatter(lambda v, p: ""))
    else:  # under a few-fold a log axis may have no major tick inside
        # 1.5 and 2.5 too: otherwise a point at 16G or 25M sits a long way from any label.
        axis.set_minor_locator(LogLocator(base=10, subs=(1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0)))
        axis.set_minor_formatter(FuncFormatter(_si))


def _clean(series: Series) -> tuple[list, list, list, list]:
    """The points of a series with a known x and y, sorted by x."""
    errs = series.yerr if series.yerr is not None else [None] * len(series.x)
    labels = series.labels if series.labels is not None else [""] * len(series.x)
    rows = [
        (float(x), float(y), 0.0 if e is None or not math.isfinite(float(e)) else float(e), lab)
        for x, y, e, lab in zip(series.x, series.y, errs, labels)
        if x is not None and y is not None and math.isfinite(float(x)) and math.isfinite(float(y)) and float(x) > 0
    ]
    rows.sort()
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows]


def accuracy_vs_cost(series: Sequence[Series], x: str, path: str | Path, title: str) -> Path | None:
    """Accuracy (%) with error bars (± std over seeds) against a cost on a log axis; one line per series."""
    drawn = [(s, *_clean(s)) for s in series]
    drawn = [d for d in drawn if d[1]]
    if not drawn:
        return None
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=FIGSIZE)
        for s, xs, ys, es, labels in drawn:
            ax.errorbar(xs, [100 * y for y in ys], yerr=[100 * e for e in es], marker="s" if s.points_only else "o",
                        linestyle="none" if s.points_only else "-", capsize=3, label=s.label,
                        alpha=0.7 if s.points_only else 1.0)
            for xv, yv, lab in zip(xs, ys, labels):
                if lab:
                    ax.annotate(lab, (xv, 100 * yv), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xscale("log")
        _log_ticks(ax.xaxis, min(min(d[1]) for d in drawn), max(max(d[1]) for d in drawn))
        ax.set_xlabel(AXES.get(x, x))
        ax.set_ylabel("proxy accuracy (%, mean ± std over seeds)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        # Below the axes: inside, loc="best" weighs the markers but not the error bars, and covered them.
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=min(3, len(drawn)), frameon=False)
        return _save(fig, path)


def family_cost(families: Sequence[tuple[str, dict]], path: str | Path) -> Path | None:
    """MACs against parameters of each family member (both log scale), one line per family, members labelled."""
    rows = []
    for label, family in families:
        members = [m for m in family.get("members", []) if m.get("macs") and m.get("params")]
        if members:
            rows.append((label, members))
    if not rows:
        return None
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=FIGSIZE)
        for i, (label, members) in enumerate(rows):
            xs, ys = [m["params"] for m in members], [m["macs"] for m in members]
            line, = ax.plot(xs, ys, marker="o", label=label)
            for m in members:  # each family's labels on their own row, so equal members stay legible
                ax.annotate(str(m.get("label", "")), (m["params"], m["macs"]), textcoords="offset points",
                            xytext=(5, -11 - 10 * i), fontsize=8, color=line.get_color())
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis, values in ((ax.xaxis, [m["params"] for _, ms in rows for m in ms]),
                             (ax.yaxis, [m["macs"] for _, ms in rows for m in ms])):
            _log_ticks(axis, min(values), max(values))
        ax.set_xlabel(AXES["params"])
        ax.set_ylabel("MACs (multiply-adds per image, log)")
        ax.set_title("Family members: compute against size")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="best")
        return _save(fig, path)


def grid(trials, path: str | Path, title: str) -> Path | None:
    """The coefficient grid: alpha (depth) against gamma (resolution), coloured by accuracy, beta written by each point.

    ``trials`` is a frame with alpha, beta, gamma, accuracy_mean (0..1) and optionally kind/state.
    Points without an accuracy (failed, pruned, running) are drawn hollow and grey.
    """
    if trials is None or len(trials) == 0 or not {"alpha", "beta", "gamma"} <= set(trials.columns):
        return None
    frame = trials.dropna(subset=["alpha", "gamma"])
    if len(frame) == 0:
        return None
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=FIGSIZE)
        acc = frame["accuracy_mean"] if "accuracy_mean" in frame else None
        known = frame[acc.notna()] if acc is not None else frame.iloc[0:0]
        unknown = frame[acc.isna()] if acc is not None else frame
        if len(known):
            points = ax.scatter(known["alpha"], known["gamma"], c=100 * known["accuracy_mean"], cmap="viridis",
                                s=90, edgecolors="black", linewidths=0.5)
            fig.colorbar(points, ax=ax, label="proxy accuracy (%)")
        if len(unknown):
            ax.scatter(unknown["alpha"], unknown["gamma"], s=90, facecolors="none", edgecolors="grey",
                       label="no accuracy (failed, pruned or running)")
            ax.legend(loc="best")
        offsets: dict[tuple, int] = {}
        for _, row in frame.iterrows():
            key = (round(float(row["alpha"]), 6), round(float(row["gamma"]), 6))
            n = offsets[key] = offsets.get(key, -1) + 1  # several betas on one (alpha, gamma): stack labels
            ax.annotate(f"β {float(row['beta']):g}", (row["alpha"], row["gamma"]), textcoords="offset points",
                        xytext=(6, 4 + 11 * n), fontsize=8)
        ax.set_xlabel("alpha (depth multiplier per unit of phi)")
        ax.set_ylabel("gamma (resolution multiplier per unit of phi)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        return _save(fig, path)


def optuna_plots(study, folder: str | Path, prefix: str = "") -> dict[str, Path | str]:
    """Optuna's optimisation history and parameter importances, through optuna.visualization.matplotlib.

    Returns name -> path, or name -> the one-line reason it could not be drawn (too few
    finished trials, one value per parameter, ...).
    """
    import optuna
    from optuna.visualization import matplotlib as ovm

    folder = Path(folder)
    out: dict[str, Path | str] = {}
    plots = {
        "history": (ovm.plot_optimization_history, "Optuna: optimisation history"),
        "importance": (ovm.plot_param_importances, "Optuna: parameter importances (fANOVA) for proxy accuracy"),
    }
    from scaler.results import coefficient_view

    coefficients = coefficient_view(study)  # importances over alpha, beta, gamma, not grid indices
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    varied = [k for k in {k for t in coefficients.trials for k in t.params}
              if len({t.params.get(k) for t in coefficients.trials}) > 1]
    for name, (fn, title) in plots.items():
        if not complete:
            out[name] = "no finished trial in the study yet"
            continue
        if name == "importance" and (len(complete) < 2 or not varied):
            out[name] = "needs two or more finished trials that differ in a parameter"
            continue
        try:
            with warnings.catch_warnings(), plt.rc_context(STYLE):
                warnings.simplefilter("ignore")  # ExperimentalWarning for the matplotlib backend
                ax = fn(coefficients if name == "importance" else study)
                ax = ax[0] if hasattr(ax, "__len__") else ax
                fig = ax.figure
                fig.set_size_inches(*FIGSIZE)
                for loc in ("left", "right"):
                    ax.set_title("", loc=loc)
                ax.set_title(title)
                if name == "history":
                    ax.set_ylabel("objective: proxy accuracy (0..1)")
                    ax.set_xlabel("trial number")
                else:
                    ax.set_xlabel("importance (share of the objective's variance, sums to 1)")
                    ax.set_ylabel("Optuna parameter")
                out[name] = _save(fig, folder / f"{prefix}optuna_{name}.png")
        except (ValueError, RuntimeError, ZeroDivisionError, optuna.exceptions.OptunaError) as exc:
            plt.close("all")
            out[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip(": ")
    return out


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
