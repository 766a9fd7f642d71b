"""The NUPES CPU GEMM computes the simulation's weights bit for bit from packed codes."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from mixprec.kernels.cpu.nupes import NupesGemm
from mixprec.kernels.registry import W4A16_NUPES, candidates, kernel_for
from mixprec.quant.modules import FakeQuantConv2d, FakeQuantLinear
from mixprec.search.problem import stored_bits
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


@pytest.mark.parametrize("bits", [3, 4, 6, 8])
def test_codes_stay_packed_as_the_size_accounting_counts_them(bits):
    linear = nn.Linear(78, 40)
    spec = replace(W4A16_NUPES, weight_bits=bits)
    real = NupesGemm(linear, spec, None)
    assert real.codes.dtype == torch.uint8
    assert real.codes.numel() * 8 == stored_bits(spec) * linear.weight.numel()
    # scales of groups of 32 add a bit per weight; per-channel ones are not counted
    assert stored_bits(replace(spec, weight_granularity="per_group", group_size=32)) == \
        stored_bits(spec) + 1


def test_registry_offers_nupes_in_the_torch_runtime_of_every_cpu_class():
    for device in ("cpu", "xeon", "a15"):
        assert W4A16_NUPES in candidates(device, "linear")
        assert kernel_for("linear", W4A16_NUPES, device).name == "nupes"
    assert kernel_for("linear", replace(W4A16_NUPES, weight_format="uniform"), "cpu").name != \
        "nupes"
    for device, runtime in (("cpu", "onnxruntime"), ("cpu", "openvino"), ("a100", "torch")):
        assert kernel_for("linear", W4A16_NUPES, device, runtime) is None
