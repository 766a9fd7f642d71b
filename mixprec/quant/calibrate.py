"""Calibration: one float pass that records every quantization point's statistics."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from mixprec.quant.inputs import (
    ModelInputs,
    call_model,
    check_inputs,
    content_hash,
    split,
)
from mixprec.quant.modules import attention_operands
from mixprec.quant.observers import Observer
from mixprec.quant.sdpa import SdpaCall, intercept_sdpa
from mixprec.quant.tracing import ModuleStack, fused_attention
from mixprec.quant.units import PV_SUFFIX, QK_SUFFIX, Unit

ATTENTION_POINTS = {"q": QK_SUFFIX, "k": QK_SUFFIX, "p": PV_SUFFIX, "v": PV_SUFFIX}
"""Quantization point of an attention module -> the unit it belongs to."""

CalibrationStats = dict[str, Observer]
"""Quantization point -> observer. Points: a weight unit's name (its input), and
``<attention FQN>:q``, ``:k``, ``:p``, ``:v`` for attention operands."""


def check_calibration(calib: ModelInputs) -> None:
    """Refuse calibration data that is not a non-empty, finite, batched tensor (images) or a
    tuple / dict of such tensors (:func:`mixprec.quant.inputs.check_inputs`)."""
    check_inputs(calib, "calibration data")


def calibration_hash(calib: ModelInputs) -> str:
    """Short content hash of calibration data (for provenance)."""
    return content_hash(calib)


def calibrate(model: nn.Module, units: Iterable[Unit], calib: ModelInputs,
              batch_size: int = 64, seed: int = 0) -> CalibrationStats:
    """Observe the float inputs of every unit's quantization points over ``calib``.

    Args:
        model: the float model (not modified).
        units: units whose inputs to observe.
        calib: calibration batch ``[N, ...]`` (or a tuple / dict of batched tensors).
        batch_size: images per forward pass.
        seed: seed of the observers' row sampling.

    Returns:
        The statistics, from which any static spec's scales are derived.
    """
    check_calibration(calib)
    units = list(units)
    stats: CalibrationStats = {}
    handles = []
    modules = dict(model.named_modules())
    for unit in units:
        if unit.is_attention:
            continue
        stats[unit.name] = Observer(seed)
        handles.append(modules[unit.name].register_forward_pre_hook(
            _observe_input(unit.name, stats[unit.name])))
    attention = {u.module_name for u in units if u.is_attention}
    for owner in attention:
        for point in ATTENTION_POINTS:
            stats[f"{owner}:{point}"] = Observer(seed)
    stack = ModuleStack(model)

    def on_sdpa(call: SdpaCall) -> torch.Tensor:
        owner = stack.current()
        if owner in attention:
            for point, value in attention_operands(call).items():
                _observe(stats[f"{owner}:{point}"], f"{owner}:{point}", value)
        return call.run_original()

    try:
        with stack, fused_attention(model), intercept_sdpa(on_sdpa), torch.inference_mode():
            for chunk in split(calib, batch_size):
                call_model(model, chunk)
    finally:
        for h in handles:
            h.remove()
    return stats


def _observe_input(name: str, observer: Observer):
    def hook(module: nn.Module, args: tuple) -> None:
        _observe(observer, name, args[0])
    return hook


def _observe(observer: Observer, name: str, value: torch.Tensor) -> None:
    try:
        observer.observe(value)
    except FloatingPointError as err:
        raise FloatingPointError(f"{err} at the input of {name!r}") from err
