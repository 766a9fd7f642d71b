"""Token-split (patch-wise) int8 linears on the CPU: each image's outlier tokens apart.

Per image, the tokens a spec's ``token_split`` selects (:mod:`mixprec.quant.token_split`:
the top ``fraction`` by abs-max, or fixed calibrated positions) are *high* tokens, the rest
*low*. With no loop over images, every row goes through the int8 GEMM of
:class:`~.gemm.Int8Gemm` with the low group's scale, then the high rows are gathered into one
more GEMM whose outputs overwrite theirs:

* high tokens in float (``high_bits`` 16): a float32 GEMM against the dequantized int8
  weights;
* high tokens on the same grid with a scale of their own (``high_bits`` equal to
  ``act_bits``; static or per-tensor dynamic): the same int8 GEMM (the same packed
  weights), quantized and rescaled with their scale.

Each group's scale is the simulation's: static, calibrated on the calibration tokens of its
group; dynamic per tensor, the range of its own tokens.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from mixprec.kernels.cpu import native
from mixprec.kernels.cpu.activations import Int8Activation
from mixprec.kernels.cpu.gemm import CpuGemm, Int8Gemm
from mixprec.quant.observers import Observer
from mixprec.quant.spec import FLOAT_BITS, QuantSpec
from mixprec.quant.token_split import (
    TokenGroup,
    fixed_positions,
    high_token_rows,
    own_scale_split,
)


class TokenSplitInt8Gemm(CpuGemm):
    """W8A8 / W8A7 (static or dynamic) with each image's high tokens apart (see the module
    docstring).

    Args:
        module: the float ``nn.Linear``.
        spec: an int8 spec with ``token_split`` whose high tokens are float (``high_bits``
            16) or on its grid with their own scale (:func:`own_scale_split`).
        observer: calibration statistics of the input (static specs).
        backend: int8 GEMM backend.

    Raises:
        ValueError: not a linear, or a token split neither form takes.
    """

    def __init__(self, module: nn.Module, spec: QuantSpec, observer: Observer | None,
                 backend: str) -> None:
        super().__init__(module, spec)
        split = spec.token_split
        self.float_high = split is not None and split.high_bits >= FLOAT_BITS
        if self.conv is not None or not (self.float_high or own_scale_split(spec)):
            raise ValueError(f"{spec.label}: the CPU token-split GEMM runs linears whose "
                             "high tokens are float or share the grid with their own scale")
        assert split is not None
        self.fraction = split.fraction
        self.fixed_positions = fixed_positions(spec, observer)
        whole = replace(spec, token_split=None)
        self.low = Int8Gemm(module, whole, observer, backend, TokenGroup(split, high=False))
        self.per_tensor_dynamic = self.low.act.dynamic and not self.low.act.per_token
        if self.float_high:
            self.register_buffer("float_weight", self.low.dequantized())
        else:
            self.high_act = Int8Activation(whole, observer, group=TokenGroup(split, high=True))

    def dequantized(self) -> torch.Tensor:
        return self.low.dequantized()

    def gemm(self, rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 3:  # no token axis: every row is high, as simulated
            return self._high_gemm(rows)
        if self.fixed_positions is None:
            importance = native.row_abs_max(rows).reshape(x.shape[:-1])
            high = high_token_rows(importance, self.fraction)
        else:
            high = self.fixed_positions.rows(x)
        # a per-tensor dynamic scale covers the low tokens only
        low_rows = rows.index_fill(0, high, 0.0) if self.per_tensor_dynamic else rows
        out = self.low.gemm(low_rows, x)
        return out.index_copy_(0, high, self._high_gemm(rows.index_select(0, high)))

    def _high_gemm(self, rows: torch.Tensor) -> torch.Tensor:
        """The high rows' outputs: a float GEMM, or the int8 GEMM with their own scale."""
        if self.float_high:
            return F.linear(rows, self.float_weight, self.bias)
        xu8, scale = self.high_act.rows_u8(rows)
        return self.low.matrix.matmul(xu8, self.high_act.offset, float(scale), self.bias)
