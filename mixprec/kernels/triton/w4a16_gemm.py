"""W4A16 GEMM: fp16/bf16 activations times int4 weights dequantized in registers.

Weight layout (see :func:`.reference.pack_int4` / :func:`.reference.quantize_weight_int4`):

* ``w_packed``: uint8 ``[N, K // 2]``; byte ``j`` of row ``n`` holds ``w[n, 2j]`` in its
  low nibble and ``w[n, 2j + 1]`` in its high nibble, two's complement int4 in [-8, 7];
* ``scales``: ``[N, K // group_size]`` (fp16, bf16 or fp32), symmetric, no zero point:
  ``w[n, k] = int4[n, k] * scales[n, k // group_size]``; group_size in {32, 64, 128}.

Each tile dequantizes ``w`` to fp32, rounds it to the activation dtype and runs a tensor-core
dot with fp32 accumulation; bias is added in fp32. Reference: :func:`.reference.w4a16_gemm_ref`.
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
    check_vector,
    gemm_configs,
)
from mixprec.kernels.triton.int8_gemm import tile_ids

logger = logging.getLogger(__name__)

GROUP_SIZES = (32, 64, 128)


@triton.jit
def _w4a16_kernel(
    x_ptr, w_ptr, s_ptr, bias_ptr, out_ptr,
    M, N, K,
    stride_xm, stride_xk, stride_wn, stride_wk, stride_sn, stride_sg, stride_om, stride_on,
    GROUP: tl.constexpr, HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):  # fmt: skip
    """One output tile; BLOCK_K is a multiple of GROUP and K a multiple of GROUP."""
    offs_m, offs_n = tile_ids(M, N, BLOCK_M, BLOCK_N, GROUP_M)
    rows = (offs_m % M).to(tl.int64)
    cols = (offs_n % N).to(tl.int64)
    offs_k = tl.arange(0, BLOCK_K)
    offs_kp = tl.arange(0, BLOCK_K // 2)
    offs_g = tl.arange(0, BLOCK_K // GROUP)
    x_ptrs = x_ptr + rows[:, None] * stride_xm + offs_k[None, :] * stride_xk
    w_ptrs = w_ptr + cols[:, None] * stride_wn + offs_kp[None, :] * stride_wk
    s_ptrs = s_ptr + cols[:, None] * stride_sn + offs_g[None, :] * stride_sg
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        x = tl.load(x_ptrs, mask=offs_k[None, :] < K - k0, other=0.0)
        packed = tl.load(w_ptrs, mask=offs_kp[None, :] < (K - k0) // 2, other=0).to(tl.int32)
        lo = ((packed & 0xF) ^ 8) - 8
        hi = ((packed >> 4) ^ 8) - 8
        q = tl.reshape(tl.join(lo, hi), (BLOCK_N, BLOCK_K // GROUP, GROUP)).to(tl.float32)
        s = tl.load(s_ptrs, mask=offs_g[None, :] < (K - k0) // GROUP, other=0.0).to(tl.float32)
        w = tl.reshape(q * s[:, :, None], (BLOCK_N, BLOCK_K)).to(x.dtype)
        acc = tl.dot(x, tl.trans(w), acc)
        x_ptrs += BLOCK_K * stride_xk
        w_ptrs += (BLOCK_K // 2) * stride_wk
        s_ptrs += (BLOCK_K // GROUP) * stride_sg
    if HAS_BIAS:
        acc += tl.load(bias_ptr + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)[None, :]
    out_ptrs = out_ptr + offs_m.to(tl.int64)[:, None] * stride_om + offs_n[None, :] * stride_on
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask=mask)


# BLOCK_K is always a multiple of 128, hence of every supported group size.
W4A16_CONFIGS = gemm_configs(
    [
        (16, 64, 128, 4, 4),
        (16, 128, 128, 4, 3),
        (32, 64, 128, 4, 4),
        (64, 64, 128, 4, 3),
        (64, 128, 128, 4, 3),
        (128, 128, 128, 8, 3),
        (128, 256, 128, 8, 3),
        (64, 128, 256, 8, 3),
    ],
    interpreter=(16, 32, 128, 2),
)

_w4a16_tuned = triton.autotune(configs=W4A16_CONFIGS, key=["M", "N", "K", "GROUP"])(_w4a16_kernel)


def check_int4_operands(x: torch.Tensor, w_packed: torch.Tensor, scales: torch.Tensor,
                        group_size: int, bias: torch.Tensor | None) -> torch.Tensor | None:
    """Refuse operands of a packed-int4 GEMM that do not fit together (see the module
    docstring); return the bias as an ``[N]`` vector (or None)."""
    check_tensor("x", x, dtypes=FLOAT_DTYPES)
    check_tensor("w_packed", w_packed, dtypes=(torch.uint8,), ndim=2)
    check_tensor("scales", scales, dtypes=FLOAT_DTYPES, ndim=2)
    if group_size not in GROUP_SIZES:
        raise ValueError(f"group_size must be one of {GROUP_SIZES}, got {group_size}")
    k, n = x.shape[-1], w_packed.shape[0]
    if k % group_size:
        raise ValueError(f"K={k} (last dim of x) must be a multiple of group_size={group_size}")
    if w_packed.shape[1] * 2 != k:
        raise ValueError(f"w_packed must be [N, K // 2] = [{n}, {k // 2}] for x of K={k}, "
                         f"got {tuple(w_packed.shape)}")
    if tuple(scales.shape) != (n, k // group_size):
        raise ValueError(f"scales must be [N, K // group_size] = [{n}, {k // group_size}], "
                         f"got {tuple(scales.shape)}")
    if bias is not None:
        check_tensor("bias", bias, dtypes=FLOAT_DTYPES)
        bias = check_vector("bias", bias, (n,))
    check_same_device(x=x, w_packed=w_packed, scales=scales, bias=bias)
    return bias


def launch_int4_gemm(kernel, x2: torch.Tensor, row_args: tuple, w_packed: torch.Tensor,
                     scales: torch.Tensor, group_size: int, bias: torch.Tensor | None,
                     dtype: torch.dtype) -> torch.Tensor:
    """Run a packed-int4 GEMM ``kernel`` (autotuned over BLOCK_M / BLOCK_N) on the rows
    ``x2 [M, K]``; ``row_args`` are its arguments between ``x`` and the weights (per-row
    scales). Returns ``[M, N]`` in ``dtype``."""
    (m, k), n = x2.shape, w_packed.shape[0]
    out = torch.empty((m, n), dtype=dtype, device=x2.device)
    if m and n:
        logger.debug("int4 gemm (%d row args): M=%d N=%d K=%d group=%d", len(row_args), m, n,
                     k, group_size)

        def grid(meta: dict) -> tuple[int]:
            return (triton.cdiv(m, meta["BLOCK_M"]) * triton.cdiv(n, meta["BLOCK_N"]),)

        kernel[grid](
            x2, *row_args, w_packed, scales, bias, out,
            m, n, k,
            x2.stride(0), x2.stride(1), w_packed.stride(0), w_packed.stride(1),
            scales.stride(0), scales.stride(1), out.stride(0), out.stride(1),
            GROUP=group_size, HAS_BIAS=bias is not None,
        )  # fmt: skip
    return out


def w4a16_gemm(
    x: torch.Tensor,
    w_packed: torch.Tensor,
    scales: torch.Tensor,
    group_size: int,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """``x @ w.T (+ bias)`` with group-wise int4 weights packed two per byte along K.

    Args:
        x: Activations ``[..., K]``, fp16 or bf16 (fp32 also runs; its dot may use TF32).
        w_packed: uint8 ``[N, K // 2]`` (low nibble = even k), see the module docstring.
        scales: ``[N, K // group_size]`` float scales.
        group_size: 32, 64 or 128; must divide K.
        bias: Optional ``[N]``.

    Returns:
        ``[..., N]`` in ``x.dtype``.
    """
    bias = check_int4_operands(x, w_packed, scales, group_size, bias)
    out = launch_int4_gemm(_w4a16_tuned, x.reshape(-1, x.shape[-1]), (), w_packed, scales,
                           group_size, bias, x.dtype)
    return out.reshape(*x.shape[:-1], w_packed.shape[0])
