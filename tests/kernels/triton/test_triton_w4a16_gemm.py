"""W4A16 GEMM: packing round trip, agreement with the reference, input checks."""

from __future__ import annotations

import pytest
import torch

from mixprec.kernels.triton import reference as ref
from mixprec.kernels.triton.w4a16_gemm import w4a16_gemm


def _weights(n: int, k: int, group_size: int, device: str):
    g = torch.Generator().manual_seed(1)
    packed, scales = ref.quantize_weight_int4(torch.randn(n, k, generator=g), group_size)
    return packed.to(device), scales.to(device), torch.randn(n, generator=g).to(device)


def test_triton_pack_int4_layout_and_round_trip():
    w = torch.tensor([[-8, 7, 1, -1]])
    packed = ref.pack_int4(w)
    assert packed.dtype == torch.uint8
    assert packed.tolist() == [[0x78, 0xF1]]  # low nibble = even k
    full = torch.randint(-8, 8, (5, 64), generator=torch.Generator().manual_seed(0))
    assert torch.equal(ref.unpack_int4(ref.pack_int4(full)), full.to(torch.int8))


@pytest.mark.parametrize("group_size", [32, 64, 128])
@pytest.mark.parametrize("m", [1, 37])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_triton_w4a16_matches_reference(group_size, m, dtype, device):
    n, k = 45, 384
    packed, scales, bias = _weights(n, k, group_size, device)
    x = torch.randn(m, k, generator=torch.Generator().manual_seed(2)).to(dtype).to(device)
    y = w4a16_gemm(x, packed, scales.to(dtype), group_size, bias)
    y_ref = ref.w4a16_gemm_ref(x, packed, scales.to(dtype), group_size, bias)
    assert y.dtype == dtype and y.shape == (m, n)
    tol = 2e-3 if dtype == torch.float16 else 1e-5
    torch.testing.assert_close(
        y.float(), y_ref.float(), rtol=tol, atol=tol * float(y_ref.abs().max())
    )


def test_triton_w4a16_batched_input_no_bias(device):
    packed, scales, _ = _weights(40, 256, 128, device)
    x = torch.randn(2, 3, 256, generator=torch.Generator().manual_seed(3)).half().to(device)
    y = w4a16_gemm(x, packed, scales.half(), 128)
    y_ref = ref.w4a16_gemm_ref(x, packed, scales.half(), 128)
    assert y.shape == (2, 3, 40)
    torch.testing.assert_close(y, y_ref, rtol=2e-3, atol=2e-3 * float(y_ref.abs().max()))


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="bf16 dot needs a GPU (interpreter lacks it)"
)
def test_triton_w4a16_bf16_on_gpu():
    packed, scales, bias = _weights(256, 512, 64, "cuda")
    x = torch.randn(197, 512, device="cuda", dtype=torch.bfloat16)
    y = w4a16_gemm(x, packed, scales.bfloat16(), 64, bias)
    y_ref = ref.w4a16_gemm_ref(x, packed, scales.bfloat16(), 64, bias)
    torch.testing.assert_close(y, y_ref, rtol=1e-2, atol=1e-2 * float(y_ref.abs().max()))


def test_triton_w4a16_rejects_bad_input(device):
    packed, scales, _ = _weights(16, 128, 64, device)
    x = torch.randn(4, 128, device=device, dtype=torch.float16)
    with pytest.raises(ValueError, match="group_size must be one of"):
        w4a16_gemm(x, packed, scales, 48)
    with pytest.raises(ValueError, match=r"scales must be \[N, K // group_size\]"):
        w4a16_gemm(x, packed, scales, 32)
    with pytest.raises(TypeError, match="w_packed must have dtype"):
        w4a16_gemm(x, packed.to(torch.int8), scales, 64)
    with pytest.raises(ValueError, match="w_packed must be"):
        w4a16_gemm(torch.randn(4, 192, device=device, dtype=torch.float16), packed, scales, 64)
