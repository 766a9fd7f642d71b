"""NUPES weights: power-exponent levels, an exponent fitted on calibration rows."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from mixprec.quant import QuantSpec
from mixprec.quant.fake import integer_weight, quantize_weight
from mixprec.quant.nupes import EXPONENTS, nupes_levels, nupes_weight

NUPES4 = QuantSpec(weight_bits=4, act_bits=16, act_mode="none", weight_format="nupes")
UNIFORM4 = replace(NUPES4, weight_format="uniform")


def gaussian(rows: int = 48, cols: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed)) * 0.02


def output_error(inputs: torch.Tensor, w: torch.Tensor, wq: torch.Tensor) -> float:
    return (inputs @ (w - wq).t()).pow(2).sum().item()


def test_exponent_one_is_the_symmetric_uniform_grid_and_others_bend_it():
    qmax = 7
    assert torch.equal(nupes_levels(4, 1.0), torch.arange(-qmax, qmax + 1) / qmax)
    bent = nupes_levels(4, 0.5)
    assert bent[0] == -1 and bent[-1] == 1 and bent[qmax] == 0
    assert torch.equal(bent, -bent.flip(0))
    assert (bent.diff() > 0).all()
    # exponent < 1: levels crowd near zero (the first step is the smallest)
    assert bent[qmax + 1] < 1 / qmax and bent.diff()[qmax] < bent.diff()[-1]
    assert 1.0 in EXPONENTS


@pytest.mark.parametrize("spec", [
    NUPES4, replace(NUPES4, weight_bits=3),
    replace(NUPES4, weight_granularity="per_group", group_size=24),
    replace(NUPES4, weight_granularity="per_tensor")], ids=lambda s: s.label)
def test_every_weight_lands_on_a_level_of_its_slice(spec):
    w = gaussian()
    nw = nupes_weight(w, spec, None)
    qmax = 2 ** (spec.weight_bits - 1) - 1
    assert nw.q.abs().max() <= qmax and torch.equal(nw.q, nw.q.round())
    normalized = nw.dequantize() / nw.expand(nw.scale)
    levels = nw.levels()
    assert torch.isclose(normalized[..., None], levels).any(-1).all()
    # the slice's largest magnitude is kept exactly
    assert torch.allclose(nw.dequantize().abs().amax(), w.abs().amax())


def test_fitted_exponent_is_never_worse_than_uniform_on_its_rows_and_beats_it_on_bell_weights():
    w = gaussian(96, 128)
    inputs = torch.randn(256, 128, generator=torch.Generator().manual_seed(1))
    nw = nupes_weight(w, NUPES4, inputs)
    uniform = quantize_weight(w, UNIFORM4)
    assert nw.exponent < 1.0  # Gaussian weights are dense near zero
    assert output_error(inputs, w, nw.dequantize()) < 0.95 * output_error(inputs, w, uniform)


def test_uniform_weights_keep_the_uniform_grid():
    w = torch.linspace(-1, 1, 15).repeat(8, 1)  # exactly the 4-bit grid
    nw = nupes_weight(w, NUPES4, torch.randn(32, 15))
    assert nw.exponent == 1.0 and torch.allclose(nw.dequantize(), w, atol=1e-6)


def test_exponent_follows_the_calibration_rows():
    """Rows that weight only the large inputs ask for levels spread towards the maximum."""
    w = gaussian(32, 64, seed=3)
    big = w.abs() > 0.02
    inputs = torch.randn(128, 64) * big.any(0).float()
    on_weights = nupes_weight(w, NUPES4, None)
    on_rows = nupes_weight(w, NUPES4, inputs)
    assert output_error(inputs, w, on_rows.dequantize()) <= output_error(
        inputs, w, on_weights.dequantize())


def test_zero_rows_decode_to_zero_and_bad_inputs_are_named():
    w = gaussian()
    w[3] = 0.0
    nw = nupes_weight(w, NUPES4, None)
    assert torch.equal(nw.dequantize()[3], torch.zeros(w.shape[1]))
    assert torch.isfinite(nw.dequantize()).all()
    with pytest.raises(ValueError, match="64 inputs"):
        nupes_weight(w, NUPES4, torch.randn(4, 10))
    with pytest.raises(ValueError, match="not a NUPES spec"):
        nupes_weight(w, UNIFORM4, None)
    with pytest.raises(ValueError, match="not on an integer grid"):
        integer_weight(w, NUPES4)


def test_nupes_spec_validation_label_and_calibration():
    assert NUPES4.label == "W4A16-nupes" and NUPES4.needs_calibration
    assert QuantSpec.from_dict(NUPES4.to_dict()) == NUPES4
    assert replace(NUPES4, weight_granularity="per_group", group_size=32).label == \
        "W4g32A16-nupes"
    for bad in ({"act_bits": 8, "act_mode": "dynamic"}, {"weight_bits": 16},
                {"weight_symmetric": False}):
        with pytest.raises(ValueError, match="weight_format='nupes' needs"):
            replace(NUPES4, **bad)
    with pytest.raises(ValueError, match="weight_format='log'"):
        replace(NUPES4, weight_format="log")
