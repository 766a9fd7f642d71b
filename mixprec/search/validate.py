"""Deploy plans on this CPU with real kernels and measure them: latency (interleaved, round
by round), top-1 on labelled images, and how far the deployed outputs are from the
simulation's (the same calibration statistics serve both)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from mixprec.cost_models.timing import time_round_robin
from mixprec.quant.calibrate import calibrate
from mixprec.quant.simulate import simulate
from mixprec.quant.units import UnitList
from mixprec.search.result import FrontPoint
from mixprec.sensitivity.metrics import sqnr_db

Progress = Callable[[str], None]
CHECK_IMAGES = 64
"""Images the deployed outputs are compared with the simulation's on."""
CHUNK = 250
"""Images per forward pass when evaluating."""


@dataclass(frozen=True)
class Measured:
    """One deployed plan, measured here.

    Attributes:
        name: what the plan is (``chosen``, a baseline's name, ``front #k``).
        runtime: the runtime it was deployed in.
        latency_ms: median per-call latency (``batch`` images) over the rounds.
        spread_ms: interquartile range of the per-round medians.
        predicted_ms: the latency table's prediction.
        predicted_error: the sensitivity table's predicted error.
        top1: top-1 of the deployed model (None: no labels).
        sqnr_db: output SQNR of the deployed model against the simulation on the first
            :data:`CHECK_IMAGES` images (inf: identical).
    """

    name: str
    runtime: str
    latency_ms: float
    spread_ms: float
    predicted_ms: float
    predicted_error: float
    top1: float | None
    sqnr_db: float

    def to_dict(self) -> dict[str, Any]:
        """Plain data (an infinite SQNR as None)."""
        data = asdict(self)
        data["sqnr_db"] = self.sqnr_db if math.isfinite(self.sqnr_db) else None
        return data


def measure_plans(model: nn.Module, plans: Mapping[str, FrontPoint], units: UnitList,
                  calib: torch.Tensor, images: torch.Tensor, labels: torch.Tensor | None,
                  runtime: str, batch: int = 1, threads: int = 2, rounds: int = 5,
                  repeats: int = 10, progress: Progress | None = None) -> list[Measured]:
    """Deploy every plan on this CPU in ``runtime`` and measure it (see :class:`Measured`).

    Latency: every plan is called on the first ``batch`` of ``images``, in turn, ``rounds``
    times over (:func:`~mixprec.cost_models.timing.time_round_robin`). Accuracy: top-1 of the
    deployed model on all ``images``, when ``labels`` are given; and its outputs against the
    fake-quantized model's on the first :data:`CHECK_IMAGES`.
    """
    from mixprec.deploy import deploy

    say = progress or (lambda message: None)
    stats = calibrate(model, list(units), calib)
    deployed: dict[str, Any] = {}
    for name, point in plans.items():
        say(f"deploying {name} ({runtime})")
        deployed[name] = deploy(model, point.plan, calib=calib, runtime=runtime, units=units,
                                stats=stats, threads=threads)
    x = images[:batch]
    say(f"timing {len(deployed)} deployed plans, {rounds} interleaved rounds")
    with torch.inference_mode():
        timings = time_round_robin([_caller(d, x) for d in deployed.values()], rounds=rounds,
                                   repeats=repeats)
    found = []
    for (name, point), timing in zip(plans.items(), timings):
        say(f"evaluating {name} on {len(images)} images")
        real = _logits(deployed[name], images)
        simulated = _logits(simulate(model, point.plan, calib, units=units, stats=stats),
                            images[:CHECK_IMAGES])
        found.append(Measured(name, runtime, timing.median_ms, timing.spread_ms,
                              point.latency_ms, point.error, _top1(real, labels),
                              sqnr_db(real[:CHECK_IMAGES], simulated)))
    return found


def fp32_ms(rows: Sequence[Mapping[str, Any]]) -> float | None:
    """The measured latency of the float32 plan among measurement rows (``to_dict`` form),
    whether it was measured as ``fp32`` or as the chosen plan equal to it."""
    for row in rows:
        if row["name"] == "fp32" or row["name"].endswith("= fp32"):
            return float(row["latency_ms"])
    return None


def _caller(model: Callable[[torch.Tensor], Any], x: torch.Tensor) -> Callable[[], object]:
    return lambda: model(x)


def _logits(model: Callable[[torch.Tensor], Any], images: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([torch.as_tensor(model(chunk)).float()
                          for chunk in images.split(CHUNK)])


def _top1(logits: torch.Tensor, labels: torch.Tensor | None) -> float | None:
    if labels is None:
        return None
    return (logits.argmax(-1) == labels).float().mean().item()


def plans_to_measure(chosen: FrontPoint, baselines: Mapping[str, FrontPoint],
                     front: list[FrontPoint], front_points: int) -> dict[str, FrontPoint]:
    """The chosen plan, the baselines, and ``front_points`` plans spread along the front:
    name -> point. A plan is measured once: the chosen plan takes the name of the baseline
    it equals (``chosen = fp32``); front plans equal to another are left out."""
    from mixprec.search.pareto import spread

    same = [name for name, point in baselines.items() if point.plan == chosen.plan]
    found: dict[str, FrontPoint] = {
        "chosen" + (f" = {same[0]}" if same else ""): chosen,
        **{name: point for name, point in baselines.items() if name not in same}}
    seen = [p.plan for p in found.values()]
    for point in spread(front, front_points) if front_points else []:
        if point.plan not in seen:
            found[f"front #{front.index(point)}"] = point
            seen.append(point.plan)
    return found
