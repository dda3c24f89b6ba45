"""A tiny document model — headings, paragraphs, notes, tables, images — rendered as HTML and as Markdown.

A report is built once as a list of :class:`Block` and rendered twice, so the two never disagree.
The HTML embeds its images as base64 and loads nothing from the network; every text is escaped.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass
class Block:
    kind: str  # "h1", "h2", "h3", "p", "table", "img", "note"
    text: str = ""
    frame: pd.DataFrame | None = None
    path: Path | None = None


def heading(level: int, text: str) -> Block:
    return Block(f"h{level}", text)


def para(text: str) -> Block:
    return Block("p", text)


def table(frame: pd.DataFrame, caption: str = "") -> Block:
    return Block("table", caption, frame=frame)


def image(path: Path, alt: str) -> Block:
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


def md_escape(text: str) -> str:
    return re.sub(r"([\\`*_\[\]<>|])", r"\\\1", str(text))


def md_table(frame: pd.DataFrame) -> str:
    def cell(v) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "–"
        return md_escape(v).replace("\n", " ")

    head = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def render_markdown(blocks: Sequence[Block], out: Path) -> str:
    lines = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            lines += ["#" * int(b.kind[1]) + " " + md_escape(b.text), ""]
        elif b.kind in ("p", "note"):
            lines += [("> " if b.kind == "note" else "") + md_escape(b.text), ""]
        elif b.kind == "table":
            if b.text:
                lines += [f"*{md_escape(b.text)}*", ""]
            lines += [md_table(b.frame), ""]
        elif b.kind == "img":
            rel = b.path.relative_to(out).as_posix()
            lines += [f"![{md_escape(b.text)}]({rel})", ""]
    return "\n".join(lines)
