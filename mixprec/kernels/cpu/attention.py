"""Int8 attention matmuls on the CPU, run through the attention module's intercepted SDPA.

Q·Kᵀ quantizes Q per row and K per row (token); P·V quantizes P per row and V per column
(channel) — per tensor when static — exactly as :class:`mixprec.quant.modules.AttentionQuant`
simulates it, so every scale factors out of the int8 x int8 -> int32 GEMM (K plays the weight
of Q·Kᵀ, Vᵀ the weight of P·V: per-token / per-channel scales are per output channel there).
A matmul whose spec is float runs in the spec's float dtype; when both are float in one dtype,
the whole call runs in PyTorch's fused SDPA kernel in that dtype.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from mixprec.kernels.cpu.activations import Int8Activation
from mixprec.kernels.cpu.gemm import TORCH_DTYPES
from mixprec.kernels.cpu.int8 import int8_bmm
from mixprec.quant.modules import expand_kv_heads
from mixprec.quant.observers import Observer
from mixprec.quant.sdpa import SdpaCall
from mixprec.quant.spec import QuantSpec


class CpuAttention(nn.Module):
    """SDPA handler computing Q·Kᵀ and P·V with int8 GEMMs where their specs quantize.

    Args:
        qk: spec of the Q·Kᵀ unit.
        pv: spec of the P·V unit.
        observers: calibration statistics of ``q``, ``k``, ``p``, ``v`` (static specs).
    """

    def __init__(self, qk: QuantSpec, pv: QuantSpec,
                 observers: dict[str, Observer | None]) -> None:
        super().__init__()
        self.qk, self.pv = qk, pv
        self.quantizers = nn.ModuleDict()
        for point, spec in (("q", qk), ("k", qk), ("p", pv), ("v", pv)):
            if spec.quantizes_acts:
                self.quantizers[point] = Int8Activation(spec, observers.get(point))

    def __call__(self, call: SdpaCall) -> torch.Tensor:  # type: ignore[override]
        return self.forward(call)

    def forward(self, call: SdpaCall) -> torch.Tensor:
        if not self.quantizers and self.qk.float_dtype == self.pv.float_dtype:
            return float_attention(call, TORCH_DTYPES[self.qk.float_dtype])
        k, v = expand_kv_heads(call)
        if self.qk.quantizes_acts:
            q_q, q_scale = self.quantizers["q"](call.q)
            k_q, k_scale = self.quantizers["k"](k)
            scores = int8_bmm(q_q, q_scale * call.softmax_scale, k_q, as_columns(k_scale))
        else:
            scores = float_matmul(self.qk, call.q, k.transpose(-2, -1)) * call.softmax_scale
        bias = call.bias(scores)
        if bias is not None:
            scores = scores + bias
        probs = scores.softmax(dim=-1)
        if self.pv.quantizes_acts:
            p_q, p_scale = self.quantizers["p"](probs)
            # V per column = Vᵀ per row: Vᵀ is P·V's weight, its rows' scales are per column
            vt_q, vt_scale = self.quantizers["v"](v.transpose(-2, -1))
            out = int8_bmm(p_q, p_scale, vt_q, as_columns(vt_scale))
        else:
            out = float_matmul(self.pv, probs, v)
        return out.to(call.q.dtype)


def float_attention(call: SdpaCall, dtype: torch.dtype) -> torch.Tensor:
    """The whole call in one float dtype through PyTorch's fused SDPA kernel."""
    cast = [t.to(dtype) for t in (call.q, call.k, call.v)]
    mask = call.attn_mask
    if mask is not None and mask.is_floating_point():
        mask = mask.to(dtype)
    return replace(call, q=cast[0], k=cast[1], v=cast[2], attn_mask=mask).run_original().to(
        call.q.dtype)


def as_columns(row_scales: torch.Tensor) -> torch.Tensor:
    """Per-row scales ``[..., N, 1]`` as column scales ``[..., 1, N]`` (one scale: as is)."""
    return row_scales.transpose(-2, -1) if row_scales.dim() >= 2 else row_scales


def float_matmul(spec: QuantSpec, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` in the spec's float dtype, returned in float32."""
    dtype = TORCH_DTYPES[spec.float_dtype]
    return (a.to(dtype) @ b.to(dtype)).float()
