"""Fitting a table's terms to whole-plan timings.

The fit is a bounded, robust least-squares problem (``scipy.optimize.least_squares``, soft-L1
loss on relative residuals): plan ``i`` timed at ``y_i`` ms with term counts ``x_i`` is
predicted at ``base + x_i . beta``; an entry term cannot make its unit take less than no
time (``beta >= -anchor``), and a timing that no setting of the terms explains (a plan timed
during a busy spell) weighs like a few percent of error instead of its square.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mixprec.cost_models.terms import Term

logger = logging.getLogger(__name__)

ROBUST_SCALE = 0.03
"""Relative residual beyond which a timing counts linearly, not quadratically (soft-L1)."""


@dataclass(frozen=True)
class TimedPlan:
    """One plan's term counts and its measured time (ms)."""

    counts: Mapping[Term, int]
    ms: float


def fit_terms(terms: Sequence[Term], timed: Sequence[TimedPlan], base_ms: float,
              lower: Mapping[Term, float]) -> tuple[dict[Term, float], dict[Term, float]]:
    """The value of every term that best explains ``timed`` (see the module docstring).

    Args:
        terms: the terms to fit.
        timed: plans with their measured times.
        base_ms: the float32 model's time (the prediction of a plan that uses no term).
        lower: each term's lower bound (ms); missing: unbounded.

    Returns:
        (term -> ms, term -> its standard error in ms); a term no timed plan uses is 0 with
        an infinite error (and logged).

    Raises:
        ValueError: no timed plans, or a non-positive time.
    """
    if not timed:
        raise ValueError("no timed plans to fit the latency table to")
    if any(not (t.ms > 0 and math.isfinite(t.ms)) for t in timed):
        raise ValueError("timed plans must have positive, finite times")
    used = [t for t in terms if any(p.counts.get(t, 0) for p in timed)]
    unused = [t.label for t in terms if t not in used]
    if unused:
        logger.info("no timed plan uses %d term(s); they stay 0: %s", len(unused), unused[:5])
    values = {t: 0.0 for t in terms}
    errors = {t: math.inf for t in terms}
    if not used:
        return values, errors
    from scipy.optimize import least_squares

    x = np.array([[p.counts.get(t, 0) for t in used] for p in timed], dtype=float)
    y = np.array([p.ms for p in timed])
    low = np.array([lower.get(t, -np.inf) for t in used])
    start = np.clip(np.zeros(len(used)), low + 1e-9, None)

    def residuals(beta: np.ndarray) -> np.ndarray:
        return (base_ms + x @ beta - y) / y

    def jacobian(beta: np.ndarray) -> np.ndarray:
        return x / y[:, None]

    solved = least_squares(residuals, start, jac=jacobian, bounds=(low, np.inf),
                           loss="soft_l1", f_scale=ROBUST_SCALE, method="trf")
    values.update(zip(used, (float(v) for v in solved.x)))
    errors.update(zip(used, _standard_errors(jacobian(solved.x), solved.fun)))
    return values, errors


def _standard_errors(jacobian: np.ndarray, residuals: np.ndarray) -> list[float]:
    """Standard errors of the fitted values: the residuals' robust scale (1.4826 x their
    median absolute value) through the inverse of the Gauss-Newton matrix."""
    scale = 1.4826 * float(np.median(np.abs(residuals)))
    covariance = np.linalg.pinv(jacobian.T @ jacobian) * scale ** 2
    return [float(math.sqrt(max(v, 0.0))) for v in np.diag(covariance)]
