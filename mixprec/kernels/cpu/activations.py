"""Int8 activation quantization with the simulation's scales (static or dynamic)."""

from __future__ import annotations

import torch
from torch import nn

from mixprec.quant.fake import dynamic_qparams, quantize
from mixprec.quant.observers import Observer
from mixprec.quant.spec import QuantSpec

ACT_BITS = 8


class Int8Activation(nn.Module):
    """Symmetric int8 quantizer of one activation tensor, as ``ActQuant`` simulates it.

    Static scales come from the calibration observer (``observer.qparams`` with the spec's
    method); dynamic scales are computed at run time per slice reduced over ``dim``
    (per-token granularity) or over the whole tensor (per-tensor granularity).

    Args:
        spec: the unit's spec (8-bit symmetric activations).
        observer: calibration statistics of this tensor (needed when static).
        dim: dimension reduced for one dynamic scale (-1: per row; -2: per column).
    """

    def __init__(self, spec: QuantSpec, observer: Observer | None = None, dim: int = -1) -> None:
        super().__init__()
        if spec.act_bits != ACT_BITS or not spec.act_symmetric:
            raise ValueError(f"{spec.label}: int8 kernels take symmetric 8-bit activations")
        self.dynamic = spec.act_mode == "dynamic"
        self.per_token = spec.act_granularity == "per_token"
        self.dim = dim
        self.static_scale = 0.0
        if not self.dynamic:
            if observer is None or observer.empty:
                raise RuntimeError("static activation quantization needs calibration data")
            scale, _ = observer.qparams(ACT_BITS, True, spec.observer, spec.percentile)
            self.static_scale = float(scale)

    def scale_of(self, x: torch.Tensor) -> torch.Tensor:
        """The scale(s) for ``x``: a 0-d tensor, or one per slice (kept dims)."""
        if not self.dynamic:
            return torch.tensor(self.static_scale)
        dim = self.dim if self.per_token else tuple(range(x.dim()))
        return dynamic_qparams(x, ACT_BITS, True, dim)[0]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Int8 grid values of ``x`` (float32 tensor of integers) and their scale(s)."""
        scale = self.scale_of(x)
        return quantize_int8(x, scale), scale


def quantize_int8(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric int8 grid values of ``x`` for ``scale`` (round half to even, +-127)."""
    return quantize(x.float(), scale, torch.zeros(()), ACT_BITS, True)
