"""Uniform baselines and plans snapped onto a problem's options."""

from __future__ import annotations

import math

from mixprec.quant.plan import Plan
from mixprec.quant.spec import QuantSpec
from mixprec.search.baselines import baseline_choices, snapped_choice, uniform_choice
from mixprec.search.problem import PairCost, SearchProblem

FP32 = QuantSpec(weight_bits=16, act_bits=16, act_mode="none")
W8A8 = QuantSpec(weight_bits=8, act_bits=8, act_mode="static")
W8A7 = QuantSpec(weight_bits=8, act_bits=7, act_mode="static")
DYN = QuantSpec(weight_bits=8, act_bits=8, act_mode="dynamic")
AFFINE = QuantSpec(weight_bits=8, act_bits=8, act_mode="dynamic", act_granularity="per_tensor",
                   act_symmetric=False)


def problem(options, pairs=(), ties=()) -> SearchProblem:
    count = len(options)
    rows = tuple(tuple(float(i) for i, _ in enumerate(o)) for o in options)
    return SearchProblem(tuple(f"u{i}" for i in range(count)), tuple(map(tuple, options)),
                         rows, rows, rows, rows, tuple(pairs), tuple(ties))


def test_uniform_static_takes_the_widest_exact_form_and_float_elsewhere():
    p = problem([[FP32, W8A7, W8A8], [FP32, W8A7], [FP32, DYN]])
    static = uniform_choice(p, lambda s: s.weight_bits == 8 and s.act_mode == "static")
    assert [p.options[i][a] for i, a in enumerate(static)] == [W8A8, W8A7, FP32]


def test_baselines_that_equal_float_or_cannot_run_are_left_out():
    blocked = PairCost(0, 1, ((0.0, 0.0, 0.0), (0.0, math.inf, 0.0)))
    p = problem([[FP32, W8A8], [FP32, W8A8, DYN]], pairs=[blocked])
    found = baseline_choices(p)
    assert set(found) == {"fp32", "int8 dynamic"}  # static cannot run; int4 is float
    assert found["int8 dynamic"] == (0, 2)


def test_the_quantize_dynamic_format_is_a_baseline_where_units_offer_it():
    """ONNX Runtime's ``quantize_dynamic`` format (affine per-tensor dynamic) gets its own
    baseline on the units that offer it (float32 elsewhere); per-token dynamic stays the
    ``int8 dynamic`` one."""
    p = problem([[FP32, W8A8, DYN, AFFINE], [FP32, DYN], [FP32, W8A8, DYN, AFFINE]])
    found = baseline_choices(p)
    assert found["int8 dynamic affine"] == (3, 0, 3)
    assert found["int8 dynamic"] == (2, 1, 2)
    assert "int8 dynamic affine" not in baseline_choices(problem([[FP32, DYN], [FP32, W8A8]]))


def test_snapped_plan_keeps_its_options_and_maps_the_rest_to_their_family():
    p = problem([[FP32, W8A7, DYN], [FP32, W8A8], [FP32]])
    plan = Plan((("u0", W8A8), ("u1", W8A8), ("u2", DYN)))
    assert snapped_choice(p, plan) == (1, 1, 0)


def test_snapped_plan_breaking_a_tie_is_refused():
    p = problem([[FP32, W8A8], [FP32, DYN]], ties=[(0, 1)])
    assert snapped_choice(p, Plan((("u0", W8A8), ("u1", DYN)))) is None
