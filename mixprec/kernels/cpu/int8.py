"""INT8 x INT8 -> INT32 GEMMs on the CPU, with a float epilogue (scales, bias).

Activations arrive as uint8 ``u8 = q + offset``: symmetric grid values ``q`` in
``[-qmax - 1, qmax]`` shifted by ``offset = qmax + 1`` (128 for 8 bits, 64 for 7 bits), which
is also the zero point: ``u8`` spans ``[0, 255]`` (``[0, 127]`` for 7 bits). Three backends
compute the same integers:

* ``onednn`` (x86): ``torch.ops.onednn.qlinear_prepack`` / ``qlinear_pointwise`` (u8 x s8,
  VNNI/AMX), float32 output straight from the int32 accumulator. Without VNNI, oneDNN adds
  pairs of u8 x s8 products in signed 16 bits (``vpmaddubsw``): exact only while
  ``2 * u8max * 127 <= 32767``, i.e. for 7-bit activations (``u8 <= 127``). Offered for a
  grid only where :func:`mixprec.kernels.cpu.exactness.onednn_exact` passes.
* ``onednn_split`` (x86 without VNNI, 8-bit activations): ``u8 = 2 * hi + lo`` with
  ``hi = u8 >> 1 <= 127`` and ``lo = u8 & 1``: two oneDNN GEMMs that cannot saturate, added
  in float (``(u8 - 128) = 2 * (hi - 64) + lo``).
* ``int_mm`` (the ARM default): ``torch._int_mm`` (s8 x s8 -> s32) and the epilogue in PyTorch.
"""

from __future__ import annotations

import platform
from functools import cache

import torch

from mixprec.kernels.cpu.exactness import int_mm_exact, onednn_exact

BACKENDS = ("onednn", "onednn_split", "int_mm")
X86_MACHINES = ("x86_64", "amd64", "i686", "x86")


def grid_max(bits: int) -> int:
    """The level a symmetric scale maps the absolute maximum to: 127, 63, ..."""
    return 2 ** (bits - 1) - 1


def grid_bits(qmax: int) -> int:
    """Inverse of :func:`grid_max`: the bit-width of the grid ``[-qmax - 1, qmax]``."""
    return (qmax + 1).bit_length()


def u8_offset(bits: int) -> int:
    """The zero point that carries a symmetric ``bits``-bit grid in uint8."""
    return grid_max(bits) + 1


@cache
def exact_backends(bits: int = 8) -> tuple[str, ...]:
    """Backends whose int32 sums are exact on this machine for ``bits``-bit activations,
    fastest first."""
    found = []
    if platform.machine().lower() in X86_MACHINES and torch.backends.mkldnn.is_available():
        if onednn_exact(grid_max(bits)):
            found.append("onednn")
        elif bits == 8 and onednn_exact(grid_max(7)):
            found.append("onednn_split")
    if int_mm_exact():
        found.append("int_mm")
    return tuple(found)


def default_backend(bits: int = 8) -> str | None:
    """The fastest exact backend for ``bits``-bit activations here, or None if none is."""
    backends = exact_backends(bits)
    return backends[0] if backends else None


def check_backend(backend: str) -> None:
    """Refuse an unknown backend name."""
    if backend not in BACKENDS:
        raise ValueError(f"int8 backend {backend!r} not in {BACKENDS}")


class Int8Matrix:
    """The right operand of ``x @ Wᵀ``: int8 ``[N, K]`` with one scale per row, packed.

    Args:
        q: integer values ``[N, K]`` in ``[-127, 127]`` (any dtype).
        scale: per-row scales ``[N]`` (or broadcastable to it).
        backend: one of :data:`BACKENDS`.
    """

    def __init__(self, q: torch.Tensor, scale: torch.Tensor, backend: str) -> None:
        check_backend(backend)
        self.backend = backend
        self.q = q.to(torch.int8).contiguous()
        self.scale = scale.float().reshape(-1).expand(self.q.shape[0]).contiguous()
        if backend == "int_mm":
            self.packed = self.q.t()
        else:
            self.packed = torch.ops.onednn.qlinear_prepack(self.q, None)
            self.zero_points = torch.zeros(self.q.shape[0], dtype=torch.int64)

    def __getstate__(self) -> dict[str, object]:
        """Pickled as its integer values, scales and backend (oneDNN's packed weight is an
        opaque tensor that cannot be saved); unpickling packs it again."""
        return {"q": self.q, "scale": self.scale, "backend": self.backend}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(state["q"], state["scale"], state["backend"])

    @property
    def out_features(self) -> int:
        """N: rows of the matrix, columns of the product."""
        return self.q.shape[0]

    def matmul(self, xu8: torch.Tensor, offset: int, x_scale: float = 1.0,
               bias: torch.Tensor | None = None) -> torch.Tensor:
        """``((xu8 - offset) * x_scale) @ (q * scale)ᵀ + bias`` in float32.

        Args:
            xu8: uint8 ``[M, K]``, grid values plus ``offset``.
            offset: the activations' zero point (:func:`u8_offset`).
            x_scale: one activation scale (per-row scales: pass 1 and scale the result).
            bias: ``[N]`` float bias, or None.
        """
        if self.backend == "onednn":
            return self._onednn(xu8, x_scale, offset, bias)
        if self.backend == "onednn_split":
            half = offset // 2
            high = self._onednn(torch.bitwise_right_shift(xu8, 1), 2.0 * x_scale, half, bias)
            return high.add_(self._onednn(torch.bitwise_and(xu8, 1), x_scale, 0, None))
        xs8 = (xu8.to(torch.int16) - offset).to(torch.int8)
        out = torch._int_mm(xs8, self.packed).float() * (self.scale * float(x_scale))
        return out if bias is None else out + bias

    def _onednn(self, xu8: torch.Tensor, x_scale: float, zero_point: int,
                bias: torch.Tensor | None) -> torch.Tensor:
        return torch.ops.onednn.qlinear_pointwise(
            xu8, float(x_scale), zero_point, self.packed, self.scale, self.zero_points,
            bias, 1.0, 0, torch.float32, "none", [], "")


EXACT_FLOAT_REDUCTION = 1024
"""Longest reduction whose int8 x int8 products float32 sums exactly: every partial sum is
an integer of magnitude at most ``1024 * 128 * 128 = 2**24``."""


def int8_bmm(a_q: torch.Tensor, a_scale: torch.Tensor, b_q: torch.Tensor,
             b_scale: torch.Tensor) -> torch.Tensor:
    """Batched ``(a_q @ b_qᵀ) * a_scale * b_scale`` with int8 operands, in float32.

    Up to :data:`EXACT_FLOAT_REDUCTION` (attention: head dims and sequence lengths up to
    1024) the integer product runs as a float32 batched matmul of integer-valued tensors,
    which is exact on every CPU (no int8 instructions, so no 16-bit saturation) and as fast
    as float attention's matmuls; longer reductions take one ``torch._int_mm`` per matrix,
    where :func:`mixprec.kernels.cpu.exactness.int_mm_exact` holds.

    Args:
        a_q: int8 grid values ``[..., M, K]`` (any dtype).
        a_scale: row scales, broadcastable to ``[..., M, 1]`` (or one).
        b_q: int8 grid values ``[..., N, K]`` (any dtype).
        b_scale: column scales of the product, broadcastable to ``[..., 1, N]`` (or one).

    Raises:
        RuntimeError: a longer reduction on a CPU where ``torch._int_mm`` is not exact.
    """
    if a_q.shape[-1] <= EXACT_FLOAT_REDUCTION:
        acc = a_q.float() @ b_q.float().transpose(-2, -1)
        if a_scale.numel() == 1 and b_scale.numel() == 1:
            return acc.mul_(a_scale * b_scale)
        return acc.mul_(a_scale).mul_(b_scale)
    if not int_mm_exact():
        raise RuntimeError(f"int8 product over {a_q.shape[-1]} > {EXACT_FLOAT_REDUCTION} "
                           "elements: torch._int_mm is not exact on this CPU")
    batch = a_q.shape[:-2]
    m, n = a_q.shape[-2], b_q.shape[-2]
    a2 = a_q.reshape(-1, m, a_q.shape[-1]).to(torch.int8)
    b2 = b_q.reshape(-1, n, b_q.shape[-1]).to(torch.int8)
    acc = torch.empty(a2.shape[0], m, n, dtype=torch.int32)
    for i in range(a2.shape[0]):
        torch._int_mm(a2[i], b2[i].t(), out=acc[i])
    return acc.reshape(*batch, m, n).float() * a_scale * b_scale
