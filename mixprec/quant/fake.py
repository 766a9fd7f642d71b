"""Fake-quantization arithmetic: integer grids, scales, quantize-dequantize."""

from __future__ import annotations

import torch

from mixprec.quant.spec import FLOAT_BITS, QuantSpec

_TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def qrange(bits: int, symmetric: bool) -> tuple[int, int]:
    """Integer grid for ``bits``.

    Symmetric grids use the restricted range ``[-(2^(b-1)-1), 2^(b-1)-1]`` (int8: +-127).
    """
    if symmetric:
        top = 2 ** (bits - 1) - 1
        return -top, top
    return 0, 2**bits - 1


def qparams_from_range(lo: torch.Tensor, hi: torch.Tensor, bits: int,
                       symmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point covering ``[lo, hi]`` (elementwise tensors) on a ``bits`` grid."""
    qmin, qmax = qrange(bits, symmetric)
    tiny = torch.finfo(torch.float32).tiny
    if symmetric:
        absmax = torch.maximum(lo.abs(), hi.abs())
        scale = (absmax / qmax).clamp_min(tiny)
        return scale, torch.zeros_like(scale)
    lo = lo.clamp_max(0.0)
    hi = hi.clamp_min(0.0)
    scale = ((hi - lo) / (qmax - qmin)).clamp_min(tiny)
    zero_point = (qmin - torch.round(lo / scale)).clamp(qmin, qmax)
    return scale, zero_point


def fake_quant(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, bits: int,
               symmetric: bool) -> torch.Tensor:
    """Quantize to the integer grid (round half to even, clamp) and dequantize."""
    qmin, qmax = qrange(bits, symmetric)
    q = torch.clamp(torch.round(x / scale) + zero_point, qmin, qmax)
    return (q - zero_point) * scale


def fake_quant_dynamic(x: torch.Tensor, bits: int, symmetric: bool, dim: int | tuple[int, ...]
                       ) -> torch.Tensor:
    """Fake-quantize with scales computed from ``x`` itself, one per slice reduced over ``dim``."""
    lo = x.amin(dim=dim, keepdim=True)
    hi = x.amax(dim=dim, keepdim=True)
    scale, zero_point = qparams_from_range(lo.float(), hi.float(), bits, symmetric)
    return fake_quant(x.float(), scale, zero_point, bits, symmetric).to(x.dtype)


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
    w = weight.detach().float().reshape(weight.shape[0], -1)
    sym = spec.weight_symmetric
    if spec.weight_granularity == "per_tensor":
        out = fake_quant_dynamic(w, spec.weight_bits, sym, dim=(0, 1))
    elif spec.weight_granularity == "per_channel":
        out = fake_quant_dynamic(w, spec.weight_bits, sym, dim=1)
    else:
        out = _quantize_groups(w, spec.weight_bits, sym, spec.group_size or 128)
    return out.reshape(weight.shape).to(weight.dtype)


def _quantize_groups(w: torch.Tensor, bits: int, symmetric: bool, group: int) -> torch.Tensor:
    rows, cols = w.shape
    pad = (-cols) % group
    padded = torch.nn.functional.pad(w, (0, pad)).reshape(rows, -1, group)
    if pad:
        # padding zeros must not widen the last group's range: repeat its first element
        padded[:, -1, group - pad:] = padded[:, -1, :1]
    out = fake_quant_dynamic(padded, bits, symmetric, dim=2)
    return out.reshape(rows, -1)[:, :cols]
