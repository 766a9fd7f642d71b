"""Activation quantization to int8: per-token dynamic (fused abs-max + quantize) and static.

Conventions (shared by every kernel in this package):

* symmetric, ``scale = absmax / qmax`` with ``qmax = 2**(bits - 1) - 1`` (127 for 8 bits,
  7 for 4 bits; 4-bit values live in int8 containers); a zero abs-max gives scale 1.0, so
  an all-zero token quantizes to zeros;
* ``q = clamp(round(x / scale), -qmax - 1, qmax)`` with IEEE division and round half to
  even, i.e. exactly ``torch.round`` (the reference is :func:`.reference.quantize_per_token_ref`).
"""

from __future__ import annotations

import logging

import torch
import triton
import triton.language as tl

from mixprec.kernels.triton._launch import (
    FLOAT_DTYPES,
    check_same_device,
    check_tensor,
    qmax_for_bits,
    scalar_scale,
)

logger = logging.getLogger(__name__)


@triton.jit
def round_half_even(x):
    """Round fp32 values with ``|x| < 2**22`` to integers, ties to even (as ``torch.round``)."""
    # Adding 1.5 * 2**23 leaves no fraction bits, so the FPU's round-to-nearest-even does it.
    return (x + 12582912.0) - 12582912.0


@triton.jit
def quantize_values(x, scale, qmax):
    """Symmetric fp32 -> integer levels (still fp32):
    ``clamp(round(x / scale), -qmax - 1, qmax)``."""
    y = tl.math.div_rn(x, scale)
    return round_half_even(tl.minimum(tl.maximum(y, -qmax - 1.0), qmax))


@triton.jit
def _quantize_rows_kernel(
    x_ptr, rows_ptr, q_ptr, s_ptr,
    M, K, split, qmax_hi, qmax_lo,
    stride_xm, stride_xk, stride_qm,
    HAS_ROWS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    """Per-token quantization of BLOCK_M rows: abs-max pass over K, then quantize pass.

    Output row ``r`` is input row ``rows[r]`` (or ``r``) quantized with ``qmax_hi`` when
    ``r < split`` and ``qmax_lo`` otherwise.
    """
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_m = offs_m < M
    if HAS_ROWS:
        src = tl.load(rows_ptr + offs_m, mask=mask_m, other=0).to(tl.int64)
    else:
        src = offs_m.to(tl.int64)
    x_rows = x_ptr + src[:, None] * stride_xm
    q_rows = q_ptr + offs_m.to(tl.int64)[:, None] * stride_qm
    offs_k = tl.arange(0, BLOCK_K)

    absmax = tl.zeros((BLOCK_M,), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        mask = mask_m[:, None] & (k0 + offs_k[None, :] < K)
        x = tl.load(x_rows + (k0 + offs_k[None, :]) * stride_xk, mask=mask, other=0.0)
        absmax = tl.maximum(absmax, tl.max(tl.abs(x.to(tl.float32)), axis=1))

    qmax = tl.where(offs_m < split, qmax_hi, qmax_lo).to(tl.float32)
    scale = tl.math.div_rn(absmax, qmax)
    scale = tl.where(scale == 0.0, 1.0, scale)
    tl.store(s_ptr + offs_m, scale, mask=mask_m)

    for k0 in range(0, K, BLOCK_K):
        mask = mask_m[:, None] & (k0 + offs_k[None, :] < K)
        x = tl.load(x_rows + (k0 + offs_k[None, :]) * stride_xk, mask=mask, other=0.0)
        q = quantize_values(x.to(tl.float32), scale[:, None], qmax[:, None])
        tl.store(q_rows + k0 + offs_k[None, :], q.to(tl.int8), mask=mask)


@triton.jit
def _quantize_static_kernel(x_ptr, q_ptr, scale_ptr, numel, qmax, BLOCK: tl.constexpr):
    """Per-tensor quantization of a contiguous tensor with a given scale."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    q = quantize_values(x, tl.load(scale_ptr).to(tl.float32), qmax)
    tl.store(q_ptr + offs, q.to(tl.int8), mask=mask)


def _row_blocks(k: int) -> tuple[int, int]:
    """(BLOCK_M, BLOCK_K) for a memory-bound row kernel: about 8K elements per program."""
    block_k = min(triton.next_power_of_2(max(k, 1)), 2048)
    return max(2, min(64, 8192 // block_k)), block_k


def quantize_rows(
    x: torch.Tensor,
    bits_hi: int = 8,
    *,
    rows: torch.Tensor | None = None,
    split: int | None = None,
    bits_lo: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch per-token quantization of a 2-D tensor, optionally gathering rows, two bit-widths.

    Args:
        x: Activations ``[M_in, K]`` (fp16, bf16 or fp32, any strides).
        bits_hi: Bit-width of output rows ``r < split`` (all rows when ``split`` is None).
        rows: Optional int32/int64 ``[M]`` source row of each output row (a gather).
        split: Number of leading output rows quantized at ``bits_hi``; the rest use ``bits_lo``.
        bits_lo: Bit-width of the rows from ``split`` on (required with ``split``).

    Returns:
        ``(q, scales)``: int8 ``[M, K]`` in output-row order and fp32 ``[M]`` scales.
    """
    check_tensor("x", x, dtypes=FLOAT_DTYPES, ndim=2)
    m_out, k = (x.shape[0], x.shape[1]) if rows is None else (rows.numel(), x.shape[1])
    if rows is not None:
        check_tensor("rows", rows, dtypes=(torch.int32, torch.int64), ndim=1)
        check_same_device(x=x, rows=rows)
    qmax_hi = qmax_for_bits(bits_hi, "bits_hi")
    if split is None:
        split, qmax_lo = m_out, qmax_hi
    else:
        if not 0 <= split <= m_out:
            raise ValueError(f"split must be in [0, {m_out}], got {split}")
        if bits_lo is None:
            raise ValueError("bits_lo is required when split is given")
        qmax_lo = qmax_for_bits(bits_lo, "bits_lo")
    q = torch.empty((m_out, k), dtype=torch.int8, device=x.device)
    scales = torch.empty((m_out,), dtype=torch.float32, device=x.device)
    if m_out == 0:
        return q, scales
    block_m, block_k = _row_blocks(k)
    logger.debug(
        "quantize rows: M=%d K=%d split=%d blocks=(%d, %d)", m_out, k, split, block_m, block_k
    )
    _quantize_rows_kernel[(triton.cdiv(m_out, block_m),)](
        x, rows, q, scales,
        m_out, k, split, qmax_hi, qmax_lo,
        x.stride(0), x.stride(1), q.stride(0),
        HAS_ROWS=rows is not None, BLOCK_M=block_m, BLOCK_K=block_k,
    )  # fmt: skip
    return q, scales


def quantize_per_token(x: torch.Tensor, bits: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic per-token symmetric quantization (one scale per row of the last dim).

    Args:
        x: Activations ``[..., K]`` (fp16, bf16 or fp32).
        bits: Bit-width in [2, 8]; values are stored in int8.

    Returns:
        ``(q, scales)``: int8 of ``x``'s shape and fp32 scales of shape ``x.shape[:-1]``;
        ``x ≈ q * scales[..., None]``.
    """
    check_tensor("x", x, dtypes=FLOAT_DTYPES)
    if x.dim() == 0:
        raise ValueError("x must have at least 1 dimension")
    qmax_for_bits(bits)  # reject a bad `bits` under its own name
    q, scales = quantize_rows(x.reshape(-1, x.shape[-1]), bits)
    return q.reshape(x.shape), scales.reshape(x.shape[:-1])


def quantize_per_tensor(
    x: torch.Tensor, scale: torch.Tensor | float, bits: int = 8
) -> torch.Tensor:
    """Static per-tensor symmetric quantization with a calibrated scale.

    Args:
        x: Activations of any shape (fp16, bf16 or fp32).
        scale: Positive scale, a float or a one-element tensor (kept on device: no sync).
        bits: Bit-width in [2, 8]; values are stored in int8.

    Returns:
        int8 tensor of ``x``'s shape: ``clamp(round(x / scale), -qmax - 1, qmax)``.
    """
    check_tensor("x", x, dtypes=FLOAT_DTYPES)
    qmax = qmax_for_bits(bits)
    scale = scalar_scale("scale", scale, x.device)
    xc = x.contiguous()
    q = torch.empty(x.shape, dtype=torch.int8, device=x.device)
    block = 1024
    if xc.numel():
        _quantize_static_kernel[(triton.cdiv(xc.numel(), block),)](
            xc, q, scale, xc.numel(), qmax, BLOCK=block
        )
    return q
