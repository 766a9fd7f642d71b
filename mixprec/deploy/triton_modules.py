"""Modules for the ``a100`` device: linears and attention on this project's Triton kernels.

Weights use the simulation's integer grid (:func:`mixprec.quant.fake.integer_weight`);
static input scales come from the same observers. Inputs must be CUDA tensors (or CPU
tensors under ``TRITON_INTERPRET=1``). Triton is imported when a module is built.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from mixprec.kernels.cpu.gemm import TORCH_DTYPES
from mixprec.quant.fake import integer_weight
from mixprec.quant.modules import expand_kv_heads
from mixprec.quant.observers import Observer
from mixprec.quant.sdpa import SdpaCall
from mixprec.quant.spec import QuantSpec
from mixprec.quant.token_split import high_token_count, token_importance

TRITON_ACT_BITS = 8
"""The Triton int8 kernels take 8-bit activations."""


class _TritonInt8Weights(nn.Module):
    """The int8 per-channel weights, scales and float bias of a Triton int8 linear."""

    def __init__(self, linear: nn.Linear, spec: QuantSpec) -> None:
        super().__init__()
        self.spec = spec
        iw = integer_weight(linear.weight, spec)
        self.register_buffer("qweight", iw.q.to(torch.int8))
        self.register_buffer("scale", iw.scale.reshape(-1).contiguous())
        bias = linear.bias
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())


class TritonInt8Linear(_TritonInt8Weights):
    """W8A8 linear: ``int8_linear_static`` (calibrated per-tensor scale) or
    ``int8_linear_dynamic`` (per-token scales), int8 per-channel weights."""

    def __init__(self, linear: nn.Linear, spec: QuantSpec, observer: Observer | None) -> None:
        super().__init__(linear, spec)
        from mixprec.kernels.triton import int8_gemm

        self._gemm = int8_gemm
        self.in_scale = 0.0
        if spec.act_mode == "static":
            if observer is None or observer.empty:
                raise RuntimeError("static activation quantization needs calibration data")
            self.in_scale = float(observer.qparams(TRITON_ACT_BITS, True, spec.observer,
                                                   spec.percentile)[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.act_mode == "static":
            return self._gemm.int8_linear_static(x, self.qweight, self.scale, self.bias,
                                                 self.in_scale)
        return self._gemm.int8_linear_dynamic(x, self.qweight, self.scale, self.bias)


class TritonTokenSplitLinear(_TritonInt8Weights):
    """Per-token dynamic activations at two bit-widths (e.g. 4 bits, each image's outlier
    tokens at 8): both groups in one launch of the patch-wise GEMM (``patchwise_linear``),
    the tokens selected as the simulation selects them (:mod:`mixprec.quant.token_split`)."""

    def __init__(self, linear: nn.Linear, spec: QuantSpec) -> None:
        super().__init__(linear, spec)
        from mixprec.kernels.triton import patchwise_gemm, reference

        self._gemm, self._reference = patchwise_gemm, reference
        split = spec.token_split
        if split is None or spec.act_mode != "dynamic":
            raise ValueError(f"{spec.label}: the patch-wise GEMM takes dynamic per-token "
                             "activations with a token split")
        self.fraction, self.bits_hi, self.bits_lo = split.fraction, split.high_bits, \
            spec.act_bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 3:  # no token axis: every row is high, as simulated
            rows = x.reshape(-1, x.shape[-1]).shape[0]
            perm = torch.arange(rows, device=x.device)
            split = rows
        else:
            importance = token_importance(x)
            tokens = high_token_count(importance.shape[-1], self.fraction)
            perm, split = self._reference.patchwise_rows(importance, tokens)
        return self._gemm.patchwise_linear(x, self.qweight, self.scale, self.bias, perm, split,
                                           self.bits_hi, self.bits_lo)


class _TritonInt4Weights(nn.Module):
    """Symmetric group-wise int4 weights packed two per byte, their scales (in the spec's
    float dtype) and float bias; K padded to a whole number of groups (padded inputs are
    zeros)."""

    def __init__(self, linear: nn.Linear, spec: QuantSpec) -> None:
        super().__init__()
        from mixprec.kernels.triton import reference

        self.dtype = TORCH_DTYPES[spec.float_dtype]
        iw = integer_weight(linear.weight, spec)
        self.group = iw.group_size
        self.pad = (-linear.in_features) % self.group
        q = F.pad(iw.q, (0, self.pad))
        self.register_buffer("packed", reference.pack_int4(q))
        self.register_buffer("scales", iw.scale.to(self.dtype).contiguous())
        bias = linear.bias
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())

    def padded(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the compute dtype, K padded to whole groups."""
        xs = x.to(self.dtype)
        return F.pad(xs, (0, self.pad)) if self.pad else xs

    def with_bias(self, out: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The GEMM's output plus the float bias, in ``like``'s dtype."""
        out = out.float() if self.bias is None else out.float() + self.bias
        return out.to(like.dtype)


class TritonW4A16Linear(_TritonInt4Weights):
    """W4A16 linear: int4 group weights (``w4a16_gemm``), activations in the spec's float
    dtype."""

    def __init__(self, linear: nn.Linear, spec: QuantSpec) -> None:
        super().__init__(linear, spec)
        from mixprec.kernels.triton import w4a16_gemm

        self._gemm = w4a16_gemm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._gemm.w4a16_gemm(self.padded(x), self.packed, self.scales, self.group)
        return self.with_bias(out, x)


class TritonW4A8Linear(_TritonInt4Weights):
    """W4A8 linear: int4 group weights unpacked to int8 in registers, activations quantized
    to int8 per token (``w4a8_linear``; zero-padded inputs change no token's abs-max)."""

    def __init__(self, linear: nn.Linear, spec: QuantSpec) -> None:
        super().__init__(linear, spec)
        from mixprec.kernels.triton import w4a8_gemm

        self._gemm = w4a8_gemm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._gemm.w4a8_linear(self.padded(x), self.packed, self.scales, self.group)
        return self.with_bias(out, x)


class TritonAttention(nn.Module):
    """SDPA handler: INT8 Q·Kᵀ (blockwise scales, K smoothing) and P·V in the P·V spec's
    float dtype, in one flash-attention kernel; or plain SDPA in that dtype when Q·Kᵀ is float.
    """

    def __init__(self, qk: QuantSpec, pv: QuantSpec) -> None:
        super().__init__()
        self.int8_qk = qk.quantizes_acts
        self.dtype = TORCH_DTYPES[pv.float_dtype]
        if self.int8_qk:
            from mixprec.kernels.triton import attention

            self._attention = attention

    def __call__(self, call: SdpaCall) -> torch.Tensor:  # type: ignore[override]
        return self.forward(call)

    def forward(self, call: SdpaCall) -> torch.Tensor:
        k, v = expand_kv_heads(call)
        q, k, v = (t.to(self.dtype) for t in (call.q, k, v))
        mask = call.bias(q.new_zeros(q.shape[-2], k.shape[-2], dtype=torch.float32))
        if self.int8_qk:
            out = self._attention.attention(q, k, v, mask, call.softmax_scale)
        else:
            mask = None if mask is None else mask.to(self.dtype)
            out = replace(call, q=q, k=k, v=v, attn_mask=mask, is_causal=False,
                          enable_gqa=False).run_original()
        return out.to(call.q.dtype)
