"""Hybrid Quantization: static or dynamic activations per linear unit, by local SQNR."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from torch import nn

from mixprec.quant.calibrate import calibrate, check_calibration
from mixprec.quant.inputs import ModelInputs
from mixprec.quant.plan import Plan
from mixprec.quant.spec import QuantSpec
from mixprec.quant.units import Unit, UnitList
from mixprec.sensitivity.sqnr_local import local_noise

logger = logging.getLogger(__name__)


def hybrid_plan(model: nn.Module, units: UnitList | Sequence[Unit], calib: ModelInputs, *,
                weight_bits: int = 8, act_bits: int = 8, tolerance_db: float = 3.0,
                batch_size: int = 64, seed: int = 0) -> Plan:
    """The thesis's Hybrid Quantization as a plan.

    Every linear unit's output SQNR (float inputs) is measured with static and with dynamic
    activations at ``act_bits``; the unit keeps static activations (cheaper: no run-time
    scales) unless they lose more than ``tolerance_db`` of SQNR against dynamic ones.
    Units that are not linear (patch-embedding conv, attention matmuls) stay static.

    Args:
        model: the float model.
        units: its units.
        calib: calibration images.
        weight_bits: weight bit-width of every unit.
        act_bits: activation bit-width of every unit.
        tolerance_db: SQNR that static activations may lose before a unit goes dynamic.
        batch_size: images per pass.
        seed: observers' sampling seed.
    """
    check_calibration(calib)
    static = QuantSpec(weight_bits=weight_bits, act_bits=act_bits, act_mode="static")
    dynamic = QuantSpec(weight_bits=weight_bits, act_bits=act_bits, act_mode="dynamic")
    linear = [u for u in units if u.kind == "linear"]
    stats = calibrate(model, linear, calib, batch_size, seed)
    nsr_static = local_noise(model, linear, static, calib, stats, batch_size)
    nsr_dynamic = local_noise(model, linear, dynamic, calib, stats, batch_size)
    changes = {}
    for unit in linear:
        loss_db = _db(nsr_static[unit.name]) - _db(nsr_dynamic[unit.name])
        if loss_db > tolerance_db:
            changes[unit.name] = dynamic
            logger.info("%s: dynamic (static loses %.1f dB)", unit.name, loss_db)
    logger.info("hybrid plan: %d of %d linear units dynamic", len(changes), len(linear))
    return Plan.uniform(units, static).replace(changes)


def _db(nsr: float) -> float:
    """Noise-to-signal ratio in dB (the negated SQNR)."""
    return 10.0 * math.log10(max(nsr, 1e-30))
