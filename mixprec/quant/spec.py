"""QuantSpec: how one unit is quantized (frozen, validated, JSON round-trip)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

SPEC_VERSION = 1

WEIGHT_BITS = (2, 3, 4, 6, 8, 16)
ACT_BITS = (4, 6, 7, 8, 16)
"""7 bits: the activation grid whose u8 x s8 pairs cannot saturate the 16-bit sums of x86
int8 GEMMs without VNNI (|q| <= 63: 2 * 127 * 127 < 32767)."""
ACT_MODES = ("static", "dynamic", "none")
WEIGHT_GRANULARITIES = ("per_channel", "per_group", "per_tensor")
ACT_GRANULARITIES = ("per_tensor", "per_token", "per_group")
"""``per_group``: dynamic scales per token and per group of ``group_size`` input elements,
the weights' groups (4-bit weights with int8 compute in blocks, as ONNX Runtime's
``MatMulNBits`` runs them)."""
OBSERVERS = ("minmax", "percentile", "mse")
FLOAT_DTYPES = ("float32", "bfloat16", "float16")

_SHORT_DTYPES = {"bfloat16": "bf16", "float16": "fp16"}
FLOAT_BITS = 16
"""A bit-width of 16 means "not quantized" (kept in the spec's float dtype)."""
TOKEN_SELECTIONS = ("per_image", "positions")
WEIGHT_FORMATS = ("uniform", "nupes")
"""``nupes``: NUPES' power-exponent grid (Yvinec et al., 2023): levels
``scale * (j / qmax) ** (1 / exponent)``, the exponent fitted per layer on calibration data
(:mod:`mixprec.quant.nupes`)."""


@dataclass(frozen=True)
class TokenSplit:
    """Patch-wise activation precision: the most important tokens get more bits.

    A token's importance is its absolute-max activation (the tokens that carry outliers are
    the ones that suffer most at low bits).

    Attributes:
        fraction: share of tokens (0 < fraction < 1) quantized at ``high_bits``.
        high_bits: activation bits for those tokens (16: float; equal to the spec's
            ``act_bits``: the same grid with a scale of their own); the others use the
            spec's ``act_bits``.
        selection: ``per_image`` (each image's most important tokens, ranked at run time)
            or ``positions`` (one fixed set of token positions: those most often among the
            most important on the calibration images; inputs must keep the calibration's
            token count).
    """

    fraction: float = 0.25
    high_bits: int = 8
    selection: Literal["per_image", "positions"] = "per_image"

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction < 1.0:
            raise ValueError(f"token_split.fraction={self.fraction} must be in (0, 1)")
        if self.high_bits not in ACT_BITS:
            raise ValueError(f"token_split.high_bits={self.high_bits} not in {ACT_BITS}")
        _check_choice("token_split.selection", self.selection, TOKEN_SELECTIONS)

    @property
    def label(self) -> str:
        """``t10@16``: 10% of the tokens at 16 bits; ``t10pos@16`` with fixed positions."""
        positions = "pos" if self.selection == "positions" else ""
        return f"t{round(self.fraction * 100)}{positions}@{self.high_bits}"


@dataclass(frozen=True)
class QuantSpec:
    """Quantization of one unit: weights, input activations and their mode.

    For attention matmul units (``attn_qk``, ``attn_pv``) both operands are activations:
    ``act_bits``/``act_mode`` apply to both, and ``weight_bits`` is not used.

    Attributes:
        weight_bits: weight bit-width; 16 keeps weights in ``float_dtype``.
        act_bits: activation bit-width; 16 keeps activations in float.
        act_mode: ``static`` (scales fixed at calibration), ``dynamic`` (scales computed
            at run time) or ``none`` (activations not quantized).
        weight_granularity: ``per_channel`` (one scale per output channel), ``per_group``
            (``group_size`` input elements per scale) or ``per_tensor``.
        group_size: elements per weight group when ``per_group``.
        act_granularity: ``per_tensor``, ``per_token`` or ``per_group`` (dynamic, with
            per-group weights: one scale per token and weight group); default per-tensor
            when static, per-token when dynamic.
        weight_symmetric: symmetric (zero point 0) or affine weights.
        act_symmetric: symmetric or affine activations.
        observer: static-scale observer: ``minmax``, ``percentile`` or ``mse``.
        percentile: clipping percentile of ``|x|`` for the ``percentile`` observer.
        token_split: patch-wise activation precision, or None.
        float_dtype: dtype of the parts kept in float.
        weight_format: ``uniform`` (an evenly spaced integer grid) or ``nupes`` (NUPES'
            non-uniform power-exponent grid; symmetric weight-only specs).
    """

    weight_bits: int = 8
    act_bits: int = 8
    act_mode: Literal["static", "dynamic", "none"] = "static"
    weight_granularity: Literal["per_channel", "per_group", "per_tensor"] = "per_channel"
    group_size: int | None = None
    act_granularity: Literal["per_tensor", "per_token", "per_group"] | None = None
    weight_symmetric: bool = True
    act_symmetric: bool = True
    observer: Literal["minmax", "percentile", "mse"] = "minmax"
    percentile: float = 99.99
    token_split: TokenSplit | None = field(default=None)
    float_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    weight_format: Literal["uniform", "nupes"] = "uniform"
    version: int = SPEC_VERSION

    def __post_init__(self) -> None:
        _check_choice("weight_bits", self.weight_bits, WEIGHT_BITS)
        _check_choice("act_bits", self.act_bits, ACT_BITS)
        _check_choice("act_mode", self.act_mode, ACT_MODES)
        _check_choice("weight_granularity", self.weight_granularity, WEIGHT_GRANULARITIES)
        _check_choice("observer", self.observer, OBSERVERS)
        _check_choice("float_dtype", self.float_dtype, FLOAT_DTYPES)
        _check_choice("weight_format", self.weight_format, WEIGHT_FORMATS)
        if self.weight_format == "nupes" and (
                not self.quantizes_weights or self.quantizes_acts or not self.weight_symmetric):
            raise ValueError("weight_format='nupes' needs quantized symmetric weights and float "
                             "activations (weight_bits < 16, weight_symmetric=True, "
                             "act_mode='none'): its levels are not an integer grid")
        if self.version != SPEC_VERSION:
            raise ValueError(f"version={self.version}: this mixprec reads spec version "
                             f"{SPEC_VERSION}")
        if self.weight_granularity == "per_group":
            if self.group_size is None:
                object.__setattr__(self, "group_size", 128)
            elif self.group_size < 1:
                raise ValueError(f"group_size={self.group_size} must be positive")
        elif self.group_size is not None:
            raise ValueError(f"group_size={self.group_size} needs weight_granularity='per_group'")
        if self.act_granularity is None:
            default = "per_token" if self.act_mode == "dynamic" else "per_tensor"
            object.__setattr__(self, "act_granularity", default)
        _check_choice("act_granularity", self.act_granularity, ACT_GRANULARITIES)
        if self.act_mode == "static" and self.act_granularity == "per_token":
            raise ValueError("act_granularity='per_token' needs act_mode='dynamic' "
                             "(static scales are fixed per tensor at calibration)")
        if self.act_granularity == "per_group" and (
                self.act_mode != "dynamic" or self.weight_granularity != "per_group"):
            raise ValueError("act_granularity='per_group' needs act_mode='dynamic' and "
                             "weight_granularity='per_group' (its groups are the weights')")
        if (self.act_mode == "none") != (self.act_bits == FLOAT_BITS):
            raise ValueError(f"act_mode={self.act_mode!r} with act_bits={self.act_bits}: "
                             "act_mode 'none' goes with act_bits=16 and only with it")
        if not 50.0 < self.percentile <= 100.0:
            raise ValueError(f"percentile={self.percentile} must be in (50, 100]")
        if isinstance(self.token_split, dict):
            object.__setattr__(self, "token_split", TokenSplit(**self.token_split))
        if self.token_split is not None:
            if self.act_mode == "none":
                raise ValueError("token_split needs quantized activations (act_mode != 'none')")
            if self.token_split.high_bits < self.act_bits:
                raise ValueError(f"token_split.high_bits={self.token_split.high_bits} must "
                                 f"be at least act_bits={self.act_bits}")

    @property
    def quantizes_weights(self) -> bool:
        """Whether weights are quantized (below 16 bits)."""
        return self.weight_bits < FLOAT_BITS

    @property
    def quantizes_acts(self) -> bool:
        """Whether input activations are quantized."""
        return self.act_mode != "none"

    @property
    def needs_calibration(self) -> bool:
        """Whether the spec takes values from calibration data (static scales, a token
        split's fixed positions, or a NUPES exponent)."""
        return self.act_mode == "static" or self.weight_format == "nupes" or (
            self.token_split is not None and self.token_split.selection == "positions")

    @property
    def is_float(self) -> bool:
        """Whether the spec leaves the unit entirely in float."""
        return not self.quantizes_weights and not self.quantizes_acts

    @property
    def label(self) -> str:
        """Short human label, e.g. ``W8A8-static``, ``W4A8-dynamic-t25@8`` (a token split,
        :attr:`TokenSplit.label`), ``W8A16-bf16``
        (the float dtype of the unquantized parts, when it is not float32) or
        ``W8tA8-dynamic-tensor-affine`` (options other than the defaults: ``t`` marks one
        scale per weight tensor), ``W4A16-nupes`` (NUPES weights)."""
        if self.is_float:
            return f"float-{self.float_dtype}"
        w = f"W{self.weight_bits}" if self.quantizes_weights else "W16"
        a = f"A{self.act_bits}-{self.act_mode}" if self.quantizes_acts else "A16"
        if self.act_mode == "dynamic" and self.act_granularity != "per_token":
            a += "-tensor" if self.act_granularity == "per_tensor" else "-group"
        if self.quantizes_acts and not self.act_symmetric:
            a += "-affine"
        if self.weight_granularity == "per_group":
            w += f"g{self.group_size}"
        elif self.weight_granularity == "per_tensor" and self.quantizes_weights:
            w += "t"
        split = "" if self.token_split is None else f"-{self.token_split.label}"
        dtype = "" if self.float_dtype == "float32" else f"-{_SHORT_DTYPES[self.float_dtype]}"
        fmt = "" if self.weight_format == "uniform" else f"-{self.weight_format}"
        return f"{w}{a}{split}{fmt}{dtype}"

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (JSON-ready)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuantSpec:
        """Inverse of :meth:`to_dict`; unknown fields are an error naming them."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown QuantSpec field(s): {sorted(unknown)}")
        return cls(**data)


_SPEC_NAME = re.compile(r"^w(\d+)a(\d+)(?:-(static|dynamic))?(-nupes)?$")


def parse_spec(text: str) -> QuantSpec:
    """A spec from its short name: ``fp32``, ``w8a8`` (static), ``w4a8-dynamic``, ``w4a16``
    (weight-only), ``w4a16-nupes`` (NUPES weights); other fields take their defaults."""
    name = text.strip().lower()
    if name in ("fp32", "float", "float32"):
        return QuantSpec(weight_bits=FLOAT_BITS, act_bits=FLOAT_BITS, act_mode="none")
    match = _SPEC_NAME.match(name)
    if match is None:
        raise ValueError(f"bad spec name {text!r}: use e.g. fp32, w8a8, w8a8-dynamic, w4a16, "
                         "w4a16-nupes")
    weight_bits, act_bits = int(match[1]), int(match[2])
    mode = "none" if act_bits == FLOAT_BITS else (match[3] or "static")
    return QuantSpec(weight_bits=weight_bits, act_bits=act_bits, act_mode=mode,
                     weight_format="nupes" if match[4] else "uniform")


def _check_choice(name: str, value: object, allowed: tuple) -> None:
    if value not in allowed or isinstance(value, bool):
        raise ValueError(f"{name}={value!r} not in {allowed}")
