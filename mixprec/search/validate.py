"""Deploy plans on this CPU with real kernels and measure them beside each other: latency
(against the float32 plan, in interleaved rounds), accuracy (top-1 where there are labels,
else the output's noise-to-signal against the float model), and how far the deployed outputs
are from the simulation's (the same calibration statistics serve both). A runtime's one-line
peer (:mod:`mixprec.deploy.peers`) can be measured with them; a peer whose outputs equal a
plan's is that plan (ONNX Runtime's ``quantize_dynamic`` is mixprec's uniform
``W8tA8-dynamic-tensor-affine`` plan), measured once, so that the plan stands for it."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from mixprec.cost_models.timing import RatioTiming, TimingPolicy, time_against
from mixprec.quant.calibrate import calibrate
from mixprec.quant.inputs import call_model, primary_output
from mixprec.quant.plan import Plan
from mixprec.quant.simulate import simulate
from mixprec.quant.units import UnitList
from mixprec.search.result import FrontPoint
from mixprec.sensitivity.metrics import noise_to_signal, sqnr_db

Progress = Callable[[str], None]
Accuracy = Callable[[Callable[..., Any]], float]
"""Top-1 of a (deployed) model on labelled images."""
CHECK_IMAGES = 64
"""Calibration images the deployed outputs are compared on, with the simulation's and the
float model's."""
CHUNK = 250
"""Images per forward pass when comparing outputs."""
SAME_OUTPUTS = 1e-5
"""Largest output difference, relative to the outputs' largest magnitude, at which a peer is
the same model as a plan (float32 rounding of the same integer computation)."""
REFERENCE = "fp32"
"""The name of the float32 plan every timing is taken against."""
PlanTimed = tuple[Plan, RatioTiming, tuple[str, ...]]
"""A plan, its timing against float32 and the MLPs whose chains its deployment fused."""


@dataclass(frozen=True)
class Measured:
    """One deployed plan (or peer), measured here.

    Attributes:
        name: what it is (``chosen``, ``front #k``, a baseline's name, a peer's name).
        role: ``chosen``, ``front``, ``baseline`` or ``peer``.
        runtime: the runtime it was deployed in.
        latency_ms: median per-call latency (``batch`` images) over the rounds.
        spread_ms: half-width of its latency's ~95% confidence interval (from its ratio to
            float32; 0 for the float32 plan, the reference).
        predicted_ms: the latency table's prediction (None for a peer).
        predicted_error: the sensitivity table's predicted error (None for a peer).
        top1: top-1 of the deployed model (None: no labels).
        output_error: noise-to-signal of its outputs against the float model's on the first
            :data:`CHECK_IMAGES` calibration images.
        sqnr_db: output SQNR of the deployed model against the simulation on the first
            :data:`CHECK_IMAGES` images (inf: identical; None for a peer).
        same_as: for a peer, the plan whose outputs it equals (its figures are that plan's:
            the same model, measured once), else None.
    """

    name: str
    role: str
    runtime: str
    latency_ms: float
    spread_ms: float
    predicted_ms: float | None
    predicted_error: float | None
    top1: float | None
    output_error: float
    sqnr_db: float | None
    same_as: str | None = None

    @property
    def accuracy(self) -> float:
        """Higher is better: top-1 where measured, else minus the output error."""
        return self.top1 if self.top1 is not None else -self.output_error

    def to_dict(self) -> dict[str, Any]:
        """Plain data (an infinite SQNR as None)."""
        data = asdict(self)
        if data["sqnr_db"] is not None and not math.isfinite(data["sqnr_db"]):
            data["sqnr_db"] = None
        return data


@dataclass(frozen=True)
class Candidate:
    """What to measure: a plan (with its predictions) or a peer."""

    role: str
    point: FrontPoint | None = None
    peer: Callable[..., Any] | None = None


def measure_plans(model: nn.Module, candidates: Mapping[str, Candidate], units: UnitList,
                  calib: torch.Tensor, runtime: str, accuracy: Accuracy | None = None,
                  batch: int = 1, threads: int = 2, policy: TimingPolicy | None = None,
                  timing_images: torch.Tensor | None = None,
                  progress: Progress | None = None
                  ) -> tuple[list[Measured], list[PlanTimed]]:
    """Deploy every candidate on this CPU in ``runtime`` and measure it (see :class:`Measured`).

    ``candidates`` must hold the float32 plan under :data:`REFERENCE`: every other candidate
    is timed against it, all in the same interleaved rounds, on the first ``batch`` of
    ``timing_images`` (default ``calib``).

    Returns:
        (the measurements, in the order of ``candidates``; (plan, its timing against float32,
        the MLPs whose chains its deployment fused) for every plan but the reference).

    Raises:
        ValueError: no :data:`REFERENCE` candidate.
    """
    from mixprec.deploy import deploy

    if REFERENCE not in candidates:
        raise ValueError(f"measure_plans needs the float32 plan as {REFERENCE!r}")
    say = progress or (lambda message: None)
    stats = calibrate(model, list(units), calib)
    deployed: dict[str, Any] = {}
    for name, candidate in candidates.items():
        say(f"deploying {name} ({runtime})")
        if candidate.point is not None:
            deployed[name] = deploy(model, candidate.point.plan, calib=calib, runtime=runtime,
                                    units=units, stats=stats, threads=threads)
        else:
            deployed[name] = candidate.peer
    checked = calib[:CHECK_IMAGES]
    outputs = {name: _outputs(real, checked) for name, real in deployed.items()}
    same_as = {name: _same_model(outputs[name], {n: outputs[n] for n, c in candidates.items()
                                                 if c.point is not None})
               for name, candidate in candidates.items() if candidate.point is None}
    x = (calib if timing_images is None else timing_images)[:batch]
    others = [n for n in deployed if n != REFERENCE and same_as.get(n) is None]
    say(f"timing {len(others) + 1} deployed models against float32, interleaved rounds")
    with torch.inference_mode():
        timings = dict(zip(others, time_against(_caller(deployed[REFERENCE], x),
                                                [_caller(deployed[n], x) for n in others],
                                                policy)))
        reference_ms = statistics.median(t.reference_ms for t in timings.values())
        float_out = _outputs(model, checked)
    found: dict[str, Measured] = {}
    learned: list[PlanTimed] = []
    for name, candidate in candidates.items():
        if same_as.get(name) is not None:
            continue
        say(f"evaluating {name}")
        timing = timings.get(name)
        # the ratio, corrected for the machine's speed at each turn, ranks the plans of a
        # block far more steadily than each plan's raw median time
        latency = timing.ratio * reference_ms if timing is not None else reference_ms
        ci = timing.ratio_ci * latency if timing is not None else 0.0
        real = deployed[name]
        out = outputs[name]
        point = candidate.point
        sqnr = None
        if point is not None:
            simulated = _outputs(simulate(model, point.plan, calib, units=units, stats=stats),
                                 checked)
            sqnr = sqnr_db(out, simulated)
            if timing is not None:
                report = getattr(real, "deploy_report", None)
                learned.append((point.plan, timing, tuple(getattr(report, "fused", ()))))
        found[name] = Measured(
            name, candidate.role, runtime, latency, ci,
            point.latency_ms if point else None, point.error if point else None,
            accuracy(real) if accuracy is not None else None,
            noise_to_signal(out, float_out), sqnr)
    for name, plan_name in same_as.items():
        if plan_name is not None:
            found[name] = replace(found[plan_name], name=name, role="peer", predicted_ms=None,
                                  predicted_error=None, sqnr_db=None, same_as=plan_name)
    return [found[name] for name in candidates], learned


def fp32_ms(rows: Sequence[Mapping[str, Any]]) -> float | None:
    """The measured latency of the float32 plan among measurement rows (``to_dict`` form)."""
    for row in rows:
        if row["name"] == REFERENCE:
            return float(row["latency_ms"])
    return None


def _same_model(peer: torch.Tensor, plans: Mapping[str, torch.Tensor]) -> str | None:
    """The first plan whose outputs equal ``peer``'s (up to :data:`SAME_OUTPUTS`), or None."""
    for name, out in plans.items():
        if out.shape == peer.shape and ((out - peer).abs().max()
                                        <= SAME_OUTPUTS * out.abs().max().clamp_min(1e-30)):
            return name
    return None


def _caller(model: Callable[..., Any], x: torch.Tensor) -> Callable[[], object]:
    return lambda: call_model(model, x)


def _outputs(model: Callable[..., Any], images: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([primary_output(call_model(model, chunk)).float()
                          for chunk in images.split(CHUNK)])
