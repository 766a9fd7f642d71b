"""INT8 x INT8 -> INT32 GEMM with a fused dequant / bias / requant epilogue, and W8A8 linears.

``x`` is ``[M, K]`` int8 (activations), ``w`` is ``[N, K]`` int8 stored like
``nn.Linear.weight``; the kernel computes ``acc = x @ w.T`` exactly in int32, then either
stores ``acc`` or ``y = ((acc * a_scale) * w_scale) + bias`` in fp32 with ``a_scale``
per token ``[M]`` or per tensor, ``w_scale`` per channel ``[N]`` or per tensor, cast to the
output float dtype or requantized to int8 with a given static output scale.
Reference: :func:`.reference.int8_gemm_ref`.
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
    scalar_scale,
)
from mixprec.kernels.triton.quantize import quantize_per_tensor, quantize_per_token, quantize_values

logger = logging.getLogger(__name__)


@triton.jit
def tile_ids(M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
    """Map the program id to a (row, col) tile, GROUP_M row tiles at a time (L2 reuse)."""
    pid = tl.program_id(0)
    tiles_m = tl.cdiv(M, BLOCK_M)
    tiles_n = tl.cdiv(N, BLOCK_N)
    per_group = GROUP_M * tiles_n
    first_m = (pid // per_group) * GROUP_M
    rows_in_group = tl.minimum(tiles_m - first_m, GROUP_M)
    pid_m = first_m + (pid % per_group) % rows_in_group
    pid_n = (pid % per_group) // rows_in_group
    return pid_m * BLOCK_M + tl.arange(0, BLOCK_M), pid_n * BLOCK_N + tl.arange(0, BLOCK_N)


@triton.jit
def int8_dot_tile(
    x_ptr, w_ptr, offs_m, offs_n, M, N, K,
    stride_xm, stride_xk, stride_wn, stride_wk,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    """int32 tile of ``x[offs_m] @ w[offs_n].T`` (rows past M / N read clamped, K masked)."""
    offs_k = tl.arange(0, BLOCK_K)
    rows = (offs_m % M).to(tl.int64)
    cols = (offs_n % N).to(tl.int64)
    x_ptrs = x_ptr + rows[:, None] * stride_xm + offs_k[None, :] * stride_xk
    w_ptrs = w_ptr + cols[None, :] * stride_wn + offs_k[:, None] * stride_wk
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    for k0 in range(0, K, BLOCK_K):
        x = tl.load(x_ptrs, mask=offs_k[None, :] < K - k0, other=0)
        w = tl.load(w_ptrs, mask=offs_k[:, None] < K - k0, other=0)
        acc = tl.dot(x, w, acc, out_dtype=tl.int32)
        x_ptrs += BLOCK_K * stride_xk
        w_ptrs += BLOCK_K * stride_wk
    return acc


@triton.jit
def dequant_tile(
    acc, offs_m, offs_n, M, N, a_scale_ptr, w_scale_ptr, bias_ptr,
    A_PER_TOKEN: tl.constexpr, W_PER_CHANNEL: tl.constexpr, HAS_BIAS: tl.constexpr,
):  # fmt: skip
    """fp32 ``((acc * a_scale) * w_scale) + bias`` for one tile."""
    y = acc.to(tl.float32)
    if A_PER_TOKEN:
        y = y * tl.load(a_scale_ptr + offs_m, mask=offs_m < M, other=0.0).to(tl.float32)[:, None]
    else:
        y = y * tl.load(a_scale_ptr).to(tl.float32)
    if W_PER_CHANNEL:
        y = y * tl.load(w_scale_ptr + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)[None, :]
    else:
        y = y * tl.load(w_scale_ptr).to(tl.float32)
    if HAS_BIAS:
        y = y + tl.load(bias_ptr + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)[None, :]
    return y


@triton.jit
def _int8_gemm_kernel(
    x_ptr, w_ptr, out_ptr, a_scale_ptr, w_scale_ptr, bias_ptr, out_scale_ptr,
    M, N, K,
    stride_xm, stride_xk, stride_wn, stride_wk, stride_om, stride_on,
    DEQUANT: tl.constexpr, A_PER_TOKEN: tl.constexpr, W_PER_CHANNEL: tl.constexpr,
    HAS_BIAS: tl.constexpr, REQUANT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):  # fmt: skip
    """One output tile: int32 accumulate, then store int32, float or requantized int8."""
    offs_m, offs_n = tile_ids(M, N, BLOCK_M, BLOCK_N, GROUP_M)
    acc = int8_dot_tile(
        x_ptr, w_ptr, offs_m, offs_n, M, N, K,
        stride_xm, stride_xk, stride_wn, stride_wk, BLOCK_M, BLOCK_N, BLOCK_K,
    )  # fmt: skip
    out_ptrs = out_ptr + offs_m.to(tl.int64)[:, None] * stride_om + offs_n[None, :] * stride_on
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    if DEQUANT:
        y = dequant_tile(
            acc, offs_m, offs_n, M, N, a_scale_ptr, w_scale_ptr, bias_ptr,
            A_PER_TOKEN, W_PER_CHANNEL, HAS_BIAS,
        )  # fmt: skip
        if REQUANT:
            y = quantize_values(y, tl.load(out_scale_ptr).to(tl.float32), 127.0)
        tl.store(out_ptrs, y.to(out_ptr.dtype.element_ty), mask=mask)
    else:
        tl.store(out_ptrs, acc, mask=mask)


GEMM_CONFIGS = gemm_configs(
    [
        (128, 256, 64, 8, 3),
        (256, 128, 64, 8, 3),
        (128, 128, 64, 4, 4),
        (128, 128, 128, 8, 3),
        (64, 128, 64, 4, 4),
        (128, 64, 64, 4, 4),
        (64, 64, 128, 4, 3),
        (32, 64, 128, 4, 3),
        (16, 64, 128, 4, 4),
    ],
    interpreter=(16, 32, 32, 2),
)


_int8_gemm_tuned = triton.autotune(configs=GEMM_CONFIGS, key=["M", "N", "K"])(_int8_gemm_kernel)


def check_int8_operands(x: torch.Tensor, w: torch.Tensor) -> tuple[int, int, int]:
    """Check the int8 ``x [M, K]`` and ``w [N, K]`` of a GEMM; return ``(M, N, K)``."""
    check_tensor("x", x, dtypes=(torch.int8,), ndim=2)
    check_tensor("w", w, dtypes=(torch.int8,), ndim=2)
    check_same_device(x=x, w=w)
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"x and w must share K: x is {tuple(x.shape)}, w is {tuple(w.shape)}")
    return x.shape[0], w.shape[0], x.shape[1]


def check_epilogue(
    m: int, n: int, a_scale: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Check dequant scales (``a_scale``: 1 or M, ``w_scale``: 1 or N) and bias (N); flatten."""
    check_tensor("a_scale", a_scale, dtypes=FLOAT_DTYPES)
    check_tensor("w_scale", w_scale, dtypes=FLOAT_DTYPES)
    a_scale = check_vector("a_scale", a_scale, (1, m))
    w_scale = check_vector("w_scale", w_scale, (1, n))
    if bias is not None:
        check_tensor("bias", bias, dtypes=FLOAT_DTYPES)
        bias = check_vector("bias", bias, (n,))
    check_same_device(a_scale=a_scale, w_scale=w_scale, bias=bias)
    return a_scale, w_scale, bias


def int8_gemm(
    x: torch.Tensor,
    w: torch.Tensor,
    a_scale: torch.Tensor | None = None,
    w_scale: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    out_dtype: torch.dtype = torch.float16,
    out_scale: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """``x @ w.T`` of int8 operands with an optional fused dequant epilogue.

    Args:
        x: int8 activations ``[M, K]``.
        w: int8 weights ``[N, K]``.
        a_scale: Activation scales, per token ``[M]`` or per tensor (1 element). Without
            ``a_scale`` and ``w_scale`` the raw int32 accumulator is returned.
        w_scale: Weight scales, per channel ``[N]`` or per tensor (1 element).
        bias: Optional ``[N]`` bias added after dequantization.
        out_dtype: fp16, bf16 or fp32 output when not requantizing.
        out_scale: Static output scale; when given the output is int8
            ``clamp(round(y / out_scale), -128, 127)``.

    Returns:
        ``[M, N]`` int32 accumulator, float ``y`` in ``out_dtype``, or int8 requantized ``y``.
    """
    m, n, k = check_int8_operands(x, w)
    dequant = a_scale is not None or w_scale is not None
    if dequant and (a_scale is None or w_scale is None):
        raise ValueError("a_scale and w_scale must be given together")
    if not dequant and (bias is not None or out_scale is not None):
        raise ValueError("bias and out_scale need a_scale and w_scale")
    if dequant:
        a_scale, w_scale, bias = check_epilogue(m, n, a_scale, w_scale, bias)
        check_same_device(x=x, a_scale=a_scale)
    if out_dtype not in FLOAT_DTYPES:
        raise TypeError(f"out_dtype must be one of {FLOAT_DTYPES}, got {out_dtype}")
    if out_scale is not None:
        out_scale = scalar_scale("out_scale", out_scale, x.device)
    dtype = torch.int32 if not dequant else torch.int8 if out_scale is not None else out_dtype
    out = torch.empty((m, n), dtype=dtype, device=x.device)
    if m == 0 or n == 0:
        return out

    logger.debug("int8 gemm: M=%d N=%d K=%d out=%s", m, n, k, dtype)

    def grid(meta: dict) -> tuple[int]:
        return (triton.cdiv(m, meta["BLOCK_M"]) * triton.cdiv(n, meta["BLOCK_N"]),)

    _int8_gemm_tuned[grid](
        x, w, out, a_scale, w_scale, bias, out_scale,
        m, n, k,
        x.stride(0), x.stride(1), w.stride(0), w.stride(1), out.stride(0), out.stride(1),
        DEQUANT=dequant,
        A_PER_TOKEN=dequant and a_scale.numel() == m and m > 1,
        W_PER_CHANNEL=dequant and w_scale.numel() == n and n > 1,
        HAS_BIAS=bias is not None, REQUANT=out_scale is not None,
    )  # fmt: skip
    return out


def int8_linear_dynamic(
    x: torch.Tensor, w: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """W8A8 linear with dynamic per-token activation scales (quantize kernel, then GEMM).

    Args:
        x: Float activations ``[..., K]`` (fp16, bf16 or fp32).
        w: int8 weights ``[N, K]`` (e.g. from :func:`.reference.quantize_weight_int8`).
        w_scale: Weight scales ``[N]`` (or 1 element).
        bias: Optional ``[N]``.

    Returns:
        ``[..., N]`` in ``x.dtype``.
    """
    check_tensor("x", x, dtypes=FLOAT_DTYPES)
    xq, xs = quantize_per_token(x.reshape(-1, x.shape[-1]))
    y = int8_gemm(xq, w, xs, w_scale, bias, out_dtype=x.dtype)
    return y.reshape(*x.shape[:-1], w.shape[0])


def int8_linear_static(
    x: torch.Tensor,
    w: torch.Tensor,
    w_scale: torch.Tensor,
    bias: torch.Tensor | None,
    in_scale: torch.Tensor | float,
    out_scale: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """W8A8 linear with a calibrated per-tensor input scale (static chains).

    Args:
        x: Float activations ``[..., K]``, or int8 ones already quantized with ``in_scale``.
        w: int8 weights ``[N, K]``.
        w_scale: Weight scales ``[N]`` (or 1 element).
        bias: Optional ``[N]``.
        in_scale: Per-tensor input scale (float or 1-element tensor).
        out_scale: Per-tensor scale of the next layer's input; when given the output is int8.

    Returns:
        ``[..., N]``: int8 when ``out_scale`` is given, else ``x.dtype`` (fp16 for int8 ``x``).
    """
    check_tensor("x", x, dtypes=(*FLOAT_DTYPES, torch.int8))
    x2 = x.reshape(-1, x.shape[-1])
    in_scale = scalar_scale("in_scale", in_scale, x.device)
    xq = x2 if x.dtype == torch.int8 else quantize_per_tensor(x2, in_scale)
    out_dtype = torch.float16 if x.dtype == torch.int8 else x.dtype
    y = int8_gemm(xq, w, in_scale, w_scale, bias, out_dtype=out_dtype, out_scale=out_scale)
    return y.reshape(*x.shape[:-1], w.shape[0])
