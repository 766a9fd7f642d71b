"""Whole-model latency of a plan from a LatencyTable."""

from __future__ import annotations

from dataclasses import dataclass

from mixprec.cost_models.table import LatencyTable
from mixprec.quant.plan import Plan


@dataclass(frozen=True)
class LatencyBreakdown:
    """A plan's predicted latency by part, in ms.

    Attributes:
        units: the sum of its units' entries (attention modules counted once).
        transitions: the sum of the transition costs it incurs (negative: savings).
        remainder: the table's remainder (everything that is not a unit).
    """

    units: float
    transitions: float
    remainder: float

    @property
    def total(self) -> float:
        """The predicted end-to-end latency."""
        return self.units + self.transitions + self.remainder


def latency_breakdown(plan: Plan, table: LatencyTable) -> LatencyBreakdown:
    """The parts of ``plan``'s predicted latency on ``table``'s device.

    Raises:
        ValueError: the plan is for another model.
        KeyError: a unit's spec is not in the table (naming the unit and the spec).
    """
    table.check_plan(plan)
    return LatencyBreakdown(sum(table.unit_times(plan).values()),
                            sum(table.transition_times(plan).values()), table.remainder_ms)


def predict_latency(plan: Plan, table: LatencyTable) -> float:
    """Predicted end-to-end latency of ``plan`` (ms per call of ``table.batch`` images):
    remainder + units + transitions. Units the plan does not name run in float32."""
    return latency_breakdown(plan, table).total
