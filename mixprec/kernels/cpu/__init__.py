"""Real quantized execution on the CPU: one module per CPU candidate spec.

* ``gemm``: :class:`Int8Gemm` (W8A8 / W8A7 static/dynamic), :class:`WeightOnlyInt8Gemm`
  (W8A16), :class:`WeightOnlyInt4Gemm` (W4A16), :class:`FloatCast` (bf16);
* ``token_split``: :class:`TokenSplitInt8Gemm` (W8A8 / W8A7 with each image's outlier tokens
  in float32);
* ``attention``: :class:`CpuAttention`, the SDPA handler with int8 Q·Kᵀ / P·V;
* ``int8``: the int8 GEMM backends (oneDNN, its saturation-free split, ``torch._int_mm``);
* ``capabilities`` / ``exactness``: the CPU's fingerprint and the probes of exact int8 paths;
* ``native``: fused activation quantization (C++, built on first use).
"""

from mixprec.kernels.cpu.attention import CpuAttention
from mixprec.kernels.cpu.gemm import (
    CpuGemm,
    FloatCast,
    Int8Gemm,
    WeightOnlyInt4Gemm,
    WeightOnlyInt8Gemm,
)
from mixprec.kernels.cpu.int8 import (
    BACKENDS,
    Int8Matrix,
    default_backend,
    exact_backends,
    int8_bmm,
)
from mixprec.kernels.cpu.token_split import TokenSplitInt8Gemm

__all__ = [
    "BACKENDS", "CpuAttention", "CpuGemm", "FloatCast", "Int8Gemm", "Int8Matrix",
    "TokenSplitInt8Gemm", "WeightOnlyInt4Gemm", "WeightOnlyInt8Gemm", "default_backend",
    "exact_backends", "int8_bmm",
]
