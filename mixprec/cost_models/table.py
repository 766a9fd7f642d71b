"""LatencyTable: what each (unit shape, spec) costs on one device, runtime, batch and thread
count, for one model, with provenance; JSON on disk (schema and checksum checked) and a CSV
view.

A table predicts a plan's end-to-end latency as

    remainder + sum of its units' entries + its transitions

* an **entry** is one unit's time (ms per unit, at the table's batch) for a spec; attention
  modules have one entry per (QKᵀ spec, PV spec) pair, since their two matmuls run as one
  kernel (fused SDPA) or one sequence of kernels;
* a **transition** is the cost (negative: the saving) of a producer -> consumer pair of units
  when both take given specs (e.g. a static int8 fc1 -> fc2 chain that stays integer);
* the **remainder** is everything else the model runs (LayerNorm, softmax, GELU, residual
  adds, reshapes, the runtime's per-call overhead), in ms.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixprec.cost_models.fidelity import Fidelity
from mixprec.files import write_atomic
from mixprec.quant.modules import is_identity_spec
from mixprec.quant.plan import Plan
from mixprec.quant.spec import QuantSpec
from mixprec.quant.units import Unit

SCHEMA = "mixprec.latency_table"
TABLE_VERSION = 1
ATTENTION = "attention"
"""Entry kind of an attention module (its QKᵀ and PV matmuls together)."""
SOURCES = ("measured", "analytic")
FLOAT32 = QuantSpec(weight_bits=16, act_bits=16, act_mode="none")


class LatencyTableError(ValueError):
    """A latency table file that cannot be used (corrupt, truncated, foreign schema)."""


class ForeignMachineWarning(UserWarning):
    """A table measured on another machine (or with other library versions) is in use."""


class NoisyTableWarning(UserWarning):
    """A measured table whose times contradict each other (a busy machine while timing, or a
    unit that runs at another speed alone than in the model): plans ranked by it may not run
    in that order."""


IMPOSSIBLE_ENTRY_FRACTION = 0.05
"""A measured entry below minus this fraction of the float32 model's time is not noise a
ranking survives (an entry is a median difference of two whole-model timings)."""


@dataclass(frozen=True)
class ShapeKey:
    """What an entry is keyed by besides its specs: the unit kind and GEMM dims per image.

    Attributes:
        kind: ``linear``, ``conv_gemm`` or ``attention``.
        m: rows per image (tokens); for attention the QKᵀ matmul's dims.
        k: reduction dimension.
        n: output columns.
        groups: GEMMs of this shape per image (heads x windows for attention).
    """

    kind: str
    m: int
    k: int
    n: int
    groups: int = 1

    @classmethod
    def of(cls, unit: Unit) -> ShapeKey:
        """The key of a weight unit, or of the attention module of a QKᵀ / PV unit (from
        the QKᵀ unit's dims)."""
        if unit.is_attention:
            return cls(ATTENTION, unit.m, unit.k, unit.n, unit.groups)
        return cls(unit.kind, unit.m, unit.k, unit.n, unit.groups)

    def to_list(self) -> list:
        """Plain-data form: ``[kind, m, k, n, groups]``."""
        return [self.kind, self.m, self.k, self.n, self.groups]

    @classmethod
    def from_list(cls, data: list) -> ShapeKey:
        """Inverse of :meth:`to_list`."""
        return cls(str(data[0]), *(int(v) for v in data[1:]))

    @property
    def label(self) -> str:
        """Short text form, e.g. ``linear 197x384x1152``."""
        dims = f"{self.m}x{self.k}x{self.n}" + (f"x{self.groups}" if self.groups > 1 else "")
        return f"{self.kind} {dims}"


@dataclass(frozen=True)
class Entry:
    """One unit's time under one spec (attention: a (QKᵀ, PV) spec pair).

    Attributes:
        shape: the unit's shape key.
        spec: its spec (attention: the QKᵀ spec).
        ms: time per unit at the table's batch, in milliseconds.
        kernel: the kernel that runs it.
        spread_ms: the spread of the repeats (interquartile range; 0 for analytic entries).
        spec2: attention only: the PV spec.
    """

    shape: ShapeKey
    spec: QuantSpec
    ms: float
    kernel: str = ""
    spread_ms: float = 0.0
    spec2: QuantSpec | None = None

    @property
    def key(self) -> tuple:
        """(shape, spec, spec2): the lookup key."""
        return (self.shape, self.spec, self.spec2)


@dataclass(frozen=True)
class Transition:
    """The extra time (negative: the saving) of a producer -> consumer unit pair whose specs
    are ``producer_spec`` and ``consumer_spec``, per pair, in ms."""

    producer: ShapeKey
    consumer: ShapeKey
    producer_spec: QuantSpec
    consumer_spec: QuantSpec
    ms: float
    kind: str = "chain"


@dataclass(frozen=True)
class LatencyTable:
    """Per-unit latencies of one model on one device, runtime, batch and thread count.

    Attributes:
        device: ``cpu`` (measured on the machine named in the provenance), ``a100``, ``a15``.
        runtime: ``torch``, ``onnxruntime`` or ``openvino``.
        batch: images per call.
        threads: CPU threads (0 for a GPU).
        model_id: the model's architecture fingerprint (``UnitList.model_id``).
        units: the model's units, in execution order (names map plans onto entries).
        entries: the per-unit times.
        remainder_ms: the time of everything that is not a unit.
        transitions: costs of specific spec pairs on producer -> consumer unit pairs.
        chains: (producer unit, consumer unit) name pairs that transitions apply to.
        provenance: ``source`` (measured | analytic), machine fingerprint or device spec
            figures with citations, library versions, date, method.
    """

    device: str
    runtime: str
    batch: int
    threads: int
    model_id: str
    units: tuple[Unit, ...]
    entries: tuple[Entry, ...]
    remainder_ms: float
    transitions: tuple[Transition, ...] = ()
    chains: tuple[tuple[str, str], ...] = ()
    provenance: Mapping[str, Any] = field(default_factory=dict)
    version: int = TABLE_VERSION

    def __post_init__(self) -> None:
        for name in ("units", "entries", "transitions"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "chains", tuple(tuple(c) for c in self.chains))
        if self.version != TABLE_VERSION:
            raise LatencyTableError(f"latency table version {self.version}: this mixprec "
                                    f"reads {TABLE_VERSION}")
        if self.provenance.get("source") not in SOURCES:
            raise LatencyTableError(f"provenance source must be one of {SOURCES}, got "
                                    f"{self.provenance.get('source')!r}")
        for entry in self.entries:
            if not math.isfinite(entry.ms):
                raise LatencyTableError(f"{entry.shape.label} {entry.spec.label}: time "
                                        f"{entry.ms} is not finite")
        keys = [e.key for e in self.entries]
        if len(set(keys)) != len(keys):
            raise LatencyTableError("latency table has duplicate entries")
        object.__setattr__(self, "_index", {e.key: e for e in self.entries})
        object.__setattr__(self, "_attention_shapes", {
            u.module_name: ShapeKey.of(u) for u in self.units if u.kind == "attn_qk"})

    @property
    def source(self) -> str:
        """``measured`` or ``analytic``."""
        return str(self.provenance["source"])

    @property
    def fidelity(self) -> Fidelity | None:
        """The table's figures on plans held out of its fit (None: analytic, or measured
        without them)."""
        found = self.provenance.get("fidelity")
        return Fidelity.from_dict(found) if found else None

    @property
    def trusted(self) -> bool:
        """Whether a measured table met its fidelity target on its held-out plans (analytic
        tables: False; they say what they rest on instead)."""
        return bool(self.provenance.get("trusted", False))

    def trust_summary(self) -> str:
        """One line on how far to trust the table, for CLI output and reports."""
        if self.source == "analytic":
            model = self.provenance.get("device_model", {})
            return (f"analytic (roofline from spec-sheet figures of "
                    f"{model.get('description', self.device)}; not measured)")
        where = f"measured {self.provenance.get('date', '')} on {self.provenance.get('cpu_key')}"
        found = self.fidelity
        if found is None:
            return f"{where}; no held-out plans: its predictions are unchecked"
        verdict = "meets its target" if self.trusted else "BELOW its target"
        return f"{where}; {found.summary()}: {verdict}"

    def rescaled(self, factor: float) -> LatencyTable:
        """The table at another speed of the machine: every time times ``factor`` (a noisy
        machine's speed drifts, by up to 1.8x for tens of minutes on the VMs seen here,
        while its plans' ratios hold; :func:`~mixprec.cost_models.speed_factor` measures
        the factor)."""
        if not (factor > 0 and math.isfinite(factor)):
            raise ValueError(f"a table is rescaled by a positive factor, got {factor}")
        entries = tuple(dataclasses.replace(e, ms=e.ms * factor, spread_ms=e.spread_ms * factor)
                        for e in self.entries)
        transitions = tuple(dataclasses.replace(t, ms=t.ms * factor) for t in self.transitions)
        provenance = dict(self.provenance)
        if "float32_model_ms" in provenance:
            provenance["float32_model_ms"] = provenance["float32_model_ms"] * factor
        provenance["rescaled_by"] = provenance.get("rescaled_by", 1.0) * factor
        return dataclasses.replace(self, entries=entries, transitions=transitions,
                                   remainder_ms=self.remainder_ms * factor,
                                   provenance=provenance)

    def candidates(self, kind: str | None = None) -> list[QuantSpec]:
        """The specs the table covers for units of ``kind`` (``linear``, ``conv_gemm``,
        ``attn_qk``, ``attn_pv``); None: the specs it covers for every unit of the model."""
        kinds = [kind] if kind is not None else sorted({u.kind for u in self.units})
        covered: list[QuantSpec] | None = None
        for unit_kind in kinds:
            units = [u for u in self.units if u.kind == unit_kind]
            specs = [s for s in self._specs_for(unit_kind)
                     if all(self._covers(u, s) for u in units)]
            covered = specs if covered is None else [s for s in covered if s in specs]
        return covered or []

    def _specs_for(self, kind: str) -> list[QuantSpec]:
        found: list[QuantSpec] = []
        for entry in self.entries:
            if kind == "attn_pv" and entry.shape.kind == ATTENTION:
                spec = entry.spec2
            elif entry.shape.kind == (ATTENTION if kind == "attn_qk" else kind):
                spec = entry.spec
            else:
                continue
            if spec is not None and spec not in found:
                found.append(spec)
        return found

    def _covers(self, unit: Unit, spec: QuantSpec) -> bool:
        if not unit.is_attention:
            return (ShapeKey.of(unit), spec, None) in self._index  # type: ignore[attr-defined]
        shape = self._attention_shapes[unit.module_name]  # type: ignore[attr-defined]
        pairs = [(e.spec, e.spec2) for e in self.entries if e.shape == shape]
        side = 0 if unit.kind == "attn_qk" else 1
        return any(pair[side] == spec for pair in pairs)

    def entry(self, shape: ShapeKey, spec: QuantSpec, spec2: QuantSpec | None = None,
              unit: str = "") -> Entry:
        """The entry for ``shape`` under ``spec`` (attention: and ``spec2``).

        Raises:
            KeyError: the table does not cover it (naming the unit, the spec and what it has).
        """
        found = self._index.get((shape, spec, spec2))  # type: ignore[attr-defined]
        if found is None:
            what = spec.label + (f" / {spec2.label}" if spec2 is not None else "")
            have = sorted({e.spec.label + (f" / {e.spec2.label}" if e.spec2 else "")
                           for e in self.entries if e.shape == shape})
            raise KeyError(f"{unit or shape.label}: the latency table has no entry for {what} "
                           f"(it has: {have or 'nothing for this shape'})")
        return found

    def unit_times(self, plan: Plan) -> dict[str, float]:
        """Unit (attention: module) name -> its entry's time under ``plan`` (units the plan
        does not name run in float32)."""
        times: dict[str, float] = {}
        attention: dict[str, dict[str, QuantSpec]] = {}
        for unit in self.units:
            spec = _spec_in(plan, unit.name)
            if unit.is_attention:
                attention.setdefault(unit.module_name, {})[unit.kind] = spec
                continue
            times[unit.name] = self.entry(ShapeKey.of(unit), spec, unit=unit.name).ms
        for unit in self.units:
            if unit.kind == "attn_qk":
                specs = attention[unit.module_name]
                times[unit.module_name] = self.entry(
                    ShapeKey.of(unit), specs["attn_qk"], specs.get("attn_pv", FLOAT32),
                    unit=unit.module_name).ms
        return times

    def transition_times(self, plan: Plan) -> dict[tuple[str, str], float]:
        """(producer, consumer) -> the transition cost that ``plan`` incurs there."""
        by_name = {u.name: u for u in self.units}
        costs = {}
        for producer, consumer in self.chains:
            a, b = _spec_in(plan, producer), _spec_in(plan, consumer)
            pa, pb = ShapeKey.of(by_name[producer]), ShapeKey.of(by_name[consumer])
            for t in self.transitions:
                if (t.producer, t.consumer, t.producer_spec, t.consumer_spec) == (pa, pb, a, b):
                    costs[(producer, consumer)] = t.ms
        return costs

    def check_plan(self, plan: Plan) -> None:
        """Refuse a plan for another model (by model id)."""
        if plan.model_id and self.model_id and plan.model_id != self.model_id:
            raise ValueError(f"latency table is for model {self.model_id!r}, the plan is for "
                             f"{plan.model_id!r}")

    def check_machine(self, strict: bool = False) -> None:
        """Warn (``strict``: raise) when a table measured on a CPU is used on a machine with
        another fingerprint or other library versions."""
        if self.source != "measured" or self.device != "cpu":
            return
        from mixprec.kernels.cpu.capabilities import cpu_fingerprint

        here = cpu_fingerprint(threads=self.threads).key
        theirs = self.provenance.get("cpu_key")
        if theirs == here:
            return
        message = (f"latency table measured on CPU {theirs} ({self.provenance.get('cpu', '?')}"
                   f"), this machine is {here}: its times may not hold here; measure one with "
                   f"`mixprec measure`")
        if strict:
            raise ValueError(message)
        warnings.warn(message, ForeignMachineWarning, stacklevel=2)

    def inconsistencies(self) -> list[str]:
        """What in a measured table no real timing can give: a negative remainder (the float
        model ran faster than its float units alone) and entries far below zero (below
        :data:`IMPOSSIBLE_ENTRY_FRACTION` of the float32 model). Empty for analytic tables."""
        if self.source != "measured":
            return []
        found = []
        if self.remainder_ms < 0:
            found.append(f"remainder {self.remainder_ms:.3f} ms < 0")
        model_ms = self.provenance.get("float32_model_ms")
        if model_ms:
            floor = -IMPOSSIBLE_ENTRY_FRACTION * float(model_ms)
            found += [f"{e.shape.label} {e.spec.label}: {e.ms:.3f} ms"
                      for e in self.entries if e.ms < floor]
        return found

    # ---- serialisation -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return {
            "version": self.version, "device": self.device, "runtime": self.runtime,
            "batch": self.batch, "threads": self.threads, "model_id": self.model_id,
            "units": [u.to_dict() for u in self.units],
            "entries": [_entry_dict(e) for e in self.entries],
            "remainder_ms": self.remainder_ms,
            "transitions": [_transition_dict(t) for t in self.transitions],
            "chains": [list(c) for c in self.chains],
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyTable:
        """Inverse of :meth:`to_dict`."""
        return cls(
            data["device"], data["runtime"], int(data["batch"]), int(data["threads"]),
            data["model_id"], tuple(Unit(**u) for u in data["units"]),
            tuple(_entry_from(e) for e in data["entries"]), float(data["remainder_ms"]),
            tuple(_transition_from(t) for t in data.get("transitions", ())),
            tuple(tuple(c) for c in data.get("chains", ())), dict(data["provenance"]),
            int(data.get("version", TABLE_VERSION)))

    def to_json(self) -> str:
        """The file form: ``{"schema", "checksum", "table"}``; the checksum is the SHA-256
        of the table's canonical JSON, so truncation and edits are detected on load."""
        body = self.to_dict()
        return json.dumps({"schema": SCHEMA, "checksum": _checksum(body), "table": body},
                          indent=1, sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str, origin: str = "latency table") -> LatencyTable:
        """Parse :meth:`to_json` output, checking schema and checksum.

        Raises:
            LatencyTableError: not JSON (e.g. truncated), another schema, a checksum mismatch
                or missing fields; the message names ``origin``.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise LatencyTableError(f"{origin} is corrupt or truncated (not valid JSON: "
                                    f"{err})") from None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise LatencyTableError(f"{origin} is not a mixprec latency table (schema "
                                    f"{data.get('schema') if isinstance(data, dict) else None!r})")
        body = data.get("table")
        if not isinstance(body, dict) or _checksum(body) != data.get("checksum"):
            raise LatencyTableError(f"{origin} is corrupt: its checksum does not match its "
                                    "contents (edited or damaged); measure it again")
        try:
            return cls.from_dict(body)
        except (KeyError, TypeError, ValueError) as err:
            raise LatencyTableError(f"{origin} is malformed: {err}") from None

    def save(self, path: str | Path) -> Path:
        """Write the table (atomically) to ``path``; a ``.csv`` view is written beside it.

        Raises:
            LatencyTableError: ``path`` holds a file that is not a loadable latency table
                (it is never overwritten: move it away first).
        """
        path = Path(path)
        if path.exists():
            load_table(path)  # refuses to overwrite what it cannot read
        write_atomic(path, self.to_json())
        write_atomic(path.with_suffix(".csv"), self.to_csv())
        return path

    def to_csv(self) -> str:
        """One row per entry and transition, plus the remainder."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["row", "shape", "spec", "spec2", "kernel", "ms", "spread_ms"])
        for e in self.entries:
            writer.writerow(["entry", e.shape.label, e.spec.label,
                             e.spec2.label if e.spec2 else "", e.kernel, f"{e.ms:.6f}",
                             f"{e.spread_ms:.6f}"])
        for t in self.transitions:
            writer.writerow([t.kind, f"{t.producer.label} -> {t.consumer.label}",
                             t.producer_spec.label, t.consumer_spec.label, "", f"{t.ms:.6f}", ""])
        writer.writerow(["remainder", "", "", "", "", f"{self.remainder_ms:.6f}", ""])
        return buffer.getvalue()


def load_table(path: str | Path) -> LatencyTable:
    """Read a table written by :meth:`LatencyTable.save` (checked; see ``from_json``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise LatencyTableError(f"latency table {path} is corrupt (not UTF-8 text)") from None
    return LatencyTable.from_json(text, origin=f"latency table {path}")


def _spec_in(plan: Plan, name: str) -> QuantSpec:
    if name not in plan:
        return FLOAT32
    spec = plan[name]
    return FLOAT32 if is_identity_spec(spec) else spec


def _checksum(body: Mapping[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _entry_dict(e: Entry) -> dict[str, Any]:
    return {"shape": e.shape.to_list(), "spec": e.spec.to_dict(),
            "spec2": e.spec2.to_dict() if e.spec2 else None, "kernel": e.kernel,
            "ms": e.ms, "spread_ms": e.spread_ms}


def _entry_from(d: Mapping[str, Any]) -> Entry:
    return Entry(ShapeKey.from_list(d["shape"]), QuantSpec.from_dict(d["spec"]), float(d["ms"]),
                 d.get("kernel", ""), float(d.get("spread_ms", 0.0)),
                 QuantSpec.from_dict(d["spec2"]) if d.get("spec2") else None)


def _transition_dict(t: Transition) -> dict[str, Any]:
    return {"producer": t.producer.to_list(), "consumer": t.consumer.to_list(),
            "producer_spec": t.producer_spec.to_dict(),
            "consumer_spec": t.consumer_spec.to_dict(), "ms": t.ms, "kind": t.kind}


def _transition_from(d: Mapping[str, Any]) -> Transition:
    return Transition(ShapeKey.from_list(d["producer"]), ShapeKey.from_list(d["consumer"]),
                      QuantSpec.from_dict(d["producer_spec"]),
                      QuantSpec.from_dict(d["consumer_spec"]), float(d["ms"]),
                      d.get("kind", "chain"))
