"""Token-split (patch-wise) int8 linears on the CPU: outlier tokens in float, the rest int8.

Per image, the tokens a spec's ``token_split`` selects (:mod:`mixprec.quant.token_split`:
the top ``fraction`` by abs-max) run their GEMM in float32 against the unit's int8 weights
dequantized, the other tokens through the int8 GEMM of :class:`~.gemm.Int8Gemm` with the low
group's own scale. All images go through one int8 GEMM and one float GEMM of gathered rows,
whose outputs overwrite the int8 GEMM's rows of the high tokens: no loop over images.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from mixprec.kernels.cpu.gemm import CpuGemm, Int8Gemm
from mixprec.quant.observers import Observer
from mixprec.quant.spec import FLOAT_BITS, QuantSpec
from mixprec.quant.token_split import high_token_rows


class TokenSplitInt8Gemm(CpuGemm):
    """W8A8 / W8A7 (static or dynamic) with each image's high tokens in float32.

    Args:
        module: the float ``nn.Linear``.
        spec: an int8 spec with ``token_split`` whose ``high_bits`` is 16 (float).
        observer: calibration statistics of the input (static specs: the low group's scale
            is calibrated on the low rows, as the simulation does).
        backend: int8 GEMM backend of the low tokens.

    Raises:
        ValueError: not a linear, no token split, or high tokens that are not float.
    """

    def __init__(self, module: nn.Module, spec: QuantSpec, observer: Observer | None,
                 backend: str) -> None:
        super().__init__(module, spec)
        split = spec.token_split
        if split is None or split.high_bits < FLOAT_BITS or self.conv is not None:
            raise ValueError(f"{spec.label}: the CPU token-split GEMM runs linears whose "
                             "high tokens are float (token_split.high_bits=16)")
        self.fraction = split.fraction
        rows = (observer.low_rows(split.fraction)
                if spec.act_mode == "static" and observer is not None and not observer.empty
                else None)
        self.low = Int8Gemm(module, replace(spec, token_split=None), observer, backend, rows)
        self.zero_high_rows = self.low.act.dynamic and not self.low.act.per_token
        self.register_buffer("float_weight", self.low.dequantized())

    def dequantized(self) -> torch.Tensor:
        return self.float_weight

    def gemm(self, rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 3:  # no token axis: every row is high, as simulated
            return F.linear(rows, self.float_weight, self.bias)
        high = high_token_rows(x, self.fraction)
        # a per-tensor dynamic scale covers the low tokens only
        low_rows = rows.index_fill(0, high, 0.0) if self.zero_high_rows else rows
        out = self.low.gemm(low_rows, x)
        return out.index_copy_(0, high, F.linear(rows.index_select(0, high),
                                                 self.float_weight, self.bias))
