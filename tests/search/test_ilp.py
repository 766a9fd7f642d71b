"""The ILP and the exact fronts against brute force on random small problems."""

import dataclasses
import math

import pytest

from mixprec.search import InfeasibleError, best_within, pareto_front, solve
from tests.search.instances import all_choices, brute_front, brute_optimum, random_problem

SEEDS = range(120)


def _budget(problem, seed):
    latencies = sorted(problem.latency_of(c) for c in all_choices(problem))
    return latencies[0] + (seed % 7) / 6 * (latencies[-1] - latencies[0])


@pytest.mark.parametrize("solver", ["cbc", "highs"])
def test_ilp_optimum_equals_brute_force(solver):
    for seed in SEEDS:
        problem = random_problem(seed)
        budget = _budget(problem, seed)
        choice = best_within(problem, budget, solver=solver)
        assert problem.allows(choice), seed
        assert problem.latency_of(choice) <= budget, seed
        assert problem.error_of(choice) == pytest.approx(brute_optimum(problem, budget),
                                                         abs=1e-9), seed


@pytest.mark.parametrize("solver", ["cbc", "highs"])
def test_ilp_resolves_error_differences_far_below_the_largest_error(solver):
    # one option costs 1.0, the choices that matter differ by ~1e-7: below CBC's default
    # cutoff increment (1e-5 of the objective), which would accept a worse plan
    for seed in range(40):
        problem = random_problem(seed, ties=False)
        error = [tuple(v * 1e-6 for v in row) for row in problem.error]
        error[0] = error[0][:-1] + (1.0,)
        problem = dataclasses.replace(problem, error=tuple(error))
        budget = _budget(problem, seed)
        choice = best_within(problem, budget, solver=solver)
        assert problem.error_of(choice) == pytest.approx(brute_optimum(problem, budget),
                                                         rel=1e-9, abs=1e-15), seed


def test_ilp_honours_a_size_limit_like_brute_force():
    for seed in range(40):
        problem = random_problem(seed)
        sizes = sorted(problem.size_of(c) for c in all_choices(problem))
        limit = sizes[len(sizes) // 3]
        choice = best_within(problem, None, size_mb=limit, solver="cbc")
        assert problem.size_of(choice) <= limit
        assert problem.error_of(choice) == pytest.approx(
            brute_optimum(problem, size_mb=limit), abs=1e-9), seed


def test_least_latency_objective_finds_the_fastest_choice():
    for seed in range(30):
        problem = random_problem(seed)
        choice = solve(problem, minimize="latency", solver="highs")
        fastest = min(problem.latency_of(c) for c in all_choices(problem))
        assert problem.latency_of(choice) == pytest.approx(fastest, abs=1e-9)


@pytest.mark.parametrize("solver", ["cbc", "highs"])
def test_budget_below_every_choice_is_infeasible(solver):
    problem = random_problem(3)
    fastest = min(problem.latency_of(c) for c in all_choices(problem))
    with pytest.raises(InfeasibleError):
        solve(problem, fastest * 0.5, solver=solver)


def test_unknown_solver_and_objective_are_named():
    problem = random_problem(0)
    with pytest.raises(ValueError, match="gurobi"):
        solve(problem, solver="gurobi")
    with pytest.raises(ValueError, match="size"):
        solve(problem, minimize="size")


def test_dynamic_front_equals_brute_force_front():
    for seed in SEEDS:
        problem = random_problem(seed)
        front = pareto_front(problem)
        expected = brute_front(problem)
        got = [(p.latency_ms, p.error) for p in front]
        assert len(got) == len(expected), seed
        for (lat, err), (want_lat, want_err) in zip(got, expected):
            assert lat == pytest.approx(want_lat, abs=1e-9)
            assert err == pytest.approx(want_err, abs=1e-9)
        for point in front:
            assert problem.allows(point.choice)
            assert problem.latency_of(point.choice) == point.latency_ms


def test_sweep_front_under_a_size_limit_equals_brute_force_front():
    for seed in range(25):
        problem = random_problem(seed)
        sizes = sorted(problem.size_of(c) for c in all_choices(problem))
        limit = sizes[len(sizes) // 2]
        front = pareto_front(problem, size_mb=limit, solver="cbc")
        expected = brute_front(problem, size_mb=limit)
        assert [(round(p.latency_ms, 6), round(p.error, 6)) for p in front] == \
            [(round(a, 6), round(b, 6)) for a, b in expected], seed
        assert all(problem.size_of(p.choice) <= limit for p in front)


def test_front_is_non_dominated_and_fastest_first():
    problem = random_problem(11)
    front = pareto_front(problem)
    for a, b in zip(front, front[1:]):
        assert a.latency_ms < b.latency_ms and a.error > b.error
    assert math.isfinite(front[0].latency_ms)


def test_spread_picks_evenly_with_both_ends():
    from mixprec.search.pareto import spread

    assert spread(list(range(11)), 3) == [0, 5, 10]
    assert spread(list(range(4)), 10) == [0, 1, 2, 3]
    assert spread([7], 5) == [7]
    assert spread([], 3) == [] and spread([1, 2], 0) == []
