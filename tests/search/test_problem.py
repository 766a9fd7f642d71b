"""build_problem: its latency, error, size and BOPs of every plan agree with the tables."""

import itertools

import pytest

from mixprec.cost_models import predict_latency
from mixprec.cost_models.table import FLOAT32
from mixprec.kernels.registry import W8A8_DYNAMIC, W8A8_STATIC
from mixprec.search import build_problem
from mixprec.sensitivity import SensitivityTable
from tests.cost_models.test_table import FC1, FC2, PV, QK, small_table

UNITS = [FC1, FC2, QK, PV]


def sensitivity() -> SensitivityTable:
    scores = ((0.3, 0.5), (0.2, 0.4), (0.6, 0.9), (0.1, 0.2))
    return SensitivityTable("test", "toy", tuple(u.name for u in UNITS),
                            (W8A8_STATIC, W8A8_DYNAMIC), scores)


def test_every_plan_costs_what_the_tables_say():
    table, scores = small_table(), sensitivity()
    problem = build_problem(UNITS, table, scores, other_params=100)
    assert problem.options[0] == (FLOAT32, W8A8_STATIC, W8A8_DYNAMIC)
    assert problem.options[3] == (FLOAT32,)  # the table has no quantized PV entry
    choices = list(itertools.product(*(range(len(o)) for o in problem.options)))
    assert len(choices) == 3 * 3 * 2
    for choice in choices:
        plan = problem.plan(choice)
        assert problem.choice_of(plan) == choice
        assert problem.latency_of(choice) == pytest.approx(predict_latency(plan, table))
        assert problem.error_of(choice) == pytest.approx(scores.predict(plan))
    float32 = problem.choice_of(problem.plan((0, 0, 0, 0)))
    assert problem.size_of(float32) == pytest.approx((256 + 256 + 100) * 4 / 1e6)
    static = (1, 1, 0, 0)
    assert problem.size_of(static) == pytest.approx((256 + 256) / 1e6 + 100 * 4 / 1e6)
    assert problem.gbops_of(static) == pytest.approx(
        (FC1.macs + FC2.macs) * 64 / 1e9 + (QK.macs + PV.macs) * 32 * 32 / 1e9)


def test_candidates_restrict_the_options_and_float32_stays():
    problem = build_problem(UNITS, small_table(), sensitivity(), candidates=[W8A8_DYNAMIC])
    assert problem.options[0] == (FLOAT32, W8A8_DYNAMIC)


def test_transition_is_a_pair_cost():
    problem = build_problem(UNITS, small_table(), sensitivity())
    chain = [p for p in problem.pairs if (p.first, p.second) == (0, 1)]
    assert len(chain) == 1 and chain[0].ms[1][1] == pytest.approx(-0.25)


def test_unknown_tie_and_foreign_plan_are_named():
    with pytest.raises(ValueError, match="nope"):
        build_problem(UNITS, small_table(), sensitivity(), ties=[("mlp.fc1", "nope")])
    problem = build_problem(UNITS, small_table(), sensitivity())
    plan = problem.plan((0, 0, 0, 0)).replace({"attn.pv": W8A8_STATIC})
    with pytest.raises(ValueError, match="attn.pv"):
        problem.choice_of(plan)


def test_problem_round_trips_through_plain_data():
    import json
    import math

    from mixprec.search import SearchProblem
    from tests.search.instances import random_problem

    for seed in range(20):
        problem = random_problem(seed)
        again = SearchProblem.from_dict(json.loads(json.dumps(problem.to_dict())))
        assert again == problem
        assert any(math.isinf(v) for p in again.pairs for row in p.ms for v in row) == any(
            math.isinf(v) for p in problem.pairs for row in p.ms for v in row)
