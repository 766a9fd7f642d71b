"""Whole-plan timings in the measurement cache: every plan timed against the float32 model on
this machine (by ``measure`` or by a search that confirms its choice), kept so that a table
can be fitted again, with every timing taken so far, at any time.

A timing is stored under the measurement's key (machine, model, runtime, threads, batch,
device) and the plan's digest; the plan itself is stored compactly (its distinct specs and
each unit's index into them). Timing a stored plan again adds its new rounds to the old.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mixprec.cost_models.cache import MeasurementCache
from mixprec.cost_models.timing import RatioTiming, median_ci
from mixprec.quant.plan import Plan
from mixprec.quant.spec import QuantSpec

TIMING_METHOD = 2
"""Version of the whole-plan timing, part of every timing's cache key (2: each turn
corrected for the machine's speed of the moment, see :func:`~mixprec.cost_models.timing.
time_against`)."""


@dataclass(frozen=True)
class PlanTiming:
    """A plan timed against the float32 model.

    Attributes:
        plan: the plan.
        ratios: per-round time ratios to the float32 model, corrected for the machine's
            speed of the moment (every time it was timed).
        reference_ms: the float32 model's median round time while it was timed.
        fused: MLPs whose static fc1 -> fc2 chain the deployed plan kept integer.
        busy: some timing of it was taken while the machine was busy.
        source: ``design`` (a table's measurement) or ``verify`` (a search's choice).
        passes: how many times it was timed (each time in another block).
    """

    plan: Plan
    ratios: tuple[float, ...]
    reference_ms: float
    fused: tuple[str, ...] = ()
    busy: bool = False
    source: str = "design"
    passes: int = 1

    @property
    def ratio(self) -> float:
        """Median ratio to the float32 model."""
        return statistics.median(self.ratios)

    @property
    def ratio_ci(self) -> float:
        """Relative half-width of the ratio's ~95% confidence interval."""
        return median_ci(self.ratios)

    def merged(self, timing: RatioTiming) -> PlanTiming:
        """This timing with the rounds of another timing of the same plan added."""
        ratios = self.ratios + timing.ratios
        reference = statistics.median([self.reference_ms] * len(self.ratios)
                                      + [timing.reference_ms] * len(timing.ratios))
        return PlanTiming(self.plan, ratios, reference, self.fused, self.busy or timing.busy,
                          self.source, self.passes + 1)


def plan_digest(plan: Plan) -> str:
    """A short digest of a plan's assignment (unit -> spec)."""
    text = json.dumps(_compact(plan), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _compact(plan: Plan) -> dict[str, Any]:
    specs: list[QuantSpec] = list(dict.fromkeys(plan[n] for n in plan.names))
    return {"names": plan.names, "specs": [s.to_dict() for s in specs],
            "choice": [specs.index(plan[n]) for n in plan.names]}


def _expand(data: dict[str, Any], model_id: str, input_shape: Sequence[int]) -> Plan:
    specs = [QuantSpec.from_dict(s) for s in data["specs"]]
    return Plan(tuple((n, specs[i]) for n, i in zip(data["names"], data["choice"])),
                model_id, tuple(input_shape))


class PlanTimingStore:
    """The plan timings of one measurement key in a :class:`MeasurementCache`.

    Args:
        cache: the cache file's contents.
        base_key: machine, model, runtime, threads, batch and device of the timings.
        model_id: the model's id (plans read back carry it).
        input_shape: the model's per-image input shape (likewise).
    """

    def __init__(self, cache: MeasurementCache, base_key: dict[str, Any], model_id: str,
                 input_shape: Sequence[int]) -> None:
        self.cache, self.base_key = cache, dict(base_key)
        self.model_id, self.input_shape = model_id, tuple(input_shape)

    def _key(self, plan: Plan) -> str:
        return MeasurementCache.key({**self.base_key, "what": {
            "plan": plan_digest(plan), "method": TIMING_METHOD}})

    def get(self, plan: Plan) -> PlanTiming | None:
        """The stored timing of ``plan``, or None."""
        found = self.cache.get(self._key(plan))
        return None if found is None else self._timing(found)

    def put(self, plan: Plan, timing: RatioTiming, fused: Iterable[str] = (),
            source: str = "design") -> PlanTiming:
        """Store ``timing`` of ``plan`` (added to an earlier one of the same plan)."""
        earlier = self.get(plan)
        if earlier is None:
            stored = PlanTiming(plan, timing.ratios, timing.reference_ms, tuple(fused),
                                timing.busy, source)
        else:
            stored = earlier.merged(timing)
        self.cache.put(self._key(plan), {
            "plan": _compact(plan), "ratios": list(stored.ratios),
            "reference_ms": stored.reference_ms, "fused": list(stored.fused),
            "busy": stored.busy, "source": stored.source, "passes": stored.passes})
        return stored

    def all(self) -> list[PlanTiming]:
        """Every plan timing stored under this key, in the order of their keys (a fit of
        them is the same whether they were just taken or read back from the file)."""
        found = []
        for key, value in sorted(self.cache.items()):
            parts = json.loads(key)
            what = parts.pop("what", {})
            if parts == self.base_key and what.get("method") == TIMING_METHOD \
                    and "plan" in what:
                found.append(self._timing(value))
        return found

    def _timing(self, value: dict[str, Any]) -> PlanTiming:
        return PlanTiming(_expand(value["plan"], self.model_id, self.input_shape),
                          tuple(value["ratios"]), float(value["reference_ms"]),
                          tuple(value["fused"]), bool(value["busy"]), value["source"],
                          int(value["passes"]))
