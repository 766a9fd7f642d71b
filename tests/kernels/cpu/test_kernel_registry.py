"""The device kernel registry: what runs where, and errors naming unit and device."""

from __future__ import annotations

import pytest

from mixprec.kernels.registry import DEVICES, check_deployable, kernel_for
from mixprec.quant import QuantSpec, Unit

LINEAR = Unit("blocks.0.mlp.fc1", "linear", 50, 96, 192, params=96 * 192)
QK = Unit("blocks.0.attn.qk", "attn_qk", 50, 32, 50, groups=3, heads=3)


@pytest.mark.parametrize(("spec", "kernel"), [
    (QuantSpec(weight_bits=16, act_bits=16, act_mode="none"), "float32"),
    (QuantSpec(weight_bits=16, act_bits=16, act_mode="none", float_dtype="bfloat16"), "bfloat16"),
    (QuantSpec(weight_bits=8, act_bits=8, act_mode="static"), "w8a8"),
    (QuantSpec(weight_bits=8, act_bits=8, act_mode="dynamic"), "w8a8"),
    (QuantSpec(weight_bits=8, act_bits=16, act_mode="none"), "w8a16"),
    (QuantSpec(weight_bits=4, act_bits=16, act_mode="none", weight_granularity="per_group",
               group_size=64), "w4a16"),
])
def test_xeon_runs_its_candidates(spec, kernel):
    assert kernel_for("linear", spec, "xeon").name == kernel


def test_int8_attention_on_cpus():
    spec = QuantSpec(weight_bits=16, act_bits=8, act_mode="dynamic")
    for device in ("xeon", "a15"):
        assert check_deployable(QK, spec, device).name == "int8_attention"


@pytest.mark.parametrize(("spec", "device"), [
    (QuantSpec(weight_bits=4, act_bits=8, act_mode="static"), "xeon"),
    (QuantSpec(weight_bits=8, act_bits=4, act_mode="dynamic"), "xeon"),
    (QuantSpec(weight_bits=4, act_bits=16, act_mode="none", weight_granularity="per_group",
               group_size=48), "xeon"),
    (QuantSpec(weight_bits=8, act_bits=8, act_mode="static", act_symmetric=False), "xeon"),
    (QuantSpec(weight_bits=16, act_bits=16, act_mode="none", float_dtype="bfloat16"), "a15"),
    (QuantSpec(weight_bits=16, act_bits=16, act_mode="none", float_dtype="float16"), "xeon"),
])
def test_no_kernel_is_an_error_naming_unit_and_device(spec, device):
    with pytest.raises(ValueError, match=rf"'blocks\.0\.mlp\.fc1'.*{spec.label}.*'{device}'"):
        check_deployable(LINEAR, spec, device)


def test_unknown_device():
    with pytest.raises(ValueError, match="unknown device"):
        kernel_for("linear", QuantSpec(), "tpu")
    assert set(DEVICES) == {"xeon", "a15", "a100"}
