"""Write report.html (self-contained: images inline, no network) and report.md for one or several runs.

The report shows what each run folder holds: configuration, the grid table, the winner and its
margin over the runner-up, the family, the strategy comparison, and plots (accuracy vs MACs as
multiply-adds, vs params and vs latency; the coefficient grid; Optuna's history and parameter
importances). Several runs share the charts and get a side-by-side summary.

examples:
  scaler report runs/resnet50-2x
  scaler report runs/resnet50-2x runs/mobilenet_v2-2x --out reports/resnet-vs-mobilenet
  scaler report runs/nas-400M                      # a scaler nas run: its own report
"""

from __future__ import annotations

from pathlib import Path

from scaler.commands._common import add_json_argument, print_json


def add_arguments(parser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders (from search, family or compare)")
    parser.add_argument("--out", help="folder for the report (default: the run's folder; several runs: report-A-vs-B beside them)")
    add_json_argument(parser)


def run(args) -> int:
    from scaler.report import write_report
    from scaler.run_folder import RunFolder

    folders = [RunFolder(Path(p)) for p in args.runs]
    if any((f.path / "nas.json").is_file() for f in folders):  # `scaler nas` runs have a report of their own
        from scaler.errors import UsageError
        from scaler.nas.report import write_nas_report

        if len(folders) > 1 or args.out:
            raise UsageError("a scaler nas run folder is reported alone, into its own folder (no --out)")
        html = write_nas_report(folders[0])
    else:
        html = write_report(folders, Path(args.out) if args.out else None)
    md = html.with_name("report.md")
    plots = sorted(str(p) for p in (html.parent / "plots").glob("*.png"))
    if args.json:
        print_json({"html": str(html), "markdown": str(md), "plots": plots})
    else:
        print(f"wrote {html} ({html.stat().st_size / 1e3:.0f} kB, images inline), {md} and {len(plots)} plots in {html.parent / 'plots'}")
    return 0
