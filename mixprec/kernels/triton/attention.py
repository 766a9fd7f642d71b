"""Mixed-precision flash attention: INT8 Q·Kᵀ, fp32 online softmax, fp16/bf16 P·V.

Two launches (the SageAttention recipe):

1. block quantization: K is smoothed by subtracting its token mean per (batch, head) —
   softmax is invariant to adding one value per query row, which is what ``q·mean(K)`` is —
   then Q and K are quantized to int8, symmetric, one fp32 scale per block of ``block_m``
   (Q) or ``block_n`` (K) tokens of one head;
2. attention: per ``block_m`` queries, loop over ``block_n`` keys: int8 ``Q·Kᵀ`` with int32
   accumulation, dequant by ``q_scale * k_scale * sm_scale``, optional additive mask/bias
   (e.g. Swin's relative position bias), base-2 online softmax in fp32, ``P·V`` with P
   rounded to V's dtype and fp32 accumulation.

Sequence lengths need not be multiples of the blocks (masked); head dims 32, 64, 128.
Rows whose keys are all masked with ``-inf`` give zeros (not NaN).
Reference: :func:`.reference.attention_ref` (same blocks), accuracy against fp32 SDPA.
"""

from __future__ import annotations

import logging
import math

import torch
import triton
import triton.language as tl

from mixprec.kernels.triton._launch import FLOAT_DTYPES, INTERPRET, check_same_device, check_tensor
from mixprec.kernels.triton.quantize import quantize_values

logger = logging.getLogger(__name__)

HEAD_DIMS = (32, 64, 128)
LOG2E = 1.4426950408889634


@triton.jit
def _quantize_blocks_kernel(
    x_ptr, mean_ptr, q_ptr, s_ptr,
    H, N, n_blocks,
    stride_xb, stride_xh, stride_xn, stride_xd,
    HAS_MEAN: tl.constexpr, BLOCK: tl.constexpr, D: tl.constexpr,
):  # fmt: skip
    """Quantize BLOCK tokens of one head (minus the head's mean) with one scale."""
    pid_n = tl.program_id(0)
    bh = tl.program_id(1)
    offs_n = pid_n * BLOCK + tl.arange(0, BLOCK)
    offs_d = tl.arange(0, D)
    mask = offs_n[:, None] < N
    base = (bh // H).to(tl.int64) * stride_xb + (bh % H).to(tl.int64) * stride_xh
    x_ptrs = x_ptr + base + offs_n[:, None] * stride_xn + offs_d[None, :] * stride_xd
    x = tl.load(x_ptrs, mask=mask, other=0.0).to(tl.float32)
    if HAS_MEAN:
        x = tl.where(mask, x - tl.load(mean_ptr + bh * D + offs_d)[None, :], 0.0)
    scale = tl.math.div_rn(tl.max(tl.max(tl.abs(x), axis=1), axis=0), 127.0)
    scale = tl.where(scale == 0.0, 1.0, scale)
    q = quantize_values(x, scale, 127.0)
    q_ptrs = q_ptr + bh.to(tl.int64) * N * D + offs_n[:, None] * D + offs_d[None, :]
    tl.store(q_ptrs, q.to(tl.int8), mask=mask)
    tl.store(s_ptr + bh * n_blocks + pid_n, scale)


@triton.jit
def _attention_kernel(
    q_ptr, qs_ptr, k_ptr, ks_ptr, v_ptr, bias_ptr, o_ptr,
    H, N, n_blocks_q, n_blocks_k, qk_scale,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_bb, stride_bh, stride_bm, stride_bn,
    stride_ob, stride_oh, stride_on, stride_od,
    HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, D: tl.constexpr,
):  # fmt: skip
    """BLOCK_M queries of one head against all keys, online softmax in base 2."""
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = (bh // H).to(tl.int64)
    h = (bh % H).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n0 = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, D)
    qk_base = bh.to(tl.int64) * N * D
    q = tl.load(
        q_ptr + qk_base + offs_m[:, None] * D + offs_d[None, :], mask=offs_m[:, None] < N, other=0
    )
    # sm_scale * log2(e) folded into the Q block's scale: scores come out in base 2.
    q_scale = tl.load(qs_ptr + bh * n_blocks_q + pid_m) * qk_scale
    v_base = v_ptr + b * stride_vb + h * stride_vh

    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, D), dtype=tl.float32)
    for j in range(0, n_blocks_k):
        offs_n = j * BLOCK_N + offs_n0
        k = tl.load(
            k_ptr + qk_base + offs_n[:, None] * D + offs_d[None, :],
            mask=offs_n[:, None] < N,
            other=0,
        )
        s = tl.dot(q, tl.trans(k), out_dtype=tl.int32).to(tl.float32)
        s = s * (q_scale * tl.load(ks_ptr + bh * n_blocks_k + j))
        if HAS_BIAS:
            bias_mask = (offs_m[:, None] < N) & (offs_n[None, :] < N)
            bias_ptrs = bias_ptr + b * stride_bb + h * stride_bh
            bias_ptrs += offs_m[:, None] * stride_bm + offs_n[None, :] * stride_bn
            bias = tl.load(bias_ptrs, mask=bias_mask, other=0.0)
            s += bias.to(tl.float32) * 1.4426950408889634  # log2(e)
        s = tl.where(offs_n[None, :] < N, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        m_ref = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.math.exp2(s - m_ref[:, None])
        alpha = tl.math.exp2(m_i - m_ref)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(
            v_base + offs_n[:, None] * stride_vn + offs_d[None, :] * stride_vd,
            mask=offs_n[:, None] < N,
            other=0.0,
        )
        acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None])
        m_i = m_new
    out = acc / tl.where(l_i == 0.0, 1.0, l_i)[:, None]
    o_ptrs = o_ptr + b * stride_ob + h * stride_oh
    o_ptrs += offs_m[:, None] * stride_on + offs_d[None, :] * stride_od
    tl.store(o_ptrs, out.to(o_ptr.dtype.element_ty), mask=offs_m[:, None] < N)


def attention_blocks(head_dim: int) -> tuple[int, int]:
    """Default ``(block_m, block_n)``: the quantization granularity of Q and K as well."""
    if INTERPRET:
        return 32, 32
    return (128, 64) if head_dim <= 64 else (64, 64)


def _quantize_blocks(
    x: torch.Tensor, block: int, mean: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    b, h, n, d = x.shape
    n_blocks = triton.cdiv(n, block)
    q = torch.empty((b, h, n, d), dtype=torch.int8, device=x.device)
    scales = torch.empty((b * h, n_blocks), dtype=torch.float32, device=x.device)
    _quantize_blocks_kernel[(n_blocks, b * h)](
        x, mean, q, scales, h, n, n_blocks, *x.stride(),
        HAS_MEAN=mean is not None, BLOCK=block, D=d,
    )  # fmt: skip
    return q, scales


def _check_attention_inputs(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None
) -> torch.Tensor | None:
    """Check q/k/v and return the mask as a float additive tensor expanded to [B, H, N, N]."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_tensor(name, t, dtypes=FLOAT_DTYPES, ndim=4)
    if not q.shape == k.shape == v.shape:
        raise ValueError(
            f"q, k, v must share [B, H, N, D]: got {tuple(q.shape)}, {tuple(k.shape)}, "
            f"{tuple(v.shape)}"
        )
    if not q.dtype == k.dtype == v.dtype:
        raise TypeError(f"q, k, v must share a dtype: got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.shape[-1] not in HEAD_DIMS:
        raise ValueError(f"head dim (last dim of q) must be one of {HEAD_DIMS}, got {q.shape[-1]}")
    check_same_device(q=q, k=k, v=v, attn_mask=attn_mask)
    if attn_mask is None:
        return None
    check_tensor("attn_mask", attn_mask, dtypes=(*FLOAT_DTYPES, torch.bool))
    b, h, n, _ = q.shape
    try:
        mask = attn_mask.expand(b, h, n, n)
    except RuntimeError as err:
        raise ValueError(
            f"attn_mask of shape {tuple(attn_mask.shape)} does not broadcast to [B, H, N, N] = "
            f"{[b, h, n, n]}"
        ) from err
    if mask.dtype == torch.bool:
        zeros = torch.zeros((), dtype=torch.float32, device=mask.device)
        mask = zeros.masked_fill(~mask, float("-inf"))
    return mask


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    sm_scale: float | None = None,
    *,
    block_m: int | None = None,
    block_n: int | None = None,
) -> torch.Tensor:
    """``softmax(q kᵀ * sm_scale + attn_mask) v`` with INT8 Q·Kᵀ (see the module docstring).

    Args:
        q: Queries ``[B, H, N, D]``, fp16 or bf16 (fp32 runs too; P·V then may use TF32).
        k: Keys, same shape and dtype.
        v: Values, same shape and dtype.
        attn_mask: Optional additive float mask/bias broadcastable to ``[B, H, N, N]``, or a
            bool mask (True = attend) as in ``F.scaled_dot_product_attention``.
        sm_scale: Score scale, default ``1 / sqrt(D)``.
        block_m: Queries per program and per Q scale (power of two >= 16); default from
            :func:`attention_blocks`.
        block_n: Keys per step and per K scale (power of two >= 16).

    Returns:
        ``[B, H, N, D]`` in ``q.dtype``.
    """
    mask = _check_attention_inputs(q, k, v, attn_mask)
    b, h, n, d = q.shape
    default_m, default_n = attention_blocks(d)
    block_m, block_n = block_m or default_m, block_n or default_n
    for name, blk in (("block_m", block_m), ("block_n", block_n)):
        if blk < 16 or blk & (blk - 1):
            raise ValueError(f"{name} must be a power of two >= 16, got {blk}")
    scale = 1.0 / math.sqrt(d) if sm_scale is None else float(sm_scale)
    if not scale > 0:
        raise ValueError(f"sm_scale must be positive, got {sm_scale}")
    out = torch.empty((b, h, n, d), dtype=q.dtype, device=q.device)
    if out.numel() == 0:
        return out
    logger.debug("attention: B=%d H=%d N=%d D=%d blocks=(%d, %d)", b, h, n, d, block_m, block_n)
    qq, qs = _quantize_blocks(q, block_m, None)
    kq, ks = _quantize_blocks(k, block_n, k.mean(dim=2, dtype=torch.float32).contiguous())
    bias_strides = mask.stride() if mask is not None else (0, 0, 0, 0)
    _attention_kernel[(triton.cdiv(n, block_m), b * h)](
        qq, qs, kq, ks, v, mask, out,
        h, n, qs.shape[1], ks.shape[1], scale * LOG2E,
        *v.stride(), *bias_strides, *out.stride(),
        HAS_BIAS=mask is not None, BLOCK_M=block_m, BLOCK_N=block_n, D=d,
        num_warps=8 if block_m >= 128 else 4, num_stages=2 if d >= 128 else 3,
    )  # fmt: skip
    return out
