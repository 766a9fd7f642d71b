"""Run a study recipe: search once, then compare the recipe's plans on accuracy and latency
(deployed and measured on this CPU, or predicted by a target's table), as a table."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from mixprec import models, quant, search
from mixprec.files import write_atomic
from mixprec.kernels.registry import LOCAL_DEVICE
from mixprec.quant.calibrate import calibrate
from mixprec.search.accuracy import top1_on
from mixprec.search.baselines import snapped_choice
from mixprec.search.problem import build_problem
from mixprec.search.result import FrontPoint, SearchResult
from mixprec.search.validate import REFERENCE, Candidate, fp32_ms, measure_plans
from mixprec.sensitivity.hybrid import hybrid_plan
from mixprec.sensitivity.metrics import sqnr_db
from mixprec.studies.recipe import Recipe

Progress = Callable[[str], None]


@dataclass(frozen=True)
class StudyData:
    """What a study runs on.

    Attributes:
        model: the model.
        calib: calibration images.
        images: evaluation images.
        labels: their labels (None: accuracy is the output SQNR against the float model).
        note: where weights and images came from.
    """

    model: nn.Module
    calib: torch.Tensor
    images: torch.Tensor
    labels: torch.Tensor | None
    note: str


@dataclass(frozen=True)
class Row:
    """One compared plan.

    Attributes:
        plan: its name (``int8 static``, ``hq``, ``searched @ 0.75 fp32``, ...).
        latency_ms: measured (device ``cpu``) or predicted latency.
        latency_source: ``measured here`` or the table's source (``analytic``, ``measured``).
        predicted_ms: the table's prediction.
        speedup: float32's latency over this plan's.
        accuracy: top-1, or output SQNR in dB (see ``accuracy_kind``).
        accuracy_kind: ``top-1 (deployed)``, ``top-1 (simulated)`` or ``output SQNR dB``.
        predicted_error: the sensitivity table's predicted error.
    """

    plan: str
    latency_ms: float
    latency_source: str
    predicted_ms: float
    speedup: float
    accuracy: float
    accuracy_kind: str
    predicted_error: float


def study_data(recipe: Recipe, weights: str | None, data: str | None, seed: int = 0
               ) -> StudyData:
    """The recipe's model and images: ``weights`` / ``data`` when given; else the embedded
    model's own digits, or random weights and seeded synthetic images."""
    from mixprec.workloads import load_inputs

    embedded = recipe.model in models.EMBEDDED_MODELS
    if data is not None or embedded:
        model, images, labels, calib = load_inputs(recipe.model, weights, data, None,
                                                   recipe.calib_size)
        source = "embedded digits" if data is None else data
        return StudyData(model, calib, images[: recipe.eval_size],
                         None if labels is None else labels[: recipe.eval_size],
                         f"{'shipped' if embedded else weights or 'pretrained'} weights, "
                         f"images: {source}")
    model = models.load(recipe.model, weights=weights, pretrained=False)
    shape = (3, *model.pretrained_cfg["input_size"][1:])
    images = torch.randn(recipe.synthetic_images, *shape,
                         generator=torch.Generator().manual_seed(seed))
    return StudyData(model, images[: recipe.calib_size], images, None,
                     f"{weights or 'random'} weights, {len(images)} synthetic images "
                     "(accuracy: output SQNR against the float model)")


def run_study(recipe: Recipe, data: StudyData, out: Path, threads: int = 2,
              progress: Progress | None = None) -> list[Row]:
    """Compare the recipe's plans; write ``comparison.csv`` / ``.md`` / ``.json`` and the
    search's run folder (``search/``) into ``out``; return the rows."""
    say = progress or (lambda message: None)
    say(f"searching {recipe.model} on {recipe.device}")
    result = search.run(data.model, None, recipe.device, data.calib, runtime=recipe.runtime,
                        batch=recipe.batch, threads=threads)
    result.save(out / "search")
    plans = compared_plans(recipe, data, result, say)
    if recipe.device == LOCAL_DEVICE:
        rows = _measured_rows(recipe, data, result, plans, threads, say)
    else:
        rows = _predicted_rows(data, result, plans, say)
    write_comparison(recipe, data, result, rows, out)
    return rows


def compared_plans(recipe: Recipe, data: StudyData, result: SearchResult, say: Progress
                   ) -> dict[str, FrontPoint]:
    """Plan name -> point, for everything the recipe compares."""
    device = recipe.device
    found: dict[str, FrontPoint] = {}
    baselines = result.baselines[device]
    for name in recipe.compare:
        if name in baselines:
            found[name] = baselines[name]
        elif name == "hq":
            say("Hybrid Quantization: static vs dynamic SQNR of every linear unit")
            found["hq"] = _hq_point(recipe, data, result)
    if "searched" in recipe.compare:
        fp32_ms = baselines["fp32"].latency_ms
        for fraction in recipe.budgets:
            within = [p for p in result.front if p.latency_ms <= fraction * fp32_ms]
            if within:
                found[f"searched @ {fraction:g} x fp32"] = within[-1]
            else:
                say(f"no plan within {fraction:g} x fp32 on {device} (fastest "
                    f"{result.front[0].latency_ms:.3f} ms)")
    return found


def _hq_point(recipe: Recipe, data: StudyData, result: SearchResult) -> FrontPoint:
    units = quant.discover_units(data.model, data.calib[:1])
    problem = build_problem(units, result.tables[recipe.device], result.sensitivity)
    hq = hybrid_plan(data.model, units, data.calib, tolerance_db=recipe.hq_tolerance_db)
    choice = snapped_choice(problem, hq)
    if choice is None:
        raise ValueError(f"the Hybrid Quantization plan cannot run on {recipe.device}")
    return FrontPoint(problem.latency_of(choice), problem.error_of(choice),
                      problem.plan(choice))


def _measured_rows(recipe: Recipe, data: StudyData, result: SearchResult,
                   plans: dict[str, FrontPoint], threads: int, say: Progress) -> list[Row]:
    units = quant.discover_units(data.model, data.calib[:1])
    candidates = {REFERENCE: Candidate("baseline", result.baselines[recipe.device][REFERENCE])}
    candidates.update({name: Candidate("plan", point) for name, point in plans.items()
                       if name != REFERENCE})
    accuracy = None if data.labels is None else top1_on(data.images, data.labels)
    found, _ = measure_plans(data.model, candidates, units, data.calib, result.runtime,
                             accuracy, batch=recipe.batch, threads=threads,
                             timing_images=data.images, progress=say)
    fp32 = fp32_ms([m.to_dict() for m in found]) or math.nan
    rows = []
    for m in found:
        accuracy, kind = ((m.top1, "top-1 (deployed)") if m.top1 is not None
                          else (m.sqnr_db, "output SQNR dB (vs simulation)"))
        rows.append(Row(m.name, m.latency_ms, f"measured here ({result.runtime})",
                        m.predicted_ms, fp32 / m.latency_ms, accuracy, kind,
                        m.predicted_error))
    return rows


def _predicted_rows(data: StudyData, result: SearchResult, plans: dict[str, FrontPoint],
                    say: Progress) -> list[Row]:
    units = quant.discover_units(data.model, data.calib[:1])
    stats = calibrate(data.model, list(units), data.calib)
    with torch.inference_mode():
        reference = data.model(data.images)
    source = result.tables[result.device].source
    fp32 = plans["fp32"].latency_ms if "fp32" in plans else math.nan
    rows = []
    for name, point in plans.items():
        say(f"evaluating {name} (simulated)")
        simulated = quant.simulate(data.model, point.plan, data.calib, units=units,
                                   stats=stats)
        with torch.inference_mode():
            logits = simulated(data.images)
        if data.labels is not None:
            accuracy = (logits.argmax(-1) == data.labels).float().mean().item()
            kind = "top-1 (simulated)"
        else:
            accuracy, kind = sqnr_db(logits, reference), "output SQNR dB (vs float)"
        rows.append(Row(name, point.latency_ms, f"predicted ({source} table)", point.latency_ms,
                        fp32 / point.latency_ms, accuracy, kind, point.error))
    return rows


def write_comparison(recipe: Recipe, data: StudyData, result: SearchResult, rows: list[Row],
                     out: Path) -> None:
    """``comparison.csv``, ``comparison.md`` and ``comparison.json`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(asdict(rows[0])), lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(r) for r in rows)
    write_atomic(out / "comparison.csv", buffer.getvalue())
    write_atomic(out / "comparison.md", comparison_markdown(recipe, data, result, rows))
    table = result.tables[recipe.device]
    write_atomic(out / "comparison.json", json.dumps({
        "recipe": asdict(recipe), "data": data.note, "runtime": result.runtime,
        "table": {"source": table.source, "batch": table.batch, "threads": table.threads,
                  "cpu": table.provenance.get("cpu"), "cpu_key": table.provenance.get("cpu_key")},
        "rows": [asdict(r) for r in rows]}, indent=1))


def comparison_markdown(recipe: Recipe, data: StudyData, result: SearchResult,
                        rows: list[Row]) -> str:
    """The comparison as a Markdown table with its context."""
    table = result.tables[recipe.device]
    machine = table.provenance.get("cpu") or "analytic device model"
    lines = [f"# {recipe.title}", "", f"{data.note}; {recipe.device} ({result.runtime}), "
             f"batch {recipe.batch}; latency table: {table.source} ({machine}).", "",
             f"| plan | latency ms | vs fp32 | {rows[0].accuracy_kind} | predicted ms | "
             "predicted error |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.plan} | {r.latency_ms:.3f} | {r.speedup:.2f}x | "
                     f"{r.accuracy:.4f} | {r.predicted_ms:.3f} | {r.predicted_error:.4g} |")
    lines.append("")
    lines.append(f"Latency: {rows[0].latency_source}.")
    return "\n".join(lines) + "\n"
