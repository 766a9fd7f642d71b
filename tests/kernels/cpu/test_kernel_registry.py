"""The device kernel registry: what runs where, and errors naming unit and device."""

from __future__ import annotations

import pytest

from mixprec import kernels
from mixprec.kernels.registry import DEVICES, check_deployable, kernel_for
from mixprec.quant import QuantSpec, Unit

W8A8_STATIC = QuantSpec(weight_bits=8, act_bits=8, act_mode="static")
W8A8_DYNAMIC = QuantSpec(weight_bits=8, act_bits=8, act_mode="dynamic")

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
    assert set(DEVICES) == {"cpu", "xeon", "a15", "a100"}
    with pytest.raises(ValueError, match="unknown runtime"):
        kernels.candidates("cpu", runtime="tvm")
    with pytest.raises(ValueError, match="unknown unit kind"):
        kernels.candidates("cpu", kind="lstm")
    with pytest.raises(ValueError, match="runtime 'onnxruntime' runs on the CPU"):
        kernels.candidates("a100", runtime="onnxruntime")


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
@pytest.mark.parametrize("device", ["cpu", "xeon", "a15"])
def test_w8a8_static_and_dynamic_are_always_linear_candidates(device, runtime):
    found = kernels.candidates(device, kind="linear", runtime=runtime)
    assert W8A8_STATIC in found and W8A8_DYNAMIC in found
    assert found[0].is_float and found[0].float_dtype == "float32"
    assert len({c.label for c in found}) == len(found)


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
@pytest.mark.parametrize("kind", ["linear", "conv_gemm", "attn_qk", "attn_pv"])
def test_every_candidate_has_a_kernel_here(kind, runtime):
    for spec in kernels.candidates("cpu", kind=kind, runtime=runtime):
        assert kernel_for(kind, spec, "cpu", runtime) is not None, spec.label


def test_candidates_of_all_kinds_are_the_union():
    union = {c for kind in ("linear", "conv_gemm", "attn_qk", "attn_pv")
             for c in kernels.candidates("a100", kind=kind)}
    assert set(kernels.candidates("a100")) == union


def test_onnxruntime_has_no_bf16_kernel():
    bf16 = QuantSpec(weight_bits=16, act_bits=16, act_mode="none", float_dtype="bfloat16")
    with pytest.raises(ValueError, match=r"'blocks\.0\.mlp\.fc1'.*bfloat16.*runtime 'onnxruntime'"):
        check_deployable(LINEAR, bf16, "cpu", "onnxruntime")
