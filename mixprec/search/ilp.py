"""The search problem as an integer linear program, solved with CBC (PuLP) or HiGHS (scipy).

Variables: ``x[i, a]`` (binary) = unit ``i`` takes option ``a``, one per unit. A pairwise
latency ``C[a][b]`` of units ``i`` and ``j`` is linearised exactly with continuous
``z[a, b]`` in [0, 1] tied to the one-hot rows: ``sum_b z[a, b] = x[i, a]`` and
``sum_a z[a, b] = x[j, b]`` (so ``z[a, b] = x[i, a] * x[j, b]`` at every integer point);
combinations that cannot run have ``z`` fixed to 0. Ties are equalities of ``x``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from mixprec.search.problem import Choice, SearchProblem

SOLVERS = ("cbc", "highs")
RETRIES = 4
"""Solves with a tightened limit after the solver returned a choice over it: solvers accept
rows violated by up to their feasibility tolerance (about 1e-7), a plan must not be."""
ROUNDING = 1e-12
"""Relative excess over a limit taken as floating-point rounding (sums in another order)."""
OBJECTIVES = ("error", "latency")
OBJECTIVE_SCALE = 1e4
"""The largest objective coefficient after scaling: the solvers stop within an absolute gap
(HiGHS 1e-6) that must stay far below the differences between plans."""
CBC_OPTIONS = ["increment 1e-12", "allowableGap 0"]
"""CBC accepts a better solution only by its cutoff increment (default 1e-5 of the objective,
coarser than the gaps between front points) and stops within an absolute gap: both off."""


class InfeasibleError(ValueError):
    """No choice meets the constraints."""


@dataclass
class _Program:
    """min c.x subject to lower <= A x <= upper, bounds, integrality."""

    cost: np.ndarray
    rows: list[tuple[dict[int, float], float, float]] = field(default_factory=list)
    upper_bounds: np.ndarray | None = None
    integer: np.ndarray | None = None

    def add(self, coefficients: dict[int, float], lower: float, upper: float) -> None:
        self.rows.append((coefficients, lower, upper))

    def matrix(self) -> tuple[sparse.csr_array, np.ndarray, np.ndarray]:
        data, row_idx, col_idx = [], [], []
        for r, (coefficients, _, _) in enumerate(self.rows):
            for c, v in coefficients.items():
                row_idx.append(r)
                col_idx.append(c)
                data.append(v)
        shape = (len(self.rows), len(self.cost))
        a = sparse.csr_array((data, (row_idx, col_idx)), shape=shape)
        return a, np.array([r[1] for r in self.rows]), np.array([r[2] for r in self.rows])


def solve(problem: SearchProblem, budget_ms: float | None = None, *,
          size_mb: float | None = None, gbops: float | None = None,
          max_error: float | None = None, minimize: str = "error",
          solver: str = "cbc") -> Choice:
    """The optimal choice: least predicted error (or latency) within the constraints.

    Ties in the objective are not broken here (see :func:`best_within`).

    Raises:
        InfeasibleError: no choice meets the constraints.
        ValueError: an unknown solver or objective.
        RuntimeError: the solver stopped without a proven optimum.
    """
    if solver not in SOLVERS:
        raise ValueError(f"unknown ILP solver {solver!r}; choose one of {SOLVERS}")
    if minimize not in OBJECTIVES:
        raise ValueError(f"unknown objective {minimize!r}; choose one of {OBJECTIVES}")
    slack = 0.0
    for _ in range(RETRIES):
        program, x_index = _program(problem, budget_ms, size_mb, gbops, max_error, minimize,
                                    slack)
        values = (_solve_cbc if solver == "cbc" else _solve_highs)(program)
        choice = tuple(int(np.argmax([values[x_index[(i, a)]] for a in range(len(options))]))
                       for i, options in enumerate(problem.options))
        excess = max((value - limit - ROUNDING * max(1.0, abs(limit)) for limit, value in
                      ((budget_ms, problem.latency_of(choice)),
                       (size_mb, problem.size_of(choice)),
                       (gbops, problem.gbops_of(choice))) if limit is not None), default=0.0)
        if excess <= 0:
            return choice
        slack = 2 * max(excess, slack) + 1e-12
    raise RuntimeError(f"{solver} kept returning choices over the limits (by {excess:.3g})")


def best_within(problem: SearchProblem, budget_ms: float | None = None, *,
                size_mb: float | None = None, gbops: float | None = None,
                solver: str = "cbc") -> Choice:
    """The least-error choice within the constraints, and among those the fastest."""
    first = solve(problem, budget_ms, size_mb=size_mb, gbops=gbops, solver=solver)
    least = problem.error_of(first)
    fastest = solve(problem, budget_ms, size_mb=size_mb, gbops=gbops, max_error=least,
                    minimize="latency", solver=solver)
    # the error row holds to the solver's feasibility tolerance (1e-7 of it), not exactly
    return fastest if problem.error_of(fastest) <= least else first


def _program(problem: SearchProblem, budget_ms: float | None, size_mb: float | None,
             gbops: float | None, max_error: float | None, minimize: str, slack: float
             ) -> tuple[_Program, dict[tuple[int, int], int]]:
    x_index: dict[tuple[int, int], int] = {}
    for i, options in enumerate(problem.options):
        for a in range(len(options)):
            x_index[(i, a)] = len(x_index)
    z_index: dict[tuple[int, int, int], int] = {}
    for p, pair in enumerate(problem.pairs):
        for a, row in enumerate(pair.ms):
            for b in range(len(row)):
                z_index[(p, a, b)] = len(x_index) + len(z_index)
    count = len(x_index) + len(z_index)
    cost = np.zeros(count)
    latency = dict.fromkeys(range(count), 0.0)
    for (i, a), col in x_index.items():
        cost[col] = problem.error[i][a] if minimize == "error" else problem.latency[i][a]
        latency[col] = problem.latency[i][a]
    upper = np.ones(count)
    for (p, a, b), col in z_index.items():
        ms = problem.pairs[p].ms[a][b]
        if math.isfinite(ms):
            latency[col] = ms
            cost[col] = ms if minimize == "latency" else 0.0
        else:
            upper[col] = 0.0
    top = np.abs(cost).max(initial=0.0)
    if top > 0:  # errors can be 1e-9: the solvers' gaps are absolute
        cost *= OBJECTIVE_SCALE / top
    integer = np.zeros(count)
    integer[: len(x_index)] = 1
    program = _Program(cost, upper_bounds=upper, integer=integer)
    for i, options in enumerate(problem.options):
        program.add({x_index[(i, a)]: 1.0 for a in range(len(options))}, 1.0, 1.0)
    for p, pair in enumerate(problem.pairs):
        rows, cols = len(pair.ms), len(pair.ms[0])
        for a in range(rows):
            coefficients = {z_index[(p, a, b)]: 1.0 for b in range(cols)}
            coefficients[x_index[(pair.first, a)]] = -1.0
            program.add(coefficients, 0.0, 0.0)
        for b in range(cols):
            coefficients = {z_index[(p, a, b)]: 1.0 for a in range(rows)}
            coefficients[x_index[(pair.second, b)]] = -1.0
            program.add(coefficients, 0.0, 0.0)
    for i, j in problem.ties:
        for a, spec in enumerate(problem.options[i]):
            if spec in problem.options[j]:
                program.add({x_index[(i, a)]: 1.0,
                             x_index[(j, problem.options[j].index(spec))]: -1.0}, 0.0, 0.0)
            else:
                upper[x_index[(i, a)]] = 0.0
        for b, spec in enumerate(problem.options[j]):
            if spec not in problem.options[i]:
                upper[x_index[(j, b)]] = 0.0
    if budget_ms is not None:
        program.add({c: v for c, v in latency.items() if v}, -math.inf,
                    budget_ms - problem.fixed_ms - slack)
    for limit, values, fixed in ((size_mb, problem.size_mb, problem.fixed_mb + slack),
                                 (gbops, problem.gbops, slack)):
        if limit is not None:
            program.add({x_index[(i, a)]: v for i, row in enumerate(values)
                         for a, v in enumerate(row) if v}, -math.inf, limit - fixed)
    if max_error is not None and max_error <= 0:  # only the options that cost no error
        for (i, a), col in x_index.items():
            if problem.error[i][a] > 0:
                upper[col] = 0.0
    elif max_error is not None:  # relative to the limit: errors can be tiny numbers
        program.add({x_index[(i, a)]: v / max_error for i, row in enumerate(problem.error)
                     for a, v in enumerate(row) if v}, -math.inf, 1.0 + 1e-9)
    return program, x_index


def _solve_highs(program: _Program) -> np.ndarray:
    """HiGHS, with presolve and, when that ends in "Solve error", without it: the HiGHS of
    scipy 1.17 stops so on some feasible problems of this form (upstream:
    jump-dev/HiGHS.jl#318), and either setting alone fails on some of them."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    a, lower, upper = program.matrix()
    for presolve in (True, False):
        result = milp(program.cost, integrality=program.integer,
                      bounds=Bounds(np.zeros(len(program.cost)), program.upper_bounds),
                      constraints=LinearConstraint(a, lower, upper),
                      options={"mip_rel_gap": 0.0, "presolve": presolve})
        if result.status == 2:
            raise InfeasibleError("no choice meets the constraints")
        if result.status == 0 and result.x is not None:
            return result.x
    raise RuntimeError(f"HiGHS stopped without an optimum ({result.message}); "
                       "solver='cbc' may solve it")


def _solve_cbc(program: _Program) -> np.ndarray:
    import pulp

    model = pulp.LpProblem("mixprec", pulp.LpMinimize)
    variables = [model.add_variable(f"v{c}", 0, float(program.upper_bounds[c]),
                                    cat=pulp.LpBinary if program.integer[c] and
                                    program.upper_bounds[c] else pulp.LpContinuous)
                 for c in range(len(program.cost))]
    model += pulp.lpSum(float(v) * variables[c] for c, v in enumerate(program.cost) if v)
    for r, (coefficients, lower, upper) in enumerate(program.rows):
        expression = pulp.lpSum(v * variables[c] for c, v in coefficients.items())
        if lower == upper:
            model += (expression == upper, f"r{r}")
        else:
            if math.isfinite(upper):
                model += (expression <= upper, f"r{r}u")
            if math.isfinite(lower):
                model += (expression >= lower, f"r{r}l")
    with warnings.catch_warnings():  # PuLP 3.3 deprecates the CBC it bundles, not yet gone
        warnings.simplefilter("ignore", DeprecationWarning)
        status = model.solve(pulp.PULP_CBC_CMD(msg=False, gapRel=0.0, options=CBC_OPTIONS))
    if pulp.LpStatus[status] == "Infeasible":
        raise InfeasibleError("no choice meets the constraints")
    if pulp.LpStatus[status] != "Optimal":
        raise RuntimeError(f"CBC stopped without an optimum: {pulp.LpStatus[status]}")
    return np.array([v.value() or 0.0 for v in variables])
