"""W4A8 GEMM: int8 activations with per-token scales times int4 group weights unpacked to
int8 in registers.

Weights are laid out as for :mod:`.w4a16_gemm` (``w_packed`` uint8 ``[N, K // 2]``, two's
complement nibbles, low nibble = even k; ``scales`` ``[N, K // group_size]``). Each weight
group is one exact int32 tensor-core dot (int8 x int8), scaled in fp32 by its weights' group
scale and summed over groups; the epilogue multiplies by the token's activation scale and
adds the bias. Reference: :func:`.reference.w4a8_gemm_ref`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mixprec.kernels.triton._launch import INTERPRET
from mixprec.kernels.triton.int8_gemm import tile_ids
from mixprec.kernels.triton.quantize import quantize_per_token
from mixprec.kernels.triton.w4a16_gemm import check_int4_operands, launch_int4_gemm


@triton.jit
def _w4a8_kernel(
    x_ptr, xs_ptr, w_ptr, s_ptr, bias_ptr, out_ptr,
    M, N, K,
    stride_xm, stride_xk, stride_wn, stride_wk, stride_sn, stride_sg, stride_om, stride_on,
    GROUP: tl.constexpr, HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr,
):  # fmt: skip
    """One output tile; K is a multiple of GROUP, each step of the K loop one group."""
    offs_m, offs_n = tile_ids(M, N, BLOCK_M, BLOCK_N, GROUP_M)
    rows = (offs_m % M).to(tl.int64)
    cols = (offs_n % N).to(tl.int64)
    offs_k = tl.arange(0, GROUP)
    offs_kp = tl.arange(0, GROUP // 2)
    x_ptrs = x_ptr + rows[:, None] * stride_xm + offs_k[None, :] * stride_xk
    w_ptrs = w_ptr + cols[:, None] * stride_wn + offs_kp[None, :] * stride_wk
    s_ptrs = s_ptr + cols * stride_sn
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for _ in range(0, K, GROUP):
        x = tl.load(x_ptrs)
        packed = tl.load(w_ptrs).to(tl.int32)
        lo = ((packed & 0xF) ^ 8) - 8
        hi = ((packed >> 4) ^ 8) - 8
        w = tl.reshape(tl.join(lo, hi), (BLOCK_N, GROUP)).to(tl.int8)
        part = tl.dot(x, tl.trans(w), out_dtype=tl.int32)
        acc += part.to(tl.float32) * tl.load(s_ptrs).to(tl.float32)[None, :]
        x_ptrs += GROUP * stride_xk
        w_ptrs += (GROUP // 2) * stride_wk
        s_ptrs += stride_sg
    acc = acc * tl.load(xs_ptr + rows).to(tl.float32)[:, None]
    if HAS_BIAS:
        acc += tl.load(bias_ptr + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)[None, :]
    out_ptrs = out_ptr + offs_m.to(tl.int64)[:, None] * stride_om + offs_n[None, :] * stride_on
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask=mask)


W4A8_CONFIGS = (
    [triton.Config({"BLOCK_M": 16, "BLOCK_N": 32, "GROUP_M": 2})] if INTERPRET else
    [triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "GROUP_M": 8}, num_warps=w, num_stages=st)
     for bm, bn, w, st in ((16, 64, 4, 4), (32, 64, 4, 4), (64, 64, 4, 3), (64, 128, 4, 3),
                           (128, 128, 8, 3), (128, 256, 8, 3))]
)
"""Tiles tuned over on a GPU (the K step is the weight group); one small tile in the
interpreter."""

_w4a8_tuned = triton.autotune(configs=W4A8_CONFIGS, key=["M", "N", "K", "GROUP"])(_w4a8_kernel)


def w4a8_linear(
    x: torch.Tensor,
    w_packed: torch.Tensor,
    scales: torch.Tensor,
    group_size: int,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """``quant(x) @ w.T (+ bias)``: ``x`` quantized to int8 per token (dynamic, symmetric),
    group-wise int4 weights packed two per byte along K.

    Args:
        x: Float activations ``[..., K]`` (fp16, bf16 or fp32).
        w_packed: uint8 ``[N, K // 2]`` (low nibble = even k).
        scales: ``[N, K // group_size]`` float weight scales.
        group_size: 32, 64 or 128; must divide K.
        bias: Optional ``[N]``.

    Returns:
        ``[..., N]`` in ``x.dtype``.
    """
    bias = check_int4_operands(x, w_packed, scales, group_size, bias)
    xq, xs = quantize_per_token(x.reshape(-1, x.shape[-1]))
    out = launch_int4_gemm(_w4a8_tuned, xq, (xs,), w_packed, scales, group_size, bias, x.dtype)
    return out.reshape(*x.shape[:-1], w_packed.shape[0])
