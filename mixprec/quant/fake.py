"""Fake-quantization arithmetic: integer grids, scales, quantize-dequantize."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mixprec.quant.spec import FLOAT_BITS, QuantSpec

_TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def qrange(bits: int, symmetric: bool) -> tuple[int, int]:
    """Integer grid for ``bits``: ``[-2^(b-1), 2^(b-1)-1]`` (int8: -128..127) when symmetric,
    ``[0, 2^b - 1]`` when affine.

    Symmetric scales map the absolute maximum to ``2^(b-1)-1`` (:func:`symmetric_qmax`), so
    values inside the observed range never reach ``-2^(b-1)``; only values beyond a static
    range do, and they clamp there, as QuantizeLinear and oneDNN's requantization saturate.
    """
    if symmetric:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def symmetric_qmax(bits: int) -> int:
    """The grid level a symmetric scale maps the absolute maximum to (int8: 127)."""
    return 2 ** (bits - 1) - 1


def qparams_from_range(lo: torch.Tensor, hi: torch.Tensor, bits: int,
                       symmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point covering ``[lo, hi]`` (elementwise tensors) on a ``bits`` grid."""
    qmin, qmax = qrange(bits, symmetric)
    tiny = torch.finfo(torch.float32).tiny
    if symmetric:
        absmax = torch.maximum(lo.abs(), hi.abs())
        scale = (absmax / symmetric_qmax(bits)).clamp_min(tiny)
        return scale, torch.zeros_like(scale)
    lo = lo.clamp_max(0.0)
    hi = hi.clamp_min(0.0)
    scale = ((hi - lo) / (qmax - qmin)).clamp_min(tiny)
    zero_point = (qmin - torch.round(lo / scale)).clamp(qmin, qmax)
    return scale, zero_point


def quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, bits: int,
             symmetric: bool) -> torch.Tensor:
    """Integer grid values of ``x`` (round half to even, clamp), still in ``x``'s float dtype."""
    qmin, qmax = qrange(bits, symmetric)
    return torch.clamp(torch.round(x / scale) + zero_point, qmin, qmax)


def fake_quant(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, bits: int,
               symmetric: bool) -> torch.Tensor:
    """Quantize to the integer grid (round half to even, clamp) and dequantize."""
    return (quantize(x, scale, zero_point, bits, symmetric) - zero_point) * scale


def dynamic_qparams(x: torch.Tensor, bits: int, symmetric: bool, dim: int | tuple[int, ...]
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point from ``x`` itself, one per slice reduced over ``dim`` (kept)."""
    lo = x.amin(dim=dim, keepdim=True)
    hi = x.amax(dim=dim, keepdim=True)
    return qparams_from_range(lo.float(), hi.float(), bits, symmetric)


def fake_quant_dynamic(x: torch.Tensor, bits: int, symmetric: bool, dim: int | tuple[int, ...]
                       ) -> torch.Tensor:
    """Fake-quantize with scales computed from ``x`` itself, one per slice reduced over ``dim``."""
    scale, zero_point = dynamic_qparams(x, bits, symmetric, dim)
    return fake_quant(x.float(), scale, zero_point, bits, symmetric).to(x.dtype)


def fake_quant_dynamic_groups(x: torch.Tensor, bits: int, symmetric: bool, group: int
                              ) -> torch.Tensor:
    """Fake-quantize with one scale per ``group`` consecutive elements of the last dim (the
    last group may be shorter), computed from ``x`` itself."""
    k = x.shape[-1]
    pad = (-k) % group
    grouped = torch.nn.functional.pad(x, (0, pad)).reshape(*x.shape[:-1], -1, group)
    out = fake_quant_dynamic(grouped, bits, symmetric, -1)
    return out.reshape(*x.shape[:-1], k + pad)[..., :k]


def round_to_dtype(x: torch.Tensor, float_dtype: str) -> torch.Tensor:
    """Round ``x`` through ``float_dtype`` (identity for float32)."""
    dtype = _TORCH_DTYPES[float_dtype]
    return x if dtype == x.dtype else x.to(dtype).to(x.dtype)


def quantize_weight(weight: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """Fake-quantized copy of a GEMM weight (``[out, in, ...]``) as the spec says.

    Per-channel scales are per output channel; per-group scales cover ``group_size``
    consecutive input elements (the last group may be shorter).
    """
    if spec.weight_bits >= FLOAT_BITS:
        return round_to_dtype(weight.detach(), spec.float_dtype).clone()
    return integer_weight(weight, spec).dequantize().reshape(weight.shape).to(weight.dtype)


def expand_groups(per_group: torch.Tensor, group_size: int, cols: int) -> torch.Tensor:
    """A per-group ``[out, groups]`` tensor repeated to ``[out, cols]`` (``group_size``
    inputs per group; the last group may be shorter)."""
    return per_group.repeat_interleave(group_size, dim=1)[:, :cols]


@dataclass(frozen=True)
class IntegerWeight:
    """A GEMM weight on its integer grid: ``w ~ (q - zero_point) * scale`` per group.

    Attributes:
        q: integer values ``[out, in]`` (float dtype), ``in`` = the weight's flattened inputs.
        scale: ``[out, groups]`` scales; one group spans ``group_size`` inputs (the last
            may be shorter); per-channel and per-tensor weights have one group.
        zero_point: ``[out, groups]`` zero points (0 when symmetric).
        group_size: inputs per group.
        bits: bit-width of the grid.
    """

    q: torch.Tensor
    scale: torch.Tensor
    zero_point: torch.Tensor
    group_size: int
    bits: int

    def expand(self, t: torch.Tensor) -> torch.Tensor:
        """A per-group ``[out, groups]`` tensor repeated to ``[out, in]``."""
        return expand_groups(t, self.group_size, self.q.shape[1])

    def dequantize(self) -> torch.Tensor:
        """The fake-quantized weight ``[out, in]`` in float32."""
        return (self.q - self.expand(self.zero_point)) * self.expand(self.scale)


def integer_weight(weight: torch.Tensor, spec: QuantSpec) -> IntegerWeight:
    """Quantize a GEMM weight (``[out, in, ...]``, ``spec.weight_bits`` < 16) to its grid."""
    if spec.weight_bits >= FLOAT_BITS:
        raise ValueError(f"spec {spec.label} keeps weights in float")
    if spec.weight_format != "uniform":
        raise ValueError(f"spec {spec.label}: {spec.weight_format} weights are not on an "
                         "integer grid (mixprec.quant.nupes)")
    w = weight.detach().float().reshape(weight.shape[0], -1)
    bits, sym = spec.weight_bits, spec.weight_symmetric
    rows, cols = w.shape
    if spec.weight_granularity != "per_group":
        dim = (0, 1) if spec.weight_granularity == "per_tensor" else 1
        scale, zero_point = dynamic_qparams(w, bits, sym, dim)
        scale, zero_point = scale.expand(rows, 1), zero_point.expand(rows, 1)
        return IntegerWeight(quantize(w, scale, zero_point, bits, sym), scale.contiguous(),
                             zero_point.contiguous(), cols, bits)
    group = spec.group_size or 128
    pad = (-cols) % group
    padded = torch.nn.functional.pad(w, (0, pad)).reshape(rows, -1, group)
    if pad:
        # padding zeros must not widen the last group's range: repeat its first element
        padded[:, -1, group - pad:] = padded[:, -1, :1]
    scale, zero_point = dynamic_qparams(padded, bits, sym, dim=2)
    q = quantize(padded, scale, zero_point, bits, sym).reshape(rows, -1)[:, :cols]
    return IntegerWeight(q, scale.squeeze(2), zero_point.squeeze(2), group, bits)
