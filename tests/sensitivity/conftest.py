"""Tiny fixtures for the sensitivity tests: a 2-block ViT on 8x8 inputs."""

from __future__ import annotations

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from mixprec import quant
from mixprec.quant import QuantSpec


@pytest.fixture(scope="module")
def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = VisionTransformer(img_size=8, patch_size=4, in_chans=1, num_classes=4,
                              embed_dim=16, depth=2, num_heads=2, mlp_ratio=2.0)
    return model.eval()


@pytest.fixture(scope="module")
def tiny_calib() -> torch.Tensor:
    return torch.randn(12, 1, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def tiny_units(tiny_model, tiny_calib) -> quant.UnitList:
    return quant.discover_units(tiny_model, tiny_calib[:1])


@pytest.fixture(scope="module")
def candidates() -> list[QuantSpec]:
    return [QuantSpec(weight_bits=8, act_bits=8, act_mode="static"),
            QuantSpec(weight_bits=8, act_bits=8, act_mode="dynamic"),
            QuantSpec(weight_bits=4, act_bits=4, act_mode="dynamic"),
            # activation scales per token and weight group: scored on every unit kind
            QuantSpec(weight_bits=4, act_bits=8, act_mode="dynamic",
                      weight_granularity="per_group", group_size=8,
                      act_granularity="per_group"),
            # NUPES weights (fitted on each unit's calibration inputs; attention: float)
            QuantSpec(weight_bits=4, act_bits=16, act_mode="none", weight_format="nupes")]
