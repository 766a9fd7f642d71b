"""Stand-in modules that export each integer unit of a plan in the patterns OpenVINO's CPU
plugin runs in integer arithmetic: static activations as quantize-dequantize pairs, weight-only
specs as compressed weights.

The ONNX export (:func:`mixprec.deploy.onnx_graph.export_onnx`) turns PyTorch's fake-quantize
ops into ``QuantizeLinear`` / ``DequantizeLinear`` pairs; OpenVINO reads them as
``FakeQuantize`` and its low-precision transformations run the GEMM between two quantized
operands in int8 (u8 or s8 activations, s8 weights, 32-bit sums) and fold the scales into
its output. The grids are the simulation's: the weight is the integer weight of
:func:`mixprec.quant.fake.integer_weight` (quantized again on its own scales, which gives
back the same integers), the activation scale and zero point come from the same calibration
observer, and fake-quantize rounds half to even and saturates as
:func:`mixprec.quant.fake.quantize` does. Called eagerly, the modules compute the
simulation's numbers in PyTorch.

Weight-only specs (:class:`CompressedLinear`) keep the integer weights as an int8 constant
with per-group scales and zero points, dequantized in the graph by plain ops (Cast, Sub, Mul,
Reshape): the plugin fuses that into its fully connected layer as compressed weights (4-bit
ones narrowed to OpenVINO's i4 / u4 by :func:`~mixprec.kernels.ov.plugin.narrow_nibbles`),
with float32 activations. The export must not fold constants, or the pattern becomes a float
weight.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mixprec.kernels.ov.plugin import NIBBLES
from mixprec.quant.fake import integer_weight, qrange
from mixprec.quant.modules import expand_kv_heads
from mixprec.quant.observers import Observer
from mixprec.quant.sdpa import SdpaCall, attention_scores
from mixprec.quant.spec import QuantSpec

QDQ_ACT_BITS = (7, 8)
"""Activation bit-widths of the quantize-dequantize form (7 bits: CPUs without VNNI, where
8-bit GEMMs saturate)."""


def runs_as_qdq(spec: QuantSpec) -> bool:
    """Whether a spec's activations have the quantize-dequantize form: 7- or 8-bit, static,
    one scale (and zero point) per tensor, symmetric or affine, no token split."""
    return (spec.act_bits in QDQ_ACT_BITS and spec.act_mode == "static"
            and spec.act_granularity == "per_tensor" and spec.token_split is None)


class QdqActivation(nn.Module):
    """Fake-quantizes one activation tensor on a spec's static grid.

    Args:
        spec: a static per-tensor spec of :data:`QDQ_ACT_BITS` (:func:`runs_as_qdq`).
        observer: calibration statistics of the tensor.

    Raises:
        ValueError: a spec without the quantize-dequantize form.
        RuntimeError: no calibration data.
    """

    def __init__(self, spec: QuantSpec, observer: Observer | None) -> None:
        super().__init__()
        if not runs_as_qdq(spec):
            raise ValueError(f"{spec.label}: OpenVINO runs static per-tensor activations of "
                             f"{QDQ_ACT_BITS} bits as integers")
        if observer is None or observer.empty:
            raise RuntimeError("static activation quantization needs calibration data")
        scale, zero_point = observer.qparams(spec.act_bits, spec.act_symmetric, spec.observer,
                                             spec.percentile)
        low, high = qrange(spec.act_bits, spec.act_symmetric)
        # ONNX's quantize takes [-128, 127], [0, 255] or [0, 127]: a symmetric 7-bit grid
        # rides on [0, 127] with its zero point at 64 (u8 operands below 128, as CPUs
        # without VNNI need)
        shift = -low if spec.act_bits == 7 and spec.act_symmetric else 0
        self.scale = float(scale.reshape(()))
        self.zero_point = int(zero_point.reshape(())) + shift
        self.qmin, self.qmax = low + shift, high + shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fake_quantize_per_tensor_affine(x, self.scale, self.zero_point,
                                                     self.qmin, self.qmax)


class QdqWeight(nn.Module):
    """A GEMM weight on the simulation's symmetric 8-bit grid, one scale per output channel
    (or per tensor), as a fake-quantized constant (``[out, in, ...]``)."""

    def __init__(self, weight: torch.Tensor, spec: QuantSpec) -> None:
        super().__init__()
        iw = integer_weight(weight, spec)
        if iw.bits != 8 or not spec.weight_symmetric or spec.weight_granularity == "per_group":
            raise ValueError(f"{spec.label}: OpenVINO runs symmetric 8-bit weights, one scale "
                             "per output channel or per tensor")
        self.register_buffer("dequantized", iw.dequantize().reshape(weight.shape).float())
        self.register_buffer("scales", iw.scale.reshape(-1).float().contiguous())
        self.register_buffer("zero_points", torch.zeros(weight.shape[0], dtype=torch.int32))
        self.per_tensor = spec.weight_granularity == "per_tensor"

    def forward(self) -> torch.Tensor:
        if self.per_tensor:
            return torch.fake_quantize_per_tensor_affine(self.dequantized, float(self.scales[0]),
                                                         0, -128, 127)
        return torch.fake_quantize_per_channel_affine(self.dequantized, self.scales,
                                                      self.zero_points, 0, -128, 127)


class QdqLinear(nn.Module):
    """W8A8 / W8A7 static linear as quantize-dequantize pairs around a float ``Gemm``."""

    def __init__(self, linear: nn.Linear, spec: QuantSpec, observer: Observer | None) -> None:
        super().__init__()
        self.act = QdqActivation(spec, observer)
        self.qweight = QdqWeight(linear.weight, spec)
        self.register_buffer("bias", None if linear.bias is None else
                             linear.bias.detach().float().clone())

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized weight (read by models that check ``.weight.dtype``)."""
        return self.qweight.dequantized

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.act(x), self.qweight(), self.bias)


class QdqConv(nn.Module):
    """W8A8 / W8A7 static convolution (the patch embedding) as quantize-dequantize pairs."""

    def __init__(self, conv: nn.Conv2d, spec: QuantSpec, observer: Observer | None) -> None:
        super().__init__()
        if isinstance(conv.padding, str) or conv.groups != 1 or conv.padding_mode != "zeros":
            raise ValueError("Conv2d needs groups=1 and numeric zero padding")
        self.act = QdqActivation(spec, observer)
        self.qweight = QdqWeight(conv.weight, spec)
        self.register_buffer("bias", None if conv.bias is None else
                             conv.bias.detach().float().clone())
        self.geometry = (tuple(conv.stride), tuple(conv.padding), tuple(conv.dilation))

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized weight (read by models that check ``.weight.dtype``)."""
        return self.qweight.dequantized

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.act(x), self.qweight(), self.bias, *self.geometry)


class QdqAttention(nn.Module):
    """SDPA handler with Q·Kᵀ and P·V between fake-quantized operands where their specs are
    static (Q, K, P, V one scale each), float otherwise."""

    def __init__(self, qk: QuantSpec, pv: QuantSpec,
                 observers: dict[str, Observer | None]) -> None:
        super().__init__()
        self.quantizers = nn.ModuleDict()
        for point, spec in (("q", qk), ("k", qk), ("p", pv), ("v", pv)):
            if spec.quantizes_acts:
                self.quantizers[point] = QdqActivation(spec, observers.get(point))

    def __call__(self, call: SdpaCall) -> torch.Tensor:  # type: ignore[override]
        return self.forward(call)

    def _maybe(self, point: str, x: torch.Tensor) -> torch.Tensor:
        return self.quantizers[point](x) if point in self.quantizers else x

    def forward(self, call: SdpaCall) -> torch.Tensor:
        k, v = expand_kv_heads(call)
        probs = attention_scores(call, self._maybe("q", call.q), self._maybe("k", k))
        return self._maybe("p", probs) @ self._maybe("v", v)


class CompressedLinear(nn.Module):
    """W4A16 / W8A16 linear with float32 activations: the simulation's integer weights
    ``[out, groups, group size]`` dequantized in the graph (padding inputs, if any, dequantize
    to 0 and are cut off).

    Raises:
        ValueError: a spec that quantizes activations, or weights other than 4- or 8-bit.
    """

    def __init__(self, linear: nn.Linear, spec: QuantSpec) -> None:
        super().__init__()
        if spec.quantizes_acts or spec.weight_bits not in (4, 8):
            raise ValueError(f"{spec.label}: OpenVINO compresses 4- and 8-bit weights with "
                             "float activations")
        iw = integer_weight(linear.weight, spec)
        rows, cols = iw.q.shape
        groups = iw.scale.shape[1]
        padded = torch.nn.functional.pad(iw.q, (0, groups * iw.group_size - cols))
        padded[:, cols:] = iw.zero_point[:, -1:]  # padding dequantizes to 0
        dtype = torch.int8 if spec.weight_symmetric else torch.uint8
        name = NIBBLES if spec.weight_bits == 4 else "bytes"
        self.register_buffer(name, padded.reshape(rows, groups, iw.group_size).to(dtype))
        self.values_name = name
        self.register_buffer("scales", iw.scale.float().reshape(rows, groups, 1).contiguous())
        self.register_buffer("zero_points",
                             iw.zero_point.float().reshape(rows, groups, 1).contiguous())
        self.register_buffer("bias", None if linear.bias is None else
                             linear.bias.detach().float().clone())
        self.shape = (rows, cols)

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized weight ``[out, in]`` (read by models that check
        ``.weight.dtype``)."""
        values = getattr(self, self.values_name)
        rows, cols = self.shape
        weight = ((values.float() - self.zero_points) * self.scales).reshape(rows, -1)
        return weight if weight.shape[1] == cols else weight[:, :cols]  # a Slice breaks fusion

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)
