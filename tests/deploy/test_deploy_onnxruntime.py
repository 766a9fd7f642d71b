"""deploy(runtime="onnxruntime"): the plan as an ONNX graph in ONNX Runtime agrees with
simulate() on the embedded model (output SQNR >= 30 dB, top-1 within 0.3 point)."""

from __future__ import annotations

import random

import pytest
import torch

from mixprec import deploy, kernels
from mixprec.deploy.onnx_runtime import OrtModel
from mixprec.quant import Plan, QuantSpec, calibrate
from tests.helpers import deployed_against_simulated

pytest.importorskip("onnxruntime")

SQNR_DB = 30.0
TOP1_GAP = 0.003
W8A8_STATIC = QuantSpec(weight_bits=8, act_bits=8, act_mode="static")
W8A8_DYNAMIC = QuantSpec(weight_bits=8, act_bits=8, act_mode="dynamic")
FP32 = QuantSpec(weight_bits=16, act_bits=16, act_mode="none")
W4A8 = QuantSpec(weight_bits=4, act_bits=8, act_mode="dynamic", weight_granularity="per_group",
                 group_size=32, act_granularity="per_group")


@pytest.fixture(scope="module")
def stats(mnist_model, mnist_units, mnist_calib):
    return calibrate(mnist_model, mnist_units, mnist_calib)


def mixed_plan(units) -> Plan:
    """A random draw over every candidate ONNX Runtime offers here, per unit kind."""
    rng = random.Random(5)
    options = {k: kernels.candidates("cpu", kind=k, runtime="onnxruntime")
               for k in ("linear", "conv_gemm", "attn_qk", "attn_pv")}
    return Plan.uniform(units, W8A8_STATIC).replace(
        {u.name: rng.choice(options[u.kind]) for u in units})


@pytest.mark.parametrize("name", ["static", "dynamic", "w4a8", "mixed"])
def test_onnxruntime_agrees_with_simulation(name, mnist_model, mnist_units, mnist_calib,
                                            mnist_test, stats):
    plans = {"static": Plan.uniform(mnist_units, W8A8_STATIC),
             "dynamic": Plan.uniform(mnist_units, W8A8_DYNAMIC),
             "w4a8": Plan.uniform(mnist_units, FP32).replace(
                 {u.name: W4A8 for u in mnist_units if u.kind == "linear"}),
             "mixed": mixed_plan(mnist_units)}
    plan = plans[name]
    real, found = deployed_against_simulated(mnist_model, plan, mnist_calib, mnist_test,
                                             "onnxruntime", units=mnist_units, stats=stats)
    assert isinstance(real, OrtModel)
    assert found["sqnr"] >= SQNR_DB and found["top1_gap"] <= TOP1_GAP
    report = real.deploy_report
    assert report.runtime == "onnxruntime" and report.cpu == kernels.cpu_fingerprint().key
    assert set(report.kernels) == {n for n, s in plan.specs if not (s.is_float and
                                                                    s.float_dtype == "float32")}


def test_the_onnx_file_is_saved_and_runs_on_its_own(mnist_model, mnist_units, mnist_calib,
                                                    mnist_test, stats, tmp_path):
    import onnx

    real = deploy(mnist_model, Plan.uniform(mnist_units, W8A8_DYNAMIC), calib=mnist_calib,
                  units=mnist_units, stats=stats, runtime="onnxruntime")
    path = real.save(tmp_path / "model.onnx")
    onnx.checker.check_model(str(path))
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "MatMulIntegerToFloat", "MatMulInteger"} <= ops
    again = OrtModel(path.read_bytes(), real.inputs, threads=1)
    x = mnist_test[0][:5]  # another batch size than the export's
    assert torch.equal(again(x), real(x))


def test_four_bit_weights_run_in_matmulnbits(mnist_model, mnist_units, mnist_calib, stats):
    import onnx

    w4 = QuantSpec(weight_bits=4, act_bits=16, act_mode="none", weight_granularity="per_group",
                   group_size=32)
    plan = Plan.uniform(mnist_units, FP32).replace(
        {u.name: w4 for u in mnist_units if u.kind == "linear"})
    real = deploy(mnist_model, plan, calib=mnist_calib, units=mnist_units, stats=stats,
                  runtime="onnxruntime")
    ops = [n.op_type for n in onnx.load_from_string(real.onnx_bytes).graph.node]
    assert ops.count("MatMulNBits") == sum(u.kind == "linear" for u in mnist_units)


def test_specs_without_an_onnx_form_are_refused(mnist_model, mnist_units, mnist_calib):
    bf16 = QuantSpec(weight_bits=16, act_bits=16, act_mode="none", float_dtype="bfloat16")
    with pytest.raises(ValueError, match=r"unit 'patch_embed\.proj'.*runtime 'onnxruntime'"):
        deploy(mnist_model, Plan.uniform(mnist_units, bf16), calib=mnist_calib,
               units=mnist_units, runtime="onnxruntime")
    with pytest.raises(ValueError, match="runs on the CPU devices"):
        deploy(mnist_model, Plan.uniform(mnist_units, W8A8_STATIC), device="a100",
               calib=mnist_calib, units=mnist_units, runtime="onnxruntime")


def test_missing_input_is_an_error(mnist_model, mnist_units, mnist_calib, stats):
    real = deploy(mnist_model, Plan.uniform(mnist_units, W8A8_STATIC), calib=mnist_calib,
                  units=mnist_units, stats=stats, runtime="onnxruntime")
    with pytest.raises(ValueError, match="missing model input"):
        real()
