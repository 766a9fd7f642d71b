"""sqnr_local: each unit's own output error under each candidate, from float inputs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mixprec.quant.calibrate import CalibrationStats
from mixprec.quant.inputs import ModelInputs, call_model, split
from mixprec.quant.sdpa import SdpaCall
from mixprec.quant.spec import QuantSpec
from mixprec.quant.units import PV_SUFFIX, QK_SUFFIX, Unit
from mixprec.sensitivity.probe import (
    attention_owners,
    forward_taps,
    noise_power,
    quantized_module,
    sdpa_taps,
    weight_units,
)
from mixprec.sensitivity.registry import Estimator, Progress, Scores


def local_noise(model: nn.Module, units: Sequence[Unit], spec: QuantSpec,
                calib: ModelInputs, stats: CalibrationStats, batch_size: int = 64
                ) -> dict[str, float]:
    """Noise-to-signal power ratio of every unit's output under ``spec``, each unit fed
    its float input; one float pass with hooks.

    Raises:
        FloatingPointError: a unit's quantized output is not finite (named).
    """
    stand_ins = {u.name: quantized_module(model, u, spec, stats) for u in units}
    power: dict[str, list[float]] = {u.name: [0.0, 0.0] for u in units}

    def add(name: str, noisy: torch.Tensor, clean: torch.Tensor) -> None:
        if not torch.isfinite(noisy).all():
            raise FloatingPointError(f"non-finite output of unit {name!r} under {spec.label}")
        noise, signal = noise_power(noisy, clean)
        power[name][0] += noise
        power[name][1] += signal

    def on_linear(name: str, x: torch.Tensor, y: torch.Tensor) -> None:
        add(name, stand_ins[name](x), y)

    def on_attention(owner: str, call: SdpaCall) -> torch.Tensor:
        out = call.run_original()
        for suffix in (QK_SUFFIX, PV_SUFFIX):
            if owner + suffix in stand_ins:
                add(owner + suffix, stand_ins[owner + suffix](call), out)
        return out

    with (forward_taps(model, [u.name for u in weight_units(units)], on_linear),
          sdpa_taps(model, attention_owners(units), on_attention), torch.inference_mode()):
        for chunk in split(calib, batch_size):
            call_model(model, chunk)
    return {name: noise / max(signal, 1e-300) for name, (noise, signal) in power.items()}


class SqnrLocal(Estimator):
    """Every unit's own output noise-to-signal ratio (10^(-SQNR/10)) from float inputs;
    all units in one pass per candidate.

    Args:
        batch_size: images per pass.
    """

    name = "sqnr_local"

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size

    def work(self, units: Sequence[Unit], candidates: Sequence[QuantSpec], images: int) -> int:
        return len(candidates)

    def score(self, model: nn.Module, units: Sequence[Unit], candidates: Sequence[QuantSpec],
              calib: ModelInputs, stats: CalibrationStats, seed: int,
              progress: Progress) -> Scores:
        columns = []
        for spec in candidates:
            columns.append(local_noise(model, units, spec, calib, stats, self.batch_size))
            progress(1)
        matrix = [[col[u.name] for col in columns] for u in units]
        return Scores(matrix, settings={"batch_size": self.batch_size})
