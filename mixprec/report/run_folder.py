"""A search's run folder read back: everything a report is made from."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixprec.cost_models.table import LatencyTable, load_table
from mixprec.quant.plan import Plan

STUDY_FILE = "study.db"
MEASURED_FILE = "measured.json"


@dataclass(frozen=True)
class RunFolder:
    """What ``mixprec search --out`` wrote.

    Attributes:
        path: the folder.
        summary: ``result.json`` (device, runtime, budget, tables, model, ...).
        plan: the chosen plan.
        fronts: device -> front points (``latency_ms``, ``error``, ``plan`` as JSON data).
        baselines: device -> baseline name -> point (same form).
        tables: device -> the latency table used.
        measured: the deployed plans measured on this CPU (``measured.json``; may be empty).
    """

    path: Path
    summary: dict[str, Any]
    plan: Plan
    fronts: dict[str, list[dict[str, Any]]]
    baselines: dict[str, dict[str, dict[str, Any]]]
    tables: dict[str, LatencyTable]
    measured: list[dict[str, Any]] = field(default_factory=list)

    @property
    def devices(self) -> list[str]:
        """The devices searched, the chosen plan's first."""
        return list(self.fronts)

    @property
    def study_storage(self) -> str | None:
        """The refinement study's storage URL, if the run has one."""
        stored = self.summary.get("storage")
        if stored:
            return str(stored)
        local = self.path / STUDY_FILE
        return f"sqlite:///{local.resolve()}" if local.exists() else None


def load_run(folder: str | Path) -> RunFolder:
    """Read a run folder.

    Raises:
        FileNotFoundError: not a run folder (naming what is missing and how to make one).
        ValueError: a file of it is not valid.
    """
    path = Path(folder)
    if not (path / "result.json").is_file():
        raise FileNotFoundError(f"{path} is not a run folder (no result.json); write one with "
                                f"`mixprec search --out {path}`")
    summary = _json(path / "result.json")
    devices = [summary["device"]] + [d for d in summary.get("tables", {})
                                     if d != summary["device"]]
    fronts = {d: _json(path / f"front-{d}.json") for d in devices}
    baselines_file = path / "baselines.json"
    baselines = _json(baselines_file) if baselines_file.exists() else {}
    measured_file = path / MEASURED_FILE
    return RunFolder(
        path=path, summary=summary, plan=Plan.from_json((path / "plan.json").read_text()),
        fronts=fronts, baselines={d: baselines.get(d, {}) for d in devices},
        tables={d: load_table(path / f"latency-{d}.json") for d in devices},
        measured=_json(measured_file) if measured_file.exists() else [])


def _json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the run folder")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
