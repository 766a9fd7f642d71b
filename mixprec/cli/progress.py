"""Progress lines of long CLI steps (stderr, with elapsed time) and ``--quiet``."""

from __future__ import annotations

import logging
import os
import sys
import time

LOGGERS = ("mixprec.search", "mixprec.cost_models")
"""Loggers whose INFO messages (tables measured, runtime chosen, studies) are progress."""


class Progress:
    """Prints ``[  12.3 s] message`` to stderr, unless ``quiet`` (which also hides the
    progress bars of long passes)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.start = time.perf_counter()
        if quiet:
            os.environ["TQDM_DISABLE"] = "1"
            return
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        for name in LOGGERS:
            logger = logging.getLogger(name)
            if logger.getEffectiveLevel() > logging.INFO:
                logger.setLevel(logging.INFO)
                logger.addHandler(handler)
                logger.propagate = False

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[{time.perf_counter() - self.start:7.1f} s] {message}", file=sys.stderr,
                  flush=True)
