"""The search problem: one spec per unit, an additive predicted error, and a latency made of
per-unit times plus pairwise terms (attention's (QK, PV) pairs, fc1 -> fc2 transitions)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mixprec.cost_models.table import FLOAT32, LatencyTable, ShapeKey
from mixprec.kernels.cpu.nupes import stored_code_bits
from mixprec.quant.plan import Plan
from mixprec.quant.spec import FLOAT_BITS, QuantSpec
from mixprec.quant.units import Unit, UnitList
from mixprec.sensitivity.table import SensitivityTable

Choice = tuple[int, ...]
"""The option index of every unit of a problem, in unit order."""


@dataclass(frozen=True)
class PairCost:
    """Latency that depends on the options of two units together.

    Attributes:
        first: index of the first unit.
        second: index of the second unit.
        ms: ``ms[a][b]``: the time when ``first`` takes option ``a`` and ``second`` option
            ``b``; ``math.inf`` marks a combination that cannot run.
    """

    first: int
    second: int
    ms: tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class SearchProblem:
    """Every unit's options and what each costs.

    Attributes:
        units: unit names, in execution order.
        options: ``options[i]``: the specs unit ``i`` may take.
        error: ``error[i][a]``: predicted error increase of unit ``i`` under option ``a``.
        latency: ``latency[i][a]``: its own time (ms); attention's is in ``pairs``.
        size_mb: ``size_mb[i][a]``: its weights' storage (MB).
        gbops: ``gbops[i][a]``: its bit operations per image (GBOPs).
        pairs: latencies of unit pairs.
        ties: unit index pairs that must take the same spec.
        fixed_ms: latency outside the units (the table's remainder).
        fixed_mb: storage outside the units (the parameters left in float32).
        model_id: the model's fingerprint (plans carry it).
        input_shape: per-image input shape (plans carry it).
    """

    units: tuple[str, ...]
    options: tuple[tuple[QuantSpec, ...], ...]
    error: tuple[tuple[float, ...], ...]
    latency: tuple[tuple[float, ...], ...]
    size_mb: tuple[tuple[float, ...], ...]
    gbops: tuple[tuple[float, ...], ...]
    pairs: tuple[PairCost, ...] = ()
    ties: tuple[tuple[int, int], ...] = ()
    fixed_ms: float = 0.0
    fixed_mb: float = 0.0
    model_id: str = ""
    input_shape: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        count = len(self.units)
        for field_name in ("options", "error", "latency", "size_mb", "gbops"):
            rows = getattr(self, field_name)
            if len(rows) != count or any(len(r) != len(o) for r, o in zip(rows, self.options)):
                raise ValueError(f"search problem: {field_name} does not have one value per "
                                 "unit and option")
        for i, options in enumerate(self.options):
            if not options:
                raise ValueError(f"unit {self.units[i]!r} has no option to choose from")
        for pair in self.pairs:
            shape = (len(self.options[pair.first]), len(self.options[pair.second]))
            if (len(pair.ms), len(pair.ms[0]) if pair.ms else 0) != shape:
                raise ValueError(f"pair ({self.units[pair.first]}, {self.units[pair.second]}):"
                                 f" its latency matrix is not {shape[0]} x {shape[1]}")

    # ---- evaluating a choice ----------------------------------------------------------------

    def latency_of(self, choice: Choice) -> float:
        """Predicted latency (ms) of a choice (inf when a pair cannot run)."""
        own = sum(row[a] for row, a in zip(self.latency, choice))
        paired = sum(p.ms[choice[p.first]][choice[p.second]] for p in self.pairs)
        return self.fixed_ms + own + paired

    def error_of(self, choice: Choice) -> float:
        """Predicted error of a choice (the sum of its units')."""
        return float(sum(row[a] for row, a in zip(self.error, choice)))

    def size_of(self, choice: Choice) -> float:
        """Model storage (MB) of a choice."""
        return self.fixed_mb + sum(row[a] for row, a in zip(self.size_mb, choice))

    def gbops_of(self, choice: Choice) -> float:
        """Bit operations per image (GBOPs) of a choice."""
        return float(sum(row[a] for row, a in zip(self.gbops, choice)))

    def allows(self, choice: Choice) -> bool:
        """Whether a choice keeps every tie and runs every pair."""
        tied = all(self.options[i][choice[i]] == self.options[j][choice[j]]
                   for i, j in self.ties)
        return tied and math.isfinite(self.latency_of(choice))

    def plan(self, choice: Choice) -> Plan:
        """The plan of a choice."""
        return Plan(tuple((name, opts[a]) for name, opts, a in
                          zip(self.units, self.options, choice)),
                    self.model_id, self.input_shape)

    def choice_of(self, plan: Plan) -> Choice:
        """The choice of a plan (every unit's spec must be one of its options)."""
        found = []
        for name, options in zip(self.units, self.options):
            spec = plan[name]
            if spec not in options:
                raise ValueError(f"unit {name!r}: {spec.label} is not one of its options "
                                 f"({[o.label for o in options]})")
            found.append(options.index(spec))
        return tuple(found)

    # ---- plain data (a study stores its problem so that workers elsewhere rebuild it) ---------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (infinite pair latencies as None)."""
        return {"units": list(self.units),
                "options": [[s.to_dict() for s in row] for row in self.options],
                "error": self.error, "latency": self.latency, "size_mb": self.size_mb,
                "gbops": self.gbops, "ties": self.ties, "fixed_ms": self.fixed_ms,
                "fixed_mb": self.fixed_mb, "model_id": self.model_id,
                "input_shape": self.input_shape,
                "pairs": [{"first": p.first, "second": p.second,
                           "ms": [[v if math.isfinite(v) else None for v in row]
                                  for row in p.ms]} for p in self.pairs]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchProblem:
        """The problem :meth:`to_dict` wrote."""
        def rows(key: str) -> tuple[tuple[float, ...], ...]:
            return tuple(tuple(float(v) for v in row) for row in data[key])

        pairs = tuple(PairCost(p["first"], p["second"],
                               tuple(tuple(math.inf if v is None else float(v) for v in row)
                                     for row in p["ms"])) for p in data["pairs"])
        return cls(tuple(data["units"]),
                   tuple(tuple(QuantSpec.from_dict(s) for s in row) for row in data["options"]),
                   rows("error"), rows("latency"), rows("size_mb"), rows("gbops"), pairs,
                   tuple((int(i), int(j)) for i, j in data["ties"]), float(data["fixed_ms"]),
                   float(data["fixed_mb"]), data["model_id"], tuple(data["input_shape"]))


def build_problem(units: UnitList | Sequence[Unit], latency: LatencyTable,
                  sensitivity: SensitivityTable, candidates: Sequence[QuantSpec] | None = None,
                  ties: Sequence[tuple[str, str]] = (), other_params: int = 0
                  ) -> SearchProblem:
    """The search problem of ``units`` on ``latency``'s device.

    A unit's options are the candidates (default: the latency table's) that both tables
    cover for it; float32 is always among them.

    Args:
        units: the model's units.
        latency: the device's latency table.
        sensitivity: the predicted error of every unit under the (non-float) candidates.
        candidates: restrict the options to these specs.
        ties: unit name pairs that must take the same spec.
        other_params: parameters outside the units (stored in float32).

    Raises:
        ValueError: a unit left with no option, an unknown unit in ``ties``.
    """
    model_id = getattr(units, "model_id", "") or latency.model_id
    input_shape = tuple(getattr(units, "input_shape", ()))
    units = list(units)
    index = {u.name: i for i, u in enumerate(units)}
    options = [_options(u, latency, sensitivity, candidates) for u in units]
    pairs = _attention_pairs(units, index, options, latency) + \
        _transition_pairs(units, index, options, latency)
    for a, b in ties:
        for name in (a, b):
            if name not in index:
                raise ValueError(f"tie ({a}, {b}): no unit named {name!r}")
    attention = {u.name for u in units if u.is_attention}
    return SearchProblem(
        units=tuple(u.name for u in units),
        options=tuple(tuple(o) for o in options),
        error=tuple(tuple(sensitivity.score(u.name, s) for s in o)
                    for u, o in zip(units, options)),
        latency=tuple(tuple(0.0 if u.name in attention else
                            latency.entry(ShapeKey.of(u), s, unit=u.name).ms for s in o)
                      for u, o in zip(units, options)),
        size_mb=tuple(tuple(u.params * stored_bits(s) / 8e6 for s in o)
                      for u, o in zip(units, options)),
        gbops=tuple(tuple(u.macs * math.prod(operand_bits(u, s)) / 1e9 for s in o)
                    for u, o in zip(units, options)),
        pairs=tuple(pairs),
        ties=tuple((index[a], index[b]) for a, b in ties),
        fixed_ms=latency.remainder_ms,
        fixed_mb=other_params * 4 / 1e6,
        model_id=model_id,
        input_shape=input_shape,
    )


SCALE_BITS = 32
"""Bits a per-group weight scale (and an affine group's zero point) is counted at."""


def stored_bits(spec: QuantSpec) -> float:
    """Bits per stored weight under ``spec``: float32 32, bf16/fp16 16; a quantized weight's
    code (NUPES codes as packed: up to 4 bits in a nibble, wider ones in a byte) plus its
    share of per-group scales (per-channel and per-tensor scales are a negligible share)."""
    if not spec.quantizes_weights:
        return 32 if spec.float_dtype == "float32" else 16
    bits: float = (stored_code_bits(spec.weight_bits) if spec.weight_format == "nupes"
                   else spec.weight_bits)
    if spec.weight_granularity == "per_group":
        assert spec.group_size is not None
        per_group = SCALE_BITS * (1 if spec.weight_symmetric else 2)
        bits += per_group / spec.group_size
    return bits


def operand_bits(unit: Unit, spec: QuantSpec) -> tuple[float, float]:
    """Bits of the two operands of ``unit``'s multiplications under ``spec`` (BOPs count
    both; both operands of an attention matmul are activations; a token split's
    activations average over its two groups, float tokens at the float width)."""
    float_bits = 32 if spec.float_dtype == "float32" else 16
    act: float = spec.act_bits if spec.act_mode != "none" else float_bits
    split = spec.token_split
    if split is not None:
        high = float_bits if split.high_bits >= FLOAT_BITS else split.high_bits
        act = (1 - split.fraction) * act + split.fraction * high
    if unit.is_attention:
        return act, act
    return (spec.weight_bits if spec.quantizes_weights else float_bits), act


def _options(unit: Unit, latency: LatencyTable, sensitivity: SensitivityTable,
             candidates: Sequence[QuantSpec] | None) -> list[QuantSpec]:
    have = latency.candidates(unit.kind)
    wanted = have if candidates is None else [s for s in candidates if s in have]
    scored = set(sensitivity.candidates)
    options = [s for s in wanted if s.is_float or s in scored]
    if FLOAT32 not in options:
        options.insert(0, FLOAT32)
    return options


def _attention_pairs(units: list[Unit], index: dict[str, int], options: list[list[QuantSpec]],
                     latency: LatencyTable) -> list[PairCost]:
    pairs = []
    for unit in units:
        if unit.kind != "attn_qk":
            continue
        pv = index.get(unit.name[: -len(".qk")] + ".pv")
        if pv is None:
            continue
        qk, shape = index[unit.name], ShapeKey.of(unit)
        ms = tuple(tuple(_pair_ms(latency, shape, a, b) for b in options[pv])
                   for a in options[qk])
        pairs.append(PairCost(qk, pv, ms))
    return pairs


def _pair_ms(latency: LatencyTable, shape: ShapeKey, a: QuantSpec, b: QuantSpec) -> float:
    try:
        return latency.entry(shape, a, b).ms
    except KeyError:
        return math.inf


def _transition_pairs(units: list[Unit], index: dict[str, int],
                      options: list[list[QuantSpec]], latency: LatencyTable) -> list[PairCost]:
    pairs = []
    for producer, consumer in latency.chains:
        if producer not in index or consumer not in index:
            continue
        i, j = index[producer], index[consumer]
        shapes = (ShapeKey.of(units[i]), ShapeKey.of(units[j]))
        costs = {(t.producer_spec, t.consumer_spec): t.ms for t in latency.transitions
                 if (t.producer, t.consumer) == shapes}
        ms = tuple(tuple(costs.get((a, b), 0.0) for b in options[j]) for a in options[i])
        if any(any(row) for row in ms):
            pairs.append(PairCost(i, j, ms))
    return pairs
