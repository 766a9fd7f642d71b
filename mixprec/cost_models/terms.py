"""The additive latency model behind a table: which numbers it has, and how many times a plan
uses each.

A plan's latency is the float32 model's time plus, for every unit not in float32, what its
spec adds (an *entry term*, one per shape class and spec; attention modules one per
(QKᵀ spec, PV spec) pair) and, for every static int8 fc1 -> fc2 chain the runtime keeps
integer, what the chain saves beyond its two units (a *transition term*). A plan's feature
vector counts its uses of every term; a fit finds the terms' values from timed plans.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mixprec.cost_models.table import ATTENTION, FLOAT32, ShapeKey
from mixprec.quant.modules import is_identity_spec
from mixprec.quant.plan import Plan
from mixprec.quant.spec import QuantSpec
from mixprec.quant.units import Unit


@dataclass(frozen=True)
class Term:
    """One number of the model: an entry (``producer`` is the unit's shape class, ``spec``
    its spec, ``spec2`` attention's PV spec) or a transition (``consumer`` set: the chain's
    two shape classes and their specs)."""

    producer: ShapeKey
    spec: QuantSpec
    spec2: QuantSpec | None = None
    consumer: ShapeKey | None = None

    @property
    def is_transition(self) -> bool:
        """Whether the term is a chain's transition (not a unit's entry)."""
        return self.consumer is not None

    @property
    def label(self) -> str:
        """Text form, for messages and logs."""
        if self.consumer is not None:
            return (f"{self.producer.label} {self.spec.label} -> {self.consumer.label} "
                    f"{self.spec2.label if self.spec2 else ''}")
        return f"{self.producer.label} {self.spec.label}" + (
            f" / {self.spec2.label}" if self.spec2 is not None else "")


def unit_spec(plan: Plan, name: str) -> QuantSpec:
    """The spec ``plan`` gives unit ``name`` (float32 where it names none)."""
    if name not in plan:
        return FLOAT32
    spec = plan[name]
    return FLOAT32 if is_identity_spec(spec) else spec


class CostTerms:
    """The shape classes of a model's units and the terms a table of it holds.

    Args:
        units: the model's units.
        specs_by_kind: unit kind -> the specs measured for it (float32 first or not).
    """

    def __init__(self, units: Sequence[Unit], specs_by_kind: dict[str, list[QuantSpec]]
                 ) -> None:
        self.units = list(units)
        self.classes: dict[ShapeKey, list[str]] = {}
        for unit in self.units:
            if unit.kind != "attn_pv":
                self.classes.setdefault(ShapeKey.of(unit), []).append(unit.module_name)
        self._shape_of = {u.name: ShapeKey.of(u) for u in self.units}
        self._kind_of = {ShapeKey.of(u): u.kind for u in self.units if u.kind != "attn_pv"}
        self.specs_by_kind = {k: [FLOAT32] + [s for s in v if s != FLOAT32]
                              for k, v in specs_by_kind.items()}

    def choices(self, shape: ShapeKey) -> list[tuple[QuantSpec, QuantSpec | None]]:
        """The (spec, spec2) choices of a shape class, float32 first; spec2 is attention's
        PV spec (None for weight units)."""
        if shape.kind != ATTENTION:
            return [(s, None) for s in self.specs_by_kind[self._kind_of[shape]]]
        return [(a, b) for a in self.specs_by_kind["attn_qk"]
                for b in self.specs_by_kind["attn_pv"]]

    def entry_terms(self) -> list[Term]:
        """One term per shape class and non-float32 choice."""
        return [Term(shape, spec, spec2) for shape in self.classes
                for spec, spec2 in self.choices(shape)
                if not (spec == FLOAT32 and spec2 in (None, FLOAT32))]

    def class_plan(self, shape: ShapeKey, spec: QuantSpec, spec2: QuantSpec | None,
                   base: Plan) -> Plan:
        """``base`` with every unit of class ``shape`` in ``spec`` (attention: ``spec`` on
        QKᵀ and ``spec2`` on PV)."""
        changes = {}
        for name in self.classes[shape]:
            if shape.kind == ATTENTION:
                changes[f"{name}.qk"], changes[f"{name}.pv"] = spec, spec2 or FLOAT32
            else:
                changes[name] = spec
        return base.replace(changes)

    def counts(self, plan: Plan, fused: Iterable[str] = ()) -> dict[Term, int]:
        """How many times ``plan`` uses each term; ``fused``: the MLPs (module names) whose
        fc1 -> fc2 chain the deployed plan keeps integer."""
        found: dict[Term, int] = {}

        def add(term: Term) -> None:
            found[term] = found.get(term, 0) + 1

        for unit in self.units:
            if unit.kind == "attn_pv":
                continue
            spec = unit_spec(plan, unit.name)
            if unit.kind == "attn_qk":
                pv = unit_spec(plan, f"{unit.module_name}.pv")
                if spec != FLOAT32 or pv != FLOAT32:
                    add(Term(self._shape_of[unit.name], spec, pv))
            elif spec != FLOAT32:
                add(Term(self._shape_of[unit.name], spec))
        for mlp in fused:
            fc1, fc2 = f"{mlp}.fc1", f"{mlp}.fc2"
            add(Term(self._shape_of[fc1], unit_spec(plan, fc1), unit_spec(plan, fc2),
                     self._shape_of[fc2]))
        return found
