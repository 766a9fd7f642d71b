"""The ``mixprec dashboard`` subcommand: optuna-dashboard on a run's study (or any
storage), served on localhost."""

from __future__ import annotations

import argparse
from pathlib import Path

SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dashboard`` to the ``mixprec`` command's subparsers."""
    p = subparsers.add_parser(
        "dashboard", help="serve optuna-dashboard on a run's studies or a storage URL",
        description=run.__doc__)
    p.add_argument("source", help="a run folder with a study (search --refine-trials), or a "
                                  "storage: sqlite:///x.db, postgresql://..., a journal file")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve optuna-dashboard on the studies of a run folder or a storage URL (Ctrl-C stops
    it)."""
    from optuna_dashboard import run_server

    from mixprec.search.study import open_storage

    storage = open_storage(dashboard_storage(args.source))
    print(f"optuna-dashboard on http://{args.host}:{args.port}/ (Ctrl-C to stop)", flush=True)
    run_server(storage, host=args.host, port=args.port)
    return 0


def dashboard_storage(source: str) -> str:
    """The storage URL of ``source``: a run folder, an SQLite file (``.db``), a journal file
    or a storage URL.

    Raises:
        FileNotFoundError: a folder without a study, or a path that does not exist.
    """
    from mixprec.search.study import storage_url

    path = Path(source)
    if "://" in source or source.startswith("journal:"):
        return storage_url(source, "")
    if path.is_dir():
        from mixprec.report import load_run

        storage = load_run(path).study_storage
        if storage is None:
            raise FileNotFoundError(f"{path} has no study: run `mixprec search --out {path} "
                                    "--refine-trials N` to record one")
        return storage
    if path.is_file():
        if path.suffix in SQLITE_SUFFIXES:
            return f"sqlite:///{path.resolve()}"
        return storage_url(source, "")
    raise FileNotFoundError(f"{source} is neither a run folder, a study file nor a storage URL")
