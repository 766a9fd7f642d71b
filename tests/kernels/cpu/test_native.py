"""Fused activation quantization: the C++ extension and its PyTorch fallback give the
simulation's integers bit for bit."""

from __future__ import annotations

import pytest
import torch

from mixprec.kernels.cpu import native
from mixprec.quant.fake import dynamic_qparams, quantize


def _reference(x: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    offset = 2 ** (bits - 1)
    return (quantize(x, scale, torch.zeros(()), bits, True) + offset).to(torch.uint8)


def _rows() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(70, 200, generator=gen) * 3
    halves = (torch.arange(-100, 100).float() + 0.5) * 0.037  # exactly between grid points
    x[-5:] = halves
    x[-6] = 0.0  # an all-zero row: its dynamic scale is the smallest float
    return x


@pytest.fixture(params=["extension", "fallback"])
def implementation(request, monkeypatch):
    native.extension.cache_clear()
    if request.param == "fallback":
        monkeypatch.setenv(native.DISABLE_VARIABLE, "0")
    elif native.extension() is None:
        pytest.skip("the C++ extension cannot be built here")
    yield request.param
    native.extension.cache_clear()


@pytest.mark.parametrize("bits", [8, 7])
def test_static_quantization_is_exact(implementation, bits):
    x = _rows()
    qmax = 2 ** (bits - 1) - 1
    scale = torch.tensor(0.037)
    assert torch.equal(native.quantize_u8(x, scale, qmax, qmax + 1), _reference(x, scale, bits))
    per_row = torch.rand(70, 1) + 0.01
    assert torch.equal(native.quantize_u8(x, per_row.reshape(-1), qmax, qmax + 1),
                       _reference(x, per_row, bits))


@pytest.mark.parametrize("bits", [8, 7])
def test_dynamic_row_quantization_is_exact(implementation, bits):
    x = _rows()
    qmax = 2 ** (bits - 1) - 1
    u8, scale = native.quantize_rows_u8(x, qmax, qmax + 1)
    want = dynamic_qparams(x, bits, True, -1)[0]
    assert torch.equal(scale, want)
    assert torch.equal(u8, _reference(x, want, bits))


def test_row_epilogue(implementation):
    out = torch.randn(9, 5)
    rows, bias = torch.rand(9, 1), torch.randn(5)
    want = out * rows + bias
    torch.testing.assert_close(native.scale_rows_add_bias_(out.clone(), rows, bias), want)
    torch.testing.assert_close(native.scale_rows_add_bias_(out.clone(), rows, None), out * rows)


@pytest.mark.parametrize("bits", [8, 7])
def test_float_grid_values_are_exact(implementation, bits):
    x = _rows()
    qmax = 2 ** (bits - 1) - 1
    scale = torch.tensor(0.037)
    want = quantize(x, scale, torch.zeros(()), bits, True)
    assert torch.equal(native.grid_values(x, scale, qmax), want)
    grid, rows = native.grid_values_rows(x, qmax)
    assert torch.equal(rows, dynamic_qparams(x, bits, True, -1)[0])
    assert torch.equal(grid, quantize(x, rows, torch.zeros(()), bits, True))
