"""Display tables: one model per table, which the CLI prints as text and the report renders as HTML and Markdown.

Each function takes what a run holds (a trials frame, a family dict, a compare frame, a config) and
returns a frame of display strings: MACs in M/G with 3 significant figures, parameters with
separators, accuracy in % as mean ± std, '–' where a value is unknown.
"""

from __future__ import annotations

import json
import math

import pandas as pd

from scaler.family_files import family_frame
from scaler.scaling import format_macs


def isnum(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v)) and not isinstance(v, str)


def pct(mean, std=None) -> str:
    """Accuracy 0..1 as '97.00 ± 0.64' (%), '–' when unknown."""
    if not isnum(mean):
        return "–"
    text = f"{100 * float(mean):.2f}"
    return text + (f" ± {100 * float(std):.2f}" if isnum(std) else "")


def macs(v) -> str:
    return format_macs(float(v)) if isnum(v) else "–"


def integer(v) -> str:
    return f"{int(v):,}" if isnum(v) else "–"


def num(v, digits: int = 3) -> str:
    return f"{float(v):.{digits}g}" if isnum(v) else "–"


def ratio(v) -> str:
    """A cost ratio: '2.07'."""
    return f"{float(v):.2f}" if isnum(v) else "–"


def mult(v) -> str:
    """A multiplier or coefficient, to 4 significant digits."""
    return num(v, 4)


def accuracy(frame: pd.DataFrame) -> list[str]:
    """'mean ± std' (%) per row of a frame with accuracy_mean and, where it has one, accuracy_std."""
    stds = frame["accuracy_std"] if "accuracy_std" in frame else [None] * len(frame)
    return [pct(m, s) for m, s in zip(frame["accuracy_mean"], stds)]


def config_table(config: dict) -> pd.DataFrame:
    rows = []
    for key, value in config.items():
        if key == "candidates":
            value = f"{len(value)} grid points" if isinstance(value, list) else value
        elif key == "dropped" and isinstance(value, list):  # points cost matching could not match, and why
            value = "; ".join(f"{d.get('kind')}: {d.get('reason')}" for d in value) or "none"
        elif key == "data" and isinstance(value, dict):
            value = ", ".join(f"{k} {value[k]}" for k in ("source", "name", "images", "train_images", "val_images",
                                                          "fingerprint") if k in value)
        elif isinstance(value, (dict, list)):
            value = json.dumps(value, default=str)
        rows.append({"setting": str(key), "value": str(value)})
    return pd.DataFrame(rows, columns=["setting", "value"])


def grid_table(trials: pd.DataFrame) -> pd.DataFrame:
    """The grid, best first: coefficients, cost ratios, MACs, params, accuracy, state."""
    t = trials.copy()
    if "accuracy_mean" in t:
        t = t.sort_values("accuracy_mean", ascending=False, na_position="last")
    out = pd.DataFrame()
    for col, label in (("point", "point"), ("kind", "kind"), ("alpha", "alpha"), ("beta", "beta"), ("gamma", "gamma")):
        if col in t:
            out[label] = t[col].map(lambda v: num(v, 4) if isnum(v) else str(v))
    at = proxy_at(t)
    if at is not None:
        out["proxy at"] = at
    for col, label in (("nominal_ratio", "nominal x"), ("macs_ratio", "measured x"), ("proxy_macs_ratio", "proxy x")):
        if col in t:
            out[label] = t[col].map(ratio)
    if "macs" in t:
        out["MACs (mult-adds)"] = t["macs"].map(macs)
    if "params" in t:
        out["params"] = t["params"].map(integer)
    if "accuracy_mean" in t:
        out["accuracy %"] = accuracy(t)
    if "accuracy_n" in t:
        out["seeds"] = t["accuracy_n"].map(integer)
    if "p_best" in t:  # trials.csv written before the verdict has no such column
        out["P(best)"] = t["p_best"].map(ratio)
    if "seconds" in t:
        out["seconds"] = t["seconds"].map(lambda v: f"{float(v):.0f}" if isnum(v) else "–")
    for col in ("state", "reason"):
        if col in t:
            out[col] = t[col].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    return out.reset_index(drop=True)


PROXY_COLUMNS = ("proxy_alpha", "proxy_beta", "proxy_gamma")


def proxy_at(t: pd.DataFrame) -> pd.Series | None:
    """'=' where the proxy is the network's miniature, else the coefficients it was built at (matched
    apart, scaler.matching); None when no point's proxy was matched apart."""
    if not all(c in t for c in PROXY_COLUMNS):
        return None

    def one(r) -> str:
        own = tuple(r[c] for c in PROXY_COLUMNS)
        if not all(isnum(v) for v in own) or own == (r["alpha"], r["beta"], r["gamma"]):
            return "="
        return ", ".join(num(v, 4) for v in own)
    at = t.apply(one, axis=1)
    return at if (at != "=").any() else None


def family_table(family: dict) -> pd.DataFrame:
    f = family_frame(family)
    out = pd.DataFrame({
        "member": f["label"].astype(str),
        "depth": f["depth_mult"].map(mult),
        "width": f["width_mult"].map(mult),
        "px": f["input_px"].map(integer),
        "stage depths": f["stage_depths"],
        "stage widths": f["stage_widths"],
        "params": f["params"].map(integer),
        "MACs (mult-adds)": f["macs"].map(macs),
        "x base": f["macs_ratio"].map(ratio),
        "activations": f["activations"].map(macs),
    })
    if f["latency_ms"].notna().any():
        out["latency b1 (ms)"] = f["latency_ms"].map(lambda v: f"{float(v):.1f}" if isnum(v) else "–")
        batch = f["latency_batch"].dropna()
        if len(batch):
            out[f"latency b{int(batch.iloc[0])} (ms)"] = f["latency_batch_ms"].map(lambda v: f"{float(v):.1f}" if isnum(v) else "–")
    if f["accuracy_mean"].notna().any():
        out["accuracy %"] = accuracy(f)
    return out


def compare_table(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "strategy": frame["strategy"].astype(str),
        "budget": frame["budget"].astype(str),
        "depth": frame["depth_mult"].map(mult),
        "width": frame["width_mult"].map(mult),
        "px": frame["input_px"].map(integer),
        "MACs (mult-adds)": frame["macs"].map(macs),
        "measured x": frame["macs_ratio"].map(ratio),
        "params": frame["params"].map(integer),
        "activations": frame["activations"].map(macs),
        "accuracy %": accuracy(frame),
        "seeds": frame["accuracy_n"].map(integer),
    })


def curves_table(curves: pd.DataFrame) -> pd.DataFrame:
    """The curves: one row per (strategy, phi), cost and accuracy."""
    return pd.DataFrame({
        "strategy": curves["strategy"].astype(str),
        "phi": curves["phi"].map(integer),
        "kind": curves["kind"].astype(str),
        "depth": curves["depth_mult"].map(mult),
        "width": curves["width_mult"].map(mult),
        "px": curves["input_px"].map(integer),
        **({"proxy at": at} if (at := proxy_at(curves)) is not None else {}),
        "MACs (mult-adds)": curves["macs"].map(macs),
        "measured x": curves["macs_ratio"].map(ratio),
        "proxy x": curves["proxy_macs_ratio"].map(ratio),
        "accuracy %": accuracy(curves),
        "seeds": curves["accuracy_n"].map(integer),
        "runs from": curves["runs_from"].astype(str),
    })
