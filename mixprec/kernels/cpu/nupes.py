"""NUPES weight-only GEMM on the CPU: packed codes decoded on the fly, float32 GEMM.

The weight stays in memory as its codes (two per byte up to 4 bits) with one scale per slice;
each call decodes it through a lookup table (one table row per byte: both of its codes'
levels at once) and runs one float32 GEMM. The decoded weight equals the simulation's
(:meth:`mixprec.quant.nupes.NupesWeight.dequantize`) bit for bit: the same levels times the
same scales.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mixprec.kernels.cpu.gemm import CpuGemm
from mixprec.quant.fake import symmetric_qmax
from mixprec.quant.nupes import nupes_inputs, nupes_weight
from mixprec.quant.observers import Observer
from mixprec.quant.spec import QuantSpec

NIBBLE = 16
PACKED_MAX_BITS = 4
"""Codes of up to 4 bits (``2 * qmax + 1 <= 15`` levels) pack two per byte."""


def stored_code_bits(bits: int) -> int:
    """Bits a ``bits``-bit NUPES code occupies in memory: a nibble, or a byte."""
    return 4 if bits <= PACKED_MAX_BITS else 8


class NupesGemm(CpuGemm):
    """W4A16 (or W3, W6, W8) with NUPES levels: float32 activations and GEMM.

    Args:
        module: the float module.
        spec: a NUPES weight-only spec (``weight_format='nupes'``).
        observer: calibration statistics of the input (the exponent is fitted on its rows).
    """

    def __init__(self, module: nn.Module, spec: QuantSpec, observer: Observer | None) -> None:
        super().__init__(module, spec)
        nw = nupes_weight(module.weight, spec, nupes_inputs(observer, self.in_features))
        self.exponent, self.group_size = nw.exponent, nw.group_size
        index = (nw.q + symmetric_qmax(nw.bits)).to(torch.uint8)
        levels = nw.levels()
        self.per_byte = 2 if nw.bits <= PACKED_MAX_BITS else 1
        if self.per_byte == 2:
            index = F.pad(index, (0, index.shape[1] % 2))
            index = index[:, 0::2] | (index[:, 1::2] << 4)
            byte = torch.arange(256)
            padded = F.pad(levels, (0, NIBBLE - len(levels)))
            table = torch.stack([padded[byte % NIBBLE], padded[byte // NIBBLE]], dim=1)
        else:
            table = levels[:, None]
        self.register_buffer("codes", index.contiguous())
        self.register_buffer("table", table.contiguous())
        self.register_buffer("scale", nw.scale.contiguous())

    def dequantized(self) -> torch.Tensor:
        rows, cols = self.out_features, self.in_features
        levels = F.embedding(self.codes.int(), self.table).reshape(rows, -1)
        # whole groups (padding a short last one), each times its scale by broadcasting
        whole = self.scale.shape[1] * self.group_size
        levels = F.pad(levels[:, :cols], (0, whole - cols)) if levels.shape[1] != whole \
            else levels
        per_group = levels.reshape(rows, -1, self.group_size) * self.scale[:, :, None]
        return per_group.reshape(rows, -1)[:, :cols]

    def gemm(self, rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return F.linear(rows.float(), self.dequantized(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, exponent={self.exponent}"
