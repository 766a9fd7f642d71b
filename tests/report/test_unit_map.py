"""The per-unit map of a plan."""

from __future__ import annotations

from mixprec.quant.plan import Plan
from mixprec.quant.spec import QuantSpec
from mixprec.report.unit_map import plan_summary, unit_map

FP32 = QuantSpec(weight_bits=16, act_bits=16, act_mode="none")
W8 = QuantSpec(weight_bits=8, act_bits=8, act_mode="static")


def test_units_are_laid_out_by_block_and_role():
    plan = Plan((("patch_embed.proj", FP32), ("blocks.0.attn.qkv", W8),
                 ("blocks.0.mlp.fc1", FP32), ("blocks.1.attn.qkv", FP32), ("head", W8)))
    grid = unit_map(plan)
    assert grid.blocks == ("stem", "blocks.0", "blocks.1", "head")
    assert grid.roles == ("patch_embed.proj", "attn.qkv", "mlp.fc1", "head")
    assert grid.labels[1] == ("", W8.label, FP32.label, "")
    assert grid.units[2] == ("", "blocks.0.mlp.fc1", "", "")
    assert grid.labels[3][3] == W8.label


def test_swin_stages_are_separate_blocks():
    plan = Plan((("layers.0.blocks.1.attn.qkv", W8), ("layers.1.blocks.1.attn.qkv", FP32)))
    assert unit_map(plan).blocks == ("layers.0.blocks.1", "layers.1.blocks.1")


def test_summary_counts_specs_most_common_first():
    plan = Plan((("a", W8), ("b", W8), ("c", FP32)))
    assert plan_summary(plan) == f"{W8.label} x2, {FP32.label} x1"
