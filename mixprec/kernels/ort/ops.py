"""ONNX graph pieces of the ONNX Runtime runtime, as autograd Functions with ``symbolic``.

Each Function computes its result in PyTorch (so that the model can be traced) and emits
the ONNX nodes ONNX Runtime runs when the model is exported with the TorchScript exporter.
The integers are those of the simulation (checked in tests against ONNX Runtime itself):

* ``QuantizeLinear`` divides by the scale, rounds half to even and saturates, as
  :func:`mixprec.quant.fake.quantize` does: for 8 bits its range is the symmetric grid
  ``[-128, 127]``; 7-bit static activations clip to ``[-64, 63]`` first;
* per-token / per-channel dynamic scales divide first and quantize with a unit scale (the
  same integers; blocked QuantizeLinear trips ONNX Runtime's transpose optimizer);
* the u8 x s8 GEMMs are ``MatMulIntegerToFloat`` (com.microsoft: scales and bias fused),
  ``MatMulInteger`` and ``ConvInteger`` (padding takes the zero point, as zeros quantize);
  ``split=True`` computes an 8-bit GEMM as two 7-bit ones that cannot saturate a 16-bit sum
  (``u8 = 2 * (u8 >> 1) + (u8 & 1)``), for CPUs without VNNI;
* 4-bit weights run in ``MatMulNBits`` (com.microsoft) with float32 activations, or with
  int8 compute (activations quantized per token and weight block).
"""

from __future__ import annotations

import torch
from torch.onnx import symbolic_helper

from mixprec.kernels.cpu.int8 import grid_bits
from mixprec.quant.fake import dynamic_qparams, fake_quant_dynamic_groups, quantize

MS_DOMAIN = "com.microsoft"
OPSET = 20
"""The newest opset PyTorch's TorchScript exporter supports (BitwiseAnd needs 18)."""
TINY = torch.finfo(torch.float32).tiny
INT8_QMAX = 127
NBITS_INT8_ACCURACY_LEVEL = 4
"""``MatMulNBits``'s int8 compute: the activations quantized to int8 per block."""


def _const(g, value: torch.Tensor):
    return g.op("Constant", value_t=value)


def _zero_point(g, offset: int, like=None):
    """A uint8 (offset > 0) or int8 (offset 0: signed operand) zero point, scalar or shaped
    like ``like``."""
    dtype = torch.uint8 if offset > 0 else torch.int8
    zero = _const(g, torch.tensor(offset, dtype=dtype))
    return zero if like is None else g.op("Expand", zero, g.op("Shape", like))


def _float_output(value, like, columns: int | None):
    """Declare a com.microsoft node's float32 output (ONNX has no shape inference for it):
    ``like``'s shape with the last dim replaced by ``columns``."""
    sizes = symbolic_helper._get_tensor_sizes(like)
    if sizes is not None and columns is not None:
        sizes = [*sizes[:-1], columns]
    value.setType(like.type().with_dtype(torch.float32).with_sizes(sizes))
    return value


def _grid(x: torch.Tensor, scale: torch.Tensor, qmax: int) -> torch.Tensor:
    return quantize(x.float(), scale, torch.zeros(()), grid_bits(qmax), True)


def _cast_int(q: torch.Tensor, offset: int) -> torch.Tensor:
    return (q + offset).to(torch.uint8) if offset > 0 else q.to(torch.int8)


def _halves(g, a, zero_point):
    """``u8 = 2 * (u8 >> 1) + (u8 & 1)``, zero point likewise: (high, its zero point, low, its
    zero point). Each half times an s8 weight fits a 16-bit pair sum: no saturation."""
    one = _const(g, torch.tensor(1, dtype=torch.uint8))
    return (g.op("BitShift", a, one, direction_s="RIGHT"),
            g.op("BitShift", zero_point, one, direction_s="RIGHT"),
            g.op("BitwiseAnd", a, one), g.op("BitwiseAnd", zero_point, one))


def _integer_product(g, op: str, a, b, zero_point, split: bool, **attrs):
    """``op`` (MatMulInteger or ConvInteger) of ``a - zero_point`` and ``b`` as float32,
    as two saturation-free products when ``split``."""
    if not split:
        return g.op("Cast", g.op(op, a, b, zero_point, **attrs), to_i=1)
    high, high_zero, low, low_zero = _halves(g, a, zero_point)
    acc_high = g.op(op, high, b, high_zero, **attrs)
    acc = g.op("Add", g.op("Add", acc_high, acc_high), g.op(op, low, b, low_zero, **attrs))
    return g.op("Cast", acc, to_i=1)


class QuantizeStatic(torch.autograd.Function):
    """``x`` on the grid ``[-qmax - 1, qmax]`` of a fixed scale, plus ``offset``, as u8
    (offset > 0) or s8 (offset 0)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: torch.Tensor, qmax: int, offset: int
                ) -> torch.Tensor:
        return _cast_int(_grid(x, scale, qmax), offset)

    @staticmethod
    def symbolic(g, x, scale, qmax: int, offset: int):
        if qmax < INT8_QMAX:  # QuantizeLinear saturates to the 8-bit range only
            low = g.op("Mul", scale, _const(g, torch.tensor(float(-qmax - 1))))
            high = g.op("Mul", scale, _const(g, torch.tensor(float(qmax))))
            x = g.op("Clip", x, low, high)
        return g.op("QuantizeLinear", x, scale, _zero_point(g, offset))


class QuantizeDynamic(torch.autograd.Function):
    """Scales from ``x`` itself (one per slice along ``dim``, or one for the tensor when
    ``dim`` is None) and ``x`` on their grids: returns (u8 or s8 values, float scales with
    the reduced dim kept)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, dim: int | None, qmax: int, offset: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
        reduce = tuple(range(x.dim())) if dim is None else dim
        scale = dynamic_qparams(x, grid_bits(qmax), True, reduce)[0]
        if dim is None:
            scale = scale.reshape(())
        return _cast_int(_grid(x, scale, qmax), offset), scale

    @staticmethod
    def symbolic(g, x, dim: int | None, qmax: int, offset: int):
        absolute = g.op("Abs", x)
        if dim is None:
            absmax = g.op("ReduceMax", absolute, keepdims_i=0)
        else:
            absmax = g.op("ReduceMax", absolute, _const(g, torch.tensor([dim])), keepdims_i=1)
        scale = g.op("Max", g.op("Div", absmax, _const(g, torch.tensor(float(qmax)))),
                     _const(g, torch.tensor(TINY)))
        if dim is None:
            return g.op("QuantizeLinear", x, scale, _zero_point(g, offset)), scale
        # per slice: divide, then round, shift and saturate with a unit scale (not blocked
        # QuantizeLinear, which ONNX Runtime's transpose optimizer breaks after a Transpose)
        scaled = g.op("Div", x, scale)
        return g.op("QuantizeLinear", scaled, _const(g, torch.tensor(1.0)),
                    _zero_point(g, offset)), scale


class QuantizeAffine(torch.autograd.Function):
    """8-bit affine per-tensor quantization with the range of ``x`` itself
    (``DynamicQuantizeLinear``, what ONNX Runtime's ``quantize_dynamic`` emits): returns
    (u8 values, scale, u8 zero point)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        scale, zero = dynamic_qparams(x, 8, False, tuple(range(x.dim())))
        scale, zero = scale.reshape(()), zero.reshape(())
        return quantize(x.float(), scale, zero, 8, False).to(torch.uint8), scale, \
            zero.to(torch.uint8)

    @staticmethod
    def symbolic(g, x):
        return g.op("DynamicQuantizeLinear", x, outputs=3)


class Int8MatMulToFloat(torch.autograd.Function):
    """``(a_u8 - zero_point) @ b_s8 * a_scale * b_scale + bias`` in float32 (``b`` a
    ``[K, N]`` weight; ``a_scale`` one scale; ``b_scale`` per column)."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, a_scale: torch.Tensor,
                b_scale: torch.Tensor, bias: torch.Tensor | None, zero_point: torch.Tensor,
                split: bool) -> torch.Tensor:
        out = ((a.float() - zero_point.float()) @ b.float()) * a_scale * b_scale
        return out if bias is None else out + bias

    @staticmethod
    def symbolic(g, a, b, a_scale, b_scale, bias, zero_point, split: bool):
        none = symbolic_helper._optional_input_placeholder_tensor(g)
        bias = bias if not symbolic_helper._is_none(bias) else none
        columns = symbolic_helper._get_tensor_sizes(b)[-1]

        def product(operand, scale, zero, with_bias):
            node = g.op(f"{MS_DOMAIN}::MatMulIntegerToFloat", operand, b, scale, b_scale, zero,
                        none, with_bias)
            return _float_output(node, a, columns)

        if not split:
            return product(a, a_scale, zero_point, bias)
        high, high_zero, low, low_zero = _halves(g, a, zero_point)
        twice = g.op("Mul", a_scale, _const(g, torch.tensor(2.0)))
        return g.op("Add", product(high, twice, high_zero, bias),
                    product(low, a_scale, low_zero, none))


class Int8MatMul(torch.autograd.Function):
    """``(a_u8 - zero_point) @ b_s8`` as float32 integers (batched ``MatMulInteger``), for
    products whose scales are applied around it (attention, per-token GEMMs)."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, zero_point: torch.Tensor, split: bool
                ) -> torch.Tensor:
        return (a.double() - zero_point.double()).matmul(b.double()).float()

    @staticmethod
    def symbolic(g, a, b, zero_point, split: bool):
        return _integer_product(g, "MatMulInteger", a, b, zero_point, split)


class Int8Conv(torch.autograd.Function):
    """``conv2d(x_u8 - zero_point, w_s8)`` as float32 integers (``ConvInteger``; padding
    takes the zero point)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, zero_point: torch.Tensor,
                stride: tuple[int, ...], padding: tuple[int, ...], dilation: tuple[int, ...],
                split: bool) -> torch.Tensor:
        xs = x.double() - zero_point.double()
        return torch.nn.functional.conv2d(xs, w.double(), None, stride, padding, dilation).float()

    @staticmethod
    def symbolic(g, x, w, zero_point, stride, padding, dilation, split: bool):
        return _integer_product(g, "ConvInteger", x, w, zero_point, split,
                                strides_i=list(stride), pads_i=list(padding) * 2,
                                dilations_i=list(dilation))


class NBitsMatMul(torch.autograd.Function):
    """``x @ dequant(packed)ᵀ + bias`` with 4-bit block-quantized weights (``MatMulNBits``).

    ``packed`` is ``[N, blocks, block / 2]`` (two values per byte, the first in the low
    nibble), ``scales`` ``[N * blocks]``, ``zero_points`` ``[N * ceil(blocks / 2)]`` packed
    the same way; a weight is ``(u4 - zero_point) * scale``. ``int8``: int8 compute
    (``accuracy_level`` 4: each token's block of ``x`` on a symmetric 8-bit grid with a scale
    of its own, :func:`~mixprec.quant.fake.fake_quant_dynamic_groups`); otherwise float32
    compute (``accuracy_level`` 0).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, packed: torch.Tensor, scales: torch.Tensor,
                zero_points: torch.Tensor, bias: torch.Tensor | None, k: int, n: int,
                block: int, int8: bool) -> torch.Tensor:
        if int8:
            x = fake_quant_dynamic_groups(x, 8, True, block)
        out = x @ dequantize_nibbles(packed, scales, zero_points, k, n, block).t()
        return out if bias is None else out + bias

    @staticmethod
    def symbolic(g, x, packed, scales, zero_points, bias, k: int, n: int, block: int,
                 int8: bool):
        none = symbolic_helper._optional_input_placeholder_tensor(g)
        bias = bias if not symbolic_helper._is_none(bias) else none
        level = NBITS_INT8_ACCURACY_LEVEL if int8 else 0
        return _float_output(g.op(f"{MS_DOMAIN}::MatMulNBits", x, packed, scales, zero_points,
                                  none, bias, K_i=k, N_i=n, bits_i=4, block_size_i=block,
                                  accuracy_level_i=level), x, n)


def pack_nibbles(values: torch.Tensor) -> torch.Tensor:
    """Pairs of 4-bit values ``[..., 2m]`` (0..15) as bytes ``[..., m]``, first in the low
    nibble (an odd count is padded with 0)."""
    values = values.to(torch.uint8)
    if values.shape[-1] % 2:
        values = torch.nn.functional.pad(values, (0, 1))
    return values[..., 0::2] | (values[..., 1::2] << 4)


def unpack_nibbles(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_nibbles` (``[..., m]`` bytes -> ``[..., 2m]`` values)."""
    return torch.stack([packed & 15, packed >> 4], dim=-1).flatten(-2)


def dequantize_nibbles(packed: torch.Tensor, scales: torch.Tensor, zero_points: torch.Tensor,
                       k: int, n: int, block: int) -> torch.Tensor:
    """The ``[N, K]`` float32 weight of :class:`NBitsMatMul`'s operands."""
    blocks = packed.shape[1]
    values = unpack_nibbles(packed.reshape(n, -1)).float().reshape(n, blocks, block)
    zeros = unpack_nibbles(zero_points.reshape(n, -1))[:, :blocks].float()
    weight = (values - zeros[..., None]) * scales.reshape(n, blocks, 1)
    return weight.reshape(n, -1)[:, :k]
