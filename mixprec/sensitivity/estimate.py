"""estimate(): one entry point over every registered sensitivity method."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from datetime import datetime, timezone

import torch
from torch import nn

from mixprec.progress_bars import bars_hidden
from mixprec.provenance import package_versions
from mixprec.quant.calibrate import calibrate, calibration_hash, check_calibration
from mixprec.quant.inputs import ModelInputs, sample_count, sample_shape
from mixprec.quant.spec import QuantSpec
from mixprec.quant.units import Unit, UnitList, model_fingerprint
from mixprec.sensitivity.registry import create
from mixprec.sensitivity.table import SensitivityTable

logger = logging.getLogger(__name__)

VERSIONED_LIBRARIES = ("mixprec", "torch", "timm", "numpy")


def estimate(model: nn.Module, units: Sequence[Unit], candidates: Sequence[QuantSpec],
             calib: ModelInputs, method: str = "sqnr_global", seed: int = 0, *,
             batch_size: int = 64, progress: bool = False, **settings: object
             ) -> SensitivityTable:
    """Score every unit under every candidate with a registered method.

    The same model, units, candidates, calibration data, seed and settings give a
    byte-identical ``table.to_json()``: the provenance holds no wall-clock time unless
    ``SOURCE_DATE_EPOCH`` is set (the reproducible-builds convention), which it records.

    Args:
        model: the float model (temporarily put in eval mode; left as it was found).
        units: its units (from ``quant.discover_units``).
        candidates: the specs to score (unique labels, none all-float: float costs 0).
        calib: calibration images ``[N, ...]`` (or a tuple / dict of batched tensors).
        method: a name from :func:`available`.
        seed: seed of the observers' sampling and of any sampling the method does.
        batch_size: images per pass.
        progress: show a progress bar (tqdm, on stderr).
        **settings: method settings (e.g. ``metric="kl"`` for the SQNR methods).

    Raises:
        ValueError: bad candidates or calibration data, unknown method.
        FloatingPointError: NaN/Inf during estimation, naming the unit (and candidate).
    """
    check_calibration(calib)
    candidates = check_candidates(candidates)
    units = units if isinstance(units, UnitList) else UnitList(
        list(units), model_fingerprint(model), sample_shape(calib), {})
    if not units:
        raise ValueError("no units to score")
    estimator = create(method, **settings)
    was_training = model.training
    model.eval()
    try:
        stats = calibrate(model, units, calib, batch_size, seed)
        scores = _run(estimator, model, units, candidates, calib, stats, seed, progress)
    finally:
        model.train(was_training)
    _check_scores(scores.matrix, units, candidates)
    provenance = {
        "calibration_hash": calibration_hash(calib),
        "calibration_size": sample_count(calib),
        "seed": seed,
        "batch_size": batch_size,
        "settings": {k: scores.settings[k] for k in sorted(scores.settings)},
        "weights_digest": weights_digest(model),
        "input_shape": list(units.input_shape),
        "libraries": library_versions(),
    }
    date = reproducible_date()
    if date is not None:
        provenance["date"] = date
    return SensitivityTable(method, units.model_id, tuple(u.name for u in units),
                            tuple(candidates), tuple(tuple(r) for r in scores.matrix),
                            scores.token_scores, provenance)


def _run(estimator, model, units, candidates, calib, stats, seed, progress):
    from tqdm.auto import tqdm

    total = estimator.work(units, candidates, sample_count(calib))
    hidden = not progress or bars_hidden()
    with tqdm(total=total, desc=estimator.name, unit="pass", disable=hidden) as bar:
        return estimator.score(model, units, candidates, calib, stats, seed, bar.update)


def check_candidates(candidates: Sequence[QuantSpec]) -> list[QuantSpec]:
    """Validate a candidate set: non-empty QuantSpecs, unique labels, none all-float."""
    candidates = list(candidates)
    if not candidates:
        raise ValueError("no candidate specs given")
    for c in candidates:
        if not isinstance(c, QuantSpec):
            raise TypeError(f"candidates must be QuantSpec, got {type(c).__name__}")
        if c.is_float:
            raise ValueError(f"candidate {c.label} is all-float: it costs 0 and is not scored")
    labels = [c.label for c in candidates]
    dupes = sorted({lab for lab in labels if labels.count(lab) > 1})
    if dupes:
        raise ValueError(f"candidate labels must be unique: {dupes} repeat")
    return candidates


def _check_scores(matrix: list[list[float]], units: Sequence[Unit],
                  candidates: Sequence[QuantSpec]) -> None:
    for unit, row in zip(units, matrix):
        for spec, value in zip(candidates, row):
            if not torch.isfinite(torch.tensor(value)):
                raise FloatingPointError(f"sensitivity of unit {unit.name!r} under "
                                         f"{spec.label} is {value}")


def weights_digest(model: nn.Module) -> str:
    """Short content hash of a model's parameters and buffers."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape the scores."""
    return package_versions(VERSIONED_LIBRARIES)


def reproducible_date() -> str | None:
    """ISO date from ``SOURCE_DATE_EPOCH``, or None when it is not set."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return None
    return datetime.fromtimestamp(int(epoch), tz=timezone.utc).isoformat()
