"""Reports of a search's run folder: a self-contained HTML page, PNG figures, front CSV/JSON.

``write_report(folder)`` reads what ``mixprec search --out folder`` wrote and adds
``report.html`` and ``figures/*.png`` to it.
"""

from __future__ import annotations

from pathlib import Path

from mixprec.files import write_atomic
from mixprec.report.run_folder import RunFolder, load_run

REPORT_FILE = "report.html"
FIGURES_DIR = "figures"


def write_report(folder: str | Path) -> list[Path]:
    """Write ``report.html`` and the PNG figures of the run in ``folder``; return the paths
    written (the page first)."""
    from mixprec.report.figures import write_figures
    from mixprec.report.page import render_page

    run = load_run(folder)
    page = run.path / REPORT_FILE
    write_atomic(page, render_page(run))
    return [page, *write_figures(run, run.path / FIGURES_DIR)]


__all__ = ["FIGURES_DIR", "REPORT_FILE", "RunFolder", "load_run", "write_report"]
