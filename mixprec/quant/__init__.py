"""Quantization core: units, specs, plans, calibration and fake-quant simulation."""

from mixprec.quant.calibrate import CalibrationStats, calibrate, calibration_hash, check_calibration
from mixprec.quant.plan import Plan, load_plan
from mixprec.quant.simulate import SimulationReport, apply_plan, simulate
from mixprec.quant.spec import QuantSpec, TokenSplit, parse_spec
from mixprec.quant.units import Unit, UnitList, discover_units, model_fingerprint

__all__ = [
    "CalibrationStats", "Plan", "QuantSpec", "SimulationReport", "TokenSplit", "Unit",
    "UnitList", "apply_plan", "calibrate", "calibration_hash", "check_calibration",
    "discover_units", "load_plan", "model_fingerprint", "parse_spec", "simulate",
]
