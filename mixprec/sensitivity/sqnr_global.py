"""sqnr_global: end-to-end output error when only one unit is quantized."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch
from torch import nn

from mixprec.quant.calibrate import CalibrationStats
from mixprec.quant.inputs import ModelInputs
from mixprec.quant.modules import is_identity_spec
from mixprec.quant.spec import QuantSpec
from mixprec.quant.units import Unit
from mixprec.sensitivity.metrics import METRICS, check_finite
from mixprec.sensitivity.probe import effective_spec, quantized_module, unit_quantized
from mixprec.sensitivity.registry import Estimator, Progress, Scores
from mixprec.sensitivity.suffix import SuffixRunner

logger = logging.getLogger(__name__)


class SqnrGlobal(Estimator):
    """Quantize one unit at a time and measure the model output's error against float.

    The float inputs of every block are cached once; each (unit, candidate) pass runs only
    from the unit's block on (the thesis's per-layer SQNR analysis, without recomputing the
    float prefix). Candidates that quantize a unit identically (attention matmuls under
    specs that differ only in weight settings) are run once; one that leaves the unit in
    float32 scores 0 without a pass.

    Args:
        metric: ``nsr`` (noise-to-signal power ratio of the logits, 10^(-SQNR/10)) or
            ``kl`` (mean KL of the output distribution to float).
        batch_size: images per pass.
    """

    name = "sqnr_global"

    def __init__(self, metric: str = "nsr", batch_size: int = 64) -> None:
        if metric not in METRICS:
            raise ValueError(f"metric={metric!r} not in {sorted(METRICS)}")
        self.metric = metric
        self.batch_size = batch_size

    def work(self, units: Sequence[Unit], candidates: Sequence[QuantSpec], images: int) -> int:
        return len(units) * len(candidates)

    def score(self, model: nn.Module, units: Sequence[Unit], candidates: Sequence[QuantSpec],
              calib: ModelInputs, stats: CalibrationStats, seed: int,
              progress: Progress) -> Scores:
        runner = SuffixRunner(model, units, calib, self.batch_size)
        check_finite(runner.reference, "of the float model")
        logger.info("sqnr_global: %d cached blocks (%s)", runner.n_blocks, runner.blocks_name)
        measure = METRICS[self.metric]
        matrix = []
        for unit in units:
            row, done = [], {}
            for spec in candidates:
                key = effective_spec(unit, spec)
                if key not in done:
                    done[key] = 0.0 if is_identity_spec(key) else self._one(
                        model, unit, spec, stats, runner, measure)
                row.append(done[key])
                progress(1)
            matrix.append(row)
        return Scores(matrix, settings={"metric": self.metric, "batch_size": self.batch_size,
                                        "cached_blocks": runner.blocks_name or ""})

    @staticmethod
    def _one(model: nn.Module, unit: Unit, spec: QuantSpec, stats: CalibrationStats,
             runner: SuffixRunner, measure: Callable[[torch.Tensor, torch.Tensor], float]
             ) -> float:
        with unit_quantized(model, unit, quantized_module(model, unit, spec, stats)):
            output = runner.run(runner.start(unit))
        check_finite(output, f"when unit {unit.name!r} is quantized as {spec.label}")
        return measure(output, runner.reference)
