"""Exact Pareto fronts of (predicted latency, predicted error).

Without further limits the front is computed by dynamic programming: the units fall into
independent groups (units joined by a pairwise latency or a tie), each group's joint options
are enumerated, and the groups' fronts are summed one after the other, keeping only the
non-dominated sums. With a size or BOPs limit, an epsilon-constraint sweep of ILP solves
gives the front instead (the fastest least-error choice, then a budget just below it, until
nothing is feasible).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from mixprec.search.ilp import InfeasibleError, best_within
from mixprec.search.problem import Choice, SearchProblem

MAX_GROUP_OPTIONS = 100_000
"""Joint options one group may enumerate before the front refuses (use the ILP sweep)."""

STEP_MS = 1e-6
"""How far below a front point's latency the sweep looks for the next one."""


@dataclass(frozen=True)
class FrontChoice:
    """One point of a front: a choice and its predicted latency (ms) and error."""

    latency_ms: float
    error: float
    choice: Choice


def pareto_front(problem: SearchProblem, *, size_mb: float | None = None,
                 gbops: float | None = None, solver: str = "cbc") -> list[FrontChoice]:
    """The exact front, fastest first: no point is dominated, none repeats another's
    (latency, error).

    Raises:
        InfeasibleError: no choice meets the size / BOPs limits.
    """
    if size_mb is None and gbops is None:
        return _dynamic_front(problem)
    return _sweep_front(problem, size_mb, gbops, solver)


def spread(points: list, count: int) -> list:
    """Up to ``count`` of ``points`` evenly spaced along them, first and last included."""
    if not points or count < 1:
        return []
    picks = sorted({round(k * (len(points) - 1) / max(count - 1, 1)) for k in range(count)})
    return [points[k] for k in picks]


def unit_groups(problem: SearchProblem) -> list[list[int]]:
    """Units joined by pairs or ties, in order of their first unit."""
    parent = list(range(len(problem.units)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    links = [(p.first, p.second) for p in problem.pairs] + list(problem.ties)
    for i, j in links:
        parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(problem.units)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def joint_options(problem: SearchProblem, members: list[int]
                  ) -> tuple[list[float], list[float], list[tuple[int, ...]]]:
    """(latency, error, member options) of every runnable joint option of a group."""
    sizes = [len(problem.options[i]) for i in members]
    if math.prod(sizes) > MAX_GROUP_OPTIONS:
        raise ValueError(f"units {[problem.units[i] for i in members]} are joined into "
                         f"{math.prod(sizes)} joint options: too many for the exact front")
    inside = set(members)
    pairs = [p for p in problem.pairs if p.first in inside]
    ties = [(i, j) for i, j in problem.ties if i in inside]
    position = {unit: k for k, unit in enumerate(members)}
    lat, err, picks = [], [], []
    for combo in itertools.product(*(range(s) for s in sizes)):
        if any(problem.options[i][combo[position[i]]] != problem.options[j][combo[position[j]]]
               for i, j in ties):
            continue
        ms = sum(problem.latency[i][combo[position[i]]] for i in members)
        ms += sum(p.ms[combo[position[p.first]]][combo[position[p.second]]] for p in pairs)
        if not math.isfinite(ms):
            continue
        lat.append(ms)
        err.append(sum(problem.error[i][combo[position[i]]] for i in members))
        picks.append(combo)
    return lat, err, picks


def _group_options(problem: SearchProblem, members: list[int]
                   ) -> tuple[np.ndarray, np.ndarray, list[tuple[int, ...]]]:
    """A group's runnable joint options pruned to its own front (a dominated joint option is
    never part of an optimal whole)."""
    lat, err, picks = joint_options(problem, members)
    keep = _nondominated(np.array(lat), np.array(err))
    return np.array(lat)[keep], np.array(err)[keep], [picks[k] for k in keep]


def _nondominated(latency: np.ndarray, error: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points, fastest first, one per (latency, error)."""
    order = np.lexsort((error, latency))
    keep, best = [], math.inf
    for k in order:
        if error[k] < best:
            keep.append(k)
            best = error[k]
    return np.array(keep, dtype=np.int64)


def _dynamic_front(problem: SearchProblem) -> list[FrontChoice]:
    groups = unit_groups(problem)
    lat, err = np.zeros(1), np.zeros(1)
    steps: list[tuple[np.ndarray, np.ndarray]] = []  # per group: (parent, option) per point
    options_of = []
    for members in groups:
        g_lat, g_err, picks = _group_options(problem, members)
        if not picks:
            raise InfeasibleError(f"units {[problem.units[i] for i in members]} have no "
                                  "option that can run together")
        options_of.append(picks)
        sum_lat = (lat[:, None] + g_lat[None, :]).ravel()
        sum_err = (err[:, None] + g_err[None, :]).ravel()
        keep = _nondominated(sum_lat, sum_err)
        steps.append((keep // len(picks), keep % len(picks)))
        lat, err = sum_lat[keep], sum_err[keep]
    chosen_all = []
    for point in range(len(lat)):
        choice = [0] * len(problem.units)
        k = point
        for members, picks, (parent, option) in reversed(list(zip(groups, options_of, steps))):
            for unit, pick in zip(members, picks[option[k]]):
                choice[unit] = pick
            k = parent[k]
        chosen_all.append(tuple(choice))
    # re-evaluated in one summation order: sums taken in another order differ in the last bits
    exact_lat = np.array([problem.latency_of(c) for c in chosen_all])
    exact_err = np.array([problem.error_of(c) for c in chosen_all])
    return [FrontChoice(float(exact_lat[k]), float(exact_err[k]), chosen_all[k])
            for k in _nondominated(exact_lat, exact_err)]


def _sweep_front(problem: SearchProblem, size_mb: float | None, gbops: float | None,
                 solver: str) -> list[FrontChoice]:
    front: list[FrontChoice] = []
    budget = None
    while True:
        try:
            choice = best_within(problem, budget, size_mb=size_mb, gbops=gbops, solver=solver)
        except InfeasibleError:
            if not front:
                raise
            break
        point = FrontChoice(problem.latency_of(choice), problem.error_of(choice), choice)
        front.append(point)
        budget = point.latency_ms - STEP_MS
    return front[::-1]
