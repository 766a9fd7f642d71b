"""Shared launcher helpers: input checks, device rules and autotune config selection."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import triton
from triton import knobs

# Read once, at the same moment the kernels of the importing modules are decorated.
INTERPRET: bool = bool(knobs.runtime.interpret)

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def gemm_configs(
    tiles: Sequence[tuple[int, int, int, int, int]], interpreter: tuple[int, int, int, int]
) -> list[triton.Config]:
    """Autotune candidates of a tiled GEMM: the GPU list, or one small tile in the interpreter.

    Args:
        tiles: ``(BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages)`` to tune over on a GPU
            (grouped launch order, ``GROUP_M=8``).
        interpreter: ``(BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M)``, the single config used with
            ``TRITON_INTERPRET=1`` (tuning there is slow).

    Returns:
        The configs to hand to ``triton.autotune``.
    """
    if INTERPRET:
        bm, bn, bk, gm = interpreter
        return [triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": gm})]
    return [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": 8},
                      num_warps=w, num_stages=st)
        for bm, bn, bk, w, st in tiles
    ]


def check_tensor(
    name: str,
    t: object,
    *,
    dtypes: Iterable[torch.dtype],
    ndim: int | None = None,
) -> torch.Tensor:
    """Check one launcher argument: a tensor of an allowed dtype and rank on a usable device.

    Args:
        name: Argument name, used in the error message.
        t: The value passed.
        dtypes: Allowed dtypes.
        ndim: Required rank, or None for any.

    Returns:
        The tensor, unchanged.

    Raises:
        TypeError: Not a tensor, or wrong dtype.
        ValueError: Wrong rank or device.
    """
    dtypes = tuple(dtypes)
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in dtypes:
        allowed = ", ".join(str(d).removeprefix("torch.") for d in dtypes)
        raise TypeError(f"{name} must have dtype in ({allowed}), got {t.dtype}")
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(t.shape)}")
    if not INTERPRET and t.device.type != "cuda":
        raise ValueError(
            f"{name} is on {t.device}; Triton kernels need CUDA tensors "
            "(set TRITON_INTERPRET=1 before importing mixprec.kernels.triton modules to run on CPU)"
        )
    return t


def check_same_device(**tensors: torch.Tensor | None) -> None:
    """Raise ValueError naming the first argument that is not on the first one's device."""
    given = {k: v for k, v in tensors.items() if v is not None}
    first_name, first = next(iter(given.items()))
    for name, t in given.items():
        if t.device != first.device:
            raise ValueError(f"{name} is on {t.device} but {first_name} is on {first.device}")


def check_vector(name: str, t: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """Check a scale or bias vector has one of the allowed element counts; return it flat.

    Args:
        name: Argument name, used in the error message.
        t: The tensor (any shape; only its element count matters).
        sizes: Allowed element counts (e.g. ``(1, M)`` for per-tensor or per-token scales).

    Returns:
        ``t`` flattened and contiguous.
    """
    if t.numel() not in sizes:
        want = " or ".join(str(s) for s in sizes)
        raise ValueError(f"{name} must have {want} elements, got shape {tuple(t.shape)}")
    return t.reshape(-1).contiguous()


def qmax_for_bits(bits: int, name: str = "bits") -> int:
    """Largest symmetric integer level for a signed bit-width in [2, 8] (e.g. 8 -> 127)."""
    if not isinstance(bits, int) or not 2 <= bits <= 8:
        raise ValueError(f"{name} must be an int in [2, 8], got {bits!r}")
    return 2 ** (bits - 1) - 1


def scalar_scale(name: str, scale: torch.Tensor | float, device: torch.device) -> torch.Tensor:
    """A per-tensor scale as a 1-element tensor on ``device`` (a float must be positive).

    Tensors are kept as they are (no device sync to check their value).
    """
    if not isinstance(scale, torch.Tensor):
        if not scale > 0:
            raise ValueError(f"{name} must be positive, got {scale}")
        return torch.tensor([scale], dtype=torch.float32, device=device)
    check_tensor(name, scale, dtypes=FLOAT_DTYPES)
    if scale.device != device:
        raise ValueError(f"{name} is on {scale.device}, expected {device}")
    return check_vector(name, scale, (1,))
