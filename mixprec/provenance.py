"""Provenance helpers shared by tables and fingerprints."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata

NOT_INSTALLED = "not installed"


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed version of each package (``not installed`` when absent)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = NOT_INSTALLED
    return versions
