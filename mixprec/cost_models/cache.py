"""The persistent measurement cache: every timing ``measure`` takes, saved as soon as it is
taken, keyed by everything it depends on (CPU fingerprint, library versions, model, runtime,
threads, batch, what was timed), so a re-run reuses it and an interrupted run resumes."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mixprec.cost_models.table import LatencyTableError
from mixprec.files import write_atomic

CACHE_SCHEMA = "mixprec.latency_cache"
CACHE_ENV = "MIXPREC_CACHE_DIR"


def cache_root() -> Path:
    """``$MIXPREC_CACHE_DIR``, default ``~/.cache/mixprec``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "mixprec")


def default_cache_path(fingerprint_key: str) -> Path:
    """The measurement cache of one machine: ``<cache root>/latency-<fingerprint>.json``."""
    return cache_root() / f"latency-{fingerprint_key}.json"


class MeasurementCache:
    """A JSON file of measurements, written atomically after every ``put``.

    Args:
        path: the file (created when missing).

    Raises:
        LatencyTableError: the file exists but is not a readable cache (it is then left
            untouched: move it away to start afresh).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._entries: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            self._entries = _read(self.path)

    @staticmethod
    def key(parts: Mapping[str, Any]) -> str:
        """The canonical key of a measurement described by ``parts``."""
        return json.dumps(parts, sort_keys=True, separators=(",", ":"))

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored measurement, or None."""
        return self._entries.get(key)

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Store a measurement and write the file."""
        self._entries[key] = value
        write_atomic(self.path, json.dumps({"schema": CACHE_SCHEMA, "entries": self._entries},
                                           sort_keys=True, indent=0) + "\n")

    def items(self) -> list[tuple[str, dict[str, Any]]]:
        """Every (key, measurement) stored."""
        return list(self._entries.items())

    def __len__(self) -> int:
        return len(self._entries)


def _read(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise LatencyTableError(f"latency cache {path} is corrupt or truncated ({err}); it was "
                                "left as it is: move it away to measure afresh") from None
    if not isinstance(data, dict) or data.get("schema") != CACHE_SCHEMA \
            or not isinstance(data.get("entries"), dict):
        raise LatencyTableError(f"{path} is not a mixprec latency cache; it was left as it is")
    return data["entries"]
