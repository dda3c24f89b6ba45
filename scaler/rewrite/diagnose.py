"""Naming the line that stops a rewrite: reshapes to a size written in the code.

A forward that reshapes to a literal size (``x.view(-1, 512)``) cannot follow a new width. Only
called once a rewrite has failed: torch.fx reads the forward symbolically and lists the reshapes
whose target size holds a literal other than -1 and 1, with the line of code they come from.
"""

from __future__ import annotations

import torch
from torch import fx, nn

_RESHAPES = {"view", "reshape", torch.reshape}


def fixed_reshapes(model: nn.Module) -> list[str]:
    """'file:line: code' of each reshape to a literal size in ``model``'s forward; [] if fx cannot trace it."""
    tracer = fx.Tracer()
    tracer.record_stack_traces = True
    try:
        graph = tracer.trace(model)
    except Exception:  # data-dependent control flow: nothing to point at
        return []
    found = []
    for node in graph.nodes:
        if node.op not in ("call_method", "call_function") or node.target not in _RESHAPES:
            continue
        sizes = [a for a in node.args[1:] if isinstance(a, int)]
        sizes += [s for a in node.args[1:] if isinstance(a, (tuple, list)) for s in a if isinstance(s, int)]
        if any(s not in (-1, 1) for s in sizes):
            found.append(_where(node))
    return found


def _where(node: fx.Node) -> str:
    trace = (node.stack_trace or "").strip().splitlines()
    # The last frame outside torch is the user's line: '  File "x.py", line 12, in forward' then the code.
    for i in range(len(trace) - 1, -1, -1):
        line = trace[i].strip()
        if line.startswith("File ") and "/torch/" not in line:  # the user's frame, not the tracer's
            parts = line.split(",")
            file = parts[0].removeprefix('File "').rstrip('"').rsplit("/", 1)[-1]
            code = trace[i + 1].strip() if i + 1 < len(trace) else node.name
            return f"{file}:{parts[1].strip().removeprefix('line ')}: {code}"
    return f"{node.target if isinstance(node.target, str) else node.name} {node.args[1:]}"
