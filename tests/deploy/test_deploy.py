"""deploy(): the real quantized embedded model agrees with its fake-quant simulation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mixprec import deploy
from mixprec.kernels import cpu_fingerprint
from mixprec.kernels.cpu import (
    CpuAttention,
    FloatCast,
    Int8Gemm,
    TokenSplitInt8Gemm,
    WeightOnlyInt4Gemm,
    exact_backends,
)
from mixprec.kernels.cpu.chains import Int8MlpChain
from mixprec.kernels.cpu.exactness import int_mm_exact
from mixprec.kernels.registry import kernel_for
from mixprec.quant import Plan, QuantSpec, TokenSplit, calibrate, simulate
from tests.helpers import sqnr

SQNR_DB = 35.0
TOP1_GAP = 0.003
W8A8_STATIC = QuantSpec(weight_bits=8, act_bits=8, act_mode="static")
W8A8_DYNAMIC = QuantSpec(weight_bits=8, act_bits=8, act_mode="dynamic")
BF16 = QuantSpec(weight_bits=16, act_bits=16, act_mode="none", float_dtype="bfloat16")
W8A16 = QuantSpec(weight_bits=8, act_bits=16, act_mode="none", float_dtype="bfloat16")
W4A16 = QuantSpec(weight_bits=4, act_bits=16, act_mode="none", weight_granularity="per_group",
                  group_size=32)
FP32 = QuantSpec(weight_bits=16, act_bits=16, act_mode="none")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Run single-threaded: on a shared 2-core machine OpenMP barriers spin when another job
    holds a core, which makes whole-model passes tens of times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def stats(mnist_model, mnist_units, mnist_calib):
    return calibrate(mnist_model, mnist_units, mnist_calib)


def here(unit, spec: QuantSpec) -> QuantSpec:
    """``spec`` where this CPU runs it exactly, else fp32 (int8 attention needs an exact
    ``torch._int_mm``: not on the forced no-VNNI path)."""
    return spec if kernel_for(unit.kind, spec, "cpu") is not None else FP32


def uniform(units, spec: QuantSpec) -> Plan:
    return Plan.uniform(units, spec).replace({u.name: here(u, spec) for u in units})


def mixed_plan(units) -> Plan:
    """Static and dynamic int8, weight-only int4/int8, bf16, fp32 and mixed attention."""
    specs = []
    for i, unit in enumerate(units):
        if unit.kind == "conv_gemm":
            spec = BF16
        elif unit.kind == "attn_qk":
            spec = W8A8_DYNAMIC if i % 2 else W8A8_STATIC
        elif unit.kind == "attn_pv":
            spec = BF16 if "blocks.0." in unit.name else W8A8_STATIC
        elif unit.name == "head":
            spec = FP32
        elif unit.name.endswith("fc2"):
            spec = W4A16
        elif unit.name.endswith("proj"):
            spec = W8A16
        else:
            spec = W8A8_STATIC if "blocks.1." in unit.name else W8A8_DYNAMIC
        specs.append((unit.name, here(unit, spec)))
    return Plan(tuple(specs), units.model_id, units.input_shape)


def top1(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.inference_mode():
        return (model(x).argmax(-1) == y).float().mean().item()


def _plans(units) -> dict[str, Plan]:
    return {"w8a8_static": uniform(units, W8A8_STATIC),
            "w8a8_dynamic": uniform(units, W8A8_DYNAMIC),
            "mixed": mixed_plan(units)}


@pytest.mark.parametrize("name", ["w8a8_static", "w8a8_dynamic", "mixed"])
def test_top1_matches_simulation(name, mnist_model, mnist_units, mnist_calib, mnist_test, stats):
    plan = _plans(mnist_units)[name]
    x, y = mnist_test
    kw = {"units": mnist_units, "stats": stats}
    real = deploy(mnist_model, plan, device="cpu", calib=mnist_calib, **kw)
    sim = simulate(mnist_model, plan, mnist_calib, **kw)
    assert abs(top1(real, x, y) - top1(sim, x, y)) <= TOP1_GAP
    if name != "mixed":
        assert not any(type(m) is nn.Linear for m in real.modules())


@pytest.mark.parametrize("spec", [W8A8_STATIC, W8A8_DYNAMIC, BF16, W8A16, W4A16],
                         ids=lambda s: s.label)
def test_every_unit_agrees_with_its_simulation(spec, mnist_model, mnist_units, mnist_calib,
                                               mnist_test, stats):
    """Each unit's module (attention: the whole attention module) gets the simulated model's
    input and must reproduce the simulated output within 35 dB."""
    attention = spec.quantizes_acts
    plan = uniform([u for u in mnist_units if attention or not u.is_attention], spec)
    kw = {"units": mnist_units, "stats": stats}
    real = deploy(mnist_model, plan, calib=mnist_calib, **kw)
    sim = simulate(mnist_model, plan, mnist_calib, **kw)
    names = sorted({u.module_name for u in mnist_units if u.name in plan})
    inputs = _capture_inputs(sim, names, mnist_test[0][:32])
    real_mods, sim_mods = dict(real.named_modules()), dict(sim.named_modules())
    with torch.inference_mode():
        for name in names:
            got, want = real_mods[name](inputs[name]), sim_mods[name](inputs[name])
            assert sqnr(got, want) >= SQNR_DB, name


def _capture_inputs(model: nn.Module, names: list[str], x: torch.Tensor
                    ) -> dict[str, torch.Tensor]:
    inputs: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    handles = [modules[n].register_forward_pre_hook(
        lambda mod, args, n=n: inputs.setdefault(n, args[0])) for n in names]
    with torch.inference_mode():
        model(x)
    for h in handles:
        h.remove()
    return inputs


@pytest.mark.parametrize("mode,high_bits,selection", [
    ("static", 16, "per_image"), ("dynamic", 16, "per_image"), ("static", 8, "per_image"),
    ("static", 16, "positions"), ("static", 8, "positions")])
def test_token_split_plans_match_their_simulation(mode, high_bits, selection, mnist_model,
                                                  mnist_units, mnist_calib, mnist_test, stats):
    """Every linear int8 with each image's outlier tokens (an eighth; or fixed positions) in
    float or with their own scale; the head's input (the CLS token alone, no token axis) is
    all high."""
    spec = QuantSpec(weight_bits=8, act_bits=8, act_mode=mode,
                     token_split=TokenSplit(0.125, high_bits, selection))
    plan = Plan.uniform(mnist_units, FP32).replace(
        {u.name: spec for u in mnist_units if u.kind == "linear"})
    x, y = mnist_test
    kw = {"units": mnist_units, "stats": stats}
    real = deploy(mnist_model, plan, calib=mnist_calib, **kw)
    sim = simulate(mnist_model, plan, mnist_calib, **kw)
    assert abs(top1(real, x, y) - top1(sim, x, y)) <= 1 / len(y)
    mods = dict(real.named_modules())
    assert isinstance(mods["blocks.0.mlp.fc2"], TokenSplitInt8Gemm)
    assert real.deploy_report.kernels["blocks.0.mlp.fc2"] == "w8a8_token_split"
    with pytest.raises(ValueError, match=r"unit 'blocks\.0\.attn\.qkv'.*no kernel.*-t12(pos)?@"):
        deploy(mnist_model, plan, calib=mnist_calib, runtime="onnxruntime", **kw)


def test_deploy_builds_the_kernels_the_plan_names(mnist_model, mnist_units, mnist_calib, stats):
    real = deploy(mnist_model, mixed_plan(mnist_units), calib=mnist_calib, units=mnist_units,
                  stats=stats)
    mods = dict(real.named_modules())
    assert isinstance(mods["patch_embed.proj"], FloatCast)
    assert isinstance(mods["blocks.0.mlp.fc2"], WeightOnlyInt4Gemm)
    assert isinstance(mods["blocks.1.mlp.fc1"], Int8Gemm)
    assert type(mods["head"]) is nn.Linear  # kept in fp32
    assert isinstance(mods["blocks.0.attn.mixprec_attn_quant"], CpuAttention)
    report = real.deploy_report
    assert report.device == "cpu" and report.runtime == "torch"
    assert report.kernels["blocks.0.mlp.fc2"] == "w4a16" and "head" not in report.kernels
    assert report.backends["blocks.1.mlp.fc1"] in exact_backends(8)
    assert report.cpu == cpu_fingerprint().key


def test_input_model_is_untouched(mnist_model, mnist_units, mnist_calib, stats):
    before = {k: v.clone() for k, v in mnist_model.state_dict().items()}
    types = [type(m) for m in mnist_model.modules()]
    deploy(mnist_model, uniform(mnist_units, W8A8_DYNAMIC), calib=mnist_calib,
           units=mnist_units, stats=stats)
    assert [type(m) for m in mnist_model.modules()] == types
    assert all(torch.equal(before[k], v) for k, v in mnist_model.state_dict().items())


def test_spec_without_kernel_names_unit_and_device(mnist_model, mnist_units, mnist_calib):
    w4a8 = QuantSpec(weight_bits=4, act_bits=8, act_mode="dynamic")
    with pytest.raises(ValueError, match=r"unit 'patch_embed\.proj'.*W4A8.*'cpu'"):
        deploy(mnist_model, Plan.uniform(mnist_units, w4a8), calib=mnist_calib,
               units=mnist_units)
    with pytest.raises(ValueError, match=r"unit 'patch_embed\.proj'.*W4A8.*'xeon'"):
        deploy(mnist_model, Plan.uniform(mnist_units, w4a8), device="xeon", calib=mnist_calib,
               units=mnist_units)
    with pytest.raises(ValueError, match=r"unit 'patch_embed\.proj'.*'a15'"):
        deploy(mnist_model, Plan.uniform(mnist_units, BF16), device="a15", calib=mnist_calib,
               units=mnist_units)
    with pytest.raises(ValueError, match="unknown device"):
        deploy(mnist_model, Plan.uniform(mnist_units, BF16), device="tpu", calib=mnist_calib)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_a100_without_cuda_is_an_error(mnist_model, mnist_units, mnist_calib, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    fp16 = QuantSpec(weight_bits=16, act_bits=16, act_mode="none", float_dtype="float16")
    with pytest.raises(RuntimeError, match="needs a CUDA device"):
        deploy(mnist_model, Plan.uniform(mnist_units, fp16), device="a100", calib=mnist_calib,
               units=mnist_units)
    with pytest.raises(ValueError, match=r"unit 'patch_embed\.proj'.*'a100'"):
        deploy(mnist_model, Plan.uniform(mnist_units, W8A8_DYNAMIC), device="a100",
               calib=mnist_calib, units=mnist_units)


@pytest.mark.skipif(not int_mm_exact(), reason="torch._int_mm saturates on this CPU")
def test_a15_plan_runs_here_on_the_portable_int8_backend(mnist_model, mnist_units, mnist_calib,
                                                         mnist_test, stats):
    plan = uniform(mnist_units, W8A8_STATIC)
    kw = {"calib": mnist_calib, "units": mnist_units, "stats": stats}
    arm = deploy(mnist_model, plan, device="a15", backend="int_mm", **kw)
    here = deploy(mnist_model, plan, device="cpu", **kw)
    assert set(arm.deploy_report.backends.values()) == {"int_mm"}
    with torch.inference_mode():
        assert sqnr(arm(mnist_test[0][:16]), here(mnist_test[0][:16])) >= 45.0


def test_a_backend_that_is_not_exact_here_is_refused(mnist_model, mnist_units, mnist_calib,
                                                     stats, monkeypatch):
    from mixprec.deploy import build

    monkeypatch.setattr(build, "exact_backends", lambda bits: ("onednn_split",))
    with pytest.raises(ValueError, match=r"backend 'onednn' is not exact.*8-bit"):
        deploy(mnist_model, uniform(mnist_units, W8A8_STATIC), calib=mnist_calib,
               units=mnist_units, stats=stats, backend="onednn")


def test_static_mlp_chains_run_fused_and_agree(mnist_model, mnist_units, mnist_calib,
                                               mnist_test, stats):
    plan = uniform(mnist_units, W8A8_STATIC)
    kw = {"calib": mnist_calib, "units": mnist_units, "stats": stats}
    fused = deploy(mnist_model, plan, **kw)
    plain = deploy(mnist_model, plan, fuse_chains=False, **kw)
    sim = simulate(mnist_model, plan, mnist_calib, units=mnist_units, stats=stats)
    mlps = [f"blocks.{i}.mlp" for i in range(len(mnist_model.blocks))]
    if "onednn" not in exact_backends(8):
        assert fused.deploy_report.fused == ()  # fc1 runs as split GEMMs: nothing to fuse
        return
    assert list(fused.deploy_report.fused) == mlps and plain.deploy_report.fused == ()
    assert isinstance(dict(fused.named_modules())["blocks.0.mlp"], Int8MlpChain)
    inputs = _capture_inputs(sim, mlps, mnist_test[0][:32])
    real_mods, sim_mods = dict(fused.named_modules()), dict(sim.named_modules())
    with torch.inference_mode():
        for name in mlps:
            assert sqnr(real_mods[name](inputs[name]), sim_mods[name](inputs[name])) >= SQNR_DB
    x, y = mnist_test
    assert abs(top1(fused, x, y) - top1(sim, x, y)) <= TOP1_GAP


def test_a_dynamic_fc2_is_not_fused(mnist_model, mnist_units, mnist_calib, stats):
    plan = uniform(mnist_units, W8A8_STATIC).replace(
        {u.name: W8A8_DYNAMIC for u in mnist_units if u.name.endswith("fc2")})
    real = deploy(mnist_model, plan, calib=mnist_calib, units=mnist_units, stats=stats)
    assert real.deploy_report.fused == ()


def test_nupes_plan_matches_its_simulation(mnist_model, mnist_units, mnist_calib, mnist_test,
                                           stats):
    """NUPES 4-bit weights on every linear and the patch embedding: each layer's exponent is
    fitted on the same calibration rows in both, so the deployed model computes the
    simulation's weights; ONNX Runtime has no kernel for them."""
    nupes = QuantSpec(weight_bits=4, act_bits=16, act_mode="none", weight_format="nupes")
    plan = Plan.uniform(mnist_units, FP32).replace(
        {u.name: nupes for u in mnist_units if not u.is_attention})
    x, y = mnist_test
    kw = {"units": mnist_units, "stats": stats}
    real = deploy(mnist_model, plan, calib=mnist_calib, **kw)
    sim = simulate(mnist_model, plan, mnist_calib, **kw)
    assert real.deploy_report.kernels["blocks.0.mlp.fc1"] == "nupes"
    with torch.inference_mode():
        assert sqnr(real(x[:64]), sim(x[:64])) >= 80.0
    assert top1(real, x, y) == top1(sim, x, y)
    exponents = {m.exponent for m in real.modules() if hasattr(m, "exponent")}
    assert len(exponents) > 1  # fitted per layer
    with pytest.raises(ValueError, match=r"unit 'patch_embed\.proj'.*W4A16-nupes"):
        deploy(mnist_model, plan, calib=mnist_calib, runtime="onnxruntime", **kw)
