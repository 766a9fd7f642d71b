"""search.run: sensitivity once, a latency table per device, the exact front, the plan."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from mixprec import cost_models, models
from mixprec.cost_models.table import FLOAT32, LatencyTable
from mixprec.cost_models.timing import TimingPolicy
from mixprec.kernels.registry import (
    DEVICES,
    LOCAL_DEVICE,
    RUNTIMES,
    check_device,
    token_split_candidates,
)
from mixprec.kernels.registry import candidates as default_candidates
from mixprec.quant.inputs import ModelInputs, first_samples, sample_count
from mixprec.quant.spec import QuantSpec
from mixprec.quant.units import UnitList, discover_units
from mixprec.search.accuracy import calibration_images, fastest_within_drop, top1_fn
from mixprec.search.baselines import baseline_choices
from mixprec.search.ilp import InfeasibleError, best_within
from mixprec.search.pareto import FrontChoice, pareto_front
from mixprec.search.problem import SearchProblem, build_problem
from mixprec.search.result import FrontPoint, SearchResult
from mixprec.search.sensitivity_cache import cached_sensitivity
from mixprec.search.verify import SIDE, Budget, verify_choice

logger = logging.getLogger(__name__)

def run(model: nn.Module | str, budget_ms: float | None = None, device: str = LOCAL_DEVICE,
        calib: ModelInputs | None = None, *, runtime: str | None = None,
        candidates: str | Sequence[QuantSpec] = "default", sensitivity: str = "sqnr_global",
        max_drop: float | None = None, size_mb: float | None = None,
        bops: float | None = None, devices: Sequence[str] | None = None,
        refine_trials: int = 0, storage: str | Path | None = None,
        study_name: str | None = None, eval_fn: Callable[[nn.Module], float] | None = None,
        seed: int = 0, batch: int = 1, threads: int = 2, solver: str = "cbc",
        budget_fraction: float | None = None, verify: bool = False,
        timing: TimingPolicy | None = None, side: int = SIDE, token_splits: bool = False,
        progress: Callable[[str], None] | None = None) -> SearchResult:
    """Search the plan of ``model`` for ``device``: the most accurate one within the budget.

    Args:
        model: a model, or a name (``mnist-vit``, a timm name) for :func:`mixprec.models.load`.
        budget_ms: latency budget per call of ``batch`` images on ``device`` (None: no budget;
            the most accurate plan and the whole front).
        device: ``cpu`` (this machine, measured), ``a15``, ``a100`` or ``xeon`` (their tables).
        calib: calibration images (the embedded model's are its training digits).
        runtime: the CPU runtime (``torch``, ``onnxruntime``); default: the faster one here
            by its tables. Target classes use their table's runtime.
        candidates: ``"default"`` (what each device deploys exactly, as its table covers
            it) or a list of specs to choose from (float32 is always one).
        sensitivity: the sensitivity method (``mixprec.sensitivity.available()``).
        max_drop: choose the fastest front plan whose measured top-1 drop (``eval_fn``, by
            default the embedded test digits) is at most this (a fraction, 0.01 = 1 point).
        size_mb: limit on the model's storage (MB).
        bops: limit on bit operations per image (GBOPs).
        devices: more devices to compute a front for (one sensitivity pass for all).
        refine_trials: completed trials of an Optuna study that refines the front with
            measured error (0: none): seeded with front plans, limits as constraints; the
            plan is then the trial of least measured error within the limits.
        storage: the study's storage: an Optuna RDB URL (``sqlite:///x.db``,
            ``postgresql://...``) or a journal file (``*.log``); default an SQLite file under
            the cache root. A study of the same name resumes.
        study_name: default ``mixprec-<model>-<device>-<runtime>-b<batch>-<settings hash>``.
        eval_fn: top-1 of a model (``max_drop`` mode and refinement), called on
            fake-quantized copies; default the embedded test digits (other models:
            refinement measures the output noise-to-signal on ``calib``).
        seed: seed of the sensitivity estimation.
        batch: images per call (the latency tables' batch).
        threads: CPU threads (the CPU tables').
        solver: ``cbc`` (PuLP) or ``highs`` (scipy).
        budget_fraction: the budget as a fraction of the float32 plan's predicted latency on
            ``device`` (instead of ``budget_ms``; 0.8: at least 1.25x faster than float).
        verify: confirm the choice by measuring (``device='cpu'`` only;
            :mod:`mixprec.search.verify`): deploy the solver's plan, ``side`` front plans on
            each side of it, the uniform baselines and the runtime's one-line peer, time them
            together here and return the best measured plan (the timings join the latency
            table's fit). ``eval_fn`` measures accuracy (default: the embedded test digits;
            without either, the output's noise-to-signal on ``calib``).
        timing: how plans are timed, when a latency table is measured and when the choice
            is verified (default :class:`~mixprec.cost_models.timing.TimingPolicy`).
        side: front plans measured on each side of the solver's choice.
        token_splits: also offer patch-wise specs on linear units (int8 with each image's
            outlier tokens in float, :func:`~mixprec.kernels.registry.token_split_candidates`)
            where the device and runtime run them (torch on ``cpu``, ``xeon``, ``a15``,
            ``a100``): the CPU's table is measured with them, a target class's analytic
            table prices them.
        progress: called with a line of text at each step of the verification.

    Raises:
        ValueError: bad arguments, a model other than the embedded one without ``calib``,
            or a budget below the fastest plan (the message gives its latency in ms).
    """
    if budget_ms is not None and not 0 < budget_ms < math.inf:
        raise ValueError(f"budget_ms must be a positive number of milliseconds, got {budget_ms}")
    if budget_fraction is not None and (budget_ms is not None or budget_fraction <= 0):
        raise ValueError("budget_fraction must be > 0 and replaces budget_ms (pass one), got "
                         f"{budget_fraction} with budget_ms={budget_ms}")
    if max_drop is not None and refine_trials:
        raise ValueError("max_drop and refine_trials each choose the plan by measured "
                         "accuracy: pass one of them")
    if verify and device != LOCAL_DEVICE:
        raise ValueError(f"verify deploys and times plans on this CPU: device must be "
                         f"{LOCAL_DEVICE!r}, not {device!r}")
    name, model = _model(model)
    targets = _devices(device, devices, runtime)
    if token_splits:
        _check_token_splits(targets, runtime)
    calib = calibration_images(name, model, calib)
    example = _timing_input(name, calib, batch)
    units = discover_units(model, first_samples(calib, 1))
    tables = {d: _tables(d, units, model, name, example, runtime, batch, threads, timing,
                         token_splits) for d in targets}
    wanted = _wanted(candidates, [t for ts in tables.values() for t in ts], token_splits)
    scored = _scored_candidates(units, [t for ts in tables.values() for t in ts], wanted)
    table_s = cached_sensitivity(model, units, scored, calib, sensitivity, seed)
    other_params = _params_outside(model, units)
    chosen: dict[str, tuple[LatencyTable, SearchProblem, list[FrontChoice]]] = {}
    for d, options in tables.items():
        fronts = []
        for table in options:
            problem = build_problem(units, table, table_s, wanted, other_params=other_params)
            fronts.append((table, problem, _front(problem, size_mb, bops, solver, d)))
        chosen[d] = min(fronts, key=lambda f: f[2][0].latency_ms)
        if len(fronts) > 1:
            logger.info("%s: %s is the faster runtime (%s)", d, chosen[d][0].runtime,
                        ", ".join(f"{t.runtime} {f[0].latency_ms:.3f} ms" for t, _, f in fronts))
    table, problem, front = chosen[device]
    if budget_fraction is not None:
        budget_ms = budget_fraction * problem.latency_of(baseline_choices(problem)["fp32"])
    measured: dict[str, Any] = {}
    if max_drop is not None:
        point, measured = fastest_within_drop(model, name, units, problem, front, calib,
                                              max_drop, eval_fn, budget_ms)
        choice = point.choice
    elif budget_ms is None:
        choice = front[-1].choice
    else:
        choice = _within_budget(problem, front, budget_ms, size_mb, bops, solver, device, table)
    study = None
    if refine_trials:
        from mixprec.search.refine import refine  # Optuna: imported when refining
        from mixprec.search.trials import Limits

        study = refine(model, name, units, calib, problem, front,
                       Limits(budget_ms, size_mb, bops), trials=refine_trials, storage=storage,
                       study_name=study_name, eval_fn=eval_fn, seed=seed,
                       context={"device": device, "runtime": table.runtime, "batch": batch})
        best = study.best()
        choice = problem.choice_of(best.plan)
        measured["refined"] = {"error_measure": study.error_measure,
                               "measured_error": best.measured_error, "trial": best.trial,
                               "front": [{"latency_ms": p.latency_ms, "trial": p.trial,
                                          "measured_error": p.measured_error,
                                          "predicted_error": p.predicted_error}
                                         for p in study.points]}
    baselines = {d: {name: _point(p, c) for name, c in baseline_choices(p).items()}
                 for d, (_, p, _) in chosen.items()}
    if verify:
        choice, table = _verified(model, name, units, problem, front, choice, table,
                                  baselines[device], calib, example, measured,
                                  Budget(None if budget_fraction else budget_ms,
                                         budget_fraction, max_drop),
                                  eval_fn, batch, threads, timing, side, progress)
    return SearchResult(
        plan=problem.plan(choice), latency_ms=problem.latency_of(choice),
        error=problem.error_of(choice), front=_points(problem, front), device=device,
        runtime=table.runtime, budget_ms=budget_ms,
        fronts={d: _points(p, f) for d, (_, p, f) in chosen.items()},
        tables={**{d: t for d, (t, _, _) in chosen.items()}, device: table},
        sensitivity=table_s, measured=measured,
        study_name=study.study_name if study else None,
        storage=study.storage if study else None, baselines=baselines)


def _verified(model: nn.Module, name: str, units: UnitList, problem: SearchProblem,
              front: list[FrontChoice], choice: tuple[int, ...], table: LatencyTable,
              baselines: dict[str, FrontPoint], calib: ModelInputs, example: ModelInputs,
              measured: dict[str, Any], budget: Budget,
              eval_fn: Callable[[nn.Module], float] | None, batch: int, threads: int,
              timing: TimingPolicy | None, side: int,
              progress: Callable[[str], None] | None) -> tuple[tuple[int, ...], LatencyTable]:
    """The measured choice (see :mod:`mixprec.search.verify`): records what was measured in
    ``measured``; returns the chosen choice and the table refitted with the new timings (or
    the table used, when it cannot learn from them)."""
    point, verification, learned = verify_choice(
        model, units, _point(problem, choice), baselines, _points(problem, front), calib,
        table.runtime, budget, top1_fn(name, eval_fn), batch=batch, threads=threads,
        side=side, policy=timing, timing_images=example, progress=progress)
    refitted = None
    if table.source == "measured":
        refitted = cost_models.learn(table, model, example, learned)
        if refitted is not None:
            verification = dataclasses.replace(verification, learned=len(learned))
    measured["verified"] = verification.to_dict()
    measured["deployed"] = [r.to_dict() for r in verification.rows]
    if verification.replaced:
        logger.info("measured choice: %s instead of the solver's %s", verification.chosen,
                    verification.predicted)
    return problem.choice_of(point.plan), refitted or table


def _model(model: nn.Module | str) -> tuple[str, nn.Module]:
    """(name, model in eval mode); the name of a module is its embedded name, if any."""
    if isinstance(model, str):
        return model, models.load(model).eval()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module or a model name, got "
                        f"{type(model).__name__}")
    return models.embedded_name(model) or "", model.eval()


def _devices(device: str, devices: Sequence[str] | None, runtime: str | None) -> list[str]:
    targets = [device] + [d for d in (devices or ()) if d != device]
    for d in targets:
        if d not in DEVICES:
            raise ValueError(f"unknown device {d!r}; choose from {DEVICES}")
    if runtime is not None:
        check_device(LOCAL_DEVICE, runtime)
    return list(dict.fromkeys(targets))


def _check_token_splits(targets: list[str], runtime: str | None) -> None:
    """Refuse token splits on a device (and runtime) that runs none."""
    for device in targets:
        runtimes = [runtime] if runtime and device == LOCAL_DEVICE else (
            RUNTIMES if device == LOCAL_DEVICE else ["torch"])
        if not any(token_split_candidates(device, rt) for rt in runtimes):
            where = f"device {device!r}" + (f", runtime {runtime!r}" if runtime else "")
            raise ValueError(f"{where} runs no token-split spec (the torch runtime on "
                             "cpu, xeon, a15 and a100 does)")


def _timing_input(name: str, calib: ModelInputs, batch: int) -> ModelInputs:
    """``batch`` images to time the model with (the embedded model: its test digits)."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if name in models.EMBEDDED_MODELS:
        from mixprec import data

        return data.mnist("test")[0][:batch]
    if sample_count(calib) < batch:
        raise ValueError(f"batch {batch} needs at least {batch} calibration images, got "
                         f"{sample_count(calib)}")
    return first_samples(calib, batch)


def _tables(device: str, units: UnitList, model: nn.Module, name: str, example: ModelInputs,
            runtime: str | None, batch: int, threads: int, timing: TimingPolicy | None,
            token_splits: bool = False) -> list[LatencyTable]:
    """The latency tables to choose from on ``device`` (the CPU: one per runtime, measured
    with the runtime's token-split candidates too when ``token_splits``)."""
    if device != LOCAL_DEVICE:
        extra = token_split_candidates(device) if token_splits else []
        try:
            table = cost_models.load(device, units.model_id, batch=batch)
            if _covers(table, extra):
                return [table]
            logger.info("%s: the analytic table prices token splits; the saved one does not",
                        device)
        except LookupError:
            if device not in cost_models.DEVICE_MODELS:
                raise
        specs = default_candidates(device) + extra if extra else None
        return [cost_models.analytic_table(units, device, batch, candidates=specs,
                                           model_name=name)]
    found = []
    for rt in [runtime] if runtime else RUNTIMES:
        extra = token_split_candidates(device, rt) if token_splits else []
        try:
            table = cost_models.load(device, units.model_id, runtime=rt, batch=batch,
                                     threads=threads, strict=True)
            if _covers(table, extra):
                found.append(table)
                continue
            logger.info("measuring the %s latency table again with token-split candidates", rt)
        except (LookupError, ValueError):
            logger.info("measuring the %s latency table of this CPU (once; cached)", rt)
        specs = default_candidates(device, runtime=rt) + extra if extra else None
        found.append(cost_models.measure(model, example, runtime=rt, threads=threads,
                                         candidates=specs, model_name=name, policy=timing))
    return found


def _wanted(candidates: str | Sequence[QuantSpec], tables: list[LatencyTable],
            token_splits: bool) -> list[QuantSpec] | None:
    """The specs the search may choose (None: whatever the tables cover): token-split specs
    that a table covers only with ``token_splits``, and always with it."""
    covered = list(dict.fromkeys(s for t in tables for k in {u.kind for u in t.units}
                                 for s in t.candidates(k)))
    splits = [s for s in covered if s.token_split is not None]
    if candidates == "default":
        if token_splits or not splits:
            return None
        return [s for s in covered if s.token_split is None]
    return list(candidates) + (splits if token_splits else [])


def _covers(table: LatencyTable, linear_specs: list[QuantSpec]) -> bool:
    """Whether ``table`` prices every one of ``linear_specs`` on every linear unit."""
    covered = table.candidates("linear")
    return all(s in covered for s in linear_specs)


def _scored_candidates(units: UnitList, tables: list[LatencyTable],
                       wanted: list[QuantSpec] | None) -> list[QuantSpec]:
    """The non-float specs that some unit may take on some table."""
    found: list[QuantSpec] = []
    for table in tables:
        for kind in {u.kind for u in units}:
            found += [s for s in table.candidates(kind) if not s.is_float and s not in found
                      and (wanted is None or s in wanted)]
    return found


def _params_outside(model: nn.Module, units: UnitList) -> int:
    """Parameters no unit quantizes (everything but the units' weights: their biases,
    norms, embeddings), kept in float32."""
    return sum(p.numel() for p in model.parameters()) - sum(u.params for u in units)


def _front(problem: SearchProblem, size_mb: float | None, bops: float | None, solver: str,
           device: str) -> list[FrontChoice]:
    try:
        return pareto_front(problem, size_mb=size_mb, gbops=bops, solver=solver)
    except InfeasibleError:
        all_float = tuple(problem.options[i].index(FLOAT32) for i in range(len(problem.units)))
        raise InfeasibleError(f"no plan on {device} meets the limits (size_mb={size_mb}, "
                              f"bops={bops}); float32 needs "
                              f"{problem.size_of(all_float):.2f} MB and "
                              f"{problem.gbops_of(all_float):.2f} GBOPs") from None


def _within_budget(problem: SearchProblem, front: list[FrontChoice], budget_ms: float,
                   size_mb: float | None, bops: float | None, solver: str, device: str,
                   table: LatencyTable) -> tuple[int, ...]:
    fastest = front[0].latency_ms
    if budget_ms < fastest:
        raise InfeasibleError(f"budget {budget_ms:.4g} ms is infeasible on {device} "
                              f"({table.runtime}, batch {table.batch}): the fastest plan "
                              f"takes {fastest:.4g} ms")
    return best_within(problem, budget_ms, size_mb=size_mb, gbops=bops, solver=solver)


def _points(problem: SearchProblem, front: list[FrontChoice]) -> list[FrontPoint]:
    return [_point(problem, p.choice) for p in front]


def _point(problem: SearchProblem, choice: tuple[int, ...]) -> FrontPoint:
    return FrontPoint(problem.latency_of(choice), problem.error_of(choice),
                      problem.plan(choice))

