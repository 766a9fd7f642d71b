"""Token-split (patch-wise) int8 linears on the CPU: each image's outlier tokens apart.

Per image, the tokens a spec's ``token_split`` selects (:mod:`mixprec.quant.token_split`:
the top ``fraction`` by abs-max) are *high* tokens, the rest *low*; no loop over images:

* high tokens in float (``high_bits`` 16): every row through the int8 GEMM of
  :class:`~.gemm.Int8Gemm` with the low group's scale, then the high rows gathered into one
  float32 GEMM against the dequantized int8 weights, whose outputs overwrite theirs;
* high tokens on the same grid with a scale of their own (``high_bits`` equal to
  ``act_bits``; static or per-tensor dynamic): one int8 GEMM whose rows carry their group's
  scale (the quantization and the epilogue are per row).

Each group's scale is the simulation's: static, calibrated on the calibration rows of its
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
from mixprec.quant.token_split import high_token_rows, own_scale_split


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
        static = spec.act_mode == "static" and observer is not None and not observer.empty
        low_rows = observer.low_rows(split.fraction) if static else None
        self.low = Int8Gemm(module, replace(spec, token_split=None), observer, backend, low_rows)
        self.per_tensor_dynamic = self.low.act.dynamic and not self.low.act.per_token
        if self.float_high:
            self.register_buffer("float_weight", self.low.dequantized())
        else:
            high_rows = observer.split_rows(split.fraction)[0] if static else None
            self.high_act = Int8Activation(replace(spec, token_split=None), observer,
                                           rows=high_rows)

    def dequantized(self) -> torch.Tensor:
        return self.low.dequantized()

    def gemm(self, rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        no_tokens = x.dim() < 3  # no token axis: every row is high, as simulated
        high = (torch.arange(rows.shape[0]) if no_tokens
                else high_token_rows(x, self.fraction))
        if not self.float_high:
            return self._own_scale_gemm(rows, high)
        if no_tokens:
            return F.linear(rows, self.float_weight, self.bias)
        # a per-tensor dynamic scale covers the low tokens only
        low_rows = rows.index_fill(0, high, 0.0) if self.per_tensor_dynamic else rows
        out = self.low.gemm(low_rows, x)
        return out.index_copy_(0, high, F.linear(rows.index_select(0, high),
                                                 self.float_weight, self.bias))

    def _own_scale_gemm(self, rows: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """One int8 GEMM, each row quantized and rescaled with its group's scale."""
        low_act, high_act = self.low.act, self.high_act
        if self.per_tensor_dynamic:
            is_high = torch.zeros(rows.shape[0], 1, dtype=torch.bool).index_fill_(0, high, True)
            low_scale = low_act.scale_of(rows.masked_fill(is_high, 0.0))
            high_scale = high_act.scale_of(rows.masked_fill(~is_high, 0.0))
        else:
            low_scale, high_scale = low_act.scale, high_act.scale
        scale = torch.full((rows.shape[0], 1), float(low_scale)).index_fill_(
            0, high, float(high_scale))
        xu8 = native.quantize_u8(rows, scale, low_act.qmax, low_act.offset)
        out = self.low.matrix.matmul(xu8, low_act.offset)
        return native.scale_rows_add_bias_(out, scale, self.bias)
