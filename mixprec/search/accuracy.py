"""What the search measures: the embedded model's own data, the measured error of a plan, and
the fastest front plan within a measured top-1 drop (max_drop mode)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from mixprec import models
from mixprec.quant.calibrate import calibrate
from mixprec.quant.inputs import ModelInputs, call_model, primary_output
from mixprec.quant.plan import Plan
from mixprec.quant.simulate import simulate
from mixprec.quant.units import UnitList
from mixprec.search.ilp import InfeasibleError
from mixprec.search.pareto import FrontChoice
from mixprec.search.problem import SearchProblem
from mixprec.sensitivity.metrics import noise_to_signal

CALIBRATION_IMAGES = 256
"""Calibration images of the embedded model (its training digits)."""


def calibration_images(name: str, model: nn.Module, calib: ModelInputs | None) -> ModelInputs:
    """``calib``, or the embedded model's own (its first training digits).

    Raises:
        ValueError: no ``calib`` for a model other than the embedded ones.
    """
    if calib is not None:
        return calib
    if name in models.EMBEDDED_MODELS:
        from mixprec import data

        return data.mnist("train")[0][:CALIBRATION_IMAGES]
    raise ValueError(f"calibration images are needed for {name or type(model).__name__}: "
                     f"pass calib= (a tensor of images, or mixprec.data.image_folder(...)); "
                     f"only the embedded {' / '.join(models.EMBEDDED_MODELS)} bring their own")


def top1_on(images: torch.Tensor, labels: torch.Tensor) -> Callable[[Callable], float]:
    """Top-1 of a model (or a deployed one) on ``images``, 250 at a time."""
    def top1(model: Callable) -> float:
        with torch.inference_mode():
            logits = torch.cat([torch.as_tensor(model(x)) for x in images.split(250)])
        return (logits.argmax(-1) == labels).float().mean().item()
    return top1


def embedded_top1(name: str) -> Callable[[nn.Module], float]:
    """Top-1 of a model on the embedded model's 1,000 test digits."""
    from mixprec import data

    if name not in models.EMBEDDED_MODELS:
        raise ValueError(f"{name!r} is not an embedded model")
    return top1_on(*data.mnist("test"))


def top1_fn(name: str, eval_fn: Callable[[nn.Module], float] | None
            ) -> Callable[[nn.Module], float] | None:
    """``eval_fn``, else the embedded test digits' top-1 for an embedded model, else None."""
    if eval_fn is None and name in models.EMBEDDED_MODELS:
        return embedded_top1(name)
    return eval_fn


def plan_models(model: nn.Module, units: UnitList, calib: ModelInputs
                ) -> Callable[[Plan], nn.Module]:
    """plan -> its fake-quantized model (calibration statistics collected once)."""
    stats = calibrate(model, list(units), calib)
    return lambda plan: simulate(model, plan, calib, units=units, stats=stats)


def plan_error(model: nn.Module, name: str, units: UnitList, calib: ModelInputs,
               eval_fn: Callable[[nn.Module], float] | None) -> tuple[str, Callable[[Plan], float]]:
    """(what it measures, plan -> measured error of its fake-quantized model): one minus
    ``eval_fn``'s top-1, else the embedded test digits' top-1 error, else (no labelled data)
    the noise-to-signal ratio of the model's outputs on the calibration images."""
    quantized = plan_models(model, units, calib)
    top1 = top1_fn(name, eval_fn)
    if top1 is not None:
        return "top-1 error", lambda plan: 1.0 - top1(quantized(plan))
    with torch.inference_mode():
        reference = primary_output(call_model(model, calib))

    def output_noise(plan: Plan) -> float:
        with torch.inference_mode():
            return noise_to_signal(primary_output(call_model(quantized(plan), calib)),
                                   reference)

    return "output noise-to-signal on the calibration images", output_noise


def fastest_within_drop(model: nn.Module, name: str, units: UnitList, problem: SearchProblem,
                        front: list[FrontChoice], calib: ModelInputs, max_drop: float,
                        eval_fn: Callable[[nn.Module], float] | None,
                        budget_ms: float | None) -> tuple[FrontChoice, dict[str, Any]]:
    """The fastest point of ``front`` (within ``budget_ms``) whose fake-quantized model
    loses at most ``max_drop`` top-1 against the float model, by ``eval_fn``.

    The front is bisected on the assumption that the measured drop shrinks as the predicted
    error does (it is ordered by predicted error); every plan tried is measured, and the
    returned one always meets the limit.

    Raises:
        ValueError: no ``eval_fn`` for a model that is not embedded, a negative
            ``max_drop``, or no front point within the budget meets the limit.
    """
    if max_drop < 0:
        raise ValueError(f"max_drop must be >= 0 (a fraction of top-1), got {max_drop}")
    top1 = top1_fn(name, eval_fn)
    if top1 is None:
        raise ValueError("max_drop needs eval_fn (top-1 of a model on your data) for a "
                         "model other than the embedded one")
    points = [p for p in front if budget_ms is None or p.latency_ms <= budget_ms]
    if not points:
        raise InfeasibleError(f"no front plan within the budget {budget_ms} ms")
    float_top1 = top1(model)
    quantized = plan_models(model, units, calib)
    tried: dict[int, float] = {}

    def drop(k: int) -> float:
        if k not in tried:
            tried[k] = top1(quantized(problem.plan(points[k].choice)))
        return float_top1 - tried[k]

    low, high = 0, len(points) - 1
    if drop(high) > max_drop:
        raise InfeasibleError(f"even the most accurate plan within the budget loses "
                              f"{drop(high):.4f} top-1 (> max_drop {max_drop})")
    while low < high:
        middle = (low + high) // 2
        if drop(middle) <= max_drop:
            high = middle
        else:
            low = middle + 1
    measured = {"float_top1": float_top1, "max_drop": max_drop,
                "tried": [{"latency_ms": points[k].latency_ms, "error": points[k].error,
                           "top1": top1} for k, top1 in sorted(tried.items())]}
    return points[high], measured
