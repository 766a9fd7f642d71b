"""``measure``: a LatencyTable of a model measured with the real kernels of a runtime on the
machine at hand.

Units with the same kind and GEMM dims form a *shape class* (the 12 ``qkv`` linears of a
DeiT-S are one class). Every entry is measured in the deployed model, where its kernels meet
the caches, threads and neighbours they meet in use:

* the float32 model is timed (``T0``) and each class's float32 unit alone (the anchor);
* for each class and candidate spec, the model with every unit of that class in that spec
  (the rest float32) is timed against the float32 model, interleaved; the difference per
  unit, added to the anchor, is the entry;
* attention modules are measured per (QKᵀ spec, PV spec) pair the same way;
* transitions: where the runtime fuses a producer -> consumer pair (a static int8
  fc1 -> GELU -> fc2 chain that stays integer on oneDNN), the model with both classes in
  those specs is timed and what the two entries do not explain, per chain, is the transition;
* the remainder is ``T0`` minus the float32 units.

Every timing goes to a persistent cache as soon as it is taken (keyed by the CPU fingerprint,
library versions, model, runtime, threads, batch and what was timed): a re-run reuses it, an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import copy
import datetime
import logging
import statistics
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from timm.layers import Mlp
from torch import nn

from mixprec.cost_models.cache import MeasurementCache, default_cache_path
from mixprec.cost_models.isolated import capture_unit_inputs, isolated_ms
from mixprec.cost_models.store import save_measured
from mixprec.cost_models.table import (
    ATTENTION,
    FLOAT32,
    Entry,
    LatencyTable,
    NoisyTableWarning,
    ShapeKey,
    Transition,
)
from mixprec.cost_models.timing import time_call, time_pair
from mixprec.kernels.registry import LOCAL_DEVICE, check_device, kernel_for
from mixprec.kernels.registry import candidates as default_candidates
from mixprec.quant.calibrate import CalibrationStats, calibrate
from mixprec.quant.inputs import (
    ModelInputs,
    call_model,
    first_samples,
    sample_count,
    to_device,
)
from mixprec.quant.plan import Plan
from mixprec.quant.spec import QuantSpec
from mixprec.quant.units import UnitList, discover_units

logger = logging.getLogger(__name__)

ANCHOR_METHOD = 2
"""Version of the anchor timing, part of its cache key (see :func:`_anchor_json`)."""

METHOD = "in-model differential per shape class, float32 anchors timed alone"


@dataclass
class _Setup:
    """What every timing of one ``measure`` call shares."""

    model: nn.Module
    units: UnitList
    inputs: ModelInputs
    device: str
    runtime: str
    threads: int
    stats: CalibrationStats
    repeats: int
    warmup: int

    def deploy(self, plan: Plan) -> Any:
        from mixprec.deploy import deploy

        return deploy(self.model, plan, self.device, self.inputs, runtime=self.runtime,
                      units=self.units, stats=self.stats, threads=self.threads)

    def run(self, deployed: Any) -> Callable[[], object]:
        def call() -> object:
            with torch.inference_mode():
                return call_model(deployed, self.inputs)
        return call


def measure(model: nn.Module, example_input: ModelInputs, device: str = LOCAL_DEVICE,
            runtime: str = "torch", threads: int = 2, batch: int | None = None,
            candidates: Sequence[QuantSpec] | None = None, cache: str | Path | None = None,
            *, model_name: str = "", repeats: int = 20, warmup: int = 3,
            progress: bool = True, save: bool = True) -> LatencyTable:
    """Measure the latency table of ``model`` on this machine.

    Args:
        model: the float model (not modified).
        example_input: a batch of inputs (also the calibration data of static specs: their
            scales do not change the time); at least ``batch`` samples.
        device: ``cpu`` (this machine), or ``a100`` where CUDA is available.
        runtime: ``torch`` or ``onnxruntime``.
        threads: intra-op threads while timing.
        batch: images per call (default: all of ``example_input``).
        candidates: the specs to measure (each where its unit kind has a kernel); default
            :func:`mixprec.kernels.candidates` per unit kind.
        cache: the measurement cache file (default :func:`~mixprec.cost_models.cache.
            default_cache_path` of this machine's fingerprint).
        repeats: timed calls per measurement (interleaved with the float32 model's).
        warmup: untimed calls first.
        model_name: the model's name, recorded in the table (``load`` finds it by name).
        progress: show a progress bar.
        save: also save the table where :func:`~mixprec.cost_models.load` finds it.

    Raises:
        ValueError: an unknown device or runtime, a GPU device without CUDA, too few
            samples for ``batch``, or a candidate no unit kind can run.
    """
    check_device(device, runtime)
    if device not in (LOCAL_DEVICE, "a100"):
        raise ValueError(f"device {device!r} is a target class: it cannot be measured here; "
                         "use its analytic table (mixprec.cost_models.analytic_table) or "
                         "measure on one of its machines with device='cpu'")
    if device == "a100" and not torch.cuda.is_available():
        raise ValueError("device 'a100' is measured on a CUDA GPU; none is available here")
    inputs = _batch_of(example_input, batch)
    if device == "a100":  # timed on the GPU: the float model and inputs live there too
        model, inputs = copy.deepcopy(model).cuda(), to_device(inputs, "cuda")
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        units = discover_units(model, first_samples(inputs, 1))
        by_kind = _candidates_by_kind(units, device, runtime, candidates)
        static = [u for u in units if any(s.act_mode == "static" for s in by_kind[u.kind])]
        stats = calibrate(model, static, inputs, sample_count(inputs)) if static else {}
        setup = _Setup(model, units, inputs, device, runtime, threads, stats, repeats, warmup)
        provenance = {**_provenance(device, runtime, threads), "model_name": model_name}
        store = MeasurementCache(cache or default_cache_path(provenance["cpu_key"]))
        base_key = {"machine": provenance["cpu_key"], "model": units.model_id,
                    "runtime": runtime, "threads": threads, "batch": sample_count(inputs),
                    "device": device}
        table = _Measurement(setup, by_kind, store, base_key, provenance, progress).table()
    finally:
        torch.set_num_threads(saved_threads)
    files = [store.path]
    if save:
        files.append(save_measured(table))
        logger.info("saved the latency table to %s", files[-1])
    warn_if_inconsistent(table, files)
    return table


def warn_if_inconsistent(table: LatencyTable, files: Sequence[Path]) -> None:
    """Warn, with :class:`NoisyTableWarning`, when ``table`` contradicts itself."""
    problems = table.inconsistencies()
    if problems:
        warnings.warn(
            f"the {table.runtime} latency table (batch {table.batch}) measured here is "
            f"inconsistent: {'; '.join(problems)}. Either the machine was busy while it was "
            f"timed or a unit runs at another speed alone than in the model; its predictions "
            f"and the plans ranked by them are not to be trusted. To measure again on a quiet "
            f"machine, move away its timings and table: {', '.join(map(str, files))}.",
            NoisyTableWarning, stacklevel=3)


def _batch_of(example_input: ModelInputs, batch: int | None) -> ModelInputs:
    have = sample_count(example_input)
    if batch is None:
        return example_input
    if batch < 1 or batch > have:
        raise ValueError(f"batch {batch}: example_input has {have} sample(s); pass at least "
                         f"{batch}")
    return first_samples(example_input, batch)


def _candidates_by_kind(units: UnitList, device: str, runtime: str,
                        candidates: Sequence[QuantSpec] | None) -> dict[str, list[QuantSpec]]:
    kinds = sorted({u.kind for u in units})
    if candidates is None:
        chosen = {k: default_candidates(device, k, runtime) for k in kinds}
    else:
        chosen = {k: [s for s in candidates if kernel_for(k, s, device, runtime) is not None]
                  for k in kinds}
        unused = [s.label for s in candidates if not any(s in v for v in chosen.values())]
        if unused:
            raise ValueError(f"no unit of this model can run {unused} on device {device!r} "
                             f"(runtime {runtime!r})")
    return {k: [FLOAT32] + [s for s in specs if s != FLOAT32] for k, specs in chosen.items()}


def _provenance(device: str, runtime: str, threads: int) -> dict[str, Any]:
    from mixprec.kernels.cpu.capabilities import cpu_fingerprint

    fingerprint = cpu_fingerprint(threads=threads)
    provenance: dict[str, Any] = {
        "source": "measured", "method": METHOD, "cpu_key": fingerprint.key,
        "cpu": fingerprint.summary(), "versions": fingerprint.versions,
        "date": datetime.date.today().isoformat()}
    if device == "a100":
        provenance["gpu"] = torch.cuda.get_device_name()
        provenance["cpu_key"] = f"{provenance['gpu']}|{fingerprint.key}"
    return provenance


class _Measurement:
    """One measurement run: the timings it needs, taken (or found in the cache) in turn."""

    def __init__(self, setup: _Setup, by_kind: dict[str, list[QuantSpec]],
                 store: MeasurementCache, base_key: dict[str, Any],
                 provenance: dict[str, Any], progress: bool) -> None:
        self.setup, self.by_kind, self.store = setup, by_kind, store
        self.base_key, self.provenance, self.progress = base_key, provenance, progress
        units = setup.units
        self.classes: dict[ShapeKey, list[str]] = {}
        for unit in units:
            if unit.kind != "attn_pv":
                name = unit.module_name
                self.classes.setdefault(ShapeKey.of(unit), []).append(name)
        self.kind_of = {ShapeKey.of(u): u.kind for u in units if u.kind != "attn_pv"}
        self.names = {u.module_name if u.is_attention else u.name: u for u in units}
        self._base: Any = None
        self._base_call: Callable[[], object] | None = None

    # ---- the plan of a variant ---------------------------------------------------------------

    def _specs_of(self, shape: ShapeKey) -> list[tuple[QuantSpec, QuantSpec | None]]:
        """The (spec, spec2) choices of a class; spec2 is the PV spec of attention."""
        if shape.kind != ATTENTION:
            return [(s, None) for s in self.by_kind[self.kind_of[shape]]]
        return [(a, b) for a in self.by_kind["attn_qk"] for b in self.by_kind["attn_pv"]]

    def _plan(self, assign: Iterable[tuple[ShapeKey, QuantSpec, QuantSpec | None]]) -> Plan:
        changes = {}
        for shape, spec, spec2 in assign:
            for name in self.classes[shape]:
                if shape.kind == ATTENTION:
                    changes[f"{name}.qk"], changes[f"{name}.pv"] = spec, spec2
                else:
                    changes[name] = spec
        units = self.setup.units
        return Plan.uniform(units, FLOAT32).replace(
            {n: s for n, s in changes.items() if n in units.by_name()})

    # ---- timings, cached -----------------------------------------------------------------------

    def _cached(self, what: dict[str, Any], take: Callable[[], dict[str, Any]]
                ) -> dict[str, Any]:
        key = MeasurementCache.key({**self.base_key, "what": what})
        found = self.store.get(key)
        if found is None:
            found = take()
            self.store.put(key, found)
        return found

    def _base_run(self) -> Callable[[], object]:
        if self._base_call is None:
            self._base = self.setup.deploy(Plan.uniform(self.setup.units, FLOAT32))
            self._base_call = self.setup.run(self._base)
        return self._base_call

    def _model_ms(self) -> dict[str, Any]:
        timing = time_call(self._base_run(), self.setup.repeats, self.setup.warmup)
        return {"ms": timing.median_ms, "spread_ms": timing.spread_ms}

    def _anchor(self, shape: ShapeKey, captured: dict, cores: dict) -> dict[str, Any]:
        name = self.classes[shape][0]
        s = self.setup
        timing = isolated_ms(cores[name], captured[name], s.runtime, s.threads, s.repeats,
                             s.warmup)
        return {"ms": timing.median_ms, "spread_ms": timing.spread_ms}

    def _delta(self, plan: Plan) -> dict[str, Any]:
        """The deployed ``plan`` against the float32 model: their median difference."""
        deployed = self.setup.deploy(plan)
        base, variant = time_pair(self._base_run(), self.setup.run(deployed),
                                  self.setup.repeats, self.setup.warmup)
        fused = list(getattr(deployed.deploy_report, "fused", ()))
        return {"delta_ms": variant.median_ms - base.median_ms, "base_ms": base.median_ms,
                "spread_ms": variant.spread_ms, "fused": fused}

    # ---- the table -------------------------------------------------------------------------------

    def _jobs(self) -> list[tuple[dict[str, Any], Callable[[], dict[str, Any]]]]:
        captured: dict = {}
        cores: dict = {}

        def anchor(shape: ShapeKey) -> Callable[[], dict[str, Any]]:
            def take() -> dict[str, Any]:
                if not captured:
                    found = capture_unit_inputs(self.setup.model,
                                                [self.names[self.classes[s][0]]
                                                 for s in self.classes], self.setup.inputs)
                    captured.update(found[0])
                    cores.update(found[1])
                return self._anchor(shape, captured, cores)
            return take

        jobs: list = [({"model": "float32"}, self._model_ms)]
        for shape in self.classes:
            jobs.append((_anchor_json(shape), anchor(shape)))
            for spec, spec2 in self._specs_of(shape):
                if spec == FLOAT32 and spec2 in (None, FLOAT32):
                    continue
                plan = self._plan([(shape, spec, spec2)])
                jobs.append((_variant_json([(shape, spec, spec2)]),
                             lambda plan=plan: self._delta(plan)))
        return jobs

    def _chains(self) -> list[tuple[ShapeKey, QuantSpec, ShapeKey, QuantSpec]]:
        """(fc1 class, its spec, fc2 class, its spec) pairs a runtime may keep integer."""
        chains = []
        for producer, consumer in _mlp_shape_pairs(self.setup.model, self.setup.units):
            for a, _ in self._specs_of(producer):
                for b, _ in self._specs_of(consumer):
                    if a.act_mode == "static" and b.act_mode == "static":
                        chains.append((producer, a, consumer, b))
        return chains

    def _chain_job(self, producer: ShapeKey, a: QuantSpec, consumer: ShapeKey, b: QuantSpec
                   ) -> tuple[dict[str, Any], Callable[[], dict[str, Any]]]:
        assign = [(producer, a, None), (consumer, b, None)]
        plan = self._plan(assign)
        return _variant_json(assign), lambda: self._delta(plan)

    def table(self) -> LatencyTable:
        from tqdm.auto import tqdm

        chains = self._chains()
        jobs = self._jobs() + [self._chain_job(*chain) for chain in chains]
        done = {}
        bar = tqdm(jobs, desc="measuring latency", unit="timing", disable=not self.progress)
        for what, take in bar:
            done[MeasurementCache.key(what)] = self._cached(what, take)
        self._base = self._base_call = None
        return self._assemble(done, chains)

    def _assemble(self, done: dict[str, dict[str, Any]],
                  chain_specs: list[tuple[ShapeKey, QuantSpec, ShapeKey, QuantSpec]]
                  ) -> LatencyTable:
        s = self.setup
        entries, per_unit = [], {}
        float_units_ms = 0.0
        for shape, names in self.classes.items():
            anchor = done[MeasurementCache.key(_anchor_json(shape))]
            float_units_ms += anchor["ms"] * len(names)
            for spec, spec2 in self._specs_of(shape):
                if spec == FLOAT32 and spec2 in (None, FLOAT32):
                    delta, spread = 0.0, anchor["spread_ms"]
                else:
                    found = done[MeasurementCache.key(_variant_json([(shape, spec, spec2)]))]
                    delta, spread = found["delta_ms"] / len(names), found["spread_ms"]
                per_unit[(shape, spec)] = delta
                kind = "attn_qk" if shape.kind == ATTENTION else shape.kind
                kernel = kernel_for(kind, spec, s.device, s.runtime)
                entries.append(Entry(shape, spec, anchor["ms"] + delta,
                                     kernel.name if kernel else "", spread, spec2))
        transitions, chains = [], set()
        for producer, a, consumer, b in chain_specs:
            assign = [(producer, a, None), (consumer, b, None)]
            found = done[MeasurementCache.key(_variant_json(assign))]
            if not found["fused"]:
                continue
            explained = (per_unit[(producer, a)] * len(self.classes[producer])
                         + per_unit[(consumer, b)] * len(self.classes[consumer]))
            saving = (found["delta_ms"] - explained) / len(found["fused"])
            transitions.append(Transition(producer, consumer, a, b, saving))
            chains.update((f"{m}.fc1", f"{m}.fc2") for m in found["fused"])
        # the float32 model is timed in every pair: the median over all of them is robust to
        # a disturbance during any one timing
        model_ms = statistics.median(
            [done[MeasurementCache.key({"model": "float32"})]["ms"]]
            + [v["base_ms"] for v in done.values() if "base_ms" in v])
        provenance = {**self.provenance, "float32_model_ms": model_ms, "repeats": s.repeats}
        return LatencyTable(s.device, s.runtime, sample_count(s.inputs), s.threads,
                            s.units.model_id, tuple(s.units), tuple(entries),
                            model_ms - float_units_ms, tuple(transitions),
                            tuple(sorted(chains)), provenance)


def _mlp_shape_pairs(model: nn.Module, units: UnitList) -> list[tuple[ShapeKey, ShapeKey]]:
    """(fc1 class, fc2 class) of the timm MLPs whose two linears are units."""
    by_name = units.by_name()
    pairs: list[tuple[ShapeKey, ShapeKey]] = []
    for name, module in model.named_modules():
        fc1, fc2 = f"{name}.fc1", f"{name}.fc2"
        if isinstance(module, Mlp) and fc1 in by_name and fc2 in by_name:
            pair = (ShapeKey.of(by_name[fc1]), ShapeKey.of(by_name[fc2]))
            if pair not in pairs:
                pairs.append(pair)
    return pairs


def _anchor_json(shape: ShapeKey) -> dict[str, Any]:
    """Cache key of a class's anchor; ``method`` 2: ONNX Runtime anchors fed contiguous
    inputs (method-1 timings of strided attention inputs are not reused)."""
    return {"anchor": shape.to_list(), "method": ANCHOR_METHOD}


def _variant_json(assign: Sequence[tuple[ShapeKey, QuantSpec, QuantSpec | None]]
                  ) -> dict[str, Any]:
    return {"variant": [[shape.to_list(), spec.to_dict(),
                         spec2.to_dict() if spec2 is not None else None]
                        for shape, spec, spec2 in assign]}
