"""measure(): a table of every shape class x candidate, cached, resumable, and consistent with
what it measured."""

from __future__ import annotations

import json

import pytest

from mixprec import cost_models, deploy
from mixprec.cost_models import LatencyTableError, measure, predict_latency
from mixprec.cost_models import measurement as measure_module
from mixprec.cost_models.table import ATTENTION, FLOAT32, ShapeKey
from mixprec.kernels.cpu import exact_backends
from mixprec.kernels.registry import W8A8_DYNAMIC, W8A8_STATIC
from mixprec.quant import Plan

FAST = {"repeats": 2, "warmup": 1, "progress": False}


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
    assert all(e.ms > 0 for e in table.entries if e.spec == FLOAT32 and e.spec2 in (None,
                                                                                    FLOAT32))
    assert table.candidates() == [FLOAT32, W8A8_DYNAMIC]
    assert table.source == "measured" and table.batch == 1 and table.threads == 1
    assert table.provenance["model_name"] == "mnist-vit-small"


def test_float32_plan_predicts_the_measured_float32_model(dynamic_table, mnist_units):
    table, _ = dynamic_table
    fp32 = Plan.uniform(mnist_units, FLOAT32)
    assert predict_latency(fp32, table) == pytest.approx(table.provenance["float32_model_ms"])


def test_rerun_reuses_the_cache(dynamic_table, mnist_model, mnist_test, monkeypatch):
    table, cache = dynamic_table

    def no_timing(*args, **kwargs):
        raise AssertionError("a cached measurement was taken again")

    monkeypatch.setattr(measure_module, "time_pair", no_timing)
    monkeypatch.setattr(measure_module, "time_call", no_timing)
    monkeypatch.setattr(measure_module, "isolated_ms", no_timing)
    again = measure(mnist_model, mnist_test[0][:1], threads=1, candidates=[W8A8_DYNAMIC],
                    cache=cache, model_name="mnist-vit-small", **FAST)
    assert again.entries == table.entries


def test_interrupted_measurement_resumes_without_remeasuring(mnist_model, mnist_test,
                                                             tmp_path, monkeypatch):
    cache = tmp_path / "cache.json"
    real_pair = measure_module.time_pair
    calls = []

    def interrupted(*args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(1)
        return real_pair(*args, **kwargs)

    monkeypatch.setattr(measure_module, "time_pair", interrupted)
    args = (mnist_model, mnist_test[0][:1])
    kwargs = dict(threads=1, candidates=[W8A8_DYNAMIC], cache=cache, **FAST)
    with pytest.raises(KeyboardInterrupt):
        measure(*args, **kwargs)
    stored = len(json.loads(cache.read_text())["entries"])
    assert stored >= 3

    resumed = []

    def counting(real):
        def timed(*a, **k):
            resumed.append(1)
            return real(*a, **k)
        return timed

    for name in ("time_pair", "time_call", "isolated_ms"):
        monkeypatch.setattr(measure_module, name, counting(getattr(measure_module, name)))
    monkeypatch.setattr(measure_module, "time_pair", counting(real_pair))
    table = measure(*args, **kwargs)
    total = len(json.loads(cache.read_text())["entries"])
    assert len(resumed) == total - stored  # only what the first run had not stored
    assert len(table.entries) > 0


def test_corrupt_cache_is_refused_and_left_alone(mnist_model, mnist_test, tmp_path):
    cache = tmp_path / "cache.json"
    cache.write_text('{"schema": "mixprec.latency_cache", "entr')
    with pytest.raises(LatencyTableError, match="corrupt or truncated"):
        measure(mnist_model, mnist_test[0][:1], threads=1, candidates=[W8A8_DYNAMIC],
                cache=cache, **FAST)
    assert cache.read_text() == '{"schema": "mixprec.latency_cache", "entr'


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


def test_bad_arguments_are_named(mnist_model, mnist_test):
    with pytest.raises(ValueError, match="batch 4"):
        measure(mnist_model, mnist_test[0][:2], batch=4, **FAST)
    with pytest.raises(ValueError, match="target class"):
        measure(mnist_model, mnist_test[0][:1], device="a15", **FAST)
    from mixprec.kernels.registry import W4A16_G128_FP16
    with pytest.raises(ValueError, match="W4g128A16-fp16"):
        measure(mnist_model, mnist_test[0][:1], candidates=[W4A16_G128_FP16], **FAST)
