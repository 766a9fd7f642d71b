"""NUPES weights: a non-uniform grid from a power exponent, fitted per layer on calibration data.

NUPES (Yvinec, Dapogny and Bailly, "NUPES: Non-Uniform Post-Training Quantization via Power
Exponent Search", 2023) quantizes ``|w| ** a`` on an evenly spaced grid and maps the grid
back through ``** (1 / a)``, so that with ``a < 1`` the levels crowd near zero, where
bell-shaped weights are dense. Here a slice (an output channel or a group) with absolute
maximum ``m`` gets the signed levels ``m * sign(j) * (|j| / qmax) ** (1 / a)`` for integer
codes ``j`` in ``[-qmax, qmax]``; ``a = 1`` is the symmetric uniform grid. The exponent of a
layer is the one of :data:`EXPONENTS` whose weights change the layer's outputs least on
calibration rows, ``||X (W - Ŵ)ᵀ||²``, as the paper fits it (without rows: the weights'
own squared error).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mixprec.quant.fake import IntegerWeight, expand_groups, symmetric_qmax
from mixprec.quant.observers import Observer
from mixprec.quant.spec import QuantSpec

EXPONENTS = tuple(k / 20 for k in range(8, 33))
"""Exponents tried per layer: 0.40 to 1.60 in steps of 0.05 (1.0, the uniform grid, among
them, so a fitted layer is never worse than uniform on its calibration rows)."""


@dataclass(frozen=True)
class NupesWeight(IntegerWeight):
    """A GEMM weight on a NUPES grid: ``w ~ levels[q + qmax] * scale`` per slice.

    ``q`` holds the signed codes, ``scale`` each slice's absolute maximum, ``zero_point``
    zeros; ``exponent`` is the layer's fitted power exponent.
    """

    exponent: float = 1.0

    def levels(self) -> torch.Tensor:
        """The ``2 * qmax + 1`` normalized levels, indexed by ``code + qmax`` (float32)."""
        return nupes_levels(self.bits, self.exponent)

    def dequantize(self) -> torch.Tensor:
        qmax = symmetric_qmax(self.bits)
        index = (self.q + qmax).long()
        return self.levels()[index] * self.expand(self.scale)


def nupes_levels(bits: int, exponent: float) -> torch.Tensor:
    """Normalized signed levels ``sign(j) * (|j| / qmax) ** (1 / exponent)``, ``j`` from
    ``-qmax`` to ``qmax`` (float32)."""
    qmax = symmetric_qmax(bits)
    j = torch.arange(-qmax, qmax + 1, dtype=torch.float64)
    return (j.sign() * (j.abs() / qmax) ** (1.0 / exponent)).float()


def nupes_weight(weight: torch.Tensor, spec: QuantSpec, inputs: torch.Tensor | None
                 ) -> NupesWeight:
    """Quantize a GEMM weight (``[out, in, ...]``) on the NUPES grid, with the exponent that
    best keeps ``inputs @ Wᵀ`` (rows ``[R, in]``; None: the weight itself).

    Raises:
        ValueError: the spec is not a NUPES spec, or ``inputs`` rows do not match ``in``.
    """
    if spec.weight_format != "nupes":
        raise ValueError(f"spec {spec.label} is not a NUPES spec")
    w = weight.detach().float().reshape(weight.shape[0], -1)
    if inputs is not None and inputs.shape[-1] != w.shape[1]:
        raise ValueError(f"NUPES calibration rows have {inputs.shape[-1]} features; the "
                         f"weight has {w.shape[1]} inputs")
    absmax, group = slice_absmax(w, spec)
    best: NupesWeight | None = None
    best_err = float("inf")
    for exponent in EXPONENTS:
        candidate = _encode(w, absmax, group, spec.weight_bits, exponent)
        diff = w - candidate.dequantize()
        err = (diff if inputs is None else inputs.float() @ diff.t()).pow(2).sum().item()
        if err < best_err:
            best, best_err = candidate, err
    assert best is not None
    return best


def nupes_inputs(observer: Observer | None, in_features: int) -> torch.Tensor | None:
    """The observer's sampled input rows when they are GEMM rows of ``in_features``
    (a linear's input); None otherwise (a convolution's input is an image, not its patches)."""
    if observer is None or observer.rows is None or observer.rows.shape[1] != in_features:
        return None
    return observer.rows


def slice_absmax(w: torch.Tensor, spec: QuantSpec) -> tuple[torch.Tensor, int]:
    """Each weight slice's absolute maximum ``[out, groups]`` (at least the smallest normal
    float) and the inputs per slice, for a ``[out, in]`` weight."""
    rows, cols = w.shape
    tiny = torch.finfo(torch.float32).tiny
    if spec.weight_granularity == "per_group":
        group = spec.group_size or 128
        padded = F.pad(w.abs(), (0, (-cols) % group)).reshape(rows, -1, group)
        return padded.amax(dim=2).clamp_min(tiny), group
    dim = (0, 1) if spec.weight_granularity == "per_tensor" else 1
    return w.abs().amax(dim=dim, keepdim=True).expand(rows, 1).clamp_min(tiny), cols


def _encode(w: torch.Tensor, absmax: torch.Tensor, group: int, bits: int, exponent: float
            ) -> NupesWeight:
    unit = (w.abs() / expand_groups(absmax, group, w.shape[1])).clamp_max(1.0)
    codes = torch.round(unit.pow(exponent) * symmetric_qmax(bits)) * w.sign()
    return NupesWeight(codes, absmax, torch.zeros_like(absmax), group, bits, exponent)
