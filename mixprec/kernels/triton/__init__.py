"""Triton kernels, one file per kernel, each with a pure-PyTorch reference.

Modules (import them where used; importing this package does not import Triton):

* ``quantize``: ``quantize_per_token(x, bits=8)``, ``quantize_per_tensor(x, scale, bits=8)``;
* ``int8_gemm``: ``int8_gemm(x, w, a_scale, w_scale, bias, out_dtype=, out_scale=)``,
  ``int8_linear_dynamic(x, w, w_scale, bias)``,
  ``int8_linear_static(x, w, w_scale, bias, in_scale, out_scale=None)``;
* ``w4a16_gemm``: ``w4a16_gemm(x, w_packed, scales, group_size, bias=None)``;
* ``w4a8_gemm``: ``w4a8_linear(x, w_packed, scales, group_size, bias=None)``;
* ``attention``: ``attention(q, k, v, attn_mask=None, sm_scale=None)``;
* ``patchwise_gemm``: ``patchwise_linear(x, w, w_scale, bias, perm, split, bits_hi, bits_lo)``;
* ``reference``: the pure-PyTorch references and the weight packing helpers.

Kernels run on CUDA tensors, or on CPU tensors when ``TRITON_INTERPRET=1`` is set before
the kernel modules are first imported.
"""

from __future__ import annotations

import importlib.util

__all__ = ["is_available"]


def is_available() -> bool:
    """Whether the kernels can run here: Triton is installed and a CUDA device is visible."""
    if importlib.util.find_spec("triton") is None:
        return False
    import torch

    return torch.cuda.is_available()
