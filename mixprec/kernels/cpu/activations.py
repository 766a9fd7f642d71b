"""Int8 activation quantization with the simulation's scales (static or dynamic)."""

from __future__ import annotations

import torch
from torch import nn

from mixprec.kernels.cpu import native
from mixprec.kernels.cpu.int8 import grid_max, u8_offset
from mixprec.quant.fake import dynamic_qparams
from mixprec.quant.observers import Observer
from mixprec.quant.spec import QuantSpec
from mixprec.quant.token_split import TokenGroup

KERNEL_ACT_BITS = (7, 8)
"""Activation grids the int8 kernels take: 8 bits, and 7 bits (``u8 <= 127``: exact on x86
CPUs without VNNI, where 8-bit u8 x s8 pairs saturate a 16-bit sum)."""


class Int8Activation(nn.Module):
    """Symmetric 8- or 7-bit quantizer of one activation tensor, as ``ActQuant`` simulates it.

    Static scales come from the calibration observer (``observer.qparams`` with the spec's
    method); dynamic scales are computed at run time per slice reduced over ``dim``
    (per-token granularity) or over the whole tensor (per-tensor granularity).

    Args:
        spec: the unit's spec (symmetric 7- or 8-bit activations).
        observer: calibration statistics of this tensor (needed when static).
        dim: dimension reduced for one dynamic scale (-1: per row; -2: per column).
        group: calibrate the static scale on one group of a token split only.
    """

    def __init__(self, spec: QuantSpec, observer: Observer | None = None, dim: int = -1,
                 group: TokenGroup | None = None) -> None:
        super().__init__()
        if spec.act_bits not in KERNEL_ACT_BITS or not spec.act_symmetric:
            raise ValueError(f"{spec.label}: int8 kernels take symmetric activations of "
                             f"{KERNEL_ACT_BITS} bits")
        self.bits = spec.act_bits
        self.qmax, self.offset = grid_max(self.bits), u8_offset(self.bits)
        self.dynamic = spec.act_mode == "dynamic"
        self.per_token = spec.act_granularity == "per_token"
        self.dim = dim
        self.static_scale = 0.0
        if not self.dynamic:
            if observer is None or observer.empty:
                raise RuntimeError("static activation quantization needs calibration data")
            scale, _ = observer.qparams(self.bits, True, spec.observer, spec.percentile, group)
            self.static_scale = float(scale)
        self.register_buffer("scale", torch.tensor(self.static_scale), persistent=False)

    def scale_of(self, x: torch.Tensor) -> torch.Tensor:
        """The scale(s) for ``x``: a 0-d tensor, or one per slice (kept dims)."""
        if not self.dynamic:
            return self.scale
        dim = self.dim if self.per_token else tuple(range(x.dim()))
        return dynamic_qparams(x, self.bits, True, dim)[0]

    def rows_u8(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """GEMM rows ``[M, K]`` as the uint8 operand (grid + :attr:`offset`) and their scale:
        one (0-d) or one per row (``[M, 1]``), in one fused pass where the extension runs."""
        if self.dynamic and self.per_token:
            return native.quantize_rows_u8(rows, self.qmax, self.offset)
        scale = self.scale_of(rows)
        return native.quantize_u8(rows, scale, self.qmax, self.offset), scale

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Grid values of ``x`` (float32 tensor of integers, one pass) and their scale(s):
        0-d, or one per row of the last dim (``[..., 1]``) for per-token dynamic specs."""
        rows = x.reshape(-1, x.shape[-1])
        if self.dynamic and self.per_token:
            if self.dim != -1:
                raise ValueError("per-token scales of grid values are per row (dim=-1)")
            grid, scale = native.grid_values_rows(rows, self.qmax)
            return grid.reshape(x.shape), scale.reshape(*x.shape[:-1], 1)
        scale = self.scale_of(x)
        return native.grid_values(rows, scale, self.qmax).reshape(x.shape), scale
