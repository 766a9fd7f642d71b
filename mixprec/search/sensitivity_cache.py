"""Sensitivity tables cached on disk: a search re-run with the same model weights,
calibration data, candidates, method and seed reuses the table instead of re-estimating."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from torch import nn

from mixprec.cost_models.cache import cache_root
from mixprec.files import write_atomic
from mixprec.quant.calibrate import calibration_hash
from mixprec.quant.inputs import ModelInputs
from mixprec.quant.spec import QuantSpec
from mixprec.quant.units import UnitList
from mixprec.sensitivity.estimate import estimate, weights_digest
from mixprec.sensitivity.table import SensitivityTable, load_table

logger = logging.getLogger(__name__)


def sensitivity_path(model: nn.Module, units: UnitList, candidates: Sequence[QuantSpec],
                     calib: ModelInputs, method: str, seed: int) -> Path:
    """Where the table of these inputs is cached (``<cache root>/sensitivity/<hash>.json``)."""
    key = json.dumps({"model": units.model_id, "weights": weights_digest(model),
                      "calib": calibration_hash(calib), "method": method, "seed": seed,
                      "candidates": [c.to_dict() for c in candidates]}, sort_keys=True)
    return cache_root() / "sensitivity" / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.json"


def cached_sensitivity(model: nn.Module, units: UnitList, candidates: Sequence[QuantSpec],
                       calib: ModelInputs, method: str, seed: int) -> SensitivityTable:
    """The sensitivity table of ``units`` under ``candidates``: from the cache, or estimated
    and cached. An unreadable cache file is left as it is (logged) and not reused."""
    path = sensitivity_path(model, units, candidates, calib, method, seed)
    if path.exists():
        try:
            return load_table(str(path))
        except (ValueError, KeyError) as err:
            logger.warning("not reusing the unreadable cached sensitivity table %s: %s",
                           path, err)
    logger.info("estimating the %s sensitivity of %d units x %d candidates (once; cached)",
                method, len(units), len(candidates))
    table = estimate(model, units, candidates, calib, method=method, seed=seed, progress=True)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, table.to_json())
    return table
