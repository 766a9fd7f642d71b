"""Run the Triton kernels in the interpreter on CPU when there is no GPU.

The interpreter needs ``TRITON_INTERPRET=1`` before ``@triton.jit`` decorates anything,
Triton's own standard library included. ``triton`` is usually imported long before this
file (``torch._dynamo``, pulled in by timm/torchvision, imports it), so when the variable is
set here the already-decorated modules are reloaded, Triton's standard library first, then
any kernel module of this package imported earlier; the test modules import them after.
"""

from __future__ import annotations

import importlib
import os
import sys

import pytest
import torch

triton = pytest.importorskip("triton")

_KERNEL_MODULES = [
    f"mixprec.kernels.triton.{name}"
    for name in ("_launch", "quantize", "int8_gemm", "w4a16_gemm", "w4a8_gemm", "attention",
                 "patchwise_gemm")
]


def _use_interpreter() -> None:
    os.environ.setdefault("TRITON_INTERPRET", "1")
    from triton.runtime.interpreter import InterpretedFunction

    if isinstance(triton.language.standard.cdiv, InterpretedFunction):
        return
    importlib.reload(triton.language.standard)
    importlib.reload(triton.language)
    for name in _KERNEL_MODULES:
        if name in sys.modules:
            importlib.reload(sys.modules[name])


if not torch.cuda.is_available():
    _use_interpreter()


@pytest.fixture
def device() -> str:
    """Where the kernels' tensors live: CUDA, or CPU under the interpreter."""
    return "cuda" if torch.cuda.is_available() else "cpu"
