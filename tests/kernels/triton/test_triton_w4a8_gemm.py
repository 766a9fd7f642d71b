"""W4A8 GEMM: agreement with the reference (per-token int8 activations, int4 group weights)
and input checks."""

from __future__ import annotations

import pytest
import torch

from mixprec.kernels.triton import reference as ref
from mixprec.kernels.triton.w4a8_gemm import w4a8_linear


def _weights(n: int, k: int, group_size: int, device: str):
    g = torch.Generator().manual_seed(1)
    packed, scales = ref.quantize_weight_int4(torch.randn(n, k, generator=g), group_size)
    return packed.to(device), scales.to(device), torch.randn(n, generator=g).to(device)


@pytest.mark.parametrize("group_size", [32, 64, 128])
@pytest.mark.parametrize("m", [1, 37])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_triton_w4a8_matches_reference(group_size, m, dtype, device):
    n, k = 45, 256
    packed, scales, bias = _weights(n, k, group_size, device)
    x = torch.randn(m, k, generator=torch.Generator().manual_seed(2))
    x[0, 3] = 40.0  # one token's outlier sets only that token's scale
    x = x.to(dtype).to(device)
    y = w4a8_linear(x, packed, scales.to(dtype), group_size, bias)
    y_ref = ref.w4a8_gemm_ref(x, packed, scales.to(dtype), group_size, bias)
    assert y.dtype == dtype and y.shape == (m, n)
    tol = 2e-3 if dtype == torch.float16 else 1e-5
    torch.testing.assert_close(y.float(), y_ref.float(), rtol=tol,
                               atol=tol * float(y_ref.abs().max()))
    w4a16 = ref.w4a16_gemm_ref(x.float(), packed, scales.float(), group_size, bias)
    assert not torch.allclose(y.float(), w4a16, rtol=tol, atol=tol * float(w4a16.abs().max()))


def test_triton_w4a8_batched_input_without_bias(device):
    packed, scales, _ = _weights(40, 128, 64, device)
    x = torch.randn(2, 3, 128, generator=torch.Generator().manual_seed(3)).to(device)
    y = w4a8_linear(x, packed, scales, 64)
    assert y.shape == (2, 3, 40)
    torch.testing.assert_close(y, ref.w4a8_gemm_ref(x, packed, scales, 64), rtol=1e-5,
                               atol=1e-5)


def test_triton_w4a8_rejects_bad_shapes(device):
    packed, scales, _ = _weights(40, 128, 64, device)
    x = torch.randn(3, 128).to(device)
    with pytest.raises(ValueError, match="group_size must be one of"):
        w4a8_linear(x, packed, scales, 256)
    with pytest.raises(ValueError, match="w_packed must be"):
        w4a8_linear(x[:, :64], packed, scales, 64)
    with pytest.raises(ValueError, match="scales must be"):
        w4a8_linear(x, packed, scales[:, :1], 64)
