"""Probes: does an int8 GEMM path compute exact int32 sums on this machine?

x86 CPUs without VNNI multiply u8 x s8 pairs with ``vpmaddubsw``, which adds two products
in a signed 16-bit lane and saturates at 32767: full-range u8 activations (up to 255) times
int8 weights (up to 127) overflow it, and oneDNN (``ONEDNN_MAX_CPU_ISA=AVX2`` forces that
path on any x86) returns wrong sums without a warning. ``torch._int_mm`` goes through the
same code there (s8 operands are shifted to u8). Rather than trusting the ISA flags, each
path is run once per process on operands that reach the grid's limits and compared with an
exact integer product: a kernel is offered only where its probe passes.
"""

from __future__ import annotations

from functools import cache

import torch

PROBE_K = 64
"""Reduction length of the probe (many pairs, so any 16-bit saturation shows)."""
WEIGHT_MAX = 127


def probe_operands(act_max: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Activation grid values ``[4, K]`` in ``[-act_max - 1, act_max]`` and int8 weights
    ``[3, K]`` whose products reach the largest partial sums either sign can have."""
    gen = torch.Generator().manual_seed(0)
    acts = torch.stack([torch.full((PROBE_K,), act_max), torch.full((PROBE_K,), -act_max - 1),
                        torch.randint(-act_max, act_max + 1, (PROBE_K,), generator=gen),
                        torch.arange(PROBE_K) % (2 * act_max + 1) - act_max])
    weights = torch.stack([torch.full((PROBE_K,), WEIGHT_MAX), torch.full((PROBE_K,), -WEIGHT_MAX),
                           torch.randint(-WEIGHT_MAX, WEIGHT_MAX + 1, (PROBE_K,), generator=gen)])
    return acts, weights


def exact_product(acts: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``acts @ weightsᵀ`` in int64."""
    return acts.long() @ weights.long().t()


@cache
def onednn_exact(act_max: int) -> bool:
    """Whether oneDNN's u8 x s8 linear is exact for symmetric activations in
    ``[-act_max - 1, act_max]`` (carried as ``u8 = q + act_max + 1``)."""
    if not torch.backends.mkldnn.is_available():
        return False
    acts, weights = probe_operands(act_max)
    offset = act_max + 1
    try:
        packed = torch.ops.onednn.qlinear_prepack(weights.to(torch.int8), None)
        out = torch.ops.onednn.qlinear_pointwise(
            (acts + offset).to(torch.uint8), 1.0, offset, packed, torch.ones(3),
            torch.zeros(3, dtype=torch.int64), None, 1.0, 0, torch.float32, "none", [], "")
    except (RuntimeError, AttributeError):
        return False
    return torch.equal(out.double(), exact_product(acts, weights).double())


@cache
def int_mm_exact() -> bool:
    """Whether ``torch._int_mm`` (s8 x s8 -> s32) is exact for operands in ``[-127, 127]``."""
    acts, weights = probe_operands(WEIGHT_MAX)
    try:
        out = torch._int_mm(acts.to(torch.int8), weights.to(torch.int8).t())
    except RuntimeError:
        return False
    return torch.equal(out.long(), exact_product(acts, weights))
