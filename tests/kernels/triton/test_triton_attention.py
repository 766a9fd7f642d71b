"""INT8-QK attention: reference agreement, SQNR against fp32 SDPA, Swin masks, input checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mixprec.kernels.triton import reference as ref
from mixprec.kernels.triton.attention import attention, attention_blocks


def _sqnr_db(exact: torch.Tensor, approx: torch.Tensor) -> float:
    exact, approx = exact.double(), approx.double()
    return float(10 * torch.log10(exact.pow(2).sum() / (exact - approx).pow(2).sum()))


def _qkv(b: int, h: int, n: int, d: int, dtype: torch.dtype, device: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(b, h, n, d, generator=g) for _ in range(3))
    k = k + 4 * torch.randn(1, h, 1, d, generator=g)  # per-channel K offset: smoothing matters
    return tuple(t.to(dtype).to(device) for t in (q, k, v))


def _check(q, k, v, mask, out) -> None:
    block_m, block_n = attention_blocks(q.shape[-1])
    expected = ref.attention_ref(q, k, v, mask, block_m=block_m, block_n=block_n)
    tol = 1e-5 if q.dtype == torch.float32 else 4e-3
    torch.testing.assert_close(out, expected, rtol=tol, atol=tol)
    exact = F.scaled_dot_product_attention(
        q.float(), k.float(), v.float(), attn_mask=None if mask is None else mask.float()
    )
    assert _sqnr_db(exact, out) >= 30


@pytest.mark.parametrize(
    "b,h,n,d,dtype",
    [
        (1, 1, 197, 32, torch.float16),  # ViT tokens, not a multiple of the block
        (2, 2, 50, 64, torch.float32),
        (1, 1, 20, 128, torch.float16),  # shorter than one block
        (1, 1, 1, 64, torch.float16),  # a single token
    ],
)
def test_triton_attention_matches_reference_and_sdpa(b, h, n, d, dtype, device):
    q, k, v = _qkv(b, h, n, d, dtype, device)
    out = attention(q, k, v)
    assert out.shape == q.shape and out.dtype == dtype
    _check(q, k, v, None, out)


def test_triton_attention_swin_windows_with_bias_and_shift_mask(device):
    windows, heads, n, d = 4, 2, 49, 32
    q, k, v = _qkv(windows, heads, n, d, torch.float16, device, seed=1)
    g = torch.Generator().manual_seed(2)
    rel_pos_bias = torch.randn(1, heads, n, n, generator=g)
    shift = torch.zeros(windows, 1, n, n)
    region = torch.arange(n) % 3
    shift[1:] = torch.where(region[:, None] == region[None, :], 0.0, -100.0)
    mask = (rel_pos_bias + shift).half().to(device)  # [windows, heads, 49, 49]
    out = attention(q, k, v, mask)
    _check(q, k, v, mask, out)
    out_bias_only = attention(q, k, v, rel_pos_bias.half().to(device))  # broadcast over windows
    _check(q, k, v, rel_pos_bias.half().to(device), out_bias_only)


def test_triton_attention_bool_mask_and_scale(device):
    q, k, v = _qkv(1, 2, 50, 32, torch.float32, device, seed=3)
    keep = torch.rand(50, 50, generator=torch.Generator().manual_seed(4)) > 0.3
    keep |= torch.eye(50, dtype=torch.bool)
    keep = keep.to(device)
    out = attention(q, k, v, keep, sm_scale=0.1)
    exact = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=0.1)
    assert _sqnr_db(exact, out) >= 30


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="bf16 dot needs a GPU (interpreter lacks it)"
)
def test_triton_attention_bf16_on_gpu():
    q, k, v = _qkv(8, 6, 197, 64, torch.bfloat16, "cuda")
    out = attention(q, k, v)
    exact = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
    assert _sqnr_db(exact, out) >= 30


def test_triton_attention_rejects_bad_input(device):
    q, k, v = _qkv(1, 1, 8, 32, torch.float16, device)
    with pytest.raises(ValueError, match="head dim"):
        attention(*(t[..., :16] for t in (q, k, v)))
    with pytest.raises(TypeError, match="must share a dtype"):
        attention(q, k.float(), v)
    with pytest.raises(ValueError, match="does not broadcast"):
        attention(q, k, v, torch.zeros(3, 8, 8, device=device))
    with pytest.raises(ValueError, match="must share"):
        attention(q, k[:, :, :4], v)
