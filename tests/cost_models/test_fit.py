"""Fitting a table's terms to whole-plan timings: known costs come back from noisy timings
with outliers; bounds hold; terms no plan uses stay unknown."""

import math
import random

import pytest

from mixprec.cost_models.fit import TimedPlan, fit_terms
from mixprec.cost_models.table import ShapeKey
from mixprec.cost_models.terms import Term
from mixprec.kernels.registry import W4A16_G32, W8A8_DYNAMIC, W8A8_STATIC

QKV = ShapeKey("linear", 197, 192, 576)
FC1 = ShapeKey("linear", 197, 192, 768)
FC2 = ShapeKey("linear", 197, 768, 192)
TERMS = [Term(QKV, W8A8_STATIC), Term(QKV, W8A8_DYNAMIC), Term(QKV, W4A16_G32),
         Term(FC1, W8A8_STATIC), Term(FC1, W8A8_DYNAMIC), Term(FC2, W8A8_STATIC),
         Term(FC1, W8A8_STATIC, W8A8_STATIC, FC2)]
TRUE = dict(zip(TERMS, [-0.12, 0.05, 0.30, -0.20, 0.02, -0.15, -0.06]))
BASE_MS = 8.0


def synthetic(count: int, seed: int, noise: float, outliers: float) -> list[TimedPlan]:
    """Random plans of 12 blocks (counts of each term), timed as the true costs say with
    multiplicative noise; a share of them timed during a 'busy spell' (+30 to +60%)."""
    rng = random.Random(seed)
    found = []
    for _ in range(count):
        counts = {t: rng.randint(0, 12) for t in TERMS if not t.is_transition}
        both = min(counts[Term(FC1, W8A8_STATIC)], counts[Term(FC2, W8A8_STATIC)])
        counts[TERMS[-1]] = rng.randint(0, both)
        ms = BASE_MS + sum(TRUE[t] * n for t, n in counts.items())
        ms *= 1 + rng.gauss(0, noise)
        if rng.random() < outliers:
            ms *= rng.uniform(1.3, 1.6)
        found.append(TimedPlan(counts, ms))
    return found


def test_known_costs_come_back_from_noisy_timings_with_outliers():
    values, errors = fit_terms(TERMS, synthetic(120, seed=0, noise=0.01, outliers=0.1),
                               BASE_MS, {t: -1.0 for t in TERMS})
    for term in TERMS:
        assert values[term] == pytest.approx(TRUE[term], abs=0.02), term.label
        assert 0 < errors[term] < 0.02


def test_robust_loss_beats_plain_least_squares_on_outliers():
    import numpy as np

    timed = synthetic(120, seed=1, noise=0.01, outliers=0.15)
    robust, _ = fit_terms(TERMS, timed, BASE_MS, {})
    x = np.array([[p.counts.get(t, 0) for t in TERMS] for p in timed], dtype=float)
    y = np.array([p.ms for p in timed]) - BASE_MS
    plain = np.linalg.lstsq(x, y, rcond=None)[0]
    robust_error = sum(abs(robust[t] - TRUE[t]) for t in TERMS)
    plain_error = sum(abs(v - TRUE[t]) for v, t in zip(plain, TERMS))
    assert robust_error < plain_error / 2


def test_lower_bounds_hold():
    timed = synthetic(60, seed=2, noise=0.01, outliers=0.0)
    lower = {t: -0.05 for t in TERMS}
    values, _ = fit_terms(TERMS, timed, BASE_MS, lower)
    assert all(values[t] >= -0.05 - 1e-9 for t in TERMS)
    assert values[Term(FC1, W8A8_STATIC)] == pytest.approx(-0.05, abs=1e-6)  # true -0.20


def test_a_term_no_plan_uses_stays_zero_with_an_infinite_error():
    unused = Term(FC2, W8A8_DYNAMIC)
    values, errors = fit_terms(TERMS + [unused], synthetic(40, 3, 0.01, 0.0), BASE_MS, {})
    assert values[unused] == 0.0 and math.isinf(errors[unused])


def test_bad_timings_are_refused():
    with pytest.raises(ValueError, match="no timed plans"):
        fit_terms(TERMS, [], BASE_MS, {})
    with pytest.raises(ValueError, match="positive"):
        fit_terms(TERMS, [TimedPlan({}, 0.0)], BASE_MS, {})
