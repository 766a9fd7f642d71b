"""Finding a latency table: the tables shipped in the package and those ``measure`` saved in
the cache directory, matched by device, model, runtime, batch and threads and, for a CPU, by
this machine's fingerprint."""

from __future__ import annotations

import logging
import warnings
from importlib import resources
from pathlib import Path

from mixprec.cost_models.cache import cache_root
from mixprec.cost_models.table import (
    ForeignMachineWarning,
    LatencyTable,
    LatencyTableError,
    load_table,
)

logger = logging.getLogger(__name__)


def shipped_dir() -> Path:
    """The package's folder of shipped tables."""
    return Path(str(resources.files("mixprec.cost_models").joinpath("tables")))


def saved_dir() -> Path:
    """Where ``measure`` saves the tables it measures (under the cache root)."""
    return cache_root() / "tables"


def table_filename(table: LatencyTable) -> str:
    """A file name that tells tables apart: device, machine, runtime, model, batch, threads."""
    machine = table.provenance.get("cpu_key", "") if table.source == "measured" else "analytic"
    model = table.provenance.get("model_name") or table.model_id
    return (f"{table.device}-{machine}-{table.runtime}-{model}-b{table.batch}"
            f"-t{table.threads}.json").replace("/", "_")


def save_measured(table: LatencyTable) -> Path:
    """Save a measured table where :func:`load` finds it."""
    return table.save(saved_dir() / table_filename(table))


def all_tables(folders: list[Path] | None = None) -> list[tuple[Path, LatencyTable]]:
    """Every readable table in the saved and shipped folders, saved ones first: a table
    measured here (a newer one, or one with more candidates) comes before a shipped table of
    the same machine. Unreadable ones are logged and skipped, never touched."""
    found = []
    for folder in folders or [saved_dir(), shipped_dir()]:
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                found.append((path, load_table(path)))
            except LatencyTableError as err:
                logger.warning("skipping %s", err)
    return found


def load(device: str, model: str, runtime: str = "torch", batch: int = 1, threads: int = 2,
         strict: bool = False, folders: list[Path] | None = None) -> LatencyTable:
    """The latency table of ``model`` on ``device``.

    For ``cpu``: a table measured on this machine (same fingerprint) if there is one;
    otherwise one measured on another machine, with a :class:`ForeignMachineWarning`
    (``strict``: an error). For a target class (``xeon``, ``a100``, ``a15``): a table
    measured on one of its machines if there is one, else its analytic table.

    Args:
        device: ``cpu``, ``xeon``, ``a100`` or ``a15``.
        model: the model's name (``mnist-vit``, a timm name) or its ``model_id``.
        runtime: ``torch``, ``onnxruntime`` or ``openvino`` (a table of OpenVINO is this
            machine's only if it was measured with the OpenVINO installed now).
        batch: images per call.
        threads: CPU threads the table was measured with (CPU tables).
        strict: refuse a table measured on another machine.
        folders: where to look (default: the shipped and the saved tables).

    Raises:
        LookupError: no table fits; the message says how to measure one.
    """
    matching = [(p, t) for p, t in all_tables(folders)
                if t.device == device and t.runtime == runtime and t.batch == batch
                and model in (t.model_id, t.provenance.get("model_name"))
                and (device != "cpu" or t.threads == threads)]
    if device != "cpu" and matching:  # a measured table of the class before an analytic one
        return min(matching, key=lambda found: found[1].source != "measured")[1]
    from mixprec.kernels.cpu.capabilities import cpu_fingerprint, runtime_versions

    here = cpu_fingerprint(threads=threads).key
    installed = runtime_versions(runtime)
    for _, table in matching:
        recorded = table.provenance.get("versions", {})
        if table.provenance.get("cpu_key") == here and all(
                recorded.get(name) == version for name, version in installed.items()):
            return table
    how = (f"measure one with `mixprec measure --model {model} --device cpu --runtime "
           f"{runtime} --batch {batch} --threads {threads}`")
    if device != "cpu":
        how = (f"build one with mixprec.cost_models.analytic_table, or measure on the device "
               f"itself with `mixprec measure --device {device}`")
    if matching and not strict:
        path, table = matching[0]
        warnings.warn(f"no latency table of {model} ({runtime}, batch {batch}, {threads} "
                      f"threads) was measured on this CPU ({here}); using {path.name}, "
                      f"measured on {table.provenance.get('cpu', '?')}; {how}",
                      ForeignMachineWarning, stacklevel=2)
        return table
    elsewhere = f" (tables from other machines: {[p.name for p, _ in matching]})" \
        if matching else ""
    raise LookupError(f"no latency table of {model} on {device} ({runtime}, batch {batch}, "
                      f"{threads} threads) for this machine{elsewhere}: {how}")
