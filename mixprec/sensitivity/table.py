"""SensitivityTable: unit x candidate -> expected error increase, with provenance."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mixprec.quant.plan import Plan
from mixprec.quant.spec import QuantSpec
from mixprec.quant.units import UnitList

TABLE_VERSION = 1


@dataclass(frozen=True)
class SensitivityTable:
    """Expected error increase of every (unit, candidate) pair, for one model.

    Scores are additive: the predicted error of a plan is the sum of its units' scores
    (an all-float spec costs 0). Their unit depends on the method (a noise-to-signal power
    ratio for the SQNR methods, nats of KL for the gradient methods); only their order and
    sums are meaningful across units.

    Attributes:
        method: the estimator's registry name.
        model_id: fingerprint of the model's architecture (``UnitList.model_id``).
        units: unit names, in execution order (rows).
        candidates: the candidate specs (columns).
        scores: ``scores[i][j]`` for unit ``units[i]`` under ``candidates[j]``.
        token_scores: unit -> candidate label -> per-token scores (patch-wise methods only).
        provenance: calibration hash, seed, weights digest, library versions, settings.
    """

    method: str
    model_id: str
    units: tuple[str, ...]
    candidates: tuple[QuantSpec, ...]
    scores: tuple[tuple[float, ...], ...]
    token_scores: Mapping[str, Mapping[str, tuple[float, ...]]] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)
    version: int = TABLE_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "units", tuple(self.units))
        object.__setattr__(self, "candidates", tuple(self.candidates))
        object.__setattr__(self, "scores", tuple(tuple(float(v) for v in row)
                                                 for row in self.scores))
        if self.version != TABLE_VERSION:
            raise ValueError(f"table version {self.version}: this mixprec reads {TABLE_VERSION}")
        labels = self.labels
        if len(set(labels)) != len(labels):
            raise ValueError(f"candidate labels are not unique: {labels}")
        if len(self.scores) != len(self.units):
            raise ValueError(f"{len(self.scores)} score rows for {len(self.units)} units")
        for name, row in zip(self.units, self.scores):
            if len(row) != len(self.candidates):
                raise ValueError(f"unit {name!r}: {len(row)} scores for "
                                 f"{len(self.candidates)} candidates")
            for label, value in zip(labels, row):
                if not math.isfinite(value):
                    raise ValueError(f"unit {name!r}, candidate {label}: score {value} is "
                                     "not finite")

    @property
    def labels(self) -> list[str]:
        """Candidate labels, in column order."""
        return [c.label for c in self.candidates]

    def score(self, unit: str, spec: QuantSpec) -> float:
        """Expected error increase of ``unit`` under ``spec`` (0 for an all-float spec).

        Raises:
            KeyError: the unit is not in the table, or the spec is not a candidate.
        """
        try:
            row = self.units.index(unit)
        except ValueError:
            raise KeyError(f"unit {unit!r} is not in the sensitivity table") from None
        if spec.is_float:
            return 0.0
        try:
            col = self.candidates.index(spec)
        except ValueError:
            raise KeyError(f"unit {unit!r}: spec {spec.label} is not a candidate of this "
                           f"table (candidates: {self.labels})") from None
        return self.scores[row][col]

    def as_dict(self) -> dict[str, dict[str, float]]:
        """Mapping unit -> candidate label -> score."""
        return {u: dict(zip(self.labels, row)) for u, row in zip(self.units, self.scores)}

    def predict(self, plan: Plan) -> float:
        """Sum of the plan's expected error over its units.

        Raises:
            ValueError: the plan is for another model.
            KeyError: a unit is not in the table, or its spec is not a candidate (named).
        """
        if plan.model_id and plan.model_id != self.model_id:
            raise ValueError(f"sensitivity table was computed for model {self.model_id!r}, "
                             f"the plan is for {plan.model_id!r}")
        return float(sum(self.score(name, spec) for name, spec in plan.specs))

    def check(self, units: UnitList | Sequence[Any] | None = None,
              candidates: Iterable[QuantSpec] | None = None,
              weights_digest: str | None = None) -> None:
        """Refuse use with a model or candidate set the table was not computed for.

        Args:
            units: the model's units (their ``model_id`` and names must match).
            candidates: the candidate set (the same specs, in any order).
            weights_digest: digest of the model's weights (see ``estimate.weights_digest``).

        Raises:
            ValueError: saying what differs.
        """
        if units is not None:
            model_id = getattr(units, "model_id", "")
            if model_id and model_id != self.model_id:
                raise ValueError(f"sensitivity table was computed for model {self.model_id!r},"
                                 f" not for this model {model_id!r}")
            names = tuple(getattr(u, "name", u) for u in units)
            if names != self.units:
                missing = sorted(set(names) - set(self.units))
                extra = sorted(set(self.units) - set(names))
                raise ValueError("sensitivity table units differ from this model's: "
                                 f"missing {missing[:5]}, unknown {extra[:5]}")
        if candidates is not None:
            wanted = {c.label for c in candidates}
            if wanted != set(self.labels):
                raise ValueError("sensitivity table was computed for candidates "
                                 f"{sorted(self.labels)}, not {sorted(wanted)}")
        known = self.provenance.get("weights_digest")
        if weights_digest is not None and known and known != weights_digest:
            raise ValueError(f"sensitivity table was computed for weights {known}, this model "
                             f"has weights {weights_digest} (same architecture, other model)")

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return {
            "version": self.version,
            "method": self.method,
            "model_id": self.model_id,
            "units": list(self.units),
            "candidates": [c.to_dict() for c in self.candidates],
            "labels": self.labels,
            "scores": [list(row) for row in self.scores],
            "token_scores": {u: {lab: list(v) for lab, v in by.items()}
                             for u, by in self.token_scores.items()},
            "provenance": dict(self.provenance),
        }

    def to_json(self, indent: int | None = 1) -> str:
        """JSON text; the same inputs give the same bytes (no wall-clock field)."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SensitivityTable:
        """Inverse of :meth:`to_dict`."""
        version = data.get("version", TABLE_VERSION)
        if version != TABLE_VERSION:
            raise ValueError(f"table version {version}: this mixprec reads {TABLE_VERSION}")
        token_scores = {u: {lab: tuple(v) for lab, v in by.items()}
                        for u, by in data.get("token_scores", {}).items()}
        return cls(data["method"], data["model_id"], tuple(data["units"]),
                   tuple(QuantSpec.from_dict(c) for c in data["candidates"]),
                   tuple(tuple(r) for r in data["scores"]), token_scores,
                   dict(data.get("provenance", {})))

    @classmethod
    def from_json(cls, text: str) -> SensitivityTable:
        """Parse :meth:`to_json` output."""
        return cls.from_dict(json.loads(text))

    def save(self, path: str) -> None:
        """Write :meth:`to_json` to ``path``."""
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(self.to_json())
            fh.write("\n")


def load_table(path: str) -> SensitivityTable:
    """Read a table written by :meth:`SensitivityTable.save`."""
    with open(path, encoding="utf-8") as fh:
        return SensitivityTable.from_json(fh.read())
