"""Patch-wise W8A8/A4 linear: token rows in two precision groups, one GEMM launch.

The rows (tokens) of ``x [M, K]`` are split by importance (see
:func:`.reference.patchwise_rows`): ``perm[:split]`` are quantized per token at ``bits_hi``
(e.g. 8), ``perm[split:]`` at ``bits_lo`` (e.g. 4, values in [-7, 7] kept in int8
containers). The quantize kernel gathers the rows in ``perm`` order, so every row block of
the GEMM is (except the one straddling ``split``) of a single group; the GEMM kernel carries
per-row scales, multiplies against int8 weights ``[N, K]`` with int32 accumulation, applies
``((acc * row_scale) * w_scale) + bias`` in fp32 and scatters each output row back to its
original position ``perm[r]`` — both groups in one launch.
Reference: :func:`.reference.patchwise_linear_ref`.
"""

from __future__ import annotations

import logging

import torch
import triton
import triton.language as tl

from mixprec.kernels.triton._launch import FLOAT_DTYPES, check_same_device, check_tensor
from mixprec.kernels.triton.int8_gemm import (
    GEMM_CONFIGS,
    check_epilogue,
    check_int8_operands,
    dequant_tile,
    int8_dot_tile,
    tile_ids,
)
from mixprec.kernels.triton.quantize import quantize_rows

logger = logging.getLogger(__name__)


@triton.jit
def _patchwise_gemm_kernel(
    x_ptr, w_ptr, out_ptr, a_scale_ptr, w_scale_ptr, bias_ptr, perm_ptr,
    M, N, K,
    stride_xm, stride_xk, stride_wn, stride_wk, stride_om, stride_on,
    W_PER_CHANNEL: tl.constexpr, HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):  # fmt: skip
    """One tile of permuted rows; output row r is written to row ``perm[r]``."""
    offs_m, offs_n = tile_ids(M, N, BLOCK_M, BLOCK_N, GROUP_M)
    acc = int8_dot_tile(
        x_ptr, w_ptr, offs_m, offs_n, M, N, K,
        stride_xm, stride_xk, stride_wn, stride_wk, BLOCK_M, BLOCK_N, BLOCK_K,
    )  # fmt: skip
    y = dequant_tile(
        acc, offs_m, offs_n, M, N, a_scale_ptr, w_scale_ptr, bias_ptr,
        True, W_PER_CHANNEL, HAS_BIAS,
    )  # fmt: skip
    dst = tl.load(perm_ptr + offs_m, mask=offs_m < M, other=0).to(tl.int64)
    out_ptrs = out_ptr + dst[:, None] * stride_om + offs_n[None, :] * stride_on
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    tl.store(out_ptrs, y.to(out_ptr.dtype.element_ty), mask=mask)


_patchwise_tuned = triton.autotune(configs=GEMM_CONFIGS, key=["M", "N", "K"])(
    _patchwise_gemm_kernel
)


def patchwise_linear(
    x: torch.Tensor,
    w: torch.Tensor,
    w_scale: torch.Tensor,
    bias: torch.Tensor | None,
    perm: torch.Tensor,
    split: int,
    bits_hi: int = 8,
    bits_lo: int = 4,
) -> torch.Tensor:
    """Linear whose token rows are dynamically quantized at two bit-widths.

    Args:
        x: Float activations ``[..., K]`` (fp16, bf16 or fp32), ``M`` rows once flattened.
        w: int8 weights ``[N, K]``.
        w_scale: Weight scales ``[N]`` (or 1 element).
        bias: Optional ``[N]``.
        perm: int32/int64 ``[M]``, a permutation of the rows (not checked: that would sync);
            ``perm[:split]`` are the high-precision rows.
        split: Number of rows at ``bits_hi``.
        bits_hi: Bit-width of the important rows (2..8).
        bits_lo: Bit-width of the other rows (2..8).

    Returns:
        ``[..., N]`` in ``x.dtype``, rows in their original order.
    """
    check_tensor("x", x, dtypes=FLOAT_DTYPES)
    x2 = x.reshape(-1, x.shape[-1])
    check_tensor("perm", perm, dtypes=(torch.int32, torch.int64), ndim=1)
    if perm.numel() != x2.shape[0]:
        raise ValueError(
            f"perm must have one entry per row of x ({x2.shape[0]}), got {perm.numel()}"
        )
    xq, xs = quantize_rows(x2, bits_hi, rows=perm, split=split, bits_lo=bits_lo)
    m, n, k = check_int8_operands(xq, w)
    _, w_scale, bias = check_epilogue(m, n, xs, w_scale, bias)
    check_same_device(x=x, w_scale=w_scale)
    out = torch.empty((m, n), dtype=x.dtype, device=x.device)
    if m and n:
        logger.debug("patchwise gemm: M=%d (split %d) N=%d K=%d", m, split, n, k)

        def grid(meta: dict) -> tuple[int]:
            return (triton.cdiv(m, meta["BLOCK_M"]) * triton.cdiv(n, meta["BLOCK_N"]),)

        _patchwise_tuned[grid](
            xq, w, out, xs, w_scale, bias, perm,
            m, n, k,
            xq.stride(0), xq.stride(1), w.stride(0), w.stride(1), out.stride(0), out.stride(1),
            W_PER_CHANNEL=w_scale.numel() == n and n > 1, HAS_BIAS=bias is not None,
        )  # fmt: skip
    return out.reshape(*x.shape[:-1], n)
