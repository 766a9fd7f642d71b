"""Random small search problems, and their optimum and front by brute force."""

from __future__ import annotations

import itertools
import math
import random

from mixprec.quant.spec import QuantSpec
from mixprec.search.problem import Choice, PairCost, SearchProblem

SPECS = (QuantSpec(weight_bits=16, act_bits=16, act_mode="none"),
         QuantSpec(weight_bits=8, act_bits=8, act_mode="static"),
         QuantSpec(weight_bits=8, act_bits=8, act_mode="dynamic"),
         QuantSpec(weight_bits=4, act_bits=16, act_mode="none",
                   weight_granularity="per_group", group_size=32))


def random_problem(seed: int, ties: bool = True) -> SearchProblem:
    """3-6 units of 2-4 options; pairwise latencies (some combinations unable to run, some
    negative: transition savings) and, sometimes, a tie."""
    rng = random.Random(seed)
    count = rng.randint(3, 6)
    options = [tuple(SPECS[: rng.randint(2, 4)]) for _ in range(count)]
    error = [tuple(0.0 if s.is_float else round(rng.uniform(0, 1), 3) for s in o)
             for o in options]
    latency = [tuple(round(rng.uniform(0.1, 2.0), 3) for _ in o) for o in options]
    pairs = []
    for first, second in rng.sample(list(itertools.combinations(range(count), 2)),
                                    rng.randint(1, 2)):
        ms = [[round(rng.uniform(-0.3, 1.0), 3) for _ in options[second]]
              for _ in options[first]]
        if rng.random() < 0.5:  # a combination that cannot run (never float with float)
            ms[-1][-1] = math.inf
        pairs.append(PairCost(first, second, tuple(tuple(r) for r in ms)))
    tie = ()
    if ties and rng.random() < 0.3:
        tie = (tuple(rng.sample(range(count), 2)),)
    size = [tuple(round(rng.uniform(0.5, 4), 2) * (2 if s.is_float else 1) for s in o)
            for o in options]
    gbops = [tuple(rng.uniform(1, 5) for _ in o) for o in options]
    return SearchProblem(tuple(f"u{i}" for i in range(count)), tuple(options), tuple(error),
                         tuple(latency), tuple(size), tuple(gbops), tuple(pairs), tie,
                         fixed_ms=0.5, fixed_mb=0.1)


def all_choices(problem: SearchProblem) -> list[Choice]:
    """Every choice the problem allows."""
    return [c for c in itertools.product(*(range(len(o)) for o in problem.options))
            if problem.allows(c)]


def brute_optimum(problem: SearchProblem, budget_ms: float | None = None,
                  size_mb: float | None = None) -> float | None:
    """The least error within the limits, or None when nothing fits."""
    errors = [problem.error_of(c) for c in all_choices(problem)
              if (budget_ms is None or problem.latency_of(c) <= budget_ms)
              and (size_mb is None or problem.size_of(c) <= size_mb)]
    return min(errors) if errors else None


def brute_front(problem: SearchProblem, size_mb: float | None = None
                ) -> list[tuple[float, float]]:
    """The non-dominated (latency, error) values, fastest first."""
    points = sorted({(problem.latency_of(c), problem.error_of(c)) for c in all_choices(problem)
                     if size_mb is None or problem.size_of(c) <= size_mb})
    front, best = [], math.inf
    for lat, err in points:
        if err < best - 1e-12:
            front.append((lat, err))
            best = err
    return front
