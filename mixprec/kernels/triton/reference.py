"""Pure-PyTorch references for every Triton kernel of this package (CPU or GPU, no Triton).

Integer matmuls are exact: int8 operands are multiplied in float64, whose 53-bit mantissa
holds every partial sum of ``K * 127 * 127`` for any realistic ``K``. Float epilogues follow
the kernels' order of operations: ``((acc * a_scale) * w_scale) + bias`` in fp32.

Also the offline weight preparation used with the kernels: per-channel int8 weights and
group-wise int4 weights packed two per byte (:func:`pack_int4`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOG2E = 1.4426950408889634


def _qmax(bits: int) -> int:
    return 2 ** (bits - 1) - 1


def _symmetric_scale(absmax: torch.Tensor, qmax: int) -> torch.Tensor:
    scale = absmax.float() / qmax
    return torch.where(scale == 0, torch.ones_like(scale), scale)


def _quantize(x: torch.Tensor, scale: torch.Tensor, qmax: int) -> torch.Tensor:
    return torch.round(x.float() / scale).clamp(-qmax - 1, qmax).to(torch.int8)


def int_matmul_ref(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Exact ``x @ w.T`` of integer tensors ``[..., K]`` and ``[N, K]``, as int32."""
    return torch.matmul(x.double(), w.double().transpose(-1, -2)).to(torch.int32)


def quantize_per_token_ref(x: torch.Tensor, bits: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token symmetric quantization: int8 of ``x``'s shape, fp32 scales ``x.shape[:-1]``."""
    qmax = _qmax(bits)
    scale = _symmetric_scale(x.float().abs().amax(dim=-1), qmax)
    return _quantize(x, scale[..., None], qmax), scale


def quantize_per_tensor_ref(
    x: torch.Tensor, scale: float | torch.Tensor, bits: int = 8
) -> torch.Tensor:
    """Per-tensor symmetric quantization with a given scale."""
    return _quantize(x, torch.as_tensor(scale, dtype=torch.float32, device=x.device), _qmax(bits))


def quantize_weight_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-channel symmetric int8 weights: ``(int8 [N, K], fp32 scales [N])``."""
    return quantize_per_token_ref(w, 8)


def dequant_epilogue_ref(
    acc: torch.Tensor,
    a_scale: torch.Tensor,
    w_scale: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """fp32 ``((acc * a_scale[:, None]) * w_scale[None, :]) + bias`` (scales may be scalars)."""
    y = acc.float() * a_scale.float().reshape(-1, 1) * w_scale.float().reshape(-1)
    return y if bias is None else y + bias.float()


def int8_gemm_ref(
    x: torch.Tensor,
    w: torch.Tensor,
    a_scale: torch.Tensor | None = None,
    w_scale: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    out_dtype: torch.dtype = torch.float16,
    out_scale: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Reference of :func:`.int8_gemm.int8_gemm`: int32 without scales, else dequantized."""
    acc = int_matmul_ref(x, w)
    if a_scale is None:
        return acc
    y = dequant_epilogue_ref(acc, a_scale, w_scale, bias)
    if out_scale is not None:
        return quantize_per_tensor_ref(y, out_scale, 8)
    return y.to(out_dtype)


def int8_linear_dynamic_ref(
    x: torch.Tensor, w: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-token dynamic W8A8 linear: quantize rows of ``x``, int matmul, dequant, bias."""
    xq, xs = quantize_per_token_ref(x.reshape(-1, x.shape[-1]))
    y = int8_gemm_ref(xq, w, xs, w_scale, bias, out_dtype=x.dtype)
    return y.reshape(*x.shape[:-1], w.shape[0])


def int8_linear_static_ref(
    x: torch.Tensor,
    w: torch.Tensor,
    w_scale: torch.Tensor,
    bias: torch.Tensor | None,
    in_scale: float | torch.Tensor,
    out_scale: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Static W8A8 linear: per-tensor input scale; int8 output when ``out_scale`` is given."""
    x2 = x.reshape(-1, x.shape[-1])
    xq = quantize_per_tensor_ref(x2, in_scale)
    a = torch.as_tensor(in_scale, dtype=torch.float32, device=x.device).reshape(1)
    y = int8_gemm_ref(xq, w, a, w_scale, bias, out_dtype=x.dtype, out_scale=out_scale)
    return y.reshape(*x.shape[:-1], w.shape[0])


def pack_int4(w_int: torch.Tensor) -> torch.Tensor:
    """Pack int4 values two per byte along the last dim (K).

    Byte ``j`` of a row holds ``k = 2j`` in its low nibble and ``k = 2j + 1`` in its high
    nibble, both two's complement.

    Args:
        w_int: Integer tensor ``[..., K]`` with values in [-8, 7] and even ``K``.

    Returns:
        uint8 tensor ``[..., K // 2]``.
    """
    if w_int.shape[-1] % 2:
        raise ValueError(f"last dim must be even, got {w_int.shape[-1]}")
    if w_int.numel() and (w_int.min() < -8 or w_int.max() > 7):
        raise ValueError("int4 values must lie in [-8, 7]")
    w = w_int.to(torch.int32)
    return ((w[..., 0::2] & 0xF) | ((w[..., 1::2] & 0xF) << 4)).to(torch.uint8)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_int4`: uint8 ``[..., K // 2]`` -> int8 ``[..., K]`` in [-8, 7]."""
    p = packed.to(torch.int32)
    lo, hi = ((p & 0xF) ^ 8) - 8, ((p >> 4) ^ 8) - 8
    return torch.stack((lo, hi), dim=-1).reshape(*p.shape[:-1], -1).to(torch.int8)


def quantize_weight_int4(w: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Group-wise symmetric int4 weights for :mod:`.w4a16_gemm`.

    ``scale = absmax(group) / 7`` per ``group_size`` consecutive K of each row, values
    ``clamp(round(w / scale), -8, 7)``.

    Args:
        w: Weights ``[N, K]`` like ``nn.Linear.weight``; ``K`` a multiple of ``group_size``.
        group_size: Group length along K.

    Returns:
        ``(packed uint8 [N, K // 2], fp32 scales [N, K // group_size])``.
    """
    n, k = w.shape
    if k % group_size:
        raise ValueError(f"K={k} must be a multiple of group_size={group_size}")
    g = w.float().reshape(n, k // group_size, group_size)
    scale = _symmetric_scale(g.abs().amax(dim=-1), 7)
    q = torch.round(g / scale[..., None]).clamp(-8, 7).reshape(n, k)
    return pack_int4(q), scale


def dequant_int4_ref(packed: torch.Tensor, scales: torch.Tensor, group_size: int) -> torch.Tensor:
    """fp32 weights ``[N, K]`` from packed int4 and group scales."""
    q = unpack_int4(packed).float()
    return q * scales.float().repeat_interleave(group_size, dim=-1)


def w4a16_gemm_ref(
    x: torch.Tensor,
    w_packed: torch.Tensor,
    scales: torch.Tensor,
    group_size: int,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Reference of :func:`.w4a16_gemm.w4a16_gemm`: weights dequantized to ``x.dtype``."""
    w = dequant_int4_ref(w_packed, scales, group_size).to(x.dtype)
    y = x.float() @ w.float().T
    if bias is not None:
        y = y + bias.float()
    return y.to(x.dtype)


def w4a8_gemm_ref(
    x: torch.Tensor,
    w_packed: torch.Tensor,
    scales: torch.Tensor,
    group_size: int,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Reference of :func:`.w4a8_gemm.w4a8_linear`: ``x`` quantized per token to int8,
    times the dequantized int4 weights, in fp32."""
    x2 = x.reshape(-1, x.shape[-1])
    xq, xs = quantize_per_token_ref(x2)
    y = (xq.float() * xs[:, None]) @ dequant_int4_ref(w_packed, scales, group_size).T
    if bias is not None:
        y = y + bias.float()
    return y.to(x.dtype).reshape(*x.shape[:-1], w_packed.shape[0])


def quantize_blocks_ref(x: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 per-block quantization along tokens of ``[B, H, N, D]``.

    Returns:
        ``(int8 [B, H, N, D], fp32 scales [B, H, ceil(N / block)])``.
    """
    b, h, n, d = x.shape
    nb = -(-n // block)
    xp = F.pad(x.float(), (0, 0, 0, nb * block - n)).reshape(b, h, nb, block * d)
    scale = _symmetric_scale(xp.abs().amax(dim=-1), 127)
    q = _quantize(x, scale.repeat_interleave(block, dim=-1)[..., :n, None], 127)
    return q, scale


def attention_ref(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    sm_scale: float | None = None,
    *,
    block_m: int,
    block_n: int,
) -> torch.Tensor:
    """Reference of :func:`.attention.attention` (same smoothing and block quantization).

    K is smoothed by its per-head token mean, Q and K are quantized to int8 per block of
    ``block_m`` / ``block_n`` tokens, ``Q·Kᵀ`` is exact, softmax and ``P·V`` run in fp32.
    """
    scale = q.shape[-1] ** -0.5 if sm_scale is None else sm_scale
    kf = k.float() - k.mean(dim=2, keepdim=True, dtype=torch.float32)
    qq, qs = quantize_blocks_ref(q, block_m)
    kq, ks = quantize_blocks_ref(kf, block_n)
    n = q.shape[2]
    qs = qs.repeat_interleave(block_m, dim=-1)[..., :n]
    ks = ks.repeat_interleave(block_n, dim=-1)[..., :n]
    s = int_matmul_ref(qq, kq).float() * (qs[..., :, None] * ks[..., None, :]) * scale
    if attn_mask is not None:
        s = s + _additive_mask(attn_mask)
    return (torch.softmax(s, dim=-1) @ v.float()).to(q.dtype)


def _additive_mask(attn_mask: torch.Tensor) -> torch.Tensor:
    if attn_mask.dtype == torch.bool:
        return torch.zeros(attn_mask.shape, device=attn_mask.device).masked_fill(
            ~attn_mask, float("-inf")
        )
    return attn_mask.float()


def patchwise_rows(scores: torch.Tensor, n_hi: int) -> tuple[torch.Tensor, int]:
    """Row permutation and split for patch-wise kernels, from per-token importance.

    Args:
        scores: Importance ``[..., T]`` of each token of each image (e.g. attention received).
        n_hi: Tokens per image kept at the high bit-width (the most important ones).

    Returns:
        ``(perm, split)``: int64 ``[M]`` rows of the flattened ``[M = prod(...) * T, K]``
        activations, the ``split = prod(...) * n_hi`` high-precision rows first (by image,
        most important first), then the rest.
    """
    s = scores.reshape(-1, scores.shape[-1])
    images, tokens = s.shape
    if not 0 <= n_hi <= tokens:
        raise ValueError(f"n_hi must be in [0, {tokens}], got {n_hi}")
    order = torch.argsort(s, dim=-1, descending=True, stable=True)
    rows = order + torch.arange(images, device=s.device)[:, None] * tokens
    return torch.cat((rows[:, :n_hi].reshape(-1), rows[:, n_hi:].reshape(-1))), images * n_hi


def patchwise_linear_ref(
    x: torch.Tensor,
    w: torch.Tensor,
    w_scale: torch.Tensor,
    bias: torch.Tensor | None,
    perm: torch.Tensor,
    split: int,
    bits_hi: int = 8,
    bits_lo: int = 4,
) -> torch.Tensor:
    """Reference of :func:`.patchwise_gemm.patchwise_linear`: each group quantized per token
    at its own bit-width, int matmul, dequant, rows back in their original order."""
    x2 = x.reshape(-1, x.shape[-1])
    out = torch.empty((x2.shape[0], w.shape[0]), dtype=x.dtype, device=x.device)
    for rows, bits in ((perm[:split], bits_hi), (perm[split:], bits_lo)):
        if not rows.numel():
            continue
        xq, xs = quantize_per_token_ref(x2[rows], bits)
        out[rows] = int8_gemm_ref(xq, w, xs, w_scale, bias, out_dtype=x.dtype)
    return out.reshape(*x.shape[:-1], w.shape[0])
