"""The one-line int8 quantizers users run instead of mixprec, built the way their users build
them, so that a search can measure its plans beside them:

* ``onnxruntime``: ONNX Runtime's ``quantize_dynamic`` (int8 weights, per-tensor affine
  dynamic activations) on the model's float32 ONNX export;
* ``torch``: ``torch.ao.quantization.quantize_dynamic`` (int8 ``nn.Linear`` with dynamic
  activations).
"""

from __future__ import annotations

import copy
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mixprec.quant.inputs import ModelInputs

PEER_NAMES = {"onnxruntime": "ORT quantize_dynamic", "torch": "torch.ao dynamic int8"}
"""Runtime -> the name of its one-line peer."""


def build_peer(model: nn.Module, runtime: str, example: ModelInputs, threads: int
               ) -> Callable[..., Any]:
    """The runtime's one-line int8 peer of ``model`` (called like the model).

    Raises:
        ValueError: an unknown runtime.
    """
    if runtime == "onnxruntime":
        return ort_quantize_dynamic(model, example, threads)
    if runtime == "torch":
        with warnings.catch_warnings():  # torch 2.14 deprecates torch.ao; users still run it
            warnings.simplefilter("ignore")
            return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).eval(),
                                                          {nn.Linear}, dtype=torch.qint8)
    raise ValueError(f"no one-line peer for runtime {runtime!r}; known: {sorted(PEER_NAMES)}")


def ort_quantize_dynamic(model: nn.Module, example: ModelInputs, threads: int) -> Any:
    """ONNX Runtime's ``quantize_dynamic`` (int8 weights) of the model's float32 export, as
    an :class:`~mixprec.deploy.onnx_runtime.OrtModel`."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from mixprec.deploy.onnx_runtime import OrtModel, export_onnx

    fp32 = export_onnx(model, example)
    with tempfile.TemporaryDirectory(prefix="mixprec-peer-") as folder:
        source, target = Path(folder) / "fp32.onnx", Path(folder) / "dynamic.onnx"
        source.write_bytes(fp32.onnx_bytes)
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
        return OrtModel(target.read_bytes(), fp32.inputs, threads, fp32.outputs)
