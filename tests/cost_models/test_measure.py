"""measure(): a table fitted to whole-plan timings, checked on held-out plans, cached,
resumable, and refitted with the timings a search adds."""

from __future__ import annotations

import json
import random

import pytest

from mixprec import cost_models, deploy
from mixprec.cost_models import LatencyTableError, measure, predict_latency
from mixprec.cost_models import measurement as measure_module
from mixprec.cost_models.design import HELD_OUT
from mixprec.cost_models.table import ATTENTION, FLOAT32, ShapeKey
from mixprec.cost_models.terms import CostTerms
from mixprec.cost_models.timing import RatioTiming, Timing, TimingPolicy
from mixprec.kernels.cpu import exact_backends
from mixprec.kernels.registry import W8A8_DYNAMIC, W8A8_STATIC
from mixprec.quant import Plan

FAST = {"policy": TimingPolicy(repeats=1, warmup=0, min_rounds=2, max_rounds=2),
        "mixes": 6, "progress": False}


def shape_classes(units) -> set[ShapeKey]:
    return {ShapeKey.of(u) for u in units if u.kind != "attn_pv"}


@pytest.fixture(scope="module")
def dynamic_table(mnist_model, mnist_test, tmp_path_factory):
    cache = tmp_path_factory.mktemp("measure") / "cache.json"
    return measure(mnist_model, mnist_test[0][:1], threads=1, candidates=[W8A8_DYNAMIC],
                   cache=cache, model_name="mnist-vit-small", **FAST), cache


def test_every_shape_class_and_candidate_has_an_entry(dynamic_table, mnist_units):
    table, _ = dynamic_table
    classes = shape_classes(mnist_units)
    weights = {s for s in classes if s.kind != ATTENTION}
    assert {(e.shape, e.spec) for e in table.entries if e.spec2 is None} == \
        {(s, spec) for s in weights for spec in (FLOAT32, W8A8_DYNAMIC)}
    pairs = {(e.spec, e.spec2) for e in table.entries if e.shape.kind == ATTENTION}
    assert pairs == {(a, b) for a in (FLOAT32, W8A8_DYNAMIC) for b in (FLOAT32, W8A8_DYNAMIC)}
    assert all(e.ms >= 0 for e in table.entries)
    assert table.candidates() == [FLOAT32, W8A8_DYNAMIC]
    assert table.source == "measured" and table.batch == 1 and table.threads == 1
    assert table.provenance["model_name"] == "mnist-vit-small"


def test_the_table_carries_its_held_out_figures(dynamic_table):
    table, _ = dynamic_table
    found = table.fidelity
    assert found is not None and found.plans == HELD_OUT
    assert 0 <= found.median_abs_error and -1 <= found.kendall_tau <= 1
    assert table.trusted == found.meets()
    assert table.provenance["fitted_plans"] > 0 and table.provenance["mixes"] == 6
    assert "held-out plans" in table.trust_summary()


def test_float32_plan_predicts_the_measured_float32_model(dynamic_table, mnist_units):
    table, _ = dynamic_table
    fp32 = Plan.uniform(mnist_units, FLOAT32)
    assert predict_latency(fp32, table) == pytest.approx(table.provenance["float32_model_ms"])


def test_rerun_reuses_the_cache(dynamic_table, mnist_model, mnist_test, monkeypatch):
    table, cache = dynamic_table

    def no_timing(*args, **kwargs):
        raise AssertionError("a cached measurement was taken again")

    monkeypatch.setattr(measure_module, "time_against", no_timing)
    monkeypatch.setattr(measure_module, "isolated_ms", no_timing)
    again = measure(mnist_model, mnist_test[0][:1], threads=1, candidates=[W8A8_DYNAMIC],
                    cache=cache, model_name="mnist-vit-small", **FAST)
    assert again.entries == table.entries


def test_interrupted_measurement_resumes_without_retiming(mnist_model, mnist_test, tmp_path,
                                                         monkeypatch):
    cache = tmp_path / "cache.json"
    real = measure_module.time_against
    blocks: list[int] = []

    def interrupted(reference, fns, policy):
        if len(blocks) == 3:
            raise KeyboardInterrupt
        blocks.append(len(fns))
        return real(reference, fns, policy)

    monkeypatch.setattr(measure_module, "time_against", interrupted)
    args = (mnist_model, mnist_test[0][:1])
    kwargs = dict(threads=1, candidates=[W8A8_DYNAMIC], cache=cache, **FAST)
    with pytest.raises(KeyboardInterrupt):
        measure(*args, **kwargs)
    stored = [v for v in json.loads(cache.read_text())["entries"].values() if "ratios" in v]
    assert len(stored) == sum(blocks) == 3 * measure_module.BLOCK

    retimed: list[int] = []

    def counting(reference, fns, policy):
        retimed.append(len(fns))
        return real(reference, fns, policy)

    monkeypatch.setattr(measure_module, "time_against", counting)
    table = measure(*args, **kwargs)
    timings = [v for v in json.loads(cache.read_text())["entries"].values() if "ratios" in v]
    passes = sum(v["passes"] for v in timings)
    assert sum(retimed) == passes - len(stored)  # only what the first run had not timed
    assert table.fidelity is not None


def test_corrupt_cache_is_refused_and_left_alone(mnist_model, mnist_test, tmp_path):
    cache = tmp_path / "cache.json"
    cache.write_text('{"schema": "mixprec.latency_cache", "entr')
    with pytest.raises(LatencyTableError, match="corrupt or truncated"):
        measure(mnist_model, mnist_test[0][:1], threads=1, candidates=[W8A8_DYNAMIC],
                cache=cache, **FAST)
    assert cache.read_text() == '{"schema": "mixprec.latency_cache", "entr'


class _Fake:
    """A 'deployed' plan that the fake timing source reads its costs from."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.deploy_report = None


def test_fit_recovers_known_costs_from_a_noisy_timing_source(mnist_model, mnist_test,
                                                            mnist_units, tmp_path,
                                                            monkeypatch):
    """The whole measurement on a seeded synthetic timing source: every unit's spec adds a
    known time, each timing has 1% noise and one block in twenty is timed in a busy spell (its
    ratios 40% off). Every fitted value is within four of its standard errors (each below
    0.5% of the model's time) of the truth, and the table predicts plans it never saw within
    2%."""
    terms = CostTerms(mnist_units, {k: [FLOAT32, W8A8_STATIC] for k in
                                    {u.kind for u in mnist_units}})
    rng = random.Random(0)
    known = {t: rng.uniform(-0.3, 0.3) for t in terms.entry_terms()}
    base_ms, anchor_ms = 10.0, 0.2

    def true_ms(plan: Plan) -> float:
        return base_ms + sum(known[t] * n for t, n in terms.counts(plan).items())

    def fake_timing(reference, fns, policy):
        busy = rng.random() < 0.05
        found = []
        for fn in fns:
            ratio = true_ms(fn().plan) / base_ms * (1 + rng.gauss(0, 0.01)) * (
                1.4 if busy else 1.0)
            found.append(RatioTiming(ratio, 0.01, ratio * base_ms, base_ms, 2, busy, (ratio,)))
        return found

    monkeypatch.setattr(measure_module._Setup, "deploy", lambda self, plan: _Fake(plan))
    monkeypatch.setattr(measure_module._Setup, "run", lambda self, fake: lambda: fake)
    monkeypatch.setattr(measure_module, "time_against", fake_timing)
    monkeypatch.setattr(measure_module, "isolated_ms",
                        lambda *a, **k: Timing(anchor_ms, 0.0, 2))
    table = measure(mnist_model, mnist_test[0][:1], threads=1, candidates=[W8A8_STATIC],
                    cache=tmp_path / "c.json", save=False, progress=False, mixes=40)
    for term, delta in known.items():
        entry = table.entry(term.producer, term.spec, term.spec2)
        assert 0 < entry.spread_ms < 0.05, term.label  # its standard error: known closely
        assert abs(entry.ms - anchor_ms - delta) <= 4 * entry.spread_ms, term.label
    unseen = [Plan.uniform(mnist_units, FLOAT32).replace(
        {u.name: rng.choice([FLOAT32, W8A8_STATIC]) for u in mnist_units}) for _ in range(10)]
    for plan in unseen:
        assert predict_latency(plan, table) == pytest.approx(true_ms(plan), rel=0.02)
    assert table.fidelity.median_abs_error < 0.02


@pytest.mark.skipif("onednn" not in exact_backends(8), reason="chains need exact 8-bit oneDNN")
def test_static_chains_are_transitions_where_deploy_fuses_them(mnist_model, mnist_test,
                                                                mnist_calib, mnist_units,
                                                                tmp_path):
    table = measure(mnist_model, mnist_test[0][:1], threads=1, candidates=[W8A8_STATIC],
                    cache=tmp_path / "c.json", **FAST)
    static = Plan.uniform(mnist_units, W8A8_STATIC)
    fused = deploy(mnist_model, static, calib=mnist_calib).deploy_report.fused
    assert {p.rsplit(".", 1)[0] for p, _ in table.chains} == set(fused)
    assert len(table.transitions) == 1
    parts = cost_models.latency_breakdown(static, table)
    assert parts.transitions == pytest.approx(table.transitions[0].ms * len(fused))


def test_onnxruntime_tables_and_load_finds_the_saved_table(mnist_model, mnist_test, tmp_path):
    table = measure(mnist_model, mnist_test[0][:2], runtime="onnxruntime", threads=1,
                    candidates=[W8A8_DYNAMIC], cache=tmp_path / "c.json",
                    model_name="mnist-vit-small", **FAST)
    assert table.runtime == "onnxruntime" and table.batch == 2
    found = cost_models.load("cpu", "mnist-vit-small", runtime="onnxruntime", batch=2,
                             threads=1, strict=True)
    assert found == table


def test_learn_adds_timings_and_refits(dynamic_table, mnist_model, mnist_test, mnist_units,
                                       monkeypatch):
    table, cache = dynamic_table
    plan = Plan.uniform(mnist_units, W8A8_DYNAMIC).replace(
        {mnist_units[0].name: FLOAT32})
    timing = RatioTiming(0.8, 0.01, 8.0, 10.0, 4, False, (0.8,) * 4)
    refitted = cost_models.learn(table, mnist_model, mnist_test[0][:1], [(plan, timing, ())],
                                 cache=cache)
    assert refitted is not None and refitted.provenance["verified_plans"] == 1
    assert refitted.provenance["fitted_plans"] == table.provenance["fitted_plans"] + 1
    store = measure_module.timing_store(mnist_units, "cpu", "torch", 1, 1, cache)
    assert store.get(plan).source == "verify"


def test_bad_arguments_are_named(mnist_model, mnist_test, monkeypatch):
    with pytest.raises(ValueError, match="batch 4"):
        measure(mnist_model, mnist_test[0][:2], batch=4, **FAST)
    with pytest.raises(ValueError, match="target class"):
        measure(mnist_model, mnist_test[0][:1], device="a15", **FAST)
    from mixprec.kernels.registry import W4A16_G128_FP16
    with pytest.raises(ValueError, match="W4g128A16-fp16"):
        measure(mnist_model, mnist_test[0][:1], candidates=[W4A16_G128_FP16], **FAST)


def test_xeon_is_measured_only_on_a_xeon(mnist_model, mnist_test, monkeypatch):
    from dataclasses import replace

    from mixprec.kernels.cpu import capabilities

    here = capabilities.cpu_fingerprint()
    monkeypatch.setattr(capabilities, "cpu_fingerprint",
                        lambda threads=None: replace(here, model_name="AMD EPYC 9R14"))
    with pytest.raises(ValueError, match="Intel Xeon with AVX-512 VNNI"):
        measure(mnist_model, mnist_test[0][:1], device="xeon", **FAST)
