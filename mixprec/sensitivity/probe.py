"""Shared machinery: quantize one unit in place, tap unit outputs, measure noise power."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace

import torch
from torch import nn

from mixprec.quant.calibrate import CalibrationStats
from mixprec.quant.modules import (
    AttentionQuant,
    FakeQuantConv2d,
    FakeQuantLinear,
    attention_spec,
)
from mixprec.quant.sdpa import SdpaCall, intercept_sdpa
from mixprec.quant.simulate import FLOAT_SPEC
from mixprec.quant.spec import FLOAT_BITS, QuantSpec
from mixprec.quant.units import Unit

SdpaTap = Callable[[str, SdpaCall], torch.Tensor]
"""Handler of one attention module's SDPA call: (owner FQN, call) -> output."""


def quantized_module(model: nn.Module, unit: Unit, spec: QuantSpec,
                     stats: CalibrationStats) -> nn.Module:
    """The fake-quant stand-in of ``unit`` under ``spec`` (weights quantized once here).

    For attention units it is an :class:`AttentionQuant` that quantizes only this unit's
    matmul (the other one of the module stays in float).
    """
    if unit.is_attention:
        spec = effective_spec(unit, spec)
        owner = unit.module_name
        points = {p: stats.get(f"{owner}:{p}") for p in ("q", "k", "p", "v")}
        qk = spec if unit.kind == "attn_qk" else FLOAT_SPEC
        pv = spec if unit.kind == "attn_pv" else FLOAT_SPEC
        return AttentionQuant(qk, pv, points)
    original = model.get_submodule(unit.name)
    if unit.kind == "linear":
        return FakeQuantLinear(original, spec, stats.get(unit.name))
    return FakeQuantConv2d(original, spec, stats.get(unit.name))


def effective_spec(unit: Unit, spec: QuantSpec) -> QuantSpec:
    """The part of ``spec`` that acts on ``unit``: attention matmuls have no weights, so
    candidates that differ only in weight settings quantize them identically (activation
    scales per weight group become per token there)."""
    if not unit.is_attention:
        return spec
    return replace(attention_spec(spec), weight_bits=FLOAT_BITS,
                   weight_granularity="per_channel", group_size=None, weight_symmetric=True,
                   weight_format="uniform")


@contextmanager
def sdpa_taps(model: nn.Module, owners: Sequence[str], tap: SdpaTap) -> Iterator[None]:
    """Route the SDPA call of each attention module in ``owners`` to ``tap`` (hooks, undone
    on exit; ``fused_attn`` is forced on inside)."""
    handles = []

    def enter(name: str):
        def pre_hook(module: nn.Module, args: tuple) -> None:
            ctx = intercept_sdpa(lambda call: tap(name, call))
            ctx.__enter__()
            stack.append(ctx)
        return pre_hook

    def leave(module: nn.Module, args: tuple, output: object) -> None:
        if stack:  # empty when an earlier hook raised before ours ran
            stack.pop().__exit__(None, None, None)

    stack: list = []
    saved = []
    try:
        for name in owners:
            module = model.get_submodule(name)
            if hasattr(module, "fused_attn"):
                saved.append((module, module.fused_attn))
                module.fused_attn = True
            handles.append(module.register_forward_pre_hook(enter(name)))
            handles.append(module.register_forward_hook(leave, always_call=True))
        yield
    finally:
        for h in handles:
            h.remove()
        for module, flag in saved:
            module.fused_attn = flag


@contextmanager
def unit_quantized(model: nn.Module, unit: Unit, replacement: nn.Module) -> Iterator[None]:
    """Compute ``unit`` with ``replacement`` (from :func:`quantized_module`) inside the block;
    the model is restored on exit."""
    if unit.is_attention:
        with sdpa_taps(model, [unit.module_name], lambda _owner, call: replacement(call)):
            yield
        return
    parent_name, _, child = unit.name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    original = getattr(parent, child)
    setattr(parent, child, replacement)
    try:
        yield
    finally:
        setattr(parent, child, original)


@contextmanager
def forward_taps(model: nn.Module, names: Sequence[str],
                 hook: Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor | None]
                 ) -> Iterator[None]:
    """Call ``hook(name, input, output)`` after each named module; a returned tensor
    replaces the output."""
    with ExitStack() as stack:
        for name in names:
            def tap(module: nn.Module, args: tuple, output: torch.Tensor, name: str = name
                    ) -> torch.Tensor | None:
                return hook(name, args[0], output)
            handle = model.get_submodule(name).register_forward_hook(tap)
            stack.callback(handle.remove)
        yield


def noise_power(noisy: torch.Tensor, clean: torch.Tensor) -> tuple[float, float]:
    """(sum of squared error, sum of squared signal), in float64."""
    diff = (noisy.double() - clean.double()).pow(2).sum().item()
    return diff, clean.double().pow(2).sum().item()


def weight_units(units: Sequence[Unit]) -> list[Unit]:
    """The units that own a weight module (linear, conv_gemm)."""
    return [u for u in units if not u.is_attention]


def attention_owners(units: Sequence[Unit]) -> list[str]:
    """Attention module FQNs, in execution order, without repeats."""
    return list(dict.fromkeys(u.module_name for u in units if u.is_attention))
