"""Token-split int8 linears on the CPU: each image's outlier tokens in float or with a scale
of their own, the rest int8, as the simulation computes them."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from mixprec.kernels.cpu import Int8Gemm, TokenSplitInt8Gemm, exact_backends
from mixprec.quant import QuantSpec, TokenSplit
from mixprec.quant.modules import ActQuant, FakeQuantLinear
from mixprec.quant.token_split import (
    TokenGroup,
    high_token_mask,
    high_token_rows,
    token_importance,
)
from tests.helpers import observer, sqnr

SQNR_DB = 35.0
FLOAT_TOKENS = TokenSplit(fraction=0.1, high_bits=16)


def split(bits: int, mode: str, granularity: str | None = None,
          tokens: TokenSplit = FLOAT_TOKENS) -> QuantSpec:
    return QuantSpec(weight_bits=8, act_bits=bits, act_mode=mode, act_granularity=granularity,
                     token_split=tokens)


def own_scale(bits: int, mode: str, granularity: str | None = None) -> QuantSpec:
    """High tokens on the same grid with a scale of their own."""
    return split(bits, mode, granularity, TokenSplit(fraction=0.1, high_bits=bits))


def fixed(bits: int, mode: str, high_bits: int, granularity: str | None = None) -> QuantSpec:
    """High tokens at fixed calibrated positions."""
    return split(bits, mode, granularity, TokenSplit(0.1, high_bits, "positions"))


SPECS = [split(8, "static"), split(8, "dynamic"), split(8, "dynamic", "per_tensor"),
         split(7, "static"), split(7, "dynamic"), own_scale(8, "static"),
         own_scale(8, "dynamic", "per_tensor"), own_scale(7, "static"),
         fixed(8, "static", 16), fixed(8, "dynamic", 16), fixed(8, "static", 8),
         fixed(7, "dynamic", 7, "per_tensor")]


def outlier_tokens(batch: int, tokens: int, channels: int = 96) -> torch.Tensor:
    """Activations with a few tokens per image carrying large outliers (a ViT's CLS and
    register-like tokens), at different positions in each image."""
    gen = torch.Generator().manual_seed(batch * 1000 + tokens)
    x = torch.randn(batch, tokens, channels, generator=gen)
    for b in range(batch):
        x[b, 0] *= 20.0  # the CLS token
        x[b, (3 * b + 5) % tokens, : channels // 4] += 60.0
    return x


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.label)
@pytest.mark.parametrize("batch,tokens", [(1, 17), (3, 50), (2, 197)])
def test_token_split_linear_agrees_with_its_simulation(spec, batch, tokens):
    backends = exact_backends(spec.act_bits)
    if not backends:
        pytest.skip(f"no exact int8 path here for {spec.act_bits}-bit activations")
    torch.manual_seed(0)
    linear = nn.Linear(96, 40)
    x = outlier_tokens(batch, tokens)
    calib = outlier_tokens(4, tokens)
    sim = FakeQuantLinear(linear, spec, observer(calib))
    for backend in backends:
        real = TokenSplitInt8Gemm(copy.deepcopy(linear), spec, observer(calib), backend)
        with torch.inference_mode():
            assert sqnr(real(x), sim(x)) >= SQNR_DB, backend
            assert sqnr(real(x[:, 0]), sim(x[:, 0])) >= SQNR_DB, backend  # no token axis


@pytest.mark.parametrize("high_bits", [16, 8])
def test_the_outlier_tokens_run_apart_and_the_others_get_a_finer_scale(high_bits):
    backend = exact_backends(8)[0]
    torch.manual_seed(0)
    linear = nn.Linear(96, 40)
    x, calib = outlier_tokens(3, 50), outlier_tokens(4, 50)
    spec = split(8, "static", tokens=TokenSplit(0.1, high_bits))
    real = TokenSplitInt8Gemm(copy.deepcopy(linear), spec, observer(calib), backend)
    plain = Int8Gemm(copy.deepcopy(linear), QuantSpec(weight_bits=8, act_bits=8,
                                                      act_mode="static"), observer(calib),
                     backend)
    with torch.inference_mode():
        got = real(x).reshape(-1, 40)
        float_out = nn.functional.linear(x, real.dequantized(), linear.bias).reshape(-1, 40)
        high = high_token_rows(token_importance(x), spec.token_split.fraction)
        if high_bits == 16:  # float: the float GEMM's result
            assert torch.allclose(got[high], float_out[high], atol=1e-4)
        low = torch.ones(len(got), dtype=torch.bool).index_fill_(0, high, False)
        # the low group's own scale is finer than one covering the outliers
        err_split = (got[low] - float_out[low]).abs().mean()
        err_plain = (plain(x).reshape(-1, 40)[low] - float_out[low]).abs().mean()
        assert err_split < err_plain / 4


def test_each_image_selects_its_own_tokens():
    x = outlier_tokens(3, 50)
    mask = high_token_mask(x, 0.1).squeeze(-1)
    assert mask.sum(dim=-1).tolist() == [5, 5, 5]
    assert all(mask[b, (3 * b + 5) % 50] and mask[b, 0] for b in range(3))
    rows = high_token_rows(token_importance(x), 0.1)
    assert torch.equal(torch.sort(rows).values, torch.nonzero(mask.reshape(-1)).squeeze(-1))


def test_simulated_high_tokens_are_float_and_dynamic_groups_take_their_own_range():
    x = outlier_tokens(2, 50)
    spec = split(8, "dynamic", "per_tensor")
    out = ActQuant(spec)(x)
    mask = high_token_mask(x, FLOAT_TOKENS.fraction)
    assert torch.equal(out[mask.expand_as(x)], x[mask.expand_as(x)])
    low = x.masked_fill(mask, 0.0)
    step = low.abs().max() / 127  # the low tokens' range, not the outliers'
    grid = out.masked_fill(mask, 0.0) / step
    assert torch.allclose(grid, grid.round(), atol=1e-3)


def test_fixed_positions_are_the_calibration_images_recurring_outliers():
    calib = outlier_tokens(4, 50)
    calib[:, 7, :8] += 30.0  # an outlier position every image shares
    obs = observer(calib)
    # CLS and the shared position (high in every image), then three of the positions high
    # in one image each (ranked by their mean abs-max)
    positions = obs.high_positions(0.1)
    assert len(positions) == 5 and {0, 7} < set(positions.tolist()) <= {0, 5, 7, 8, 11, 14}
    assert torch.equal(positions, positions.sort().values)
    spec = fixed(8, "static", 16)
    sim = ActQuant(spec, obs)
    x = outlier_tokens(2, 50)
    mask = sim.fixed_positions.mask(x).squeeze(-1)
    assert torch.nonzero(mask).squeeze(-1).tolist() == positions.tolist()
    out = sim(x)
    assert torch.equal(out[:, positions], x[:, positions])  # float, at every image
    with pytest.raises(ValueError, match="calibrated on inputs of 50 tokens; this input has 49"):
        sim(x[:, 1:])
    real = TokenSplitInt8Gemm(nn.Linear(96, 40), spec, obs, exact_backends(8)[0])
    with pytest.raises(ValueError, match="inputs of 50 tokens; this input has 17"):
        real(outlier_tokens(1, 17))


def test_split_groups_get_the_exact_range_of_their_calibration_tokens():
    calib = outlier_tokens(4, 50)
    obs = observer(calib)
    per_image = TokenSplit(0.1, 8)
    low = calib.masked_fill(high_token_mask(calib, 0.1), 0.0)
    scale, _ = obs.qparams(8, True, group=TokenGroup(per_image, high=False))
    assert torch.isclose(scale, low.abs().max() / 127)
    scale, _ = obs.qparams(8, True, group=TokenGroup(per_image, high=True))
    assert torch.isclose(scale, calib.abs().max() / 127)
    positions = obs.high_positions(0.1)
    at = TokenGroup(TokenSplit(0.1, 8, "positions"), high=False)
    rest = torch.ones(50, dtype=torch.bool).index_fill_(0, positions, False)
    assert torch.isclose(obs.qparams(8, True, group=at)[0], calib[:, rest].abs().max() / 127)


def test_positions_need_one_token_count_at_calibration():
    obs = observer(outlier_tokens(2, 50))
    obs.observe(outlier_tokens(2, 49))
    with pytest.raises(ValueError, match=r"had \[49, 50\] tokens: no fixed token count"):
        ActQuant(fixed(8, "dynamic", 16, "per_tensor"), obs)
    with pytest.raises(RuntimeError, match="need calibration data"):
        ActQuant(fixed(8, "dynamic", 16, "per_tensor"))


def test_splits_neither_form_takes_are_refused():
    wider = QuantSpec(weight_bits=8, act_bits=7, act_mode="dynamic",
                      token_split=TokenSplit(0.1, 8))
    per_token = QuantSpec(weight_bits=8, act_bits=8, act_mode="dynamic",
                          token_split=TokenSplit(0.1, 8))
    for spec in (wider, per_token):
        with pytest.raises(ValueError, match="float or share the grid"):
            TokenSplitInt8Gemm(nn.Linear(8, 4), spec, None, "int_mm")
