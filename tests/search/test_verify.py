"""The measured choice: which plans are measured, what "best" means, and the guard that no
plan or baseline measured beside the returned plan is faster and at least as accurate."""

from __future__ import annotations

import pytest

from mixprec.cost_models.timing import RatioTiming
from mixprec.deploy.peers import PEER_NAMES
from mixprec.kernels.registry import (
    FP32,
    W8A8_DYNAMIC,
    W8A8_DYNAMIC_AFFINE,
    W8A8_STATIC,
    WEIGHT_KINDS,
)
from mixprec.quant import Plan
from mixprec.search import validate
from mixprec.search.result import FrontPoint
from mixprec.search.validate import Measured
from mixprec.search.verify import (
    Budget,
    best_measured,
    candidates_to_measure,
    dominates,
    relation,
    verify_choice,
)


def row(name: str, ms: float, top1: float | None, role: str = "front") -> Measured:
    return Measured(name, role, "torch", ms, 0.0, ms, 0.0, top1, 0.01, None)


ROWS = [row("fp32", 10.0, 0.96, "baseline"), row("int8 static", 6.0, 0.95, "baseline"),
        row("front #3", 7.0, 0.958), row("front #4", 8.0, 0.958), row("front #5", 9.5, 0.96),
        row("peer", 5.0, 0.90, "peer")]


def test_budget_in_ms_takes_the_most_accurate_plan_measured_within_it():
    best, rule = best_measured(ROWS, Budget(ms=8.5))
    assert best.name == "front #3"  # ties with front #4 on top-1: the faster one
    assert "8.500 ms" in rule


def test_budget_as_a_fraction_applies_to_float32_measured():
    assert best_measured(ROWS, Budget(fraction=0.65))[0].name == "int8 static"
    assert best_measured(ROWS, Budget(fraction=0.96))[0].name == "front #5"


def test_max_drop_takes_the_fastest_plan_within_the_drop():
    assert best_measured(ROWS, Budget(max_drop=0.005))[0].name == "front #3"
    assert best_measured(ROWS, Budget(max_drop=0.02))[0].name == "int8 static"
    assert best_measured(ROWS, Budget(max_drop=0.0))[0].name == "front #5"


def test_no_budget_takes_the_most_accurate_and_a_peer_is_never_returned():
    assert best_measured(ROWS, Budget())[0].name == "front #5"
    best, rule = best_measured(ROWS, Budget(ms=1.0))
    assert best.name == "int8 static" and "no plan measured within" in rule


def test_the_choice_is_never_dominated_by_a_plan_measured_beside_it():
    for budget in (Budget(ms=6.5), Budget(ms=9.9), Budget(fraction=0.8), Budget(max_drop=0.01),
                   Budget()):
        best, _ = best_measured(ROWS, budget)
        assert not any(dominates(r, best) for r in ROWS if r.role != "peer")


def test_relations_say_who_beat_whom():
    chosen = ROWS[2]
    assert relation(chosen, ROWS[0]).startswith("trade-off: chosen 1.43x as fast")
    assert relation(chosen, ROWS[1]).startswith("trade-off")
    assert relation(ROWS[4], ROWS[0]).startswith("beaten")  # as accurate and faster
    assert relation(ROWS[3], ROWS[2]).startswith("DOMINATES")


def _point(units, spec, ms: float) -> FrontPoint:
    return FrontPoint(ms, 0.0, Plan.uniform(units, spec))


def test_candidates_around_the_solver_choice():
    names = ["u0", "u1", "u2"]
    mixes = [(FP32, W8A8_STATIC, FP32), (FP32, W8A8_DYNAMIC, FP32), (FP32, FP32, W8A8_STATIC),
             (W8A8_STATIC, FP32, FP32), (W8A8_DYNAMIC, FP32, FP32)]
    front = [FrontPoint(k + 1.0, 0.1, Plan(tuple(zip(names, specs))))
             for k, specs in enumerate(mixes)]
    baselines = {"fp32": FrontPoint(10.0, 0.0, Plan(tuple((n, FP32) for n in names))),
                 "int8 static": FrontPoint(3.0, 0.2,
                                           Plan(tuple((n, W8A8_STATIC) for n in names)))}
    found, solver = candidates_to_measure(front[2], baselines, front, side=1,
                                          peer=("peer", object()))
    assert solver == "front #2"
    assert list(found) == ["fp32", "int8 static", "front #2", "front #1", "front #3", "peer"]
    assert found["peer"].role == "peer" and found["front #1"].role == "front"
    with pytest.raises(ValueError, match="float32"):
        candidates_to_measure(front[2], {"int8 static": baselines["int8 static"]}, front)


def test_the_guard_replaces_a_plan_that_a_baseline_dominates(mnist_model, mnist_units,
                                                             mnist_calib, monkeypatch):
    """A fake timing source makes the solver's plan (uniform dynamic int8) twice as slow as
    uniform static int8, which is as accurate by the accuracy measure: the measured choice
    returns the static baseline, and says the solver's plan was replaced."""
    solver = _point(mnist_units, W8A8_DYNAMIC, 5.0)
    baselines = {"fp32": _point(mnist_units, FP32, 10.0),
                 "int8 static": _point(mnist_units, W8A8_STATIC, 6.0)}
    ratios = {"int8 static": 0.4, "front #0": 0.8}
    order = [n for n in candidates_to_measure(solver, baselines, [solver], peer=None)[0]
             if n != "fp32"]

    def fake_timing(reference, fns, policy=None):
        assert len(fns) == len(order)
        return [RatioTiming(ratios[n], 0.01, 10.0 * ratios[n], 10.0, 4, False,
                            (ratios[n],) * 4) for n in order]

    monkeypatch.setattr(validate, "time_against", fake_timing)
    point, verification, learned = verify_choice(
        mnist_model, mnist_units, solver, baselines, [solver], mnist_calib[:64], "torch",
        Budget(ms=9.0), lambda model: 0.9, peer=False)
    assert verification.predicted == "front #0" and verification.chosen == "int8 static"
    assert verification.replaced and point.plan == baselines["int8 static"].plan
    assert verification.relations["fp32"].startswith("beaten: 2.50x as fast")
    assert verification.dominated_by == []
    assert {plan for plan, _, _ in learned} == {solver.plan, baselines["int8 static"].plan}
    by_name = {r.name: r for r in verification.rows}
    assert by_name["int8 static"].latency_ms == pytest.approx(4.0)
    assert by_name["front #0"].sqnr_db > 30  # deployed computes what the simulation does


def test_onnx_runtime_peer_is_the_uniform_affine_plan_measured_once(mnist_model, mnist_units,
                                                                     mnist_calib, monkeypatch):
    """ORT's quantize_dynamic computes what mixprec's uniform W8tA8-dynamic-tensor-affine plan
    computes: the peer row is that plan's, measured once (the peer is not timed apart), so a
    peer can no longer dominate the plan that stands for it on timing noise."""
    def on_weights(spec):
        return Plan(tuple((u.name, spec if u.kind in WEIGHT_KINDS else FP32)
                          for u in mnist_units))

    baselines = {"fp32": FrontPoint(10.0, 0.0, on_weights(FP32)),
                 "int8 dynamic affine": FrontPoint(6.0, 0.1, on_weights(W8A8_DYNAMIC_AFFINE))}
    solver = baselines["int8 dynamic affine"]
    timed = []

    def fake_timing(reference, fns, policy=None):
        timed.append(len(fns))
        return [RatioTiming(0.6, 0.01, 6.0, 10.0, 4, False, (0.6,) * 4) for _ in fns]

    monkeypatch.setattr(validate, "time_against", fake_timing)
    _, verification, _ = verify_choice(
        mnist_model, mnist_units, solver, baselines, [solver], mnist_calib[:64],
        "onnxruntime", Budget(max_drop=0.05), lambda model: 0.9)
    assert timed == [1]  # the affine plan only: the peer is the same model
    peer = verification.row(PEER_NAMES["onnxruntime"])
    assert peer.same_as == "int8 dynamic affine" and peer.role == "peer"
    assert peer.latency_ms == verification.row("int8 dynamic affine").latency_ms
    assert verification.chosen == "int8 dynamic affine" and verification.dominated_by == []
    assert verification.relations[peer.name] == ("the same model as the chosen plan "
                                                 "(equal outputs)")


def test_openvino_choice_is_measured_beside_nncf(mnist_model, mnist_units, mnist_calib,
                                                 mnist_test, monkeypatch):
    """In OpenVINO the one-line peer is NNCF's own int8 model: no plan of mixprec's, so it is
    deployed, timed and evaluated beside the plans."""
    from mixprec import kernels

    pytest.importorskip("nncf")
    static = [s for s in kernels.candidates("cpu", "linear", "openvino") if s.quantizes_acts][0]
    on_weights = Plan(tuple((u.name, static if u.kind in WEIGHT_KINDS else FP32)
                            for u in mnist_units))
    baselines = {"fp32": FrontPoint(10.0, 0.0, Plan.uniform(mnist_units, FP32)),
                 "int8 static": FrontPoint(6.0, 0.1, on_weights)}
    timed = []

    def fake_timing(reference, fns, policy=None):
        timed.append(len(fns))
        return [RatioTiming(0.6 + 0.1 * i, 0.01, 6.0, 10.0, 4, False, (0.6 + 0.1 * i,) * 4)
                for i in range(len(fns))]

    images, labels = mnist_test[0][:100], mnist_test[1][:100]

    def top1(model) -> float:
        return float((model(images).argmax(-1) == labels).float().mean())

    monkeypatch.setattr(validate, "time_against", fake_timing)
    _, verification, _ = verify_choice(
        mnist_model, mnist_units, baselines["int8 static"], baselines,
        [baselines["int8 static"]], mnist_calib[:64], "openvino", Budget(max_drop=0.5), top1)
    peer = verification.row(PEER_NAMES["openvino"])
    assert timed == [2] and peer.role == "peer" and peer.same_as is None
    assert peer.top1 is not None and peer.top1 > 0.5  # NNCF's model, evaluated
    assert verification.chosen == "int8 static"
