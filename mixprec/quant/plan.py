"""Plan: unit name -> QuantSpec for one model, frozen and JSON round-trip."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from mixprec.quant.spec import QuantSpec
from mixprec.quant.units import Unit, UnitList

PLAN_VERSION = 1


@dataclass(frozen=True)
class Plan:
    """An ordered mapping unit name -> :class:`QuantSpec`, for one model and input shape.

    Attributes:
        specs: (unit name, spec) pairs in execution order.
        model_id: fingerprint of the model the plan is for ("" = not pinned).
        input_shape: per-image input shape (empty = not pinned).
    """

    specs: tuple[tuple[str, QuantSpec], ...]
    model_id: str = ""
    input_shape: tuple[int, ...] = field(default=())
    version: int = PLAN_VERSION

    def __post_init__(self) -> None:
        if isinstance(self.specs, Mapping):
            object.__setattr__(self, "specs", tuple(self.specs.items()))
        object.__setattr__(self, "specs", tuple(tuple(p) for p in self.specs))
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        if self.version != PLAN_VERSION:
            raise ValueError(f"plan version {self.version}: this mixprec reads {PLAN_VERSION}")
        seen = set()
        for name, spec in self.specs:
            if not isinstance(spec, QuantSpec):
                raise TypeError(f"unit {name!r}: spec must be a QuantSpec, got "
                                f"{type(spec).__name__}")
            if name in seen:
                raise ValueError(f"unit {name!r} appears twice in the plan")
            seen.add(name)

    @classmethod
    def uniform(cls, units: Iterable[Unit], spec: QuantSpec) -> Plan:
        """The same spec for every unit (model id and input shape taken from a UnitList)."""
        units = list(units) if not isinstance(units, UnitList) else units
        return cls(tuple((u.name, spec) for u in units),
                   model_id=getattr(units, "model_id", ""),
                   input_shape=getattr(units, "input_shape", ()))

    def replace(self, changes: Mapping[str, QuantSpec]) -> Plan:
        """A new plan with some units' specs changed; unknown names are an error."""
        unknown = sorted(set(changes) - set(self.names))
        if unknown:
            raise KeyError(f"units not in the plan: {unknown}")
        specs = tuple((n, changes.get(n, s)) for n, s in self.specs)
        return Plan(specs, self.model_id, self.input_shape)

    @property
    def names(self) -> list[str]:
        """Unit names in order."""
        return [n for n, _ in self.specs]

    def as_dict(self) -> dict[str, QuantSpec]:
        """Mapping unit name -> spec."""
        return dict(self.specs)

    def __getitem__(self, name: str) -> QuantSpec:
        for n, s in self.specs:
            if n == name:
                return s
        raise KeyError(f"unit {name!r} is not in the plan")

    def __contains__(self, name: object) -> bool:
        return any(n == name for n, _ in self.specs)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.specs)

    def check_against(self, units: UnitList) -> list[str]:
        """Check the plan fits a model's units; return the units it leaves uncovered.

        Raises:
            ValueError: the plan is for another model or input shape, names units the model
                does not have, or gives a spec the unit cannot take.
        """
        if self.model_id and units.model_id and self.model_id != units.model_id:
            raise ValueError(f"plan is for model {self.model_id!r}, this model is "
                             f"{units.model_id!r}")
        if self.input_shape and units.input_shape and self.input_shape != units.input_shape:
            raise ValueError(f"plan is for input shape {self.input_shape}, the data has "
                             f"{units.input_shape}")
        by_name = units.by_name()
        unknown = [n for n in self.names if n not in by_name]
        if unknown:
            raise ValueError(f"plan names {len(unknown)} unit(s) this model does not have: "
                             f"{unknown[:5]}")
        for name, spec in self.specs:
            if spec.token_split is not None and by_name[name].kind != "linear":
                raise ValueError(f"unit {name!r}: token_split is only supported on linear "
                                 f"units, not {by_name[name].kind}")
        return [u.name for u in units if u.name not in self]

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return {"version": self.version, "model_id": self.model_id,
                "input_shape": list(self.input_shape),
                "specs": {n: s.to_dict() for n, s in self.specs}}

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text (stable key order)."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        """Inverse of :meth:`to_dict`; a bad spec is an error naming its unit and field."""
        version = data.get("version", PLAN_VERSION)
        if version != PLAN_VERSION:
            raise ValueError(f"plan version {version}: this mixprec reads {PLAN_VERSION}")
        specs = []
        for name, raw in data["specs"].items():
            try:
                specs.append((name, QuantSpec.from_dict(raw)))
            except (TypeError, ValueError) as err:
                raise ValueError(f"unit {name!r}: {err}") from err
        return cls(tuple(specs), data.get("model_id", ""), tuple(data.get("input_shape", ())))

    @classmethod
    def from_json(cls, text: str) -> Plan:
        """Parse :meth:`to_json` output."""
        return cls.from_dict(json.loads(text))


def load_plan(path: str) -> Plan:
    """Read a plan from a JSON file."""
    with open(path, encoding="utf-8") as fh:
        return Plan.from_json(fh.read())
