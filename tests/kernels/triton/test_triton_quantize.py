"""Per-token and per-tensor int8 quantization kernels against the reference (bit-exact)."""

from __future__ import annotations

import pytest
import torch

from mixprec.kernels.triton import reference as ref
from mixprec.kernels.triton.quantize import quantize_per_tensor, quantize_per_token


def _activations(shape: tuple[int, ...], dtype: torch.dtype, device: str) -> torch.Tensor:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 3
    x = x.reshape(-1, shape[-1])
    x[0] = 0.0  # all-zero token: scale 1, zeros out
    if x.shape[0] > 1 and shape[-1] >= 4:  # exact .5 ties after scaling (scale = 1)
        x[1, :4] = torch.tensor([127.0, 2.5, -3.5, 0.5])
        x[1, 4:] = x[1, 4:].clamp(-127, 127)
    return x.reshape(shape).to(dtype).to(device)


@pytest.mark.parametrize("shape", [(1, 7), (37, 100), (2, 5, 384)])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
@pytest.mark.parametrize("bits", [8, 4])
def test_triton_quantize_per_token_bit_exact(shape, dtype, bits, device):
    x = _activations(shape, dtype, device)
    q, s = quantize_per_token(x, bits)
    q_ref, s_ref = ref.quantize_per_token_ref(x, bits)
    assert q.dtype == torch.int8 and q.shape == x.shape
    assert s.dtype == torch.float32 and s.shape == x.shape[:-1]
    assert torch.equal(q, q_ref)
    assert torch.equal(s, s_ref)
    assert int(q.abs().max()) <= 2 ** (bits - 1) - 1


def test_triton_quantize_per_token_rounds_half_to_even(device):
    x = torch.tensor([[127.0, 0.5, 1.5, 2.5, -0.5, -2.5, 126.5, -126.5]], device=device)
    q, s = quantize_per_token(x)
    assert float(s) == 1.0
    assert q.tolist() == [[127, 0, 2, 2, 0, -2, 126, -126]]


@pytest.mark.parametrize("scale", [0.02, 0.5])
def test_triton_quantize_per_tensor_bit_exact(scale, device):
    x = _activations((3, 33, 65), torch.float16, device)  # scale 0.02 saturates many values
    expected = ref.quantize_per_tensor_ref(x, scale)
    assert torch.equal(quantize_per_tensor(x, scale), expected)
    scale_t = torch.tensor([scale], device=device)
    assert torch.equal(quantize_per_tensor(x, scale_t), expected)
    assert torch.equal(
        quantize_per_tensor(x, scale, bits=4), ref.quantize_per_tensor_ref(x, scale, 4)
    )


def test_triton_quantize_rejects_bad_input(device):
    with pytest.raises(TypeError, match="x must have dtype"):
        quantize_per_token(torch.ones(4, 8, dtype=torch.int32, device=device))
    with pytest.raises(ValueError, match="bits must be an int in"):
        quantize_per_token(torch.ones(4, 8, device=device), bits=9)
    with pytest.raises(ValueError, match="scale must be positive"):
        quantize_per_tensor(torch.ones(4, 8, device=device), 0.0)
