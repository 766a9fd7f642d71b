"""What a search returns: the chosen plan, the Pareto front per device, the tables used."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixprec.cost_models.table import LatencyTable
from mixprec.files import write_atomic
from mixprec.quant.plan import Plan
from mixprec.sensitivity.table import SensitivityTable


@dataclass(frozen=True)
class FrontPoint:
    """One Pareto-optimal plan with its predicted latency (ms) and error."""

    latency_ms: float
    error: float
    plan: Plan

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (the plan as its JSON object)."""
        return {"latency_ms": self.latency_ms, "error": self.error,
                "plan": json.loads(self.plan.to_json())}


@dataclass(frozen=True)
class SearchResult:
    """The outcome of :func:`mixprec.search.run`.

    Attributes:
        plan: the chosen plan (the most accurate within the budget).
        latency_ms: its predicted latency on ``device``.
        error: its predicted error (the sensitivity table's sum).
        front: the Pareto front on ``device``, fastest first.
        device: the device the plan was chosen for.
        runtime: the runtime whose latency table was used on ``device``.
        budget_ms: the latency budget (None: none).
        fronts: device -> its front (every device searched).
        tables: device -> the latency table used there.
        sensitivity: the sensitivity table used.
        measured: what was measured to choose the plan (``max_drop`` mode: the top-1 of the
            float model and of each plan tried; refinement: the measured front; the measured
            choice: ``verified``, its decision (:class:`~mixprec.search.verify.Verification`
            as data), and ``deployed``, every row measured), else empty.
        study_name: the refinement study (None: no refinement).
        storage: its storage URL.
        baselines: device -> baseline name (``fp32``, ``int8 static``, ...) -> the uniform
            plan with its predicted latency and error (:mod:`mixprec.search.baselines`).
    """

    plan: Plan
    latency_ms: float
    error: float
    front: list[FrontPoint]
    device: str
    runtime: str
    budget_ms: float | None
    fronts: dict[str, list[FrontPoint]]
    tables: dict[str, LatencyTable]
    sensitivity: SensitivityTable
    measured: dict[str, Any] = field(default_factory=dict)
    study_name: str | None = None
    storage: str | None = None
    baselines: dict[str, dict[str, FrontPoint]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The result without its plans and tables (for logs and ``result.json``)."""
        return {
            "device": self.device, "runtime": self.runtime, "budget_ms": self.budget_ms,
            "latency_ms": self.latency_ms, "error": self.error,
            "front_points": {d: len(f) for d, f in self.fronts.items()},
            "tables": {d: {"source": t.source, "runtime": t.runtime, "batch": t.batch,
                           "threads": t.threads, "cpu": t.provenance.get("cpu"),
                           "cpu_key": t.provenance.get("cpu_key"),
                           "fidelity": t.provenance.get("fidelity"), "trusted": t.trusted,
                           "trust": t.trust_summary()}
                       for d, t in self.tables.items()},
            "sensitivity": self.sensitivity.method,
            "measured": self.measured, "study_name": self.study_name, "storage": self.storage,
        }

    def save(self, folder: str | Path) -> Path:
        """Write the run folder: ``plan.json``, ``result.json``, ``front.json`` / ``.csv``
        (the front on ``device``), per device ``front-<device>.json`` / ``.csv`` and
        ``latency-<device>.json``, ``baselines.json``, ``sensitivity.json`` and
        ``measured.json`` (the plans deployed and measured here; empty without). Existing
        files of the same names are replaced atomically."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / "plan.json", self.plan.to_json())
        write_atomic(out / "result.json", json.dumps(self.summary(), indent=1))
        for stem, front in [("front", self.front)] + [
                (f"front-{d}", f) for d, f in self.fronts.items()]:
            write_atomic(out / f"{stem}.json", json.dumps([p.to_dict() for p in front],
                                                          indent=1))
            write_atomic(out / f"{stem}.csv", front_csv(front))
        for device, table in self.tables.items():
            table.save(out / f"latency-{device}.json")
        write_atomic(out / "baselines.json", json.dumps(
            {d: {name: p.to_dict() for name, p in named.items()}
             for d, named in self.baselines.items()}, indent=1))
        write_atomic(out / "sensitivity.json", self.sensitivity.to_json())
        write_atomic(out / "measured.json",
                     json.dumps(self.measured.get("deployed", []), indent=1))
        return out


def front_csv(front: list[FrontPoint]) -> str:
    """The front as CSV: latency, error, and every unit's spec label."""
    if not front:
        return ""
    names = front[0].plan.names
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["latency_ms", "error", *names])
    for point in front:
        writer.writerow([f"{point.latency_ms:.6g}", f"{point.error:.6g}",
                         *(point.plan[n].label for n in names)])
    return buffer.getvalue()
