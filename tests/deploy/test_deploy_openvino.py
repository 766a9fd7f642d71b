"""deploy(runtime="openvino"): the plan as a quantize-dequantize ONNX graph compiled by
OpenVINO's CPU plugin agrees with simulate() on the embedded model (output SQNR >= 30 dB,
top-1 within 0.3 point), runs its static units in int8, and refuses what it cannot run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from mixprec import deploy, kernels
from mixprec.quant import Plan, QuantSpec, calibrate, simulate
from tests.helpers import deployed_against_simulated, sqnr

pytest.importorskip("openvino")

from mixprec.deploy.openvino_runtime import OvModel, int8_layers  # noqa: E402
from mixprec.kernels.ov.exactness import ov_int8_exact  # noqa: E402

SQNR_DB = 30.0
TOP1_GAP = 0.003
FP32 = QuantSpec(weight_bits=16, act_bits=16, act_mode="none")


@pytest.fixture(scope="module")
def stats(mnist_model, mnist_units, mnist_calib):
    return calibrate(mnist_model, mnist_units, mnist_calib)


def integer_spec() -> QuantSpec:
    """The static spec OpenVINO runs exactly here (8-bit activations, or 7-bit without
    VNNI)."""
    return [s for s in kernels.candidates("cpu", "linear", "openvino") if s.quantizes_acts][0]


def integer_plan(units) -> Plan:
    """That spec on every unit whose kind OpenVINO runs it for (attention: 8-bit only)."""
    spec = integer_spec()
    return Plan.uniform(units, FP32).replace(
        {u.name: spec for u in units if kernels.kernel_for(u.kind, spec, "cpu", "openvino")})


@pytest.mark.parametrize("name", ["uniform", "mixed", "attention float"])
def test_openvino_agrees_with_simulation(name, mnist_model, mnist_units, mnist_calib,
                                         mnist_test, stats):
    uniform = integer_plan(mnist_units)
    plans = {"uniform": uniform,
             "mixed": uniform.replace({u.name: FP32 for u in mnist_units[1::2]}),
             "attention float": uniform.replace(
                 {u.name: FP32 for u in mnist_units if u.is_attention})}
    plan = plans[name]
    real, found = deployed_against_simulated(mnist_model, plan, mnist_calib, mnist_test,
                                             "openvino", units=mnist_units, stats=stats)
    assert isinstance(real, OvModel)
    assert found["sqnr"] >= SQNR_DB and found["top1_gap"] <= TOP1_GAP
    gemms = [u for u in mnist_units if not u.is_attention and not plan[u.name].is_float]
    assert int8_layers(real) >= len(gemms)  # every quantized GEMM runs in int8
    report = real.deploy_report
    assert report.runtime == "openvino" and set(report.backends) == {u.name for u in gemms}


@pytest.mark.parametrize("spec, stored", [
    (QuantSpec(weight_bits=4, act_bits=16, act_mode="none", weight_granularity="per_group",
               group_size=32), "i4"),
    (QuantSpec(weight_bits=4, act_bits=16, act_mode="none", weight_granularity="per_group",
               group_size=64, weight_symmetric=False), "u4"),
    (QuantSpec(weight_bits=8, act_bits=16, act_mode="none"), "i8")])
def test_weight_only_specs_run_as_compressed_weights(spec, stored, mnist_model, mnist_units,
                                                     mnist_calib, mnist_test):
    from mixprec.kernels.ov.plugin import int8_layer_count

    linears = [u for u in mnist_units if u.kind == "linear"]
    plan = Plan.uniform(mnist_units, FP32).replace({u.name: spec for u in linears})
    real = deploy(mnist_model, plan, calib=mnist_calib, units=mnist_units, runtime="openvino")
    x = mnist_test[0][:200]
    with torch.inference_mode():
        want = simulate(mnist_model, plan, mnist_calib, units=mnist_units)(x)
    assert sqnr(real(x), want) >= 60.0  # float32 activations: the same sums in another order
    compiled = next(iter(real.compiled.values()))
    layers = [op.get_rt_info() for op in compiled.get_runtime_model().get_ops()]
    fused = [i for i in layers if i["layerType"].astype(str) == "FullyConnected"
             and i["runtimePrecision"].astype(str) == stored]
    assert len(fused) == len(linears)  # decompressed inside each fully connected layer
    assert stored != "i8" or int8_layer_count(compiled) == len(linears)


def test_float_plan_equals_the_float_model(mnist_model, mnist_units, mnist_calib, mnist_test):
    real = deploy(mnist_model, Plan.uniform(mnist_units, FP32), calib=mnist_calib,
                  units=mnist_units, runtime="openvino")
    x = mnist_test[0][:64]
    with torch.inference_mode():
        want = mnist_model(x)
    assert sqnr(real(x), want) >= 60.0 and int8_layers(real) == 0


def test_each_batch_size_compiles_once_and_the_file_reloads(mnist_model, mnist_units,
                                                            mnist_calib, mnist_test, stats,
                                                            tmp_path):
    real = deploy(mnist_model, integer_plan(mnist_units), calib=mnist_calib,
                  units=mnist_units, stats=stats, runtime="openvino", threads=1)
    x = mnist_test[0]
    first, again = real(x[:3]), real(x[:3])
    real(x[:5])
    assert torch.equal(first, again) and len(real.compiled) == 2
    path = real.save(tmp_path / "plan.onnx")
    reloaded = OvModel(path.read_bytes(), real.inputs, threads=1)
    assert torch.equal(reloaded(x[:3]), first)


def test_what_openvino_cannot_run_is_refused_by_name(mnist_model, mnist_units, mnist_calib):
    dynamic = QuantSpec(weight_bits=8, act_bits=8, act_mode="dynamic")
    with pytest.raises(ValueError, match=r"unit 'patch_embed\.proj'.*runtime 'openvino'"):
        deploy(mnist_model, Plan.uniform(mnist_units, dynamic), calib=mnist_calib,
               units=mnist_units, runtime="openvino")
    with pytest.raises(ValueError, match="runtime 'openvino' runs on the devices"):
        deploy(mnist_model, Plan.uniform(mnist_units, FP32), device="a15", calib=mnist_calib,
               units=mnist_units, runtime="openvino")


def test_int8_is_offered_only_where_the_probe_finds_it_exact():
    offered = {s.act_bits for s in kernels.candidates("cpu", "linear", "openvino")
               if s.quantizes_acts}
    assert offered == ({8} if ov_int8_exact(8) else {7} if ov_int8_exact(7) else set())


def test_without_vnni_8_bit_saturates_and_7_bit_stays_exact():
    """On oneDNN's AVX2 path (OpenVINO's plugin honours the cap), 8-bit activations
    saturate the 16-bit pair sums; 7-bit ones, carried as u8 below 128, do not; a plan of
    the spec offered there still agrees with the simulation."""
    script = textwrap.dedent("""
        import json, torch
        from mixprec import data, deploy, kernels, quant
        from mixprec.kernels.ov.exactness import ov_int8_exact
        from tests.helpers import deployed_against_simulated, sqnr
        model = data.mnist_vit("mnist-vit-small")
        x = data.mnist("test")[0][:200]
        calib = data.mnist("train")[0][:128]
        units = quant.discover_units(model, x[:1])
        specs = [s for s in kernels.candidates("cpu", "linear", "openvino") if s.quantizes_acts]
        plan = quant.Plan.uniform(units, specs[0]).replace(
            {u.name: quant.QuantSpec(16, 16, "none") for u in units if u.is_attention})
        with torch.inference_mode():
            want = quant.simulate(model, plan, calib, units=units)(x)
        got = deploy(model, plan, calib=calib, units=units, runtime="openvino")(x)
        print(json.dumps({"exact": [ov_int8_exact(8), ov_int8_exact(7)],
                          "bits": specs[0].act_bits, "sqnr": sqnr(got, want)}))
    """)
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["exact"] == [False, True] and found["bits"] == 7
    assert found["sqnr"] >= SQNR_DB
