"""Analytic (roofline) tables for the a100, a15 and xeon target classes."""

from __future__ import annotations

from dataclasses import replace

import pytest
import timm
import torch

from mixprec import quant
from mixprec.cost_models import DEVICE_MODELS, analytic_table, predict_latency
from mixprec.cost_models.table import FLOAT32, ShapeKey
from mixprec.kernels.registry import FP16, W4A16_NUPES, W8A8_DYNAMIC, W8A8_STATIC
from mixprec.quant import Plan


@pytest.fixture(scope="module")
def deit_tiny_units() -> quant.UnitList:
    model = timm.create_model("deit_tiny_patch16_224", pretrained=False).eval()
    return quant.discover_units(model, torch.randn(1, 3, 224, 224))


def linears_in(units, table, spec) -> float:
    """Predicted ms with every linear in ``spec`` and the rest in the device's float."""
    float_spec = FP16 if table.device == "a100" else FLOAT32
    plan = Plan.uniform(units, float_spec).replace(
        {u.name: spec for u in units if u.kind == "linear"})
    return predict_latency(plan, table)


def test_int8_beats_float_on_a_compute_bound_cpu_and_static_beats_dynamic(deit_tiny_units):
    table = analytic_table(deit_tiny_units, "a15", batch=1)
    assert table.source == "analytic" and table.device == "a15"
    static_ms = linears_in(deit_tiny_units, table, W8A8_STATIC)
    dynamic_ms = linears_in(deit_tiny_units, table, W8A8_DYNAMIC)
    assert static_ms < dynamic_ms < linears_in(deit_tiny_units, table, FLOAT32)


@pytest.mark.parametrize("device", ["a15", "xeon"])
def test_a_token_split_costs_its_float_rows_and_its_selection_passes(deit_tiny_units, device):
    """More float tokens cost more; every split costs more than int8 alone (the selection,
    gather and scatter passes) and less than int8 plus a whole float GEMM."""
    from mixprec.kernels.registry import token_split_candidates

    splits = [s for s in token_split_candidates(device) if s.token_split.high_bits == 16]
    assert [s.token_split.fraction for s in splits] == [0.05, 0.1]
    table = analytic_table(deit_tiny_units, device, batch=2,
                           candidates=[W8A8_STATIC, *splits])
    int8, low, high = (linears_in(deit_tiny_units, table, s) for s in (W8A8_STATIC, *splits))
    float_ms = linears_in(deit_tiny_units, table, FLOAT32)
    assert int8 < low < high < int8 + float_ms
    fixed = replace(splits[0], token_split=replace(splits[0].token_split, selection="positions"))
    fixed_table = analytic_table(deit_tiny_units, device, batch=2, candidates=[fixed])
    assert int8 < linears_in(deit_tiny_units, fixed_table, fixed) < low  # no selection pass


def test_a100_token_split_adds_the_selection_pass_to_one_int8_gemm():
    from mixprec.kernels.registry import kernel_for, token_split_candidates

    units = quant.UnitList([quant.Unit("fc", "linear", 197, 3072, 768, params=3072 * 768)],
                           "one-gemm", (3, 224, 224), {})
    splits = token_split_candidates("a100")
    assert {(s.act_bits, s.token_split.high_bits) for s in splits} == {(4, 8)}
    table = analytic_table(units, "a100", batch=64, candidates=[W8A8_DYNAMIC, *splits])
    shape = ShapeKey.of(units[0])
    dynamic = table.entry(shape, W8A8_DYNAMIC).ms
    assert all(dynamic < table.entry(shape, s).ms < 1.5 * dynamic for s in splits)
    fixed = replace(splits[0], token_split=replace(splits[0].token_split, selection="positions"))
    assert kernel_for("linear", fixed, "a100") is None  # the Triton kernel selects per image


def test_large_gpu_gemm_runs_faster_in_int8():
    units = quant.UnitList([quant.Unit("fc", "linear", 197, 3072, 768, params=3072 * 768)],
                           "one-gemm", (3, 224, 224), {})
    table = analytic_table(units, "a100", batch=64)
    shape = ShapeKey.of(units[0])
    static, dynamic, half = (table.entry(shape, s).ms for s in (W8A8_STATIC, W8A8_DYNAMIC, FP16))
    assert static < dynamic < half


def test_xeon_runs_amx_int8_and_bf16_faster_than_avx512_float32(deit_tiny_units):
    from mixprec.kernels.registry import BF16

    table = analytic_table(deit_tiny_units, "xeon", batch=8)
    assert table.source == "analytic" and table.threads == 2
    int8, bf16, fp32 = (linears_in(deit_tiny_units, table, s)
                        for s in (W8A8_STATIC, BF16, FLOAT32))
    assert int8 < fp32 and bf16 < fp32  # (int8 pays a quantize pass; bf16 does not)
    assert "Sapphire Rapids" in table.trust_summary()


def test_launch_bound_gpu_gains_nothing_from_int8(deit_tiny_units):
    """At batch 1 a DeiT-Tiny on an A100 is launch-bound: the quantize kernels cost more
    than the int8 GEMMs save."""
    table = analytic_table(deit_tiny_units, "a100", batch=1)
    assert linears_in(deit_tiny_units, table, W8A8_STATIC) > \
        linears_in(deit_tiny_units, table, FP16)


@pytest.mark.parametrize("device", ["a15", "xeon"])
def test_nupes_costs_its_decode_on_top_of_the_float_gemm(deit_tiny_units, device):
    """NUPES codes are decoded into a float32 weight, then multiplied in float32: a pass
    over the weight more than float32, the same whatever the code width up to 4 bits."""
    table = analytic_table(deit_tiny_units, device, batch=1)
    nupes = linears_in(deit_tiny_units, table, W4A16_NUPES)
    assert nupes > linears_in(deit_tiny_units, table, FLOAT32)
    three = analytic_table(deit_tiny_units, device, batch=1,
                           candidates=[replace(W4A16_NUPES, weight_bits=3)])
    assert linears_in(deit_tiny_units, three, replace(W4A16_NUPES, weight_bits=3)) == nupes


@pytest.mark.parametrize("device", ["a100", "a15", "xeon"])
def test_batch_costs_more_and_every_unit_is_covered(deit_tiny_units, device):
    one, eight = (analytic_table(deit_tiny_units, device, batch=b) for b in (1, 8))
    fp32 = Plan.uniform(deit_tiny_units, FLOAT32)
    assert predict_latency(fp32, eight) > predict_latency(fp32, one) > 0
    assert FLOAT32 in one.candidates()
    assert W8A8_STATIC in one.candidates("linear")


def test_provenance_cites_every_spec_figure(deit_tiny_units):
    table = analytic_table(deit_tiny_units, "a100", model_name="deit_tiny_patch16_224")
    model = table.provenance["device_model"]
    assert model["peak_ops"]["int8"] == DEVICE_MODELS["a100"].peak_ops["int8"]
    assert any("datasheet" in source for source in model["citations"].values())
    assert any("assumption" in source for source in model["citations"].values())
    assert table.provenance["model_name"] == "deit_tiny_patch16_224"


def test_unknown_device_is_named(deit_tiny_units):
    with pytest.raises(ValueError, match="'tpu'"):
        analytic_table(deit_tiny_units, "tpu")
