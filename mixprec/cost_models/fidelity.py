"""How far to trust a latency table: its predictions against measured times of plans it was
not fitted to (median |error|, Kendall's tau, share within ±10%), and the target they must
reach."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class FidelityTarget:
    """What a table must reach on plans held out of its fit to be trusted."""

    max_median_error: float = 0.06
    min_kendall_tau: float = 0.85
    min_within_10pct: float = 0.85


TARGET = FidelityTarget()


@dataclass(frozen=True)
class Fidelity:
    """How a table's predictions compare with measured times of plans it was not fitted to.

    Attributes:
        plans: how many plans.
        median_abs_error: median of |predicted - measured| / measured.
        kendall_tau: Kendall's tau between predicted and measured (rank agreement).
        within_10pct: share of plans predicted within ±10%.
    """

    plans: int
    median_abs_error: float
    kendall_tau: float
    within_10pct: float

    def meets(self, target: FidelityTarget = TARGET) -> bool:
        """Whether every figure reaches ``target``."""
        return (self.median_abs_error <= target.max_median_error
                and self.kendall_tau >= target.min_kendall_tau
                and self.within_10pct >= target.min_within_10pct)

    def summary(self) -> str:
        """One line, e.g. ``20 held-out plans: median |error| 3.1%, Kendall tau 0.91, 95%
        within ±10%``."""
        return (f"{self.plans} held-out plans: median |error| {self.median_abs_error:.1%}, "
                f"Kendall tau {self.kendall_tau:.2f}, {self.within_10pct:.0%} within ±10%")

    def to_dict(self) -> dict[str, float]:
        """Plain data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, float]) -> Fidelity:
        """Inverse of :meth:`to_dict`."""
        return cls(int(data["plans"]), float(data["median_abs_error"]),
                   float(data["kendall_tau"]), float(data["within_10pct"]))


def fidelity(predicted: Sequence[float], measured: Sequence[float]) -> Fidelity:
    """The held-out figures of ``predicted`` against ``measured`` times (same order).

    Raises:
        ValueError: fewer than two plans, or lengths that differ.
    """
    if len(predicted) != len(measured) or len(measured) < 2:
        raise ValueError(f"fidelity needs two or more (predicted, measured) pairs, got "
                         f"{len(predicted)} and {len(measured)}")
    from scipy.stats import kendalltau

    errors = [abs(p - m) / m for p, m in zip(predicted, measured)]
    tau = float(kendalltau(predicted, measured)[0])
    return Fidelity(len(errors), statistics.median(errors), tau if math.isfinite(tau) else 0.0,
                    sum(e <= 0.10 for e in errors) / len(errors))
