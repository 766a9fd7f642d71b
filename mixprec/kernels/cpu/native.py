"""Fused activation quantization (C++, built on first use) with a pure-PyTorch fallback.

Quantizing an activation for a u8 x s8 GEMM with PyTorch ops takes five passes and as many
temporary tensors (divide, round, clamp, shift, cast); ``csrc/quantize.cpp`` does it in one
pass per row, with the same IEEE division and round-half-to-even, so both give the same
integers. The extension is compiled with the machine's compiler the first time it is needed
(about 30 s, cached by torch under ``~/.cache/torch_extensions``, one build per CPU kind and
source version). Where it cannot be built, or with ``MIXPREC_NATIVE=0``, the PyTorch ops run
instead (same integers, slower), and a warning says so once.
"""

from __future__ import annotations

import hashlib
import logging
import os
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import torch

from mixprec.kernels.cpu.capabilities import cpu_fingerprint
from mixprec.kernels.cpu.int8 import grid_bits
from mixprec.quant.fake import dynamic_qparams, quantize

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("csrc") / "quantize.cpp"
CFLAGS = ["-O3", "-march=native", "-fno-math-errno"]
"""No -ffast-math: it would turn ``x / scale`` into ``x * (1 / scale)`` and change integers."""
DISABLE_VARIABLE = "MIXPREC_NATIVE"


@lru_cache(maxsize=1)
def extension() -> ModuleType | None:
    """The compiled extension, or None where it is disabled or cannot be built."""
    if os.environ.get(DISABLE_VARIABLE, "1") == "0":
        return None
    from torch.utils import cpp_extension

    fingerprint = cpu_fingerprint()
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(
        (*CFLAGS, fingerprint.model_name, fingerprint.cpu_id, *fingerprint.flags,
         torch.__version__)).encode()).hexdigest()[:10]
    try:
        return cpp_extension.load(name=f"mixprec_quantize_{digest}", sources=[str(SOURCE)],
                                  extra_cflags=CFLAGS, verbose=False)
    except (OSError, RuntimeError, ImportError, SystemExit) as err:
        logger.warning("fused quantization could not be built (%s): using PyTorch ops "
                       "(same integers, slower)", str(err).splitlines()[0] if str(err) else err)
        return None


def quantize_u8(rows: torch.Tensor, scale: torch.Tensor, qmax: int, offset: int) -> torch.Tensor:
    """``clamp(round(rows / scale), -qmax - 1, qmax) + offset`` as uint8 (the simulation's
    symmetric grid).

    Args:
        rows: float32 ``[M, K]``.
        scale: one scale, or one per row (``M`` elements).
        qmax: the symmetric grid's largest value (127 for 8 bits, 63 for 7).
        offset: added to the grid value (the u8 zero point).
    """
    ext = extension()
    rows = rows.float().contiguous()
    if ext is not None:
        return ext.quantize_u8(rows, scale.float(), qmax, offset)
    scale = scale.float().reshape(-1, 1) if scale.numel() > 1 else scale.float()
    return (_grid(rows, scale, qmax) + offset).to(torch.uint8)


def quantize_rows_u8(rows: torch.Tensor, qmax: int, offset: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row dynamic quantization: (uint8 grid values + offset, scales ``[M, 1]``), the
    scales as :func:`mixprec.quant.fake.dynamic_qparams` gives them for a symmetric grid."""
    ext = extension()
    rows = rows.float().contiguous()
    if ext is not None:
        u8, scale = ext.quantize_rows_u8(rows, qmax, offset)
        return u8, scale
    scale = dynamic_qparams(rows, grid_bits(qmax), True, -1)[0]
    return (_grid(rows, scale, qmax) + offset).to(torch.uint8), scale


def row_abs_max(rows: torch.Tensor) -> torch.Tensor:
    """Each row's largest absolute value, ``[M]``, in one pass (no temporary ``|rows|``)."""
    ext = extension()
    rows = rows.float().contiguous()
    if ext is not None:
        return ext.row_abs_max(rows)
    return rows.abs().amax(dim=-1)


def grid_values(rows: torch.Tensor, scale: torch.Tensor, qmax: int) -> torch.Tensor:
    """``clamp(round(rows / scale), -qmax - 1, qmax)`` as float32 (one scale, or one per
    row), in one pass: operands of exact float products of integers."""
    ext = extension()
    rows = rows.float().contiguous()
    if ext is not None:
        return ext.grid_f32(rows, scale.float(), qmax)
    return _grid(rows, scale.float().reshape(-1, 1) if scale.numel() > 1 else scale.float(),
                 qmax)


def grid_values_rows(rows: torch.Tensor, qmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row dynamic :func:`grid_values`: (float32 grid values, scales ``[M, 1]``)."""
    ext = extension()
    rows = rows.float().contiguous()
    if ext is not None:
        grid, scale = ext.grid_rows_f32(rows, qmax)
        return grid, scale
    scale = dynamic_qparams(rows, grid_bits(qmax), True, -1)[0]
    return _grid(rows, scale, qmax), scale


def scale_rows_add_bias_(out: torch.Tensor, row_scale: torch.Tensor,
                         bias: torch.Tensor | None) -> torch.Tensor:
    """``out * row_scale + bias`` in place (``out`` float32 ``[M, N]`` contiguous)."""
    ext = extension()
    if ext is not None:
        return ext.scale_rows_add_bias_(out, row_scale, bias)
    out.mul_(row_scale.reshape(-1, 1))
    return out if bias is None else out.add_(bias)


def _grid(rows: torch.Tensor, scale: torch.Tensor, qmax: int) -> torch.Tensor:
    return quantize(rows, scale, torch.zeros(()), grid_bits(qmax), True)
