"""INT8 x INT8 -> INT32 GEMMs on the CPU, with a float epilogue (scales, bias).

Two backends compute the same integers:

* ``onednn`` (x86): ``torch.ops.onednn.qlinear_prepack`` / ``qlinear_pointwise``, the x86
  quantization engine's linear (u8 activations, s8 per-channel weights, VNNI/AMX), float32
  output straight from the int32 accumulator, so no output requantization is added;
* ``int_mm`` (any CPU, the ARM default): ``torch._int_mm`` (s8 x s8 -> s32) and the scale
  epilogue in PyTorch.

Symmetric int8 activations ``q`` in ``[-127, 127]`` reach oneDNN as ``u8 = q + 128`` with zero
point 128: the same integer grid as the fake-quant simulation.
"""

from __future__ import annotations

import platform

import torch

BACKENDS = ("onednn", "int_mm")
X86_MACHINES = ("x86_64", "amd64", "i686", "x86")
U8_OFFSET = 128


def default_backend() -> str:
    """``onednn`` on x86 CPUs with oneDNN, ``int_mm`` elsewhere (ARM)."""
    if platform.machine().lower() in X86_MACHINES and torch.backends.mkldnn.is_available():
        return "onednn"
    return "int_mm"


def check_backend(backend: str) -> None:
    """Refuse an unknown backend name."""
    if backend not in BACKENDS:
        raise ValueError(f"int8 backend {backend!r} not in {BACKENDS}")


class Int8Matrix:
    """The right operand of ``x @ Wᵀ``: int8 ``[N, K]`` with one scale per row, packed.

    Args:
        q: integer values ``[N, K]`` in ``[-127, 127]`` (any dtype).
        scale: per-row scales ``[N]`` (or broadcastable to it).
        backend: ``onednn`` or ``int_mm``.
    """

    def __init__(self, q: torch.Tensor, scale: torch.Tensor, backend: str) -> None:
        check_backend(backend)
        self.backend = backend
        self.q = q.to(torch.int8).contiguous()
        self.scale = scale.float().reshape(-1).expand(self.q.shape[0]).contiguous()
        if backend == "onednn":
            self.packed = torch.ops.onednn.qlinear_prepack(self.q, None)
            self.zero_points = torch.zeros(self.q.shape[0], dtype=torch.int64)
        else:
            self.packed = self.q.t()

    @property
    def out_features(self) -> int:
        """N: rows of the matrix, columns of the product."""
        return self.q.shape[0]

    def matmul(self, xq: torch.Tensor, x_scale: float = 1.0,
               bias: torch.Tensor | None = None) -> torch.Tensor:
        """``(xq * x_scale) @ (q * scale)ᵀ + bias`` in float32.

        Args:
            xq: symmetric int8 grid values ``[M, K]`` (float or wider int dtype; integers
                in [-127, 127]).
            x_scale: one activation scale (per-row scales: pass 1 and scale the result).
            bias: ``[N]`` float bias, or None.
        """
        if self.backend == "onednn":
            xu8 = (xq + U8_OFFSET).to(torch.uint8)
            return torch.ops.onednn.qlinear_pointwise(
                xu8, float(x_scale), U8_OFFSET, self.packed, self.scale, self.zero_points,
                bias, 1.0, 0, torch.float32, "none", [], "")
        acc = torch._int_mm(xq.to(torch.int8), self.packed)
        out = acc.float() * (self.scale * float(x_scale))
        return out if bias is None else out + bias


def int8_bmm(a_q: torch.Tensor, a_scale: torch.Tensor, b_q: torch.Tensor,
             b_scale: torch.Tensor) -> torch.Tensor:
    """Batched ``(a_q @ b_qᵀ) * a_scale * b_scale`` with int8 operands, in float32.

    One ``torch._int_mm`` (s8 x s8 -> s32) per matrix of the batch (attention: per image
    and head), on every platform: at attention sizes oneDNN's per-matrix weight prepacking
    costs several times the GEMM.

    Args:
        a_q: int8 grid values ``[..., M, K]`` (any dtype).
        a_scale: row scales, broadcastable to ``[..., M, 1]`` (or one).
        b_q: int8 grid values ``[..., N, K]`` (any dtype).
        b_scale: column scales of the product, broadcastable to ``[..., 1, N]`` (or one).
    """
    batch = a_q.shape[:-2]
    m, n = a_q.shape[-2], b_q.shape[-2]
    a2 = a_q.reshape(-1, m, a_q.shape[-1]).to(torch.int8)
    b2 = b_q.reshape(-1, n, b_q.shape[-1]).to(torch.int8)
    acc = torch.empty(a2.shape[0], m, n, dtype=torch.int32)
    for i in range(a2.shape[0]):
        torch._int_mm(a2[i], b2[i].t(), out=acc[i])
    return acc.reshape(*batch, m, n).float() * a_scale * b_scale
