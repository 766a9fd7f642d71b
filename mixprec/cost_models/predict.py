"""Whole-model latency of a plan from a LatencyTable."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
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


def speed_factor(table: LatencyTable, timed: Iterable[tuple[Plan, float]]) -> float:
    """How much slower (> 1) or faster the machine runs now than when ``table`` was
    measured: the median of measured / predicted latency over ``timed`` (plan, measured ms)
    pairs, e.g. uniform plans timed beside the ones of interest. ``table.rescaled`` of it
    predicts at the current speed.

    Raises:
        ValueError: no timed plans.
    """
    ratios = [ms / predict_latency(plan, table) for plan, ms in timed]
    if not ratios:
        raise ValueError("speed_factor needs at least one timed plan")
    return statistics.median(ratios)
