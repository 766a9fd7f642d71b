"""``measure``: a LatencyTable of a model fitted to whole-plan timings taken with the real
kernels of a runtime on the machine at hand, and checked on plans held out of the fit.

1. Each shape class's float32 unit is timed alone (its *anchor*: how the float32 model's time
   splits into units and remainder; predictions do not depend on it).
2. A designed set of plans (:mod:`~mixprec.cost_models.design`: uniform, one class at a
   time, random mixes) and 20 held-out mixes are deployed in the runtime and timed against
   the float32 model in blocks of interleaved rounds
   (:func:`~mixprec.cost_models.timing.time_against`): each plan's time is its ratio to the
   float32 model, which a slow spell of the machine does not move. Fitted plans get half the
   rounds of held-out ones (:func:`fit_policy`); held-out plans are timed twice, in other
   blocks each time.
3. The table's terms (an entry per shape class and spec, attention pairs, fc1 -> fc2
   transitions) are fitted to the designed plans by bounded, robust least squares
   (:mod:`~mixprec.cost_models.fit`).
4. The held-out plans give the table's own fidelity (median |error|, Kendall tau, share
   within ±10%), stored in its provenance. Below target, the measurement extends itself
   (more mixes, more rounds) within a time cap; a table still below it says so.

Every timing goes to a persistent cache as soon as its block is timed (keyed by the CPU
fingerprint, library versions, model, runtime, threads, batch and the plan): a re-run reuses
it, an interrupted run resumes where it stopped, and timings a search adds (the plans it
deploys to confirm its choice) join the next fit.
"""

from __future__ import annotations

import copy
import datetime
import logging
import statistics
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mixprec.cost_models.cache import MeasurementCache, default_cache_path
from mixprec.cost_models.design import design, random_mixes
from mixprec.cost_models.fidelity import TARGET, Fidelity, fidelity
from mixprec.cost_models.fit import TimedPlan, fit_terms
from mixprec.cost_models.isolated import capture_unit_inputs, isolated_ms
from mixprec.cost_models.plan_timings import PlanTiming, PlanTimingStore
from mixprec.cost_models.predict import predict_latency
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
from mixprec.cost_models.terms import CostTerms, Term
from mixprec.cost_models.timing import RatioTiming, TimingPolicy, time_against
from mixprec.kernels.cpu.capabilities import runtime_versions
from mixprec.kernels.registry import LOCAL_DEVICE, check_device, kernel_for
from mixprec.kernels.registry import candidates as default_candidates
from mixprec.progress_bars import bars_hidden
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

ANCHOR_METHOD = 3
"""Version of the anchor timing, part of its cache key (see :func:`_anchor_json`)."""
METHOD = ("fitted to whole-plan timings (uniform, one class at a time, random mixes; ratios "
          "to float32 in interleaved rounds, each turn corrected for the machine's speed of "
          "the moment) by robust bounded least squares; float32 anchors "
          "timed alone; checked on held-out random mixes")
BLOCK = 8
"""Plans deployed and timed together (with the float32 model as their reference)."""
MAX_EXTENSIONS = 2
"""Times a table below its fidelity target extends its measurement at most."""
HELD_OUT_PASSES = 2
"""Times every held-out plan is timed (in other blocks each time): one block's rounds move
together by a few percent on a busy machine, which ranks twenty plans poorly."""
EXTENSION_SHARE = 0.5
"""An extension may take at most this share of the first pass's time (at least 30 s)."""


def fit_policy(policy: TimingPolicy) -> TimingPolicy:
    """The timing of fitted plans: half the rounds of the held-out plans' (at most their
    minimum). The fit averages over many plans; the held-out figures rest on each plan
    alone (DeiT-S b1 at 45 ms a call: 24 rounds of every plan would take 15 min)."""
    rounds = max(1, policy.min_rounds // 2)
    return replace(policy, min_rounds=rounds,
                   max_rounds=max(rounds, policy.min_rounds))


def default_mixes(terms: CostTerms) -> int:
    """Random mixes in a measurement's design: half the entry terms, at least 20."""
    return max(20, len(terms.entry_terms()) // 2)


def measure(model: nn.Module, example_input: ModelInputs, device: str = LOCAL_DEVICE,
            runtime: str = "torch", threads: int = 2, batch: int | None = None,
            candidates: Sequence[QuantSpec] | None = None, cache: str | Path | None = None,
            *, model_name: str = "", policy: TimingPolicy | None = None,
            mixes: int | None = None, extend: bool = True, progress: bool = True,
            save: bool = True) -> LatencyTable:
    """Measure the latency table of ``model`` on this machine (see the module docstring).

    Args:
        model: the float model (not modified).
        example_input: a batch of inputs (also the calibration data of static specs: their
            scales do not change the time); at least ``batch`` samples.
        device: ``cpu`` (this machine); ``xeon`` on a Xeon with AVX-512 VNNI (a measured
            table of that target class: its kernels, timed here); ``a100`` where CUDA is
            available.
        runtime: ``torch``, ``onnxruntime`` or ``openvino``.
        threads: intra-op threads while timing.
        batch: images per call (default: all of ``example_input``).
        candidates: the specs to measure (each where its unit kind has a kernel); default
            :func:`mixprec.kernels.candidates` per unit kind.
        cache: the measurement cache file (default :func:`~mixprec.cost_models.cache.
            default_cache_path` of this machine's fingerprint).
        model_name: the model's name, recorded in the table (``load`` finds it by name).
        policy: how blocks are timed (default :class:`TimingPolicy`).
        mixes: random mixes in the design (default :func:`default_mixes`).
        extend: below the fidelity target, time more plans and rounds (within a time cap).
        progress: show a progress bar.
        save: also save the table where :func:`~mixprec.cost_models.load` finds it.

    Raises:
        ValueError: an unknown device or runtime, a device that cannot be measured here,
            too few samples for ``batch``, or a candidate no unit kind can run.
    """
    check_device(device, runtime)
    _check_measurable(device)
    inputs = _batch_of(example_input, batch)
    if device == "a100":  # timed on the GPU: the float model and inputs live there too
        model, inputs = copy.deepcopy(model).cuda(), to_device(inputs, "cuda")
    policy = policy or TimingPolicy()
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        units = discover_units(model, first_samples(inputs, 1))
        terms = CostTerms(units, _candidates_by_kind(units, device, runtime, candidates))
        provenance = {**_provenance(device, runtime, threads), "model_name": model_name}
        store = MeasurementCache(cache or default_cache_path(provenance["cpu_key"]))
        base_key = {"machine": provenance["cpu_key"], "model": units.model_id,
                    "runtime": runtime, "threads": threads, "batch": sample_count(inputs),
                    "device": _timed_on(device), **_runtime_key(runtime)}
        timings = PlanTimingStore(store, base_key, units.model_id, units.input_shape)
        setup = _Setup(model, units, inputs, device, runtime, threads, policy)
        run = _Measurement(setup, terms, store, timings, base_key, provenance, progress,
                           mixes if mixes is not None else default_mixes(terms))
        table = run.table(extend)
    finally:
        torch.set_num_threads(saved_threads)
    files = [store.path]
    if save:
        files.append(save_measured(table))
        logger.info("saved the latency table to %s", files[-1])
    warn_if_inconsistent(table, files)
    return table


def timing_store(units: UnitList, device: str, runtime: str, threads: int, batch: int,
                 cache: str | Path | None = None) -> PlanTimingStore:
    """The store ``measure`` keeps this machine's plan timings of ``units`` in (a search adds
    the plans it confirms to it)."""
    from mixprec.kernels.cpu.capabilities import cpu_fingerprint

    key = cpu_fingerprint(threads=threads).key
    base_key = {"machine": key, "model": units.model_id, "runtime": runtime,
                "threads": threads, "batch": batch, "device": _timed_on(device),
                **_runtime_key(runtime)}
    return PlanTimingStore(MeasurementCache(cache or default_cache_path(key)), base_key,
                           units.model_id, units.input_shape)


def learn(table: LatencyTable, model: nn.Module, example_input: ModelInputs,
          timings: Iterable[tuple[Plan, RatioTiming, Sequence[str]]],
          cache: str | Path | None = None) -> LatencyTable | None:
    """Add plan timings taken on this machine (each against the float32 model, e.g. by a
    search confirming its choice) to the cache of ``table``'s measurement, and fit the table
    again with them (saved where ``load`` finds it).

    Args:
        table: a table measured on this machine.
        model: its model.
        example_input: its timing inputs (``table.batch`` samples).
        timings: (plan, its timing against float32, the MLPs its deployment fused).
        cache: the measurement cache file (default: this machine's).

    Returns:
        The refitted table, or None when the cache does not hold the table's own design
        timings (a shipped table: its timings stay in the cache for a later measurement).
    """
    units = discover_units(model, first_samples(example_input, 1))
    store = timing_store(units, table.device, table.runtime, table.threads, table.batch,
                         cache)
    for plan, timing, fused in timings:
        store.put(plan, timing, fused, source="verify")
    if not any(t.source == "design" for t in store.all()):
        logger.info("the cache holds no design timings of this table: not refitted")
        return None
    specs = list(dict.fromkeys(s for k in {u.kind for u in units} for s in table.candidates(k)))
    return measure(model, example_input, table.device, table.runtime, table.threads,
                   table.batch, specs, cache, model_name=table.provenance.get("model_name", ""),
                   mixes=table.provenance.get("mixes"), extend=False, progress=False)


def warn_if_inconsistent(table: LatencyTable, files: Sequence[Path]) -> None:
    """Warn, with :class:`NoisyTableWarning`, when ``table`` contradicts itself or misses
    its fidelity target on its held-out plans."""
    problems = table.inconsistencies()
    if problems:
        warnings.warn(
            f"the {table.runtime} latency table (batch {table.batch}) measured here is "
            f"inconsistent: {'; '.join(problems)}. Either the machine was busy while it was "
            f"timed or a unit runs at another speed alone than in the model; its predictions "
            f"and the plans ranked by them are not to be trusted. To measure again on a quiet "
            f"machine, move away its timings and table: {', '.join(map(str, files))}.",
            NoisyTableWarning, stacklevel=3)
    if table.fidelity is not None and not table.trusted:
        warnings.warn(f"the {table.runtime} latency table (batch {table.batch}) misses its "
                      f"fidelity target: {table.trust_summary()}; plans ranked by it must be "
                      "confirmed by measuring them (search.run(..., verify=True) does)",
                      NoisyTableWarning, stacklevel=3)


def _timed_on(device: str) -> str:
    """The device a timing is keyed by: a ``xeon`` table is timed on this CPU, with the same
    kernels as a ``cpu`` table of it (it checks that), so both share their timings."""
    return LOCAL_DEVICE if device == "xeon" else device


def _check_measurable(device: str) -> None:
    if device == "xeon":
        from mixprec.kernels.cpu.capabilities import cpu_fingerprint

        here = cpu_fingerprint()
        if "Xeon" not in here.model_name or not here.has_int8_dot:
            raise ValueError(f"device 'xeon' is measured on an Intel Xeon with AVX-512 VNNI; "
                             f"this machine is {here.model_name!r}: use device='cpu' here, "
                             "or the xeon class's analytic table")
        return
    if device not in (LOCAL_DEVICE, "a100"):
        raise ValueError(f"device {device!r} is a target class: it cannot be measured here; "
                         "use its analytic table (mixprec.cost_models.analytic_table) or "
                         "measure on one of its machines with device='cpu'")
    if device == "a100" and not torch.cuda.is_available():
        raise ValueError("device 'a100' is measured on a CUDA GPU; none is available here")


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


def _runtime_key(runtime: str) -> dict[str, Any]:
    """The part of a timing's cache key that names the runtime's own version (if the CPU
    key does not): a new OpenVINO times its plans again."""
    versions = runtime_versions(runtime)
    return {"runtime_versions": versions} if versions else {}


def _provenance(device: str, runtime: str, threads: int) -> dict[str, Any]:
    from mixprec.kernels.cpu.capabilities import cpu_fingerprint

    fingerprint = cpu_fingerprint(threads=threads)
    provenance: dict[str, Any] = {
        "source": "measured", "method": METHOD, "cpu_key": fingerprint.key,
        "cpu": fingerprint.summary(),
        "versions": {**fingerprint.versions, **runtime_versions(runtime)},
        "date": datetime.date.today().isoformat()}
    if device == "a100":
        provenance["gpu"] = torch.cuda.get_device_name()
        provenance["cpu_key"] = f"{provenance['gpu']}|{fingerprint.key}"
    return provenance


class _Setup:
    """What every timing of one ``measure`` call shares; calibrates on first need."""

    def __init__(self, model: nn.Module, units: UnitList, inputs: ModelInputs, device: str,
                 runtime: str, threads: int, policy: TimingPolicy) -> None:
        self.model, self.units, self.inputs = model, units, inputs
        self.device, self.runtime, self.threads, self.policy = device, runtime, threads, policy
        self._stats: CalibrationStats | None = None

    def deploy(self, plan: Plan) -> Any:
        from mixprec.deploy import deploy

        if self._stats is None:
            self._stats = calibrate(self.model, list(self.units), self.inputs,
                                    sample_count(self.inputs))
        return deploy(self.model, plan, self.device, self.inputs, runtime=self.runtime,
                      units=self.units, stats=self._stats, threads=self.threads)

    def run(self, deployed: Any) -> Callable[[], object]:
        def call() -> object:
            with torch.inference_mode():
                return call_model(deployed, self.inputs)
        return call


class _Measurement:
    """One measurement run: anchors, the design's timings (or the cache's), the fit, its
    check on the held-out plans and, below target, its extension."""

    def __init__(self, setup: _Setup, terms: CostTerms, store: MeasurementCache,
                 timings: PlanTimingStore, base_key: dict[str, Any],
                 provenance: dict[str, Any], progress: bool, mixes: int) -> None:
        self.setup, self.terms, self.store, self.timings = setup, terms, store, timings
        self.base_key, self.provenance, self.progress = base_key, provenance, progress
        self.mixes = mixes
        self.plans = design(terms, setup.units, mixes)
        self.held_out = [p.plan for p in self.plans if p.role == "held out"]
        self.names = {u.module_name if u.is_attention else u.name: u for u in setup.units}

    # ---- anchors ---------------------------------------------------------------------------

    def _anchors(self) -> dict[ShapeKey, dict[str, Any]]:
        """Each shape class's float32 unit timed alone (cached)."""
        found, missing = {}, []
        for shape in self.terms.classes:
            key = MeasurementCache.key({**self.base_key, "what": _anchor_json(shape)})
            stored = self.store.get(key)
            if stored is None:
                missing.append((shape, key))
            else:
                found[shape] = stored
        if missing:
            s = self.setup
            names = [self.names[self.terms.classes[shape][0]] for shape, _ in missing]
            captured, cores = capture_unit_inputs(s.model, names, s.inputs)
            for shape, key in missing:
                name = self.terms.classes[shape][0]
                timing = isolated_ms(cores[name], captured[name], s.runtime, s.threads,
                                     2 * s.policy.repeats, s.policy.warmup)
                found[shape] = {"ms": timing.median_ms, "spread_ms": timing.spread_ms}
                self.store.put(key, found[shape])
        return found

    # ---- timing plans in blocks ----------------------------------------------------------------

    def time_plans(self, plans: Sequence[Plan], policy: TimingPolicy, passes: int = 1,
                   desc: str = "timing plans") -> None:
        """Time ``plans`` against the float32 model in blocks of :data:`BLOCK` until each
        has been timed ``passes`` times (stored timings count; a new pass adds its rounds
        to them, in other blocks than before)."""
        from tqdm.auto import tqdm

        todo = [p for p in plans if (self.timings.get(p) or _NEVER).passes < passes]
        if not todo:
            return
        s = self.setup
        reference = s.run(s.deploy(Plan.uniform(s.units, FLOAT32)))
        hidden = not self.progress or bars_hidden()
        with tqdm(total=len(todo), desc=desc, unit="plan", disable=hidden) as bar:
            while todo:
                for start in range(0, len(todo), BLOCK):
                    block = todo[start:start + BLOCK]
                    deployed = [s.deploy(p) for p in block]
                    found = time_against(reference, [s.run(d) for d in deployed], policy)
                    for plan, model, timing in zip(block, deployed, found):
                        fused = getattr(getattr(model, "deploy_report", None), "fused", ())
                        self.timings.put(plan, timing, fused)
                    del deployed
                    bar.update(len(block))
                todo = [p for p in todo if self.timings.get(p).passes < passes]
                todo = todo[len(todo) // 2:] + todo[:len(todo) // 2]  # other blocks next pass
                bar.total += len(todo)

    # ---- the fit ---------------------------------------------------------------------------

    def fit(self, anchors: dict[ShapeKey, dict[str, Any]]) -> LatencyTable:
        """The table fitted to every stored timing but the held-out plans'."""
        stored = self.timings.all()
        held = set(self.held_out)
        fitted = [t for t in stored if t.plan not in held]
        base_ms = _float32_ms(stored)
        anchors = self._within(anchors, base_ms)
        terms = self.terms.entry_terms() + _transition_terms(fitted, self.terms)
        timed = [TimedPlan(self.terms.counts(t.plan, t.fused), t.ratio * base_ms)
                 for t in fitted]
        lower = {t: -_anchor_ms(t, anchors) for t in terms}
        values, errors = fit_terms(terms, timed, base_ms, lower)
        table = self._assemble(anchors, values, errors, base_ms, fitted)
        return table

    def _within(self, anchors: dict[ShapeKey, dict[str, Any]], base_ms: float
                ) -> dict[ShapeKey, dict[str, Any]]:
        """The anchors, scaled down together when the float32 units timed alone add up to
        more than the whole float32 model (ONNX Runtime: a one-module session misses the
        whole graph's fusions), so that the remainder is not negative. Predictions do not
        depend on the anchors; the bounds of the fit do (no unit below zero time)."""
        total = sum(anchors[shape]["ms"] * len(names)
                    for shape, names in self.terms.classes.items())
        if total <= base_ms:
            return anchors
        factor = base_ms / total
        logger.info("float32 units timed alone add up to %.3f ms, the model takes %.3f ms: "
                    "anchors scaled by %.3f", total, base_ms, factor)
        return {shape: {"ms": a["ms"] * factor, "spread_ms": a["spread_ms"] * factor}
                for shape, a in anchors.items()}

    def _assemble(self, anchors: dict[ShapeKey, dict[str, Any]], values: dict[Term, float],
                  errors: dict[Term, float], base_ms: float, fitted: list[PlanTiming]
                  ) -> LatencyTable:
        s = self.setup
        entries = []
        for shape in self.terms.classes:
            anchor = anchors[shape]
            for spec, spec2 in self.terms.choices(shape):
                term = Term(shape, spec, spec2)
                kind = "attn_qk" if shape.kind == ATTENTION else shape.kind
                kernel = kernel_for(kind, spec, s.device, s.runtime)
                entries.append(Entry(shape, spec, anchor["ms"] + values.get(term, 0.0),
                                     kernel.name if kernel else "",
                                     errors.get(term, anchor["spread_ms"]), spec2))
        transitions = [Transition(t.producer, t.consumer, t.spec, t.spec2, values[t])
                       for t in values if t.is_transition]
        chains = sorted({(f"{m}.fc1", f"{m}.fc2") for t in fitted for m in t.fused})
        float_units_ms = sum(anchors[shape]["ms"] * len(names)
                             for shape, names in self.terms.classes.items())
        provenance = {**self.provenance, "float32_model_ms": base_ms,
                      "policy": asdict(s.policy), "mixes": self.mixes,
                      "fitted_plans": len(fitted),
                      "busy_timings": sum(t.busy for t in fitted),
                      "verified_plans": sum(t.source == "verify" for t in fitted)}
        return LatencyTable(s.device, s.runtime, sample_count(s.inputs), s.threads,
                            s.units.model_id, tuple(s.units), tuple(entries),
                            base_ms - float_units_ms, tuple(transitions), tuple(chains),
                            provenance)

    def check(self, table: LatencyTable) -> Fidelity | None:
        """The table's figures on the held-out plans (None: fewer than two were timed)."""
        timed = [t for t in (self.timings.get(p) for p in self.held_out) if t is not None]
        if len(timed) < 2:
            return None
        base_ms = table.provenance["float32_model_ms"]
        return fidelity([predict_latency(t.plan, table) for t in timed],
                        [t.ratio * base_ms for t in timed])

    # ---- the whole run ---------------------------------------------------------------------

    def table(self, extend: bool) -> LatencyTable:
        started = time.monotonic()
        anchors = self._anchors()
        s = self.setup
        fitted = [p.plan for p in self.plans if p.role != "held out"]
        self.time_plans(fitted, fit_policy(s.policy), desc="measuring latency")
        self.time_plans(self.held_out, s.policy, passes=HELD_OUT_PASSES,
                        desc="held-out plans")
        first_pass_s = time.monotonic() - started
        table = self.fit(anchors)
        found = self.check(table)
        history = [found.to_dict()] if found else []
        cap_s = max(30.0, EXTENSION_SHARE * first_pass_s)
        extensions = 0
        while extend and found is not None and not found.meets() \
                and extensions < MAX_EXTENSIONS and time.monotonic() - started < \
                first_pass_s + cap_s:
            extensions += 1
            logger.info("latency table below its fidelity target (%s): extension %d",
                        found.summary(), extensions)
            self._extend(extensions)
            table = self.fit(anchors)
            found = self.check(table)
            history.append(found.to_dict() if found else None)
        provenance = {**table.provenance, "fidelity": found.to_dict() if found else None,
                      "fidelity_target": asdict(TARGET),
                      "trusted": bool(found is not None and found.meets()),
                      "fidelity_history": history, "extensions": extensions,
                      "seconds": round(time.monotonic() - started, 1)}
        return LatencyTable(table.device, table.runtime, table.batch, table.threads,
                            table.model_id, table.units, table.entries, table.remainder_ms,
                            table.transitions, table.chains, provenance)

    def _extend(self, step: int) -> None:
        """More mixes in the fit, more rounds on the held-out plans."""
        held = set(self.held_out)
        more = [p for p in random_mixes(self.setup.units, self.terms.specs_by_kind,
                                        max(10, self.mixes // 2), seed=step)
                if p not in held]
        policy = self.setup.policy
        self.time_plans(more, fit_policy(policy), desc=f"extension {step}: more plans")
        self.time_plans(self.held_out, policy, passes=HELD_OUT_PASSES + step,
                        desc=f"extension {step}: held-out plans, again")


_NEVER = PlanTiming(Plan(()), (), 0.0, passes=0)
"""Stands for a plan not timed yet (no passes)."""


def _float32_ms(stored: Sequence[PlanTiming]) -> float:
    """The float32 model's time: the median over every timing's reference, by rounds."""
    samples = [t.reference_ms for t in stored for _ in t.ratios]
    if not samples:
        raise ValueError("no plan timings to fit a latency table to")
    return statistics.median(samples)


def _transition_terms(timed: Sequence[PlanTiming], terms: CostTerms) -> list[Term]:
    """The transition terms the timed plans use (chains their deployments fused)."""
    found: dict[Term, None] = {}
    for t in timed:
        for term in terms.counts(t.plan, t.fused):
            if term.is_transition:
                found.setdefault(term)
    return list(found)


def _anchor_ms(term: Term, anchors: dict[ShapeKey, dict[str, Any]]) -> float:
    """How much time a term can save at most: its unit's float32 time (a transition: both
    units')."""
    total = anchors[term.producer]["ms"]
    if term.consumer is not None:
        total += anchors[term.consumer]["ms"]
    return total


def _anchor_json(shape: ShapeKey) -> dict[str, Any]:
    """Cache key of a class's anchor; ``method`` 3: ONNX Runtime anchors fed contiguous
    inputs, sessions that stop spinning after each run (older timings are not reused)."""
    return {"anchor": shape.to_list(), "method": ANCHOR_METHOD}
