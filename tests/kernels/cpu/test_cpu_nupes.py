"""The NUPES CPU GEMM computes the simulation's weights bit for bit from packed codes."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from mixprec.kernels.cpu.nupes import NupesGemm
from mixprec.kernels.registry import W4A16_NUPES, candidates, kernel_for
from mixprec.quant.modules import FakeQuantConv2d, FakeQuantLinear
from tests.helpers import observer

SPECS = [W4A16_NUPES, replace(W4A16_NUPES, weight_bits=3), replace(W4A16_NUPES, weight_bits=8),
         replace(W4A16_NUPES, weight_granularity="per_group", group_size=32),
         replace(W4A16_NUPES, weight_granularity="per_group", group_size=48)]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.label)
@pytest.mark.parametrize("in_features", [96, 77])
def test_linear_equals_its_simulation(spec, in_features):
    torch.manual_seed(0)
    linear = nn.Linear(in_features, 40)
    nn.init.normal_(linear.weight, std=0.05)
    x = torch.randn(3, 9, in_features)
    obs = observer(x)
    real, fake = NupesGemm(linear, spec, obs), FakeQuantLinear(linear, spec, obs)
    assert torch.equal(real.dequantized(), fake.weight)
    assert torch.equal(real(x), fake(x))
    assert real.exponent < 1.0  # bell-shaped weights: levels crowd near zero


def test_conv_equals_its_simulation():
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 16, kernel_size=4, stride=4)
    x = torch.randn(2, 3, 16, 16)
    obs = observer(x.flatten(1))
    real, fake = NupesGemm(conv, W4A16_NUPES, obs), FakeQuantConv2d(conv, W4A16_NUPES, obs)
    assert torch.equal(real.weight, fake.weight)  # the GEMMs sum in different orders
    assert torch.allclose(real(x), fake(x), atol=1e-5)


def test_codes_stay_packed():
    linear = nn.Linear(77, 40)
    four = NupesGemm(linear, W4A16_NUPES, None)
    eight = NupesGemm(linear, replace(W4A16_NUPES, weight_bits=8), None)
    assert four.codes.dtype == torch.uint8 and four.codes.shape == (40, 39)
    assert eight.codes.shape == (40, 77)


def test_registry_offers_nupes_on_the_torch_cpu_only():
    assert W4A16_NUPES in candidates("cpu", "linear")
    assert kernel_for("linear", W4A16_NUPES, "cpu").name == "nupes"
    assert kernel_for("linear", replace(W4A16_NUPES, weight_format="uniform"), "cpu").name != \
        "nupes"
    for device, runtime in (("cpu", "onnxruntime"), ("cpu", "openvino"), ("a15", "torch"),
                            ("a100", "torch")):
        assert kernel_for("linear", W4A16_NUPES, device, runtime) is None
