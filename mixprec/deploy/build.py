"""deploy(): the real quantized model of a Plan, on the CPU at hand (PyTorch, ONNX Runtime or
OpenVINO runtime) or on an A100-class GPU (Triton)."""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mixprec.deploy.triton_modules import (
    TritonAttention,
    TritonInt8Linear,
    TritonTokenSplitLinear,
    TritonW4A8Linear,
    TritonW4A16Linear,
)
from mixprec.kernels.cpu import (
    CpuAttention,
    FloatCast,
    Int8Gemm,
    TokenSplitInt8Gemm,
    WeightOnlyInt4Gemm,
    WeightOnlyInt8Gemm,
    exact_backends,
)
from mixprec.kernels.cpu.capabilities import cpu_fingerprint
from mixprec.kernels.cpu.chains import fuse_mlp_chains
from mixprec.kernels.cpu.int8 import check_backend
from mixprec.kernels.cpu.nupes import NupesGemm
from mixprec.kernels.registry import CPU_DEVICES, LOCAL_DEVICE, check_deployable, check_device
from mixprec.quant.calibrate import CalibrationStats, calibrate, check_calibration
from mixprec.quant.inputs import ModelInputs, first_samples
from mixprec.quant.modules import is_identity_spec
from mixprec.quant.observers import Observer
from mixprec.quant.plan import Plan
from mixprec.quant.simulate import swap_units
from mixprec.quant.spec import QuantSpec
from mixprec.quant.units import Unit, UnitList, discover_units

logger = logging.getLogger(__name__)

GemmBuilder = Callable[[nn.Module, QuantSpec, Observer | None, str], nn.Module]
CPU_BUILDERS: dict[str, GemmBuilder] = {
    "bfloat16": lambda mod, spec, obs, backend: FloatCast(mod, spec),
    "w8a8": Int8Gemm,
    "w8a7": Int8Gemm,
    "w8a8_token_split": TokenSplitInt8Gemm,
    "w8a7_token_split": TokenSplitInt8Gemm,
    "w8a16": lambda mod, spec, obs, backend: WeightOnlyInt8Gemm(mod, spec),
    "w4a16": lambda mod, spec, obs, backend: WeightOnlyInt4Gemm(mod, spec),
    "nupes": lambda mod, spec, obs, backend: NupesGemm(mod, spec, obs),
}
"""CPU kernel name (mixprec.kernels.registry) -> module replacing a linear / conv unit."""
INT8_GEMM_KERNELS = ("w8a8", "w8a7", "w8a8_token_split", "w8a7_token_split")
"""Kernels that take an int8 GEMM path (a backend, probed exact here)."""
TRITON_BUILDERS: dict[str, GemmBuilder] = {
    "float16": lambda mod, spec, obs, backend: FloatCast(mod, spec),
    "w8a8": lambda mod, spec, obs, backend: TritonInt8Linear(mod, spec, obs),
    "w4a16": lambda mod, spec, obs, backend: TritonW4A16Linear(mod, spec),
    "w4a8": lambda mod, spec, obs, backend: TritonW4A8Linear(mod, spec),
    "w8a4_token_split": lambda mod, spec, obs, backend: TritonTokenSplitLinear(mod, spec),
}
"""``a100`` kernel name -> module (Triton kernels of this project)."""


@dataclass(frozen=True)
class DeployReport:
    """What deploy built.

    Attributes:
        device: target device (``cpu``, a CPU target class, or ``a100``).
        runtime: ``torch``, ``onnxruntime`` or ``openvino``.
        kernels: unit name -> kernel name, for every unit not left in fp32.
        backends: unit name -> int8 GEMM path (``onednn``, ``onednn_split``, ``int_mm``;
            ``onnxruntime`` or ``onnxruntime_split``; ``openvino``), for int8 weight units.
        uncovered: units the model has that the plan does not name (left in float).
        cpu: the fingerprint key of the CPU it was built on (CPU devices).
        fused: MLPs whose static int8 fc1 -> GELU -> fc2 chain runs fused (torch runtime).
    """

    device: str
    runtime: str
    kernels: dict[str, str] = field(default_factory=dict)
    backends: dict[str, str] = field(default_factory=dict)
    uncovered: tuple[str, ...] = ()
    cpu: str = ""
    fused: tuple[str, ...] = ()


def deploy(model: nn.Module, plan: Plan, device: str = LOCAL_DEVICE,
           calib: ModelInputs | None = None, *, runtime: str = "torch", batch_size: int = 64,
           units: UnitList | None = None, stats: CalibrationStats | None = None,
           backend: str | None = None, threads: int | None = None,
           fuse_chains: bool = True) -> Any:
    """The real quantized model of ``plan``; ``model`` is untouched.

    Scales match :func:`mixprec.quant.simulate`: weights use the same integer grid and static
    activation scales come from the same calibration observers. Units the plan keeps in fp32
    (or does not name) keep their float modules. Every kernel computes the simulation's
    integers exactly on this machine (int8 paths are probed: an x86 CPU without VNNI runs
    8-bit activations through saturation-free split GEMMs). The result carries a
    :class:`DeployReport` as ``.deploy_report``.

    Args:
        model: the float model.
        plan: unit name -> spec.
        device: ``cpu`` (this machine), ``xeon`` / ``a15`` (the plan must fit that target
            class too; it runs on this machine), or ``a100`` (Triton kernels; needs CUDA, or
            ``TRITON_INTERPRET=1`` to run them on the CPU).
        calib: calibration inputs (needed for static specs and to discover units; a tuple or
            dict of batched tensors for models with several inputs).
        runtime: ``torch`` (an ``nn.Module``), ``onnxruntime`` (an
            :class:`~mixprec.deploy.onnx_runtime.OrtModel` running an ONNX graph; CPU only)
            or ``openvino`` (an :class:`~mixprec.deploy.openvino_runtime.OvModel`: the graph
            compiled by OpenVINO's CPU plugin; static 8-bit units run in int8, the rest in
            float32).
        batch_size: images per calibration forward pass.
        units: the model's units, if already discovered.
        stats: calibration statistics, if already collected.
        backend: force an int8 GEMM backend of the torch runtime (it must be exact here).
        threads: intra-op threads of the ONNX Runtime session or OpenVINO's CPU plugin
            (default: torch's).
        fuse_chains: run static int8 fc1 -> GELU -> fc2 chains of timm MLPs as one fused
            pass on the CPU (torch runtime; :mod:`mixprec.kernels.cpu.chains`).

    Raises:
        ValueError: unknown device or runtime, a unit's spec has no exact kernel (naming the
            unit, the spec and the device), or a backend that is not exact here.
        RuntimeError: ``a100`` without CUDA (nor the Triton interpreter).
    """
    check_device(device, runtime)
    if backend is not None:
        check_backend(backend)
    if units is None:
        if calib is None:
            raise ValueError("deploy needs calib (or units) to find the model's units")
        units = discover_units(model, first_samples(calib, 1))
    uncovered = plan.check_against(units)
    if uncovered:
        logger.warning("plan leaves %d unit(s) in float: %s", len(uncovered), uncovered[:8])
    active = [u for u in units if u.name in plan and not is_identity_spec(plan[u.name])]
    kernels = {u.name: _kernel(u, plan[u.name], device, runtime) for u in active}
    if device == "a100" and not _triton_runs_here():
        raise RuntimeError("device 'a100': the plan fits its kernels, but the Triton model "
                           "needs a CUDA device (or TRITON_INTERPRET=1)")
    if stats is None:
        stats = _calibrate_static(model, active, plan, calib, batch_size)
    backends = _int8_paths(active, plan, kernels, runtime, backend) if device != "a100" else {}
    if runtime in ("onnxruntime", "openvino"):
        real, fused = _graph_model(model, active, plan, stats, kernels, backends, calib,
                                   threads, runtime), []
    else:
        real, fused = _torch_model(model, active, plan, stats, kernels, backends, device,
                                   fuse_chains)
    cpu = cpu_fingerprint().key if device in CPU_DEVICES else ""
    report = DeployReport(device, runtime, kernels, backends, tuple(uncovered), cpu,
                          tuple(fused))
    real.deploy_report = report
    logger.info("deployed %d unit(s) on %s (%s runtime)", len(active), device, runtime)
    return real


def _kernel(unit: Unit, spec: QuantSpec, device: str, runtime: str) -> str:
    """The kernel of ``unit``; a target-class CPU plan must also run exactly here."""
    kernel = check_deployable(unit, spec, device, runtime)
    if device in CPU_DEVICES and device != LOCAL_DEVICE:
        local = check_deployable(unit, spec, LOCAL_DEVICE, runtime)
        if local.name != kernel.name:
            raise ValueError(f"unit {unit.name!r}: {spec.label} maps to kernel {kernel.name} "
                             f"on {device!r} but to {local.name} on this CPU")
    return kernel.name


def _int8_paths(units: list[Unit], plan: Plan, kernels: dict[str, str], runtime: str,
                forced: str | None) -> dict[str, str]:
    """Unit name -> the exact int8 GEMM path its activations' bit-width takes here."""
    paths = {}
    for unit in units:
        spec = plan[unit.name]
        if unit.is_attention or kernels[unit.name] not in INT8_GEMM_KERNELS:
            continue
        if runtime == "openvino":
            paths[unit.name] = "openvino"  # only exact kernels are in its registry here
            continue
        if runtime == "onnxruntime":
            from mixprec.kernels.ort.exactness import ort_int8_exact

            exact = ort_int8_exact(spec.act_bits)
            paths[unit.name] = "onnxruntime" if exact else "onnxruntime_split"
            continue
        exact = exact_backends(spec.act_bits)
        if forced is not None and forced not in exact:
            raise ValueError(f"int8 backend {forced!r} is not exact on this CPU for "
                             f"{spec.act_bits}-bit activations (unit {unit.name!r}); exact "
                             f"here: {list(exact) or 'none'}")
        paths[unit.name] = forced or exact[0]
    return paths


def _calibrate_static(model: nn.Module, units: list[Unit], plan: Plan,
                      calib: ModelInputs | None, batch_size: int) -> CalibrationStats:
    static = [u for u in units if plan[u.name].needs_calibration]
    if not static:
        return {}
    if calib is None:
        raise ValueError(f"{len(static)} unit(s) have static specs or calibrated token "
                         "positions: deploy needs calib")
    check_calibration(calib)
    return calibrate(model, static, calib, batch_size)


def _torch_model(model: nn.Module, units: list[Unit], plan: Plan, stats: CalibrationStats,
                 kernels: dict[str, str], backends: dict[str, str], device: str,
                 fuse_chains: bool) -> tuple[nn.Module, list[str]]:
    """A copy of ``model`` with this project's modules in place of ``units``."""
    real = copy.deepcopy(model).eval()
    builders = TRITON_BUILDERS if device == "a100" else CPU_BUILDERS

    def gemm(unit: Unit, module: nn.Module, spec: QuantSpec,
             observer: Observer | None) -> nn.Module:
        return builders[kernels[unit.name]](module, spec, observer, backends.get(unit.name, ""))

    def attention(qk: QuantSpec, pv: QuantSpec, points: dict) -> nn.Module:
        return TritonAttention(qk, pv) if device == "a100" else CpuAttention(qk, pv, points)

    swap_units(real, units, plan, stats, gemm, attention)
    if device == "a100":
        return (real.cuda() if torch.cuda.is_available() else real), []
    return real, fuse_mlp_chains(real) if fuse_chains else []


def _graph_model(model: nn.Module, units: list[Unit], plan: Plan, stats: CalibrationStats,
                 kernels: dict[str, str], backends: dict[str, str], calib: ModelInputs | None,
                 threads: int | None, runtime: str) -> Any:
    """The model as an ONNX graph run by ONNX Runtime or compiled by OpenVINO."""
    if calib is None:
        raise ValueError(f"the {runtime} runtime needs calib (example inputs to export the "
                         "graph with)")
    threads = threads or torch.get_num_threads()
    if runtime == "openvino":
        from mixprec.deploy import openvino_runtime

        return openvino_runtime.build(model, units, plan, stats, calib, threads)
    from mixprec.deploy import onnx_runtime

    split = any(b == "onnxruntime_split" for b in backends.values())
    return onnx_runtime.build(model, units, plan, stats, kernels, calib, split, threads)


def _triton_runs_here() -> bool:
    return torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"
