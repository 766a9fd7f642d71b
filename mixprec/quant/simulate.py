"""simulate(): a fake-quantized copy of a model that computes every unit as a plan says."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from mixprec.quant.calibrate import (
    ATTENTION_POINTS,
    CalibrationStats,
    calibrate,
    check_calibration,
)
from mixprec.quant.inputs import ModelInputs, first_samples
from mixprec.quant.modules import (
    AttentionQuant,
    FakeQuantConv2d,
    FakeQuantLinear,
    is_identity_spec,
)
from mixprec.quant.observers import Observer
from mixprec.quant.plan import Plan
from mixprec.quant.sdpa import intercept_sdpa
from mixprec.quant.spec import QuantSpec
from mixprec.quant.units import Unit, UnitList, discover_units

logger = logging.getLogger(__name__)

ATTN_QUANT_ATTR = "mixprec_attn_quant"
FLOAT_SPEC = QuantSpec(weight_bits=16, act_bits=16, act_mode="none")


@dataclass(frozen=True)
class SimulationReport:
    """What a simulation did and did not cover.

    Attributes:
        quantized: units computed with a non-float spec.
        uncovered: units the model has that the plan does not name (left in float).
        skipped_modules: parameterised modules no unit covers, with the reason.
    """

    quantized: tuple[str, ...]
    uncovered: tuple[str, ...]
    skipped_modules: dict[str, str] = field(default_factory=dict)


def simulate(model: nn.Module, plan: Plan, calib: ModelInputs, *, batch_size: int = 64,
             units: UnitList | None = None, stats: CalibrationStats | None = None
             ) -> nn.Module:
    """Return a fake-quantized copy of ``model`` following ``plan``; the model is untouched.

    Weights are quantized; static activation scales come from observers run over ``calib``
    in float; dynamic activations are quantized per token at run time; attention matmuls
    are quantized through the module's intercepted SDPA call. Units the plan leaves in float
    keep their original modules, so an all-float plan reproduces the model exactly.
    The returned model carries a :class:`SimulationReport` as ``.simulation_report``.

    Args:
        model: the float model.
        plan: unit name -> spec.
        calib: calibration images ``[N, ...]`` (finite, non-empty), or a tuple / dict of
            batched tensors for models with several (keyword) inputs.
        batch_size: images per calibration forward pass.
        units: the model's units, if already discovered.
        stats: calibration statistics, if already collected (e.g. by a sensitivity pass).
    """
    check_calibration(calib)
    if units is None:
        units = discover_units(model, first_samples(calib, 1))
    uncovered = plan.check_against(units)
    if uncovered:
        logger.warning("plan leaves %d unit(s) in float: %s", len(uncovered), uncovered[:8])
    active = [u for u in units if u.name in plan and not is_identity_spec(plan[u.name])]
    if stats is None:
        stats = calibrate(model, _static_units(active, plan), calib, batch_size)
    sim = copy.deepcopy(model).eval()
    apply_plan(sim, active, plan, stats)
    report = SimulationReport(tuple(u.name for u in active), tuple(uncovered), units.skipped)
    sim.simulation_report = report
    return sim


GemmFactory = Callable[[Unit, nn.Module, QuantSpec, "Observer | None"], nn.Module]
"""(unit, float module, spec, input observer) -> module replacing a linear / conv unit."""
AttentionFactory = Callable[[QuantSpec, QuantSpec, dict], nn.Module]
"""(Q·Kᵀ spec, P·V spec, observers of q/k/p/v) -> SDPA handler module."""


def apply_plan(model: nn.Module, units: list[Unit], plan: Plan, stats: CalibrationStats) -> None:
    """Swap the modules of ``units`` in ``model`` (in place) for their fake-quant versions."""
    swap_units(model, units, plan, stats, _fake_gemm, AttentionQuant)


def swap_units(model: nn.Module, units: list[Unit], plan: Plan, stats: CalibrationStats,
               gemm: GemmFactory, attention: AttentionFactory) -> None:
    """Replace every unit of ``model`` (in place) by what the factories build for its spec.

    Weight units are swapped module for module; the two matmuls of an attention module
    are served by one SDPA handler attached to it (a missing one stays float).
    """
    modules = dict(model.named_modules())
    by_owner: dict[str, dict[str, QuantSpec]] = {}
    for unit in units:
        spec = plan[unit.name]
        if unit.is_attention:
            by_owner.setdefault(unit.module_name, {})[unit.kind] = spec
            continue
        replacement = gemm(unit, modules[unit.name], spec, stats.get(unit.name))
        model.set_submodule(unit.name, replacement)
    for owner, specs in by_owner.items():
        points = {p: stats.get(f"{owner}:{p}") for p in ATTENTION_POINTS}
        handler = attention(specs.get("attn_qk", FLOAT_SPEC), specs.get("attn_pv", FLOAT_SPEC),
                            points)
        attach_attention_quant(modules[owner], handler)


def _fake_gemm(unit: Unit, module: nn.Module, spec: QuantSpec,
               observer: Observer | None) -> nn.Module:
    if unit.kind == "linear":
        return FakeQuantLinear(module, spec, observer)
    return FakeQuantConv2d(module, spec, observer)


def attach_attention_quant(module: nn.Module, quant: nn.Module) -> None:
    """Make ``module`` route its SDPA call through ``quant`` (hooks; survive deepcopy).

    ``quant`` is called with each :class:`SdpaCall` (e.g. an :class:`AttentionQuant`).
    """
    module.add_module(ATTN_QUANT_ATTR, quant)
    if hasattr(module, "fused_attn"):
        module.fused_attn = True
    module.register_forward_pre_hook(_enter_attention_quant)
    module.register_forward_hook(_exit_attention_quant, always_call=True)


def _enter_attention_quant(module: nn.Module, args: tuple) -> None:
    ctx = intercept_sdpa(getattr(module, ATTN_QUANT_ATTR))
    ctx.__enter__()
    module.__dict__.setdefault("_mixprec_sdpa_ctx", []).append(ctx)


def _exit_attention_quant(module: nn.Module, args: tuple, output: object) -> None:
    module.__dict__["_mixprec_sdpa_ctx"].pop().__exit__(None, None, None)


def _static_units(units: list[Unit], plan: Plan) -> list[Unit]:
    return [u for u in units if plan[u.name].needs_calibration]
