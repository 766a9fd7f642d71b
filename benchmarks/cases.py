"""Shared by benchmarks: a model with its data, an accuracy measure, plans timed together."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from mixprec.quant import Plan

RANDOM_IMAGES = 32
"""Calibration (and evaluation) images of a timm model with random weights."""


def model_and_data(name: str
                   ) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(model, calibration images, evaluation images, labels or None); a timm model gets
    random weights and random images (evaluated on the first eight)."""
    from mixprec import data, models

    if name in models.EMBEDDED_MODELS:
        images, labels = data.mnist("test")
        return models.load(name), data.mnist("train")[0][:256], images, labels
    torch.manual_seed(0)
    model = models.load(name, pretrained=False)
    shape = model.pretrained_cfg["input_size"]
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(RANDOM_IMAGES, *shape, generator=gen)
    return model, images, images[:8], None


def accuracy_fn(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor | None
                ) -> tuple[str, Callable[[torch.nn.Module], float]]:
    """(name, function): top-1 with labels, else output SQNR (dB) against ``model``."""
    from mixprec.sensitivity.metrics import sqnr_db

    with torch.inference_mode():
        reference = model(images).float()

    def measure(candidate: torch.nn.Module) -> float:
        with torch.inference_mode():
            out = candidate(images).float()
        if labels is not None:
            return (out.argmax(-1) == labels).float().mean().item()
        return sqnr_db(out, reference)

    return ("top-1" if labels is not None else "SQNR dB"), measure


def timed(model: torch.nn.Module, plans: dict[str, Plan], calib: torch.Tensor,
          example: torch.Tensor, threads: int, accuracy: Callable[[torch.nn.Module], float]
          ) -> dict[str, tuple[float, float]]:
    """Plan name -> (measured ms, accuracy): every plan deployed in the torch runtime and
    timed against float32 in one set of interleaved rounds."""
    from mixprec import deploy, quant
    from mixprec.cost_models.timing import time_against

    units = quant.discover_units(model, example[:1])
    stats = quant.calibrate(model, list(units), calib)
    real = {name: deploy(model, plan, calib=calib, units=units, stats=stats, threads=threads)
            for name, plan in plans.items()}
    scores = {name: accuracy(m) for name, m in real.items()}
    with torch.inference_mode():
        found = time_against(lambda: model(example), [lambda m=m: m(example)
                                                       for m in real.values()])
    return {name: (t.ratio * t.reference_ms, scores[name]) for name, t in zip(real, found)}


def fronts_side_by_side(name: str, searches: dict[str, dict[str, Any]],
                        count: Callable[[Plan], int], what: str,
                        args: argparse.Namespace) -> None:
    """Fronts of the torch runtime on this CPU, one per search (kind -> ``search.run``
    keyword arguments; the first one measures the table the others use): ``args.points``
    plans spread along each are deployed and timed together (``args.batch``,
    ``args.threads``); printed: each plan's predicted and measured ms, accuracy and its
    ``count`` of ``what``, then :func:`print_wins`."""
    from mixprec import search
    from mixprec.search.pareto import spread

    model, calib, images, labels = model_and_data(name)
    plans, predicted = {}, {}
    for kind, kwargs in searches.items():
        front = search.run(model, device="cpu", runtime="torch", batch=args.batch,
                           threads=args.threads, **kwargs).front
        print(f"front {kind}: {len(front)} plans, predicted {front[0].latency_ms:.3f} .. "
              f"{front[-1].latency_ms:.3f} ms")
        for rank, point in enumerate(spread(front, args.points)):
            plans[f"{kind} #{rank}"] = point.plan
            predicted[f"{kind} #{rank}"] = point.latency_ms
    metric, accuracy = accuracy_fn(model, images, labels)
    found = timed(model, plans, calib, images[: args.batch], args.threads, accuracy)
    print(f"\n{name}, batch {args.batch}, torch runtime")
    print(f"{'plan':<14}{'predicted ms':>13}{'measured ms':>13}{metric:>9}  {what}")
    for plan_name in sorted(found, key=lambda n: found[n][0]):
        ms, score = found[plan_name]
        print(f"{plan_name:<14}{predicted[plan_name]:>13.3f}{ms:>13.3f}{score:>9.4f}  "
              f"{count(plans[plan_name])}")
    print_wins({n: (ms, score, count(plans[n])) for n, (ms, score) in found.items()}, what)


def print_wins(rows: dict[str, tuple[float, float, int]], what: str) -> None:
    """For every plan that uses ``what`` (name -> (ms, accuracy, units using it)), the best
    accuracy of a plan without it at the same or lower latency; then how many win."""
    plain = [(ms, score) for ms, score, used in rows.values() if not used]
    wins = 0
    for plan_name, (ms, score, used) in rows.items():
        if not used:
            continue
        best = max((s for m, s in plain if m <= ms), default=None)
        verdict = (f"no plan without {what} is as fast" if best is None
                   else f"best without {what} at <= its ms: {best:.4f} "
                        f"({'WIN' if score > best else 'no win'}, {score - best:+.4f})")
        wins += best is not None and score > best
        print(f"  {plan_name}: {score:.4f} at {ms:.4f} ms; {verdict}")
    print(f"plans with {what} that win: {wins}")
