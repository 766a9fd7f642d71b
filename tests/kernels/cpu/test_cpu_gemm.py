"""CPU GEMM modules agree with their fake-quant simulation; int8 GEMMs are exact."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from mixprec.kernels.cpu import (
    FloatCast,
    Int8Gemm,
    Int8Matrix,
    WeightOnlyInt4Gemm,
    WeightOnlyInt8Gemm,
    exact_backends,
    int8_bmm,
)
from mixprec.kernels.cpu.exactness import int_mm_exact, onednn_exact
from mixprec.kernels.cpu.int8 import EXACT_FLOAT_REDUCTION
from mixprec.quant import QuantSpec
from mixprec.quant.fake import quantize_weight
from mixprec.quant.modules import FakeQuantConv2d, FakeQuantLinear
from mixprec.quant.observers import Observer
from tests.helpers import observer, sqnr

SQNR_DB = 35.0
BACKENDS = list(exact_backends(8)) + (
    ["onednn_split"] if "onednn_split" not in exact_backends(8) and onednn_exact(63) else [])
"""Every int8 backend whose sums are exact here for 8-bit activations (probed), and the
saturation-free split wherever oneDNN's 7-bit path is exact (every x86 CPU)."""

W8A8_STATIC = QuantSpec(weight_bits=8, act_bits=8, act_mode="static")
W8A8_DYNAMIC = QuantSpec(weight_bits=8, act_bits=8, act_mode="dynamic")
W8A8_DYNAMIC_TENSOR = QuantSpec(weight_bits=8, act_bits=8, act_mode="dynamic",
                                act_granularity="per_tensor")
W8A7_STATIC = QuantSpec(weight_bits=8, act_bits=7, act_mode="static")
W8A7_DYNAMIC = QuantSpec(weight_bits=8, act_bits=7, act_mode="dynamic")
BF16 = QuantSpec(weight_bits=16, act_bits=16, act_mode="none", float_dtype="bfloat16")
W8A16 = QuantSpec(weight_bits=8, act_bits=16, act_mode="none", float_dtype="bfloat16")
W8A16_FP32 = QuantSpec(weight_bits=8, act_bits=16, act_mode="none")
W4A16_G32 = QuantSpec(weight_bits=4, act_bits=16, act_mode="none",
                      weight_granularity="per_group", group_size=32)
W4A16_G128_AFFINE_BF16 = QuantSpec(weight_bits=4, act_bits=16, act_mode="none",
                                   weight_granularity="per_group", group_size=128,
                                   weight_symmetric=False, float_dtype="bfloat16")
W4A16_CHANNEL = QuantSpec(weight_bits=4, act_bits=16, act_mode="none")


def _build(module: nn.Module, spec: QuantSpec, obs: Observer, backend: str) -> nn.Module:
    if spec.quantizes_acts:
        return Int8Gemm(module, spec, obs, backend)
    if spec.weight_bits == 8:
        return WeightOnlyInt8Gemm(module, spec)
    if spec.weight_bits == 4:
        return WeightOnlyInt4Gemm(module, spec)
    return FloatCast(module, spec)


@pytest.mark.parametrize(("backend", "bits"), [(b, 8) for b in BACKENDS]
                         + [(b, 7) for b in exact_backends(7)])
def test_int8_matrix_is_exact_integer_gemm(backend, bits):
    """Random operands and the worst case of a 16-bit pair sum: every grid value at its
    extreme (the split backend is exact on every x86 CPU, VNNI or not)."""
    gen = torch.Generator().manual_seed(0)
    top = 2 ** (bits - 1) - 1
    xq = torch.cat([torch.randint(-top, top + 1, (37, 96), generator=gen),
                    torch.full((2, 96), top), torch.full((2, 96), -top)])
    wq = torch.cat([torch.randint(-127, 128, (24, 96), generator=gen),
                    torch.full((2, 96), 127), torch.full((2, 96), -127)])
    out = Int8Matrix(wq, torch.ones(28), backend).matmul((xq + top + 1).to(torch.uint8), top + 1)
    assert torch.equal(out, (xq.long() @ wq.long().t()).float())


@pytest.mark.parametrize("reduction", [32, EXACT_FLOAT_REDUCTION, EXACT_FLOAT_REDUCTION + 8])
def test_int8_bmm_is_exact_with_row_and_column_scales(reduction):
    if reduction > EXACT_FLOAT_REDUCTION and not int_mm_exact():
        pytest.skip("torch._int_mm saturates on this CPU")
    gen = torch.Generator().manual_seed(1)
    a = torch.randint(-128, 128, (2, 3, 50, reduction), generator=gen)
    b = torch.randint(-128, 128, (2, 3, 20, reduction), generator=gen)
    a[0, 0, 0], b[0, 0, 0] = -128, -128  # the largest products, all of one sign
    a_scale, b_scale = torch.rand(2, 3, 50, 1) + 0.5, torch.rand(2, 3, 1, 20) + 0.5
    ref = (a.long() @ b.long().transpose(-2, -1)).float() * a_scale * b_scale
    assert torch.equal(int8_bmm(a, a_scale, b, b_scale), ref)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("spec", [W8A8_STATIC, W8A8_DYNAMIC, W8A8_DYNAMIC_TENSOR, W8A7_STATIC,
                                  W8A7_DYNAMIC, BF16, W8A16, W8A16_FP32, W4A16_G32,
                                  W4A16_G128_AFFINE_BF16, W4A16_CHANNEL],
                         ids=lambda s: f"{s.label}-{s.float_dtype}")
def test_linear_agrees_with_fake_quant(spec, backend):
    if spec.act_bits == 7 and backend not in exact_backends(7):
        pytest.skip(f"{backend} is not the 7-bit path here")
    torch.manual_seed(0)
    linear = nn.Linear(96, 40)  # N=40: int4 pads N to 16s; K=96: groups of 128 pad K
    x = torch.randn(3, 50, 96) * torch.linspace(0.2, 3, 96)
    x_cls = x[:, 0]  # a non-contiguous input (a ViT head's)
    sim = FakeQuantLinear(linear, spec, observer(x))
    real = _build(copy.deepcopy(linear), spec, observer(x), backend)
    with torch.inference_mode():
        assert sqnr(real(x), sim(x)) >= SQNR_DB
        assert sqnr(real(x_cls), sim(x_cls)) >= SQNR_DB
    if spec.quantizes_weights:
        assert not any(isinstance(m, nn.Linear) for m in real.modules())


@pytest.mark.parametrize("spec", [W8A8_STATIC, W8A8_DYNAMIC, BF16, W8A16, W4A16_G32],
                         ids=lambda s: s.label)
@pytest.mark.parametrize("in_chans,patch", [(3, 4), (1, 2)], ids=["K48", "K4"])
@pytest.mark.parametrize("batch", [1, 2])  # batch 1: unfolded rows are a strided view
def test_conv_agrees_with_fake_quant(spec, in_chans, patch, batch):
    torch.manual_seed(0)
    conv = nn.Conv2d(in_chans, 32, kernel_size=patch, stride=patch)  # a patch embedding
    x = torch.randn(batch, in_chans, 28, 28)
    sim = FakeQuantConv2d(conv, spec, observer(x.flatten(1)))
    real = _build(copy.deepcopy(conv), spec, observer(x.flatten(1)), BACKENDS[-1])
    with torch.inference_mode():
        out = real(x)
        assert out.shape == sim(x).shape
        assert sqnr(out, sim(x)) >= SQNR_DB


def test_padded_strided_conv_matches_shape_and_values():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 16, kernel_size=3, stride=2, padding=1)
    x = torch.randn(2, 4, 9, 9)
    sim = FakeQuantConv2d(conv, W8A8_DYNAMIC, None)
    real = Int8Gemm(copy.deepcopy(conv), W8A8_DYNAMIC, None, BACKENDS[-1])
    with torch.inference_mode():
        assert sqnr(real(x), sim(x)) >= SQNR_DB


def test_weight_only_and_bf16_store_compact_weights():
    linear = nn.Linear(64, 32)
    assert WeightOnlyInt8Gemm(copy.deepcopy(linear), W8A16).qweight.dtype == torch.int8
    assert WeightOnlyInt4Gemm(copy.deepcopy(linear), W4A16_G32).qweight.dtype == torch.uint8
    assert FloatCast(copy.deepcopy(linear), BF16).inner.weight.dtype == torch.bfloat16


@pytest.mark.parametrize("spec", [W8A8_STATIC, W8A16, W4A16_G32, W4A16_G128_AFFINE_BF16, BF16],
                         ids=lambda s: s.label)
def test_weight_reads_as_the_simulated_weight(spec):
    """Models such as Hugging Face's ViT read ``.weight.dtype`` of a unit in forward."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 20, kernel_size=4, stride=4)
    real = _build(copy.deepcopy(conv), spec, observer(torch.randn(2, 48)), BACKENDS[0])
    want = quantize_weight(conv.weight, spec)
    assert real.weight.shape == conv.weight.shape
    torch.testing.assert_close(real.weight.float(), want.float(), rtol=1e-2, atol=1e-3)


def test_static_spec_without_calibration_is_refused():
    with pytest.raises(RuntimeError, match="calibration"):
        Int8Gemm(nn.Linear(8, 8), W8A8_STATIC, None, "int_mm")

