"""Static int8 chains that stay integer: fc1 -> GELU -> fc2 of a timm ``Mlp`` in one pass.

When both linears of an MLP are static int8 on oneDNN, fc1's GEMM applies GELU in its
epilogue and writes fc2's uint8 input directly, requantized to fc2's calibrated scale: the
float hidden activation (the MLP's largest tensor) is never written, GELU and fc2's
quantization pass disappear. oneDNN's GELU and rounding can differ from PyTorch's by one
step of fc2's input grid on a handful of elements (5 of 1.2 million in a DeiT-Tiny-sized
test), well below what the deploy tests allow (35 dB per unit, 0.3 point of top-1).
"""

from __future__ import annotations

import torch
from timm.layers import Mlp
from torch import nn

from mixprec.kernels.cpu.gemm import Int8Gemm


class Int8MlpChain(nn.Module):
    """fc1 (static int8, GELU and requantization fused) -> fc2 (static int8).

    Args:
        mlp: a timm ``Mlp`` whose fc1 / fc2 were replaced by static :class:`Int8Gemm`
            (fc1 on the ``onednn`` backend).
    """

    def __init__(self, mlp: Mlp) -> None:
        super().__init__()
        self.fc1, self.fc2, self.drop2 = mlp.fc1, mlp.fc2, mlp.drop2
        self.algorithm = mlp.act.approximate  # "none" (erf) or "tanh", as oneDNN names them

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fc1, fc2 = self.fc1, self.fc2
        rows = x.reshape(-1, fc1.in_features)
        xu8, _ = fc1.act.rows_u8(rows)
        hidden = torch.ops.onednn.qlinear_pointwise(
            xu8, fc1.act.static_scale, fc1.act.offset, fc1.matrix.packed, fc1.matrix.scale,
            fc1.matrix.zero_points, fc1.bias, fc2.act.static_scale, fc2.act.offset,
            torch.uint8, "gelu", [], self.algorithm)
        if fc2.act.bits < 8:  # oneDNN saturates to [0, 255]: the 7-bit grid is [0, 127]
            hidden.clamp_(max=fc2.act.offset + fc2.act.qmax)
        out = fc2.matrix.matmul(hidden, fc2.act.offset, fc2.act.static_scale, fc2.bias)
        return self.drop2(out.reshape(*x.shape[:-1], fc2.out_features).to(x.dtype))


def fuse_mlp_chains(model: nn.Module) -> list[str]:
    """Replace (in place) every timm ``Mlp`` whose fc1 and fc2 are static int8 GEMMs (fc1 on
    oneDNN) and whose activation is GELU by an :class:`Int8MlpChain`; return their names."""
    fused = []
    for name, module in list(model.named_modules()):
        if isinstance(module, Mlp) and _fusable(module):
            model.set_submodule(name, Int8MlpChain(module))
            fused.append(name)
    return fused


def _fusable(mlp: Mlp) -> bool:
    fc1, fc2 = mlp.fc1, mlp.fc2
    return (isinstance(fc1, Int8Gemm) and isinstance(fc2, Int8Gemm)
            and fc1.conv is None and fc2.conv is None
            and not fc1.act.dynamic and not fc2.act.dynamic
            and fc1.matrix.backend == "onednn"
            and isinstance(mlp.act, nn.GELU)
            and all(isinstance(m, (nn.Identity, nn.Dropout))
                    for m in (mlp.drop1, mlp.norm, mlp.drop2)))
