"""The searches a study storage holds, and the progress of each.

One row per study: its name (what `scaler worker --study` takes), the search's baseline and budget,
and how many of its runs are complete, running (and on how many workers), waiting, failed or pruned.

examples:
  scaler status --storage postgresql://scaler@db/scaler
  scaler status --storage sqlite:///runs/resnet50-2x/study.db
"""

from __future__ import annotations

import os

from scaler.errors import UsageError
from scaler.local_workers import STORAGE_ENV


def add_arguments(parser) -> None:
    parser.add_argument("--storage", help=f"a SQLAlchemy URL (default: ${STORAGE_ENV})")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args) -> int:
    from scaler.commands._common import print_json, print_table
    from scaler.study import redact_url, storage_status

    storage = args.storage or os.environ.get(STORAGE_ENV)
    if not storage:
        raise UsageError(f"give --storage URL (or set {STORAGE_ENV})")
    table = storage_status(storage)
    if args.json:
        print_json({"storage": redact_url(storage), "studies": table.to_dict(orient="records")})
    elif table.empty:
        print(f"no studies in {redact_url(storage)}")
    else:
        print(f"{redact_url(storage)}:")
        print_table(table)
    return 0
