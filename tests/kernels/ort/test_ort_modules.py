"""ONNX Runtime graph pieces: exported, run by ONNX Runtime, compared with the simulation.

Quantization nodes must give the simulation's integers bit for bit; the GEMMs exact int32
sums; whole units their fake-quant twin's output (float rounding apart).
"""

from __future__ import annotations

import copy

import onnx
import pytest
import torch
from torch import nn

from mixprec.deploy.onnx_graph import export_onnx
from mixprec.deploy.onnx_runtime import OrtModel
from mixprec.kernels.ort.exactness import ort_int8_exact
from mixprec.kernels.ort.modules import (
    OrtAttention,
    OrtInt8Conv,
    OrtInt8Linear,
    OrtNBitsLinear,
)
from mixprec.kernels.ort.ops import (
    Int8MatMul,
    Int8MatMulToFloat,
    QuantizeAffine,
    QuantizeDynamic,
    QuantizeStatic,
)
from mixprec.kernels.registry import (
    W8A7_DYNAMIC,
    W8A7_STATIC,
    W8A8_DYNAMIC,
    W8A8_DYNAMIC_AFFINE,
    W8A8_STATIC,
)
from mixprec.quant import QuantSpec
from mixprec.quant.fake import dynamic_qparams, quantize
from mixprec.quant.modules import AttentionQuant, FakeQuantConv2d, FakeQuantLinear
from mixprec.quant.simulate import attach_attention_quant
from tests.helpers import observer, sqnr

pytest.importorskip("onnxruntime")

W8A8_DYNAMIC_TENSOR = QuantSpec(weight_bits=8, act_bits=8, act_mode="dynamic",
                                act_granularity="per_tensor")
INT8_SPECS = [W8A8_STATIC, W8A8_DYNAMIC, W8A8_DYNAMIC_TENSOR, W8A8_DYNAMIC_AFFINE, W8A7_STATIC,
              W8A7_DYNAMIC]


def run_in_ort(module: nn.Module, x: torch.Tensor):
    return OrtModel.of(export_onnx(module, x, ms_domain=True), threads=1)(x)


class Apply(nn.Module):
    """One Function call on the input: ``fn(x, *tensors, *args)`` (tensors as buffers)."""

    def __init__(self, fn, tensors: tuple = (), args: tuple = (), index: int | None = None
                 ) -> None:
        super().__init__()
        self.fn, self.args, self.index = fn, args, index
        for i, t in enumerate(tensors):
            self.register_buffer(f"t{i}", t)
        self.count = len(tensors)

    def forward(self, x: torch.Tensor):
        tensors = [getattr(self, f"t{i}") for i in range(self.count)]
        out = self.fn.apply(x, *tensors, *self.args)
        return out if self.index is None else out[self.index]


def inputs_with_outliers() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 30, 48, generator=gen) * torch.linspace(0.2, 3, 48)
    x[0, 0, :6] = torch.tensor([-50.0, 50.0, -1e-3, 0.0, 7.5, -7.5])  # beyond calibration
    return x


@pytest.mark.parametrize("bits", [8, 7])
def test_static_quantization_matches_the_simulation_grid(bits):
    x = inputs_with_outliers()
    qmax = 2 ** (bits - 1) - 1
    scale = torch.tensor(0.05)  # 50 lies far outside the grid: both ends must clamp to qmax
    want = quantize(x, scale, torch.zeros(()), bits, True)
    got = run_in_ort(Apply(QuantizeStatic, (scale,), (qmax, qmax + 1)), x)
    assert torch.equal(got.long() - (qmax + 1), want.long())
    signed = run_in_ort(Apply(QuantizeStatic, (scale,), (qmax, 0)), x)
    assert torch.equal(signed.long(), want.long())


@pytest.mark.parametrize("dim", [-1, -2, None])
def test_dynamic_quantization_matches_the_simulation(dim):
    x = inputs_with_outliers()
    values = run_in_ort(Apply(QuantizeDynamic, args=(dim, 127, 128), index=0), x)
    scales = run_in_ort(Apply(QuantizeDynamic, args=(dim, 127, 128), index=1), x)
    reduce = tuple(range(x.dim())) if dim is None else dim
    want_scale = dynamic_qparams(x, 8, True, reduce)[0]
    assert torch.equal(scales.reshape(want_scale.shape), want_scale)
    assert torch.equal(values.long() - 128, quantize(x, want_scale, torch.zeros(()), 8,
                                                     True).long())


def need_exact_path(bits: int, split: bool) -> None:
    """Skip the unsplit path where ONNX Runtime's GEMM saturates for ``bits``-bit
    activations (no VNNI; deploy splits there, and the split case runs)."""
    if not split and bits == 8 and not ort_int8_exact(8):
        pytest.skip("no VNNI: ONNX Runtime's unsplit 8-bit GEMM saturates here")


@pytest.mark.parametrize("split", [False, True])
def test_int8_products_are_exact(split):
    gen = torch.Generator().manual_seed(1)
    a = torch.cat([torch.randint(-127, 128, (20, 64), generator=gen), torch.full((2, 64), 127),
                   torch.full((2, 64), -127)])
    b = torch.cat([torch.randint(-127, 128, (64, 14), generator=gen), torch.full((64, 2), 127)],
                  dim=1)
    exact = (a.long() @ b.long()).float()
    a_u8, b_s8 = (a + 128).to(torch.uint8), b.to(torch.int8)
    zero = torch.tensor(128, dtype=torch.uint8)
    to_float = Apply(Int8MatMulToFloat, (b_s8, torch.tensor(1.0), torch.ones(16)),
                     (None, zero, split))
    if not split and not ort_int8_exact(8):  # no VNNI: MLAS saturates, as the probe found
        assert not torch.equal(run_in_ort(to_float, a_u8), exact)
        return
    assert torch.equal(run_in_ort(to_float, a_u8), exact)
    a3, b3 = a_u8.reshape(2, 12, 64), torch.stack([b_s8, b_s8.flip(1)])
    want = torch.stack([exact[:12], (a[12:].long() @ b.flip(1).long()).float()])
    assert torch.equal(run_in_ort(Apply(Int8MatMul, (b3,), (zero, split)), a3), want)
    odd = torch.tensor(77, dtype=torch.uint8)  # an affine zero point: odd, far from 128
    shifted = (a + 77).clamp(0, 255)
    want = ((shifted - 77).long() @ b.long()).float()
    got = run_in_ort(Apply(Int8MatMul, (b_s8,), (odd, split)), shifted.to(torch.uint8))
    assert torch.equal(got, want)


def test_affine_dynamic_quantization_is_dynamicquantizelinear():
    x = inputs_with_outliers()
    values = run_in_ort(Apply(QuantizeAffine, index=0), x)
    scale = run_in_ort(Apply(QuantizeAffine, index=1), x)
    zero = run_in_ort(Apply(QuantizeAffine, index=2), x)
    want_scale, want_zero = dynamic_qparams(x, 8, False, (0, 1, 2))
    assert torch.equal(scale.reshape(()), want_scale.reshape(()))
    assert int(zero) == int(want_zero)
    assert torch.equal(values.float(), quantize(x, want_scale, want_zero, 8, False))


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("spec", INT8_SPECS, ids=lambda s: s.label)
def test_linear_agrees_with_fake_quant(spec, split):
    need_exact_path(spec.act_bits, split)
    torch.manual_seed(0)
    linear = nn.Linear(48, 24)
    x = inputs_with_outliers()
    sim = FakeQuantLinear(linear, spec, observer(x[1:]))
    real = OrtInt8Linear(copy.deepcopy(linear), spec, observer(x[1:]), split)
    with torch.inference_mode():
        want = sim(x)
    assert sqnr(run_in_ort(real, x), want) >= 60.0
    torch.testing.assert_close(real.weight, sim.weight)


@pytest.mark.parametrize("spec", [W8A8_STATIC, W8A8_DYNAMIC, W8A7_DYNAMIC, W8A8_DYNAMIC_AFFINE],
                         ids=lambda s: s.label)
@pytest.mark.parametrize("padding", [0, 1])
def test_conv_agrees_with_fake_quant(spec, padding):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 16, kernel_size=4, stride=4 - 2 * padding, padding=padding)
    x = torch.randn(2, 3, 16, 16)
    sim = FakeQuantConv2d(conv, spec, observer(x.flatten(1)))
    real = OrtInt8Conv(copy.deepcopy(conv), spec, observer(x.flatten(1)), split=False)
    with torch.inference_mode():
        want = sim(x)
    assert sqnr(run_in_ort(real, x), want) >= 60.0
    torch.testing.assert_close(real.weight, sim.weight)


@pytest.mark.parametrize("spec", [
    QuantSpec(weight_bits=4, act_bits=16, act_mode="none", weight_granularity="per_group",
              group_size=32),
    QuantSpec(weight_bits=4, act_bits=16, act_mode="none", weight_granularity="per_group",
              group_size=64, weight_symmetric=False),
    QuantSpec(weight_bits=4, act_bits=16, act_mode="none"),
], ids=["g32", "g64-affine", "per-channel"])
def test_four_bit_linear_agrees_with_fake_quant(spec):
    torch.manual_seed(0)
    linear = nn.Linear(80, 24)  # K=80: the last block of 32 / 64 is partial
    x = torch.randn(3, 7, 80)
    sim = FakeQuantLinear(linear, spec, None)
    real = OrtNBitsLinear(copy.deepcopy(linear), spec)
    with torch.inference_mode():
        want = sim(x)
        assert sqnr(real(x), want) >= 80.0  # the eager trace computes the same weights
    torch.testing.assert_close(real.weight, sim.weight)
    assert sqnr(run_in_ort(real, x), want) >= 80.0


W4A8_BLOCKS = QuantSpec(weight_bits=4, act_bits=8, act_mode="dynamic",
                        weight_granularity="per_group", group_size=32,
                        act_granularity="per_group")


def test_four_bit_weights_with_int8_compute_agree_with_fake_quant():
    torch.manual_seed(0)
    linear = nn.Linear(80, 24)  # K=80: the last block of 32 is partial
    x = torch.randn(3, 7, 80) * torch.linspace(0.1, 4.0, 80)
    x[0, 0, 40] = 60.0  # an outlier spoils only its own token's block
    sim = FakeQuantLinear(linear, W4A8_BLOCKS, None)
    real = OrtNBitsLinear(copy.deepcopy(linear), W4A8_BLOCKS)
    float_in = nn.Linear(80, 24)
    float_in.load_state_dict({"weight": sim.weight, "bias": linear.bias.detach()})
    with torch.inference_mode():
        want = sim(x)
        float_acts = float_in(x)
        ort = run_in_ort(real, x)
    # ONNX Runtime rounds x * (127 / absmax), the simulation x / (absmax / 127): a rare
    # element lands one step apart; its own quantization error is far larger than that
    assert sqnr(ort, want) >= 45.0
    assert sqnr(ort, want) > sqnr(float_acts, want) + 10.0
    graph = onnx.load_from_string(export_onnx(real, x, ms_domain=True).onnx_bytes).graph
    nodes = [n for n in graph.node if n.op_type == "MatMulNBits"]
    assert [a.i for n in nodes for a in n.attribute if a.name == "accuracy_level"] == [4]


class TinyAttention(nn.Module):
    """Q, K, V projections around SDPA, like timm's Attention."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(32, 96)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).reshape(x.shape[0], x.shape[1], 3, 2, 16).permute(2, 0, 3, 1, 4)
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        return out.transpose(1, 2).reshape(x.shape)


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize(("qk", "pv"), [(W8A8_STATIC, W8A8_STATIC), (W8A8_DYNAMIC, W8A8_DYNAMIC),
                                        (W8A7_DYNAMIC, None), (None, W8A8_DYNAMIC_TENSOR)],
                         ids=["static", "dynamic", "qk-only-7bit", "pv-only-tensor"])
def test_attention_agrees_with_fake_quant(qk, pv, split):
    need_exact_path(max(s.act_bits if s else 0 for s in (qk, pv)), split)
    from mixprec.quant.calibrate import calibrate
    from mixprec.quant.simulate import FLOAT_SPEC
    from mixprec.quant.units import discover_units

    torch.manual_seed(0)
    model = TinyAttention().eval()
    x = torch.randn(3, 20, 32)
    units = [u for u in discover_units(model, x[:1]) if u.is_attention]
    stats = calibrate(model, units, x)
    points = {p: stats.get(f":{p}") for p in "qkpv"}
    qk, pv = qk or FLOAT_SPEC, pv or FLOAT_SPEC
    sim, real = copy.deepcopy(model), copy.deepcopy(model)
    attach_attention_quant(sim, AttentionQuant(qk, pv, points))
    attach_attention_quant(real, OrtAttention(qk, pv, points, split))
    with torch.inference_mode():
        want = sim(x)
    assert sqnr(run_in_ort(real, x), want) >= 60.0
