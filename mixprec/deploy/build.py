"""deploy(): the real quantized model of a Plan: CPU kernels (xeon, a15) or Triton (a100)."""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from mixprec.deploy.triton_modules import TritonAttention, TritonInt8Linear, TritonW4A16Linear
from mixprec.kernels.cpu import (
    CpuAttention,
    FloatCast,
    Int8Gemm,
    WeightOnlyInt4Gemm,
    WeightOnlyInt8Gemm,
    default_backend,
)
from mixprec.kernels.cpu.int8 import check_backend
from mixprec.kernels.registry import DEVICES, check_deployable
from mixprec.quant.calibrate import CalibrationStats, calibrate, check_calibration
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
    "w8a16": lambda mod, spec, obs, backend: WeightOnlyInt8Gemm(mod, spec),
    "w4a16": lambda mod, spec, obs, backend: WeightOnlyInt4Gemm(mod, spec),
}
"""CPU kernel name (mixprec.kernels.registry) -> module replacing a linear / conv unit."""
TRITON_BUILDERS: dict[str, GemmBuilder] = {
    "float16": lambda mod, spec, obs, backend: FloatCast(mod, spec),
    "w8a8": lambda mod, spec, obs, backend: TritonInt8Linear(mod, spec, obs),
    "w4a16": lambda mod, spec, obs, backend: TritonW4A16Linear(mod, spec),
}
"""``a100`` kernel name -> module (Triton kernels of this project)."""
BUILDERS = {"xeon": CPU_BUILDERS, "a15": CPU_BUILDERS, "a100": TRITON_BUILDERS}


@dataclass(frozen=True)
class DeployReport:
    """What deploy built.

    Attributes:
        device: target device.
        backend: int8 GEMM backend (``onednn`` or ``int_mm``).
        kernels: unit name -> kernel name, for every unit not left in fp32.
        uncovered: units the model has that the plan does not name (left in float).
    """

    device: str
    backend: str
    kernels: dict[str, str] = field(default_factory=dict)
    uncovered: tuple[str, ...] = ()


def deploy(model: nn.Module, plan: Plan, device: str = "xeon",
           calib: torch.Tensor | None = None, *, batch_size: int = 64,
           units: UnitList | None = None, stats: CalibrationStats | None = None,
           backend: str | None = None) -> nn.Module:
    """Return a copy of ``model`` whose units run on real quantized kernels; ``model`` is untouched.

    Scales match :func:`mixprec.quant.simulate`: weights use the same integer grid and static
    activation scales come from the same calibration observers. Units the plan keeps in fp32
    (or does not name) keep their float modules. The result carries a :class:`DeployReport`
    as ``.deploy_report``.

    Args:
        model: the float model.
        plan: unit name -> spec.
        device: ``xeon`` or ``a15`` (CPU kernels), or ``a100`` (Triton kernels; needs CUDA,
            or ``TRITON_INTERPRET=1`` to run them on the CPU).
        calib: calibration images (needed for static specs and to discover units).
        batch_size: images per calibration forward pass.
        units: the model's units, if already discovered.
        stats: calibration statistics, if already collected.
        backend: int8 GEMM backend; default ``onednn`` on x86, ``int_mm`` elsewhere.

    Raises:
        ValueError: unknown device, or a unit's spec has no kernel on the device (naming both).
        RuntimeError: ``a100`` without CUDA (nor the Triton interpreter).
    """
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; known: {DEVICES}")
    backend = backend or default_backend()
    check_backend(backend)
    if units is None:
        if calib is None:
            raise ValueError("deploy needs calib (or units) to find the model's units")
        units = discover_units(model, calib[:1])
    uncovered = plan.check_against(units)
    if uncovered:
        logger.warning("plan leaves %d unit(s) in float: %s", len(uncovered), uncovered[:8])
    active = [u for u in units if u.name in plan and not is_identity_spec(plan[u.name])]
    kernels = {u.name: check_deployable(u, plan[u.name], device).name for u in active}
    if device == "a100" and not _triton_runs_here():
        raise RuntimeError("device 'a100': the plan fits its kernels, but the Triton model "
                           "needs a CUDA device (or TRITON_INTERPRET=1)")
    if stats is None:
        static = [u for u in active if plan[u.name].act_mode == "static"]
        if static and calib is None:
            raise ValueError(f"{len(static)} unit(s) have static specs: deploy needs calib")
        stats = {}
        if static:
            check_calibration(calib)
            stats = calibrate(model, static, calib, batch_size)
    real = copy.deepcopy(model).eval()
    _replace_units(real, active, plan, stats, kernels, device, backend)
    if device == "a100" and torch.cuda.is_available():
        real = real.cuda()
    real.deploy_report = DeployReport(device, backend, kernels, tuple(uncovered))
    logger.info("deployed %d unit(s) on %s (%s int8 backend)", len(active), device, backend)
    return real


def _replace_units(model: nn.Module, units: list[Unit], plan: Plan, stats: CalibrationStats,
                   kernels: dict[str, str], device: str, backend: str) -> None:
    builders = BUILDERS[device]

    def gemm(unit: Unit, module: nn.Module, spec: QuantSpec,
             observer: Observer | None) -> nn.Module:
        return builders[kernels[unit.name]](module, spec, observer, backend)

    def attention(qk: QuantSpec, pv: QuantSpec, points: dict) -> nn.Module:
        return TritonAttention(qk, pv) if device == "a100" else CpuAttention(qk, pv, points)

    swap_units(model, units, plan, stats, gemm, attention)


def _triton_runs_here() -> bool:
    return torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"

