"""Patch-wise GEMM: two activation bit-widths in one launch, rows back in order."""

from __future__ import annotations

import pytest
import torch

from mixprec.kernels.triton import reference as ref
from mixprec.kernels.triton._launch import INTERPRET
from mixprec.kernels.triton.int8_gemm import int8_linear_dynamic
from mixprec.kernels.triton.patchwise_gemm import patchwise_linear


def _layer(device: str):
    g = torch.Generator().manual_seed(1)
    w, w_scale = ref.quantize_weight_int8(torch.randn(40, 96, generator=g))
    x = torch.randn(2, 50, 96, generator=g)
    scores = torch.rand(2, 50, generator=g)
    return (
        x.to(device),
        w.to(device),
        w_scale.to(device),
        torch.randn(40, generator=g).to(device),
        scores,
    )


def test_triton_patchwise_rows_orders_by_importance():
    scores = torch.tensor([[0.1, 0.9, 0.5], [0.7, 0.2, 0.8]])
    perm, split = ref.patchwise_rows(scores, 1)
    assert split == 2
    assert perm.tolist() == [1, 5, 2, 0, 3, 4]


@pytest.mark.parametrize("n_hi", [0, 13, 50])
@pytest.mark.parametrize("bits", [(8, 4), (8, 6)])
def test_triton_patchwise_matches_reference(n_hi, bits, device):
    x, w, w_scale, bias, scores = _layer(device)
    perm, split = ref.patchwise_rows(scores, n_hi)
    perm = perm.to(device)
    y = patchwise_linear(x, w, w_scale, bias, perm, split, *bits)
    y_ref = ref.patchwise_linear_ref(x, w, w_scale, bias, perm, split, *bits)
    assert y.shape == (2, 50, 40)
    if INTERPRET:  # integer path exact, same fp32 epilogue
        assert torch.equal(y, y_ref)
    else:
        torch.testing.assert_close(y, y_ref)


def test_triton_patchwise_all_high_equals_dynamic_linear(device):
    x, w, w_scale, bias, scores = _layer(device)
    perm, split = ref.patchwise_rows(scores, 50)
    y = patchwise_linear(x.half(), w, w_scale, bias, perm.to(device), split, 8, 4)
    torch.testing.assert_close(y, int8_linear_dynamic(x.half(), w, w_scale, bias))


def test_triton_patchwise_rejects_bad_input(device):
    x, w, w_scale, bias, scores = _layer(device)
    perm, split = ref.patchwise_rows(scores, 10)
    with pytest.raises(ValueError, match="perm must have one entry per row"):
        patchwise_linear(x, w, w_scale, bias, perm[:-1].to(device), split)
    with pytest.raises(TypeError, match="perm must have dtype"):
        patchwise_linear(x, w, w_scale, bias, perm.float().to(device), split)
    with pytest.raises(ValueError, match="bits_lo must be an int in"):
        patchwise_linear(x, w, w_scale, bias, perm.to(device), split, 8, 1)
