"""Fake-quant modules that stand in for float ones in a simulated model."""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from mixprec.quant.fake import (
    fake_quant,
    fake_quant_dynamic,
    fake_quant_dynamic_groups,
    quantize_weight,
    round_to_dtype,
)
from mixprec.quant.nupes import nupes_inputs, nupes_weight
from mixprec.quant.observers import Observer
from mixprec.quant.sdpa import SdpaCall, attention_scores
from mixprec.quant.spec import FLOAT_BITS, QuantSpec
from mixprec.quant.token_split import TokenGroup, fixed_positions, high_token_mask


class ActQuant(nn.Module):
    """Quantizes one activation tensor as a spec says.

    Static scales come from an :class:`Observer` at construction; dynamic scales are
    computed per slice reduced over ``dim`` (the last dim: one scale per token/row).
    With ``token_split``, the high tokens (along dim -2: each image's top tokens by abs-max,
    or fixed positions; :mod:`mixprec.quant.token_split`) use the higher bit-width (16:
    float, not quantized), each group with its own scale; an input without a token axis is
    all high.

    Args:
        spec: the unit's spec.
        observer: calibration statistics of this tensor (needed when static).
        dim: dimension reduced for one dynamic scale (-1: per row; -2: per column).
    """

    def __init__(self, spec: QuantSpec, observer: Observer | None = None, dim: int = -1) -> None:
        super().__init__()
        self.spec = spec
        self.dim = dim
        self.per_token = spec.act_granularity == "per_token"
        if spec.act_granularity == "per_group" and dim != -1:
            raise ValueError(f"{spec.label}: per-group activation scales group the last dim "
                             f"(a linear's input), not dim {dim}")
        if spec.needs_calibration and (observer is None or observer.empty):
            raise RuntimeError(f"{spec.label}: static scales and calibrated token positions "
                               "need calibration data")
        self.fixed_positions = fixed_positions(spec, observer)
        if spec.act_mode == "static":
            assert observer is not None
            self._init_static(observer)

    def _init_static(self, observer: Observer) -> None:
        spec, split = self.spec, self.spec.token_split
        args = (spec.act_symmetric, spec.observer, spec.percentile)
        if split is None:
            scale, zp = observer.qparams(spec.act_bits, *args)
            self.register_buffer("scale", scale)
            self.register_buffer("zero_point", zp)
            return
        groups = [("low", spec.act_bits, False)]
        if split.high_bits < FLOAT_BITS:
            groups.append(("high", split.high_bits, True))
        for prefix, bits, high in groups:
            scale, zp = observer.qparams(bits, *args, group=TokenGroup(split, high))
            self.register_buffer(f"{prefix}_scale", scale)
            self.register_buffer(f"{prefix}_zero_point", zp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        if spec.act_mode == "none":
            return round_to_dtype(x, spec.float_dtype)
        if spec.token_split is not None:
            return self._split_forward(x)
        return self._quantize(x, spec.act_bits, "")

    def _quantize(self, x: torch.Tensor, bits: int, prefix: str) -> torch.Tensor:
        sym = self.spec.act_symmetric
        if self.spec.act_mode == "dynamic":
            if self.spec.act_granularity == "per_group":
                assert self.spec.group_size is not None
                return fake_quant_dynamic_groups(x, bits, sym, self.spec.group_size)
            dim = self.dim if self.per_token else tuple(range(x.dim()))
            return fake_quant_dynamic(x, bits, sym, dim)
        scale = getattr(self, f"{prefix}scale")
        zero_point = getattr(self, f"{prefix}zero_point")
        return fake_quant(x.float(), scale, zero_point, bits, sym).to(x.dtype)

    def _split_forward(self, x: torch.Tensor) -> torch.Tensor:
        split = self.spec.token_split
        assert split is not None
        if x.dim() < 3:
            return self._high(x)
        is_high = (high_token_mask(x, split.fraction) if self.fixed_positions is None
                   else self.fixed_positions.mask(x))
        dynamic = self.spec.act_mode == "dynamic"  # each group's range from its own tokens
        high = self._high(x.masked_fill(~is_high, 0.0) if dynamic else x)
        low = self._quantize(x.masked_fill(is_high, 0.0) if dynamic else x,
                             self.spec.act_bits, "low_")
        return torch.where(is_high, high, low)

    def _high(self, x: torch.Tensor) -> torch.Tensor:
        """The high tokens' values: float (high_bits 16) or on their own grid."""
        split = self.spec.token_split
        assert split is not None
        if split.high_bits >= FLOAT_BITS:
            return round_to_dtype(x, self.spec.float_dtype)
        return self._quantize(x, split.high_bits, "high_")


def simulated_weight(weight: torch.Tensor, spec: QuantSpec, observer: Observer | None
                     ) -> torch.Tensor:
    """The weight a unit computes with under ``spec``: on its integer grid, or on the NUPES
    grid fitted to the unit's calibration inputs (``observer``)."""
    if spec.weight_format == "nupes":
        inputs = nupes_inputs(observer, weight[0].numel())
        return nupes_weight(weight, spec, inputs).dequantize().reshape(weight.shape).to(
            weight.dtype)
    return quantize_weight(weight, spec)


class FakeQuantLinear(nn.Module):
    """``nn.Linear`` with fake-quantized weights and input activations."""

    def __init__(self, linear: nn.Linear, spec: QuantSpec, observer: Observer | None) -> None:
        super().__init__()
        self.spec = spec
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight", simulated_weight(linear.weight, spec, observer))
        bias = linear.bias
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.act = ActQuant(spec, observer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.act(x), self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, spec={self.spec.label}"


class FakeQuantConv2d(nn.Module):
    """``nn.Conv2d`` (as a GEMM) with fake-quantized weights and inputs.

    Dynamic input scales are per image (a conv input has no token axis).
    """

    def __init__(self, conv: nn.Conv2d, spec: QuantSpec, observer: Observer | None) -> None:
        super().__init__()
        if conv.padding_mode != "zeros":
            raise ValueError(f"Conv2d padding_mode={conv.padding_mode!r} is not supported")
        self.spec = spec
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation
        self.register_buffer("weight", simulated_weight(conv.weight, spec, observer))
        bias = conv.bias
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.act = ActQuant(spec, observer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq = self.act(x.flatten(1)).reshape(x.shape)
        return F.conv2d(xq, self.weight, self.bias, self.stride, self.padding, self.dilation)


class AttentionQuant(nn.Module):
    """Quantizes the two matmuls of an attention module via its intercepted SDPA call.

    Q·Kᵀ quantizes Q per row and K per row (per token); P·V quantizes P per row and V per
    column (per channel), so that every dynamic scale factors out of the integer GEMM.
    """

    def __init__(self, qk: QuantSpec, pv: QuantSpec,
                 observers: dict[str, Observer | None]) -> None:
        super().__init__()
        qk, pv = attention_spec(qk), attention_spec(pv)
        self.q = ActQuant(qk, observers.get("q"))
        self.k = ActQuant(qk, observers.get("k"))
        self.p = ActQuant(pv, observers.get("p"))
        self.v = ActQuant(pv, observers.get("v"), dim=-2)

    def __call__(self, call: SdpaCall) -> torch.Tensor:  # type: ignore[override]
        return self.forward(call)

    def forward(self, call: SdpaCall) -> torch.Tensor:
        k, v = expand_kv_heads(call)
        probs = attention_scores(call, self.q(call.q), self.k(k))
        return self.p(probs) @ self.v(v)


def attention_spec(spec: QuantSpec) -> QuantSpec:
    """``spec`` as it acts on an attention matmul: activation scales per weight group
    (an attention matmul has no weights) are per token there."""
    if spec.act_granularity != "per_group":
        return spec
    return replace(spec, act_granularity="per_token")


def expand_kv_heads(call: SdpaCall) -> tuple[torch.Tensor, torch.Tensor]:
    """K and V with their heads repeated to Q's count (grouped-query attention)."""
    k, v = call.k, call.v
    if call.enable_gqa and k.shape[-3] != call.q.shape[-3]:
        reps = call.q.shape[-3] // k.shape[-3]
        k, v = k.repeat_interleave(reps, dim=-3), v.repeat_interleave(reps, dim=-3)
    return k, v


def attention_operands(call: SdpaCall) -> dict[str, torch.Tensor]:
    """The four quantization points of one attention call, in float: q, k, p, v."""
    k, v = expand_kv_heads(call)
    return {"q": call.q, "k": k, "p": attention_scores(call, call.q, k), "v": v}


def is_identity_spec(spec: QuantSpec) -> bool:
    """Whether simulating ``spec`` changes nothing (all float, float32)."""
    return spec.is_float and spec.float_dtype == "float32"
