"""fidelity(): do a table's predictions rank random mixed plans as reality does?"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from mixprec.quant.calibrate import calibrate, check_calibration
from mixprec.quant.plan import Plan
from mixprec.quant.simulate import simulate
from mixprec.quant.spec import QuantSpec
from mixprec.quant.units import UnitList
from mixprec.sensitivity.metrics import kl_to_reference, noise_to_signal
from mixprec.sensitivity.table import SensitivityTable

logger = logging.getLogger(__name__)

MEASURES = ("nsr", "kl", "top1_drop")


@dataclass(frozen=True)
class FidelityReport:
    """Predicted and measured errors of random plans, and their rank correlations.

    Attributes:
        predicted: method -> predicted error of each plan.
        measured: measure (``nsr``, ``kl``, ``top1_drop``) -> value for each plan.
        spearman: method -> measure -> Spearman correlation.
        kendall: method -> measure -> Kendall tau.
        float_top1: top-1 accuracy of the float model.
    """

    predicted: dict[str, list[float]]
    measured: dict[str, list[float]]
    spearman: dict[str, dict[str, float]]
    kendall: dict[str, dict[str, float]]
    float_top1: float

    def lines(self) -> list[str]:
        """A text table: one row per method, Spearman / Kendall per measure."""
        head = "method".ljust(14) + "".join(f"{m + ' rho/tau':>22}" for m in MEASURES)
        rows = [head]
        for method in self.predicted:
            cells = "".join(f"{self.spearman[method][m]:>13.3f} /{self.kendall[method][m]:>6.3f}"
                            for m in MEASURES)
            rows.append(method.ljust(14) + cells)
        return rows


def random_plans(units: UnitList, candidates: Sequence[QuantSpec], n: int, seed: int,
                 share: float = 0.35, base: QuantSpec | None = None) -> list[Plan]:
    """``n`` plans: every unit at ``base`` (default the first candidate), then each unit
    moved to a random candidate with probability ``share``."""
    rng = random.Random(seed)
    base = base or candidates[0]
    return [Plan.uniform(units, base).replace({u.name: rng.choice(list(candidates))
                                               for u in units if rng.random() < share})
            for _ in range(n)]


def fidelity(model: nn.Module, units: UnitList, tables: Mapping[str, SensitivityTable],
             calib: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, *,
             n_plans: int = 50, seed: int = 0, share: float = 0.35,
             batch_size: int = 250) -> FidelityReport:
    """Rank-correlate each table's predictions with the measured effect of random plans.

    Every table must be for this model and the same candidate set. Each plan is simulated
    (fake-quant) and measured on ``images``: output noise-to-signal ratio and KL against
    the float output, and top-1 drop.

    Args:
        model: the float model.
        units: its units.
        tables: name -> table (e.g. one per method).
        calib: calibration images for the simulated plans' static scales.
        images: evaluation images.
        labels: their labels.
        n_plans: number of random plans.
        seed: seed of the plan draw.
        share: probability that a unit leaves the base spec.
        batch_size: evaluation images per pass.
    """
    from scipy.stats import kendalltau, spearmanr

    check_calibration(calib)
    if not tables:
        raise ValueError("no tables to evaluate")
    first = next(iter(tables.values()))
    for table in tables.values():
        table.check(units, first.candidates)
    candidates = list(first.candidates)
    stats = calibrate(model, units, calib)
    reference = _logits(model, images, batch_size)
    float_top1 = _top1(reference, labels)
    predicted: dict[str, list[float]] = {name: [] for name in tables}
    measured: dict[str, list[float]] = {m: [] for m in MEASURES}
    for plan in random_plans(units, candidates, n_plans, seed, share):
        for name, table in tables.items():
            predicted[name].append(table.predict(plan))
        out = _logits(simulate(model, plan, calib, units=units, stats=stats), images, batch_size)
        measured["nsr"].append(noise_to_signal(out, reference))
        measured["kl"].append(kl_to_reference(out, reference))
        measured["top1_drop"].append(float_top1 - _top1(out, labels))
    spearman = {n: {m: float(spearmanr(p, measured[m]).correlation) for m in MEASURES}
                for n, p in predicted.items()}
    kendall = {n: {m: float(kendalltau(p, measured[m]).correlation) for m in MEASURES}
               for n, p in predicted.items()}
    return FidelityReport(predicted, measured, spearman, kendall, float_top1)


def _logits(model: nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([model(x) for x in images.split(batch_size)])


def _top1(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(-1) == labels).float().mean().item()
