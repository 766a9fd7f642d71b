"""INT8 GEMM: bit-exact int32 accumulation, fused epilogues, W8A8 linears, input checks."""

from __future__ import annotations

import pytest
import torch

from mixprec.kernels.triton import reference as ref
from mixprec.kernels.triton._launch import INTERPRET
from mixprec.kernels.triton.int8_gemm import int8_gemm, int8_linear_dynamic, int8_linear_static


def _int8(shape: tuple[int, ...], device: str, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-127, 128, shape, generator=g, dtype=torch.int8).to(device)


def _weights(n: int, k: int, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    w, w_scale = ref.quantize_weight_int8(torch.randn(n, k, generator=g))
    return w.to(device), w_scale.to(device), torch.randn(n, generator=g).to(device)


@pytest.mark.parametrize("m,n,k", [(1, 40, 96), (37, 45, 100), (197, 64, 64), (5, 3, 1000)])
def test_triton_int8_gemm_int32_bit_exact(m, n, k, device):
    x, w = _int8((m, k), device, 0), _int8((n, k), device, 1)
    x[0] = -127  # largest-magnitude products
    acc = int8_gemm(x, w)
    assert acc.dtype == torch.int32
    assert torch.equal(acc, ref.int_matmul_ref(x, w))


def test_triton_int8_gemm_transposed_strides(device):
    x = _int8((64, 37), device, 0).t()  # [37, 64] with stride (1, 37)
    w = _int8((64, 45), device, 1).t()
    assert torch.equal(int8_gemm(x, w), ref.int_matmul_ref(x, w))


@pytest.mark.parametrize("per_token", [True, False])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.float16])
def test_triton_int8_gemm_dequant_epilogue(per_token, with_bias, out_dtype, device):
    m, n, k = 37, 45, 100
    x = _int8((m, k), device, 0)
    w, w_scale, bias = _weights(n, k, device)
    bias = bias if with_bias else None
    a_scale = torch.rand(m if per_token else 1, device=device) * 0.1 + 0.01
    y = int8_gemm(x, w, a_scale, w_scale, bias, out_dtype=out_dtype)
    y_ref = ref.int8_gemm_ref(x, w, a_scale, w_scale, bias, out_dtype=out_dtype)
    assert y.dtype == out_dtype
    if INTERPRET:  # same fp32 operations in the same order
        assert torch.equal(y, y_ref)
    else:  # GPU may contract multiply-add into FMA
        torch.testing.assert_close(y, y_ref)


def test_triton_int8_gemm_requantized_output(device):
    x = _int8((37, 100), device, 0)
    w, w_scale, bias = _weights(45, 100, device)
    a_scale = torch.full((1,), 0.02, device=device)
    y_ref = ref.int8_gemm_ref(x, w, a_scale, w_scale, bias, out_scale=0.2)
    y = int8_gemm(x, w, a_scale, w_scale, bias, out_scale=0.2)
    assert y.dtype == torch.int8
    diff = (y.int() - y_ref.int()).abs()
    assert int(diff.max()) <= (0 if INTERPRET else 1)
    assert int(y_ref.abs().max()) == 127  # the clamp is exercised


def test_triton_int8_linears_match_reference(device):
    w, w_scale, bias = _weights(48, 96, device)
    x = torch.randn(2, 50, 96, generator=torch.Generator().manual_seed(2)).to(device)
    y = int8_linear_dynamic(x, w, w_scale, bias)
    assert y.shape == (2, 50, 48)
    torch.testing.assert_close(y, ref.int8_linear_dynamic_ref(x, w, w_scale, bias))
    y_float = x @ (w.float() * w_scale[:, None]).T + bias
    err = (y - y_float).pow(2).sum() / y_float.pow(2).sum()
    assert float(10 * torch.log10(1 / err)) > 30
    y8 = int8_linear_static(x.half(), w, w_scale, bias, in_scale=0.03, out_scale=0.1)
    y8_ref = ref.int8_linear_static_ref(x.half(), w, w_scale, bias, 0.03, 0.1)
    assert y8.dtype == torch.int8
    assert int((y8.int() - y8_ref.int()).abs().max()) <= (0 if INTERPRET else 1)


def test_triton_int8_gemm_rejects_bad_input(device):
    x, w = _int8((8, 64), device, 0), _int8((16, 64), device, 1)
    with pytest.raises(TypeError, match="x must have dtype"):
        int8_gemm(x.float(), w)
    with pytest.raises(ValueError, match="must share K"):
        int8_gemm(x, w[:, :32])
    with pytest.raises(ValueError, match="a_scale must have 1 or 8 elements"):
        int8_gemm(x, w, torch.ones(3, device=device), torch.ones(16, device=device))
    with pytest.raises(ValueError, match="a_scale and w_scale must be given together"):
        int8_gemm(x, w, torch.ones(8, device=device))
