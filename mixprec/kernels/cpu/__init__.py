"""Real quantized execution on the CPU: one module per Xeon / ARM candidate spec.

* ``gemm``: :class:`Int8Gemm` (W8A8 static/dynamic), :class:`WeightOnlyInt8Gemm` (W8A16),
  :class:`WeightOnlyInt4Gemm` (W4A16), :class:`FloatCast` (bf16);
* ``attention``: :class:`CpuAttention`, the SDPA handler with int8 Q·Kᵀ / P·V;
* ``int8``: the int8 GEMM backends (oneDNN on x86, ``torch._int_mm`` elsewhere).
"""

from mixprec.kernels.cpu.attention import CpuAttention
from mixprec.kernels.cpu.gemm import (
    CpuGemm,
    FloatCast,
    Int8Gemm,
    WeightOnlyInt4Gemm,
    WeightOnlyInt8Gemm,
)
from mixprec.kernels.cpu.int8 import BACKENDS, Int8Matrix, default_backend, int8_bmm

__all__ = [
    "BACKENDS", "CpuAttention", "CpuGemm", "FloatCast", "Int8Gemm", "Int8Matrix",
    "WeightOnlyInt4Gemm", "WeightOnlyInt8Gemm", "default_backend", "int8_bmm",
]
