"""Stand-in modules that export each unit of a plan as the ONNX nodes ONNX Runtime runs.

They replace a model's units before export (:func:`mixprec.deploy.onnx_runtime.build`):
their ``forward`` traces the graph pieces of :mod:`mixprec.kernels.ort.ops` with the
simulation's integer weights (:func:`mixprec.quant.fake.integer_weight`) and static scales
(the calibration observers). Called eagerly, they compute the same numbers in PyTorch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mixprec.kernels.cpu.activations import KERNEL_ACT_BITS
from mixprec.kernels.cpu.int8 import grid_max, u8_offset
from mixprec.kernels.ort.ops import (
    Int8Conv,
    Int8MatMul,
    Int8MatMulToFloat,
    NBitsMatMul,
    QuantizeAffine,
    QuantizeDynamic,
    QuantizeStatic,
    dequantize_nibbles,
    pack_nibbles,
)
from mixprec.quant.fake import integer_weight
from mixprec.quant.modules import expand_kv_heads
from mixprec.quant.observers import Observer
from mixprec.quant.sdpa import SdpaCall
from mixprec.quant.spec import QuantSpec

INT4_OFFSET = 8
"""MatMulNBits dequantizes ``(u4 - zero_point) * scale``: symmetric int4 values sit at +8."""


class OrtActivation(nn.Module):
    """Quantizes one activation for an int8 ONNX operator, as ``ActQuant`` simulates it.

    Args:
        spec: symmetric 7- or 8-bit activations, static or dynamic; or 8-bit affine dynamic
            per-tensor ones (``DynamicQuantizeLinear``).
        observer: calibration statistics (static specs).
        dim: the dim one dynamic scale reduces (-1 per row, -2 per column).
        signed: emit an s8 operand (zero point 0: the right side of a product) instead of
            u8 with the grid's offset.
    """

    def __init__(self, spec: QuantSpec, observer: Observer | None, dim: int = -1,
                 signed: bool = False) -> None:
        super().__init__()
        self.affine = not spec.act_symmetric
        if not (spec.act_bits in KERNEL_ACT_BITS and spec.act_symmetric
                or is_affine_dynamic(spec) and not signed):
            raise ValueError(f"{spec.label}: the int8 ONNX operators take symmetric "
                             f"activations of {KERNEL_ACT_BITS} bits, or 8-bit affine dynamic "
                             "per-tensor ones")
        self.qmax = grid_max(spec.act_bits)
        self.offset = 0 if signed else u8_offset(spec.act_bits)
        self.dynamic = spec.act_mode == "dynamic"
        self.dim: int | None = dim if spec.act_granularity == "per_token" else None
        scale = torch.tensor(1.0)
        if not self.dynamic:
            if observer is None or observer.empty:
                raise RuntimeError("static activation quantization needs calibration data")
            scale = observer.qparams(spec.act_bits, True, spec.observer, spec.percentile)[0]
        self.register_buffer("scale", scale.float().reshape(()))
        self.register_buffer("zero_point", torch.tensor(
            self.offset, dtype=torch.int8 if signed else torch.uint8))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(quantized operand, its scale: 0-d, or one per slice with the reduced dim kept,
        its zero point)."""
        if self.affine:
            return QuantizeAffine.apply(x)
        if self.dynamic:
            values, scale = QuantizeDynamic.apply(x, self.dim, self.qmax, self.offset)
            return values, scale, self.zero_point
        return QuantizeStatic.apply(x, self.scale, self.qmax, self.offset), self.scale, \
            self.zero_point


def is_affine_dynamic(spec: QuantSpec) -> bool:
    """Whether ``spec`` quantizes activations as ``DynamicQuantizeLinear`` does: 8-bit,
    affine, dynamic, one scale and zero point per tensor."""
    return (spec.act_bits == 8 and spec.act_mode == "dynamic" and not spec.act_symmetric
            and spec.act_granularity == "per_tensor")


class OrtInt8Linear(nn.Module):
    """W8A8 / W8A7 linear: QuantizeLinear then MatMulIntegerToFloat (bias fused); per-token
    scales multiply the output. Affine per-tensor dynamic activations take
    ``quantize_dynamic``'s own graph (DynamicQuantizeLinear, MatMulInteger, Cast, Mul, Add),
    which ONNX Runtime fuses into one DynamicQuantizeMatMul.

    Args:
        linear: the float module.
        spec: the unit's spec.
        observer: calibration statistics of the input (static specs).
        split: two saturation-free 7-bit GEMMs per 8-bit GEMM (CPUs without VNNI).
    """

    def __init__(self, linear: nn.Linear, spec: QuantSpec, observer: Observer | None,
                 split: bool) -> None:
        super().__init__()
        iw = integer_weight(linear.weight, spec)
        self.register_buffer("qweight", iw.q.to(torch.int8).t().contiguous())  # [K, N]
        self.register_buffer("weight_scale", iw.scale.reshape(-1).expand(
            linear.out_features).float().contiguous())
        self.register_buffer("bias", None if linear.bias is None else
                             linear.bias.detach().float().clone())
        self.register_buffer("one", torch.tensor(1.0))
        self.act = OrtActivation(spec, observer)
        self.split = split and spec.act_bits == 8

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized weight ``[N, K]`` (read by models that check ``.weight.dtype``)."""
        return (self.qweight.float() * self.weight_scale).t()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq, scale, zero = self.act(x)
        if self.act.affine:
            out = Int8MatMul.apply(xq, self.qweight, zero, self.split) * (
                scale * self.weight_scale)
        elif scale.dim() == 0:
            return Int8MatMulToFloat.apply(xq, self.qweight, scale, self.weight_scale,
                                           self.bias, zero, self.split)
        else:
            out = Int8MatMulToFloat.apply(xq, self.qweight, self.one, self.weight_scale, None,
                                          zero, self.split) * scale
        return out if self.bias is None else out + self.bias


class OrtInt8Conv(nn.Module):
    """W8A8 / W8A7 convolution (``ConvInteger``); dynamic scales are per image, as the
    simulation quantizes the flattened input."""

    def __init__(self, conv: nn.Conv2d, spec: QuantSpec, observer: Observer | None,
                 split: bool) -> None:
        super().__init__()
        if isinstance(conv.padding, str) or conv.groups != 1 or conv.padding_mode != "zeros":
            raise ValueError("Conv2d needs groups=1 and numeric zero padding")
        iw = integer_weight(conv.weight, spec)
        self.register_buffer("qweight", iw.q.to(torch.int8).reshape(conv.weight.shape))
        channels = conv.out_channels
        self.register_buffer("weight_scale", iw.scale.reshape(-1).expand(channels).float()
                             .reshape(1, channels, 1, 1).contiguous())
        self.register_buffer("bias", None if conv.bias is None else
                             conv.bias.detach().float().reshape(1, channels, 1, 1).clone())
        self.geometry = (tuple(conv.stride), tuple(conv.padding), tuple(conv.dilation))
        self.act = OrtActivation(spec, observer)
        self.split = split and spec.act_bits == 8

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized weight (read by models that check ``.weight.dtype``)."""
        return self.qweight.float() * self.weight_scale.reshape(-1, 1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat_q, scale, zero = self.act(x.flatten(1))
        xq = flat_q.reshape(x.shape)
        if scale.dim() > 0:
            scale = scale.reshape(-1, 1, 1, 1)
        acc = Int8Conv.apply(xq, self.qweight, zero, *self.geometry, self.split)
        out = acc * (scale * self.weight_scale)
        return out if self.bias is None else out + self.bias


class OrtNBitsLinear(nn.Module):
    """4-bit weights in ``MatMulNBits``: groups of the spec's size, or blocks of 32 with
    repeated scales for per-channel / per-tensor weights; K padded to whole blocks with
    weights that dequantize to 0. W4A16 keeps the activations in float32; W4A8 with
    per-group dynamic activations (:func:`is_nbits_int8`) runs int8 compute, which quantizes
    each token's block of inputs with a symmetric scale of its own."""

    def __init__(self, linear: nn.Linear, spec: QuantSpec) -> None:
        super().__init__()
        iw = integer_weight(linear.weight, spec)
        n, k = linear.out_features, linear.in_features
        block = spec.group_size if spec.weight_granularity == "per_group" else 32
        blocks = -(-k // block)
        offset = INT4_OFFSET if spec.weight_symmetric else 0
        zero = (iw.zero_point + offset).round()
        per_input_zero = iw.expand(zero)
        values = F.pad(iw.q + offset, (0, blocks * block - k))
        values[:, k:] = F.pad(per_input_zero, (0, blocks * block - k), mode="replicate")[:, k:]
        first_of_block = torch.arange(blocks) * block
        scales = F.pad(iw.expand(iw.scale), (0, blocks * block - k), mode="replicate")
        zeros = F.pad(per_input_zero, (0, blocks * block - k), mode="replicate")
        self.register_buffer("packed", pack_nibbles(values.reshape(n, blocks, block)))
        self.register_buffer("scales", scales[:, first_of_block].float().reshape(-1).contiguous())
        self.register_buffer("zero_points", pack_nibbles(zeros[:, first_of_block]).reshape(-1))
        self.register_buffer("bias", None if linear.bias is None else
                             linear.bias.detach().float().clone())
        self.shape = (k, n, block)
        self.int8_compute = is_nbits_int8(spec)

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized weight ``[N, K]`` (read by models that check ``.weight.dtype``)."""
        return dequantize_nibbles(self.packed, self.scales, self.zero_points, *self.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return NBitsMatMul.apply(x, self.packed, self.scales, self.zero_points, self.bias,
                                 *self.shape, self.int8_compute)


def is_nbits_int8(spec: QuantSpec) -> bool:
    """Whether ``spec`` is what ``MatMulNBits``'s int8 compute runs: 4-bit group weights and
    8-bit symmetric dynamic activations with one scale per token and weight group."""
    return (spec.weight_bits == 4 and spec.act_bits == 8 and spec.act_mode == "dynamic"
            and spec.act_symmetric and spec.act_granularity == "per_group")


class OrtAttention(nn.Module):
    """SDPA handler exporting Q·Kᵀ and P·V as ``MatMulInteger`` where their specs quantize
    (Q, K, P per row, V per column when dynamic; per tensor when static), float otherwise.
    The scales multiply each other before the product does (static: one multiplication of
    the integer scores instead of three)."""

    def __init__(self, qk: QuantSpec, pv: QuantSpec, observers: dict[str, Observer | None],
                 split: bool) -> None:
        super().__init__()
        self.quantizers = nn.ModuleDict()
        for point, spec, dim, signed in (("q", qk, -1, False), ("k", qk, -1, True),
                                         ("p", pv, -1, False), ("v", pv, -2, True)):
            if spec.quantizes_acts:
                self.quantizers[point] = OrtActivation(spec, observers.get(point), dim, signed)
        self.split = {"qk": split and qk.act_bits == 8, "pv": split and pv.act_bits == 8}

    def __call__(self, call: SdpaCall) -> torch.Tensor:  # type: ignore[override]
        return self.forward(call)

    def forward(self, call: SdpaCall) -> torch.Tensor:
        k, v = expand_kv_heads(call)
        if "q" in self.quantizers:
            q_q, q_scale, q_zero = self.quantizers["q"](call.q)
            k_q, k_scale, _ = self.quantizers["k"](k)
            k_scale = k_scale.transpose(-2, -1) if k_scale.dim() else k_scale
            acc = Int8MatMul.apply(q_q, k_q.transpose(-2, -1), q_zero, self.split["qk"])
            scores = acc * (q_scale * call.softmax_scale * k_scale)
        else:
            scores = call.q @ k.transpose(-2, -1) * call.softmax_scale
        bias = call.bias(scores)
        if bias is not None:
            scores = scores + bias
        probs = scores.softmax(dim=-1)
        if "p" not in self.quantizers:
            return probs @ v
        p_q, p_scale, p_zero = self.quantizers["p"](probs)
        v_q, v_scale, _ = self.quantizers["v"](v)
        acc = Int8MatMul.apply(p_q, v_q, p_zero, self.split["pv"])
        return acc * (p_scale * v_scale)
