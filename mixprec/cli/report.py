"""The ``mixprec report`` subcommand: a run folder's HTML report, figures, front CSV/JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``report`` to the ``mixprec`` command's subparsers."""
    p = subparsers.add_parser(
        "report", help="write a run folder's report (report.html, figures/*.png)",
        description=run.__doc__)
    p.add_argument("run_folder", type=Path, help="a folder written by `mixprec search --out`")
    p.add_argument("--json", action="store_true", help="print the files written as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write report.html (self-contained, interactive) and figures/*.png for a run folder
    (the front's CSV / JSON are already in it)."""
    from mixprec.report import write_report

    written = write_report(args.run_folder)
    fronts = sorted(str(p) for p in args.run_folder.glob("front*.csv"))
    if args.json:
        print(json.dumps({"report": str(written[0]), "figures": [str(p) for p in written[1:]],
                          "fronts": fronts}, indent=1))
    else:
        print(f"wrote {written[0]} and {len(written) - 1} figures in "
              f"{written[1].parent if len(written) > 1 else args.run_folder}")
    return 0
