"""Work on a search's study from any machine: take its queued runs until the search is done.

A search started with --storage (PostgreSQL, MySQL; SQLite for workers on one machine) names its
study when it starts (`study resnet50-2x-<id> in ...`; `scaler status` lists them). Any number
of workers, on any machines sharing that database, take its runs; each run is made once. A worker
that dies is noticed by its heartbeat (or at once, by a worker of the same machine) and its run is
queued again. The worker needs the same data at the same path (its fingerprint is checked). The
search itself writes the results; so does a worker given --out, once every run has finished
(trials.csv, coefficients.json, family and report in that folder).

The password may be in the URL, in PGPASSWORD, or in ~/.pgpass; the URL may also come from the
SCALER_STORAGE environment variable, which `ps` does not show.

examples:
  scaler worker --storage postgresql://scaler@db/scaler --study resnet50-2x-3f9a0c21d4
  SCALER_STORAGE=postgresql://scaler:secret@db/scaler scaler worker --study resnet50-2x-3f9a0c21d4
  scaler worker --storage postgresql://scaler@db/scaler --study resnet50-2x-3f9a0c21d4 --out runs/resnet50-2x
"""

from __future__ import annotations

import os

from scaler.errors import UsageError
from scaler.local_workers import STORAGE_ENV
from scaler.options import GRACE_FACTOR, HEARTBEAT


def add_arguments(parser) -> None:
    parser.add_argument("--storage", help=f"the search's SQLAlchemy URL (default: ${STORAGE_ENV})")
    parser.add_argument("--study", required=True, help="the search's study name (see `scaler status`)")
    parser.add_argument("--heartbeat", type=int, default=None,
                        help=f"seconds between heartbeats; a run is reclaimed after {GRACE_FACTOR} missed (default {HEARTBEAT})")
    parser.add_argument("--out", help="when every run is done, write the search's results, family and report here")
    parser.add_argument("--no-family", action="store_true", help="with --out: do not write the family")
    parser.add_argument("--no-report", action="store_true", help="with --out: do not write the report")


def run(args) -> int:
    from scaler.search import work

    storage = args.storage or os.environ.get(STORAGE_ENV)
    if not storage:
        raise UsageError(f"give --storage URL (or set {STORAGE_ENV})")
    heartbeat = HEARTBEAT if args.heartbeat is None else args.heartbeat
    if heartbeat < 1:
        raise UsageError(f"--heartbeat must be 1 or more seconds, got {heartbeat}")
    tag = f"worker {os.getpid()}:"
    ran, config = work(storage, args.study, log=lambda line: print(tag, line, flush=True), heartbeat=heartbeat)
    print(f"{tag} the search's runs are all done; {ran} made here", flush=True)
    if not args.out:
        return 0
    from pathlib import Path

    from scaler.commands.search import finish
    from scaler.run_folder import RunFolder
    from scaler.scaling import parse_phi_range
    from scaler.search import run_search

    result = run_search(config, RunFolder(Path(args.out)), log=lambda line: print(tag, line, flush=True), heartbeat=heartbeat)
    return finish(result, parse_phi_range("0..3"), config.device, 3, family=not args.no_family, report=not args.no_report)
