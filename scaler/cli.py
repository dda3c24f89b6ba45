"""The ``scaler`` command line: a table of subcommands that format what the library returns.

Each subcommand lives in ``scaler/commands/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``; its module docstring is its help. A ``UsageError`` anywhere ends the command
with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import warnings

from scaler import __version__
from scaler.errors import ScalerWarning, UsageError

# name -> (module under scaler.commands, one-line help), in the order `scaler --help` lists them.
# Only the chosen command's module is imported, so `scaler --help` and `--version` stay instant.
COMMANDS = {
    "baselines": ("baselines", "list the built-in baselines with base resolution, params and MACs"),
    "flops": ("flops", "count params, multiply-adds, activations and latency of a (scaled) network"),
    "data": ("data", "list the data sources, or load one and show its classes and split"),
    "train": ("train", "train one (scaled) network with the proxy recipe: accuracy, time, images/s"),
    "grid": ("grid", "show the coefficient grid for a budget with nominal and measured MACs ratios"),
    "search": ("search", "search compound-scaling coefficients for a baseline under a budget"),
    "worker": ("worker", "take a search's queued runs from its study, on any machine sharing its database"),
    "status": ("status", "list the searches a study storage holds and the progress of each"),
    "nas": ("nas", "search MBConv choices for a baseline under a MACs target (its best.json is a --baseline)"),
    "family": ("family", "scale a baseline into a family (phi = 0..N) with cost, latency and accuracy"),
    "compare": ("compare", "train depth/width/resolution/compound/dollar scalings at matched MACs"),
    "report": ("report", "write report.html and report.md (plots inline) for one or several runs"),
    "export": ("export", "export a family member to ONNX, rebuilt from family.json"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors: one line, status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="scaler", description="Compound scaling for convolutional networks.",
        formatter_class=lambda prog: argparse.HelpFormatter(prog, max_help_position=18, width=100),
    )
    parser.add_argument("--version", action="version", version=f"scaler {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, summary) in COMMANDS.items():
        if name != chosen:
            sub.add_parser(name, help=summary)
            continue
        module = importlib.import_module(f"scaler.commands.{module_name}")
        cmd = sub.add_parser(
            name, help=summary, description=(module.__doc__ or summary).strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def _join_negative_values(argv: list[str]) -> list[str]:
    """``--phi -1..1`` -> ``--phi=-1..1``: argparse takes a value such as -1..1 or -1,0 for an option."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and re.match(r"-\.?\d", arg):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def _one_line_data_warnings(command: str):
    """``warnings.showwarning`` that prints a ScalerWarning as one line, like an error (Python's own
    format adds the source line that warned); other warnings as before."""
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, ScalerWarning):
            print(f"scaler {command}: warning: {message}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    return show


def shares_the_machine(args) -> bool:
    """A process that shares the CPUs by design: ``scaler worker`` (a search's local workers are such
    processes; a local Ray cluster's get the same policy from scaler.ray_backend). A search's own
    process keeps OpenMP's default wait policy: on a quiet machine PASSIVE halved a resnet50 proxy's
    speed (1,145 against 2,068-2,299 training images/s, docs/distributed.md, 2026-11-26), and it
    times the family's latency on every core after its stages; while they run, its threads are its
    share of the cores, so none waits on a core another process uses."""
    return getattr(args, "command", None) == "worker"


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", category=FutureWarning, module="torch")
    argv = _join_negative_values(sys.argv[1:] if argv is None else list(argv))
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if shares_the_machine(args):
        # OpenMP threads that wait for work sleep instead of spinning: a spinning thread whose core is
        # busy (another worker) stalls every step. libgomp reads it once, when torch loads, which no
        # parser does (scaler.options; benchmarks/wait_policy.py; docs/distributed.md).
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    previous, warnings.showwarning = warnings.showwarning, _one_line_data_warnings(args.command)
    try:
        return int(args._run(args) or 0)
    except UsageError as exc:
        # one line even when the message carries a user's multi-line exception text
        message = " ".join(str(exc).split())
        print(f"scaler {args.command}: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `scaler ... | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"scaler {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = previous


if __name__ == "__main__":
    sys.exit(main())
