"""CPU modules that replace a float ``nn.Linear`` / ``nn.Conv2d`` by a real quantized GEMM.

Each runs its module as a row GEMM ``[M, K] @ [K, N]`` (a convolution through ``F.unfold``,
whose column order matches the flattened weight's) with integer weights from
:func:`mixprec.quant.fake.integer_weight`, the same grid the fake-quant simulation uses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import nn

from mixprec.kernels.cpu import native
from mixprec.kernels.cpu.activations import Int8Activation
from mixprec.kernels.cpu.int8 import Int8Matrix
from mixprec.kernels.registry import INT4_GROUP_SIZES
from mixprec.quant.fake import integer_weight
from mixprec.quant.observers import Observer
from mixprec.quant.spec import QuantSpec
from mixprec.quant.token_split import TokenGroup
from mixprec.quant.units import conv_output_hw

TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
INT4_OFFSET = 8
"""``torch._weight_int4pack_mm_for_cpu`` dequantizes ``(u4 - 8) * scale + zero``."""
INT4_N_MULTIPLE = 16
"""The int4 packing needs N divisible by 16: extra output rows are padded and dropped."""
INT8PACK_K_MULTIPLE = 16
"""``torch._weight_int8pack_mm`` on CPU needs K divisible by 16 (other K crash or fail):
K is padded with zero weights and zero inputs."""


def pad_inputs(rows: torch.Tensor, pad: int) -> torch.Tensor:
    """GEMM rows with ``pad`` zero inputs appended (K padded for a kernel's alignment)."""
    return F.pad(rows, (0, pad)) if pad else rows


class CpuGemm(nn.Module, ABC):
    """Base class: a Linear or Conv2d computed as a row GEMM by :meth:`gemm`.

    Args:
        module: the float ``nn.Linear`` or ``nn.Conv2d`` (groups=1, numeric padding).
        spec: the unit's spec.
    """

    def __init__(self, module: nn.Module, spec: QuantSpec) -> None:
        super().__init__()
        self.spec = spec
        weight = module.weight.detach()
        self.out_features, self.in_features = weight.shape[0], weight[0].numel()
        self.weight_shape = tuple(weight.shape)
        self.conv: dict[str, tuple[int, ...]] | None = None
        if isinstance(module, nn.Conv2d):
            if isinstance(module.padding, str) or module.groups != 1 or \
                    module.padding_mode != "zeros":
                raise ValueError("Conv2d needs groups=1 and numeric zero padding to run as a "
                                 "GEMM")
            self.conv = {"kernel_size": module.kernel_size, "dilation": module.dilation,
                         "padding": module.padding, "stride": module.stride}
        bias = module.bias
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv is None:
            rows = x.reshape(-1, self.in_features).contiguous()
            out = self.gemm(rows, x)
            return out.reshape(*x.shape[:-1], self.out_features).to(x.dtype)
        cols = F.unfold(x, **self.conv)  # [B, K, L]
        rows = cols.transpose(1, 2).reshape(-1, self.in_features).contiguous()
        out = self.gemm(rows, x).reshape(x.shape[0], cols.shape[-1], self.out_features)
        h, w = conv_output_hw(x.shape[-2:], **self.conv)
        return out.transpose(1, 2).reshape(x.shape[0], self.out_features, h, w).to(x.dtype)

    @abstractmethod
    def gemm(self, rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``rows @ Wᵀ + bias`` for GEMM rows ``[M, K]`` of the module input ``x``."""

    @abstractmethod
    def dequantized(self) -> torch.Tensor:
        """The weight the kernel computes with, ``[N, K]`` in float32."""

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized weight in the float module's shape (computed on access: models
        such as Hugging Face's ViT read ``.weight.dtype`` of their patch embedding)."""
        return self.dequantized().reshape(self.weight_shape)

    def _add_bias(self, out: torch.Tensor) -> torch.Tensor:
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, spec={self.spec.label}"


class Int8Gemm(CpuGemm):
    """W8A8 / W8A7: int8 per-channel weights x 8- or 7-bit activations (static per-tensor,
    dynamic per-token or per-tensor), activations quantized in one fused pass.

    Args:
        module: the float module.
        spec: 8-bit symmetric weights (per channel or per tensor) and 8- or 7-bit symmetric
            activations.
        observer: calibration statistics of the input (static specs).
        backend: int8 GEMM backend (:data:`mixprec.kernels.cpu.int8.BACKENDS`).
        static_group: calibrate a static scale on one group of a token split only.
    """

    def __init__(self, module: nn.Module, spec: QuantSpec, observer: Observer | None,
                 backend: str, static_group: TokenGroup | None = None) -> None:
        super().__init__(module, spec)
        iw = integer_weight(module.weight, spec)
        self.matrix = Int8Matrix(iw.q, iw.scale, backend)
        self.act = Int8Activation(spec, observer, group=static_group)

    def dequantized(self) -> torch.Tensor:
        return self.matrix.q.float() * self.matrix.scale[:, None]

    def gemm(self, rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        act = self.act
        if self.conv is not None and act.dynamic:
            # one scale per image, as the simulation quantizes the flattened conv input
            scale = act.scale_of(x.flatten(1))
            if scale.numel() > 1:
                scale = scale.repeat_interleave(rows.shape[0] // x.shape[0], dim=0)
            xu8 = native.quantize_u8(rows, scale, act.qmax, act.offset)
        else:
            xu8, scale = act.rows_u8(rows)
        if scale.numel() == 1:
            return self.matrix.matmul(xu8, act.offset, float(scale), self.bias)
        out = self.matrix.matmul(xu8, act.offset)
        return native.scale_rows_add_bias_(out, scale, self.bias)


class WeightOnlyInt8Gemm(CpuGemm):
    """W8A16: int8 per-channel weights, activations in the spec's float dtype
    (``torch._weight_int8pack_mm``; K padded to a multiple of 16)."""

    def __init__(self, module: nn.Module, spec: QuantSpec) -> None:
        super().__init__(module, spec)
        self.dtype = TORCH_DTYPES[spec.float_dtype]
        self.pad = (-self.in_features) % INT8PACK_K_MULTIPLE
        iw = integer_weight(module.weight, spec)
        self.register_buffer("qweight", F.pad(iw.q.to(torch.int8), (0, self.pad)))
        self.register_buffer("scales", iw.scale.reshape(-1).to(self.dtype))

    def dequantized(self) -> torch.Tensor:
        k = self.in_features
        return self.qweight[:, :k].float() * self.scales.float()[:, None]

    def gemm(self, rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        rows = pad_inputs(rows.to(self.dtype), self.pad)
        out = torch._weight_int8pack_mm(rows, self.qweight, self.scales)
        return self._add_bias(out.float())


class WeightOnlyInt4Gemm(CpuGemm):
    """W4A16: int4 weights packed two per byte with group scales and zeros, activations in
    the spec's float dtype (``torch._weight_int4pack_mm_for_cpu``).

    Per-channel and per-tensor scales run as groups of 32 with repeated scales; K is padded
    to a whole number of groups (padded inputs are zeros), N to a multiple of 16.
    """

    def __init__(self, module: nn.Module, spec: QuantSpec) -> None:
        super().__init__(module, spec)
        self.dtype = TORCH_DTYPES[spec.float_dtype]
        group = spec.group_size if spec.weight_granularity == "per_group" else 32
        if group not in INT4_GROUP_SIZES:
            raise ValueError(f"int4 group size {group} not in {INT4_GROUP_SIZES}")
        self.group = group
        self.pad = (-self.in_features) % group
        iw = integer_weight(module.weight, spec)
        offset = INT4_OFFSET if spec.weight_symmetric else 0
        n_pad = (-self.out_features) % INT4_N_MULTIPLE
        q = F.pad(iw.q + offset, (0, self.pad, 0, n_pad), value=INT4_OFFSET)
        self.register_buffer("qweight", torch._convert_weight_to_int4pack_for_cpu(
            q.to(torch.int32), 1))
        scale = F.pad(self._per_group(iw.expand(iw.scale)), (0, 0, 0, n_pad))
        zero = F.pad(self._per_group(iw.expand((INT4_OFFSET - offset - iw.zero_point) * iw.scale)),
                     (0, 0, 0, n_pad))
        self.register_buffer("scales_and_zeros",
                             torch.stack([scale.t(), zero.t()], dim=-1).to(self.dtype).contiguous())

    def dequantized(self) -> torch.Tensor:
        eye = torch.eye(self.in_features + self.pad, dtype=self.dtype)
        columns = torch._weight_int4pack_mm_for_cpu(eye, self.qweight, self.group,
                                                    self.scales_and_zeros)  # [K, N] = Wᵀ
        return columns[: self.in_features, : self.out_features].t().float()

    def _per_group(self, per_input: torch.Tensor) -> torch.Tensor:
        """``[N, K]`` per-input values -> ``[N, groups]`` (first input of each kernel group)."""
        padded = F.pad(per_input, (0, self.pad), mode="replicate")
        return padded[:, :: self.group]

    def gemm(self, rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        rows = pad_inputs(rows.to(self.dtype), self.pad)
        out = torch._weight_int4pack_mm_for_cpu(rows, self.qweight, self.group,
                                                self.scales_and_zeros)
        return self._add_bias(out[:, : self.out_features].float())


class FloatCast(nn.Module):
    """A float module run in another float dtype (bf16 weights and activations; AMX/AVX512-BF16
    GEMMs through oneDNN where the CPU has them); output cast back to the input's dtype.

    Args:
        module: the float module (converted in place: pass a copy).
        spec: float spec whose ``float_dtype`` is the compute dtype.
    """

    def __init__(self, module: nn.Module, spec: QuantSpec) -> None:
        super().__init__()
        self.spec = spec
        self.dtype = TORCH_DTYPES[spec.float_dtype]
        self.inner = module.to(self.dtype)

    @property
    def weight(self) -> torch.Tensor:
        """The module's weight in the compute dtype."""
        return self.inner.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.to(self.dtype)).to(x.dtype)

