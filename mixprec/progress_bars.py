"""Whether long passes show progress bars: the ``mixprec`` command's ``--quiet`` sets
``TQDM_DISABLE=1`` after tqdm is imported, so the bars check it when they start."""

from __future__ import annotations

import os


def bars_hidden() -> bool:
    """Whether ``TQDM_DISABLE`` asks to hide progress bars now."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes")
