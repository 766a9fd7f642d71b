"""The one-line int8 quantizers users run instead of mixprec, built the way their users build
them, so that a search can measure its plans beside them:

* ``onnxruntime``: ONNX Runtime's ``quantize_dynamic`` (int8 weights, per-tensor affine
  dynamic activations) on the model's float32 ONNX export;
* ``torch``: ``torch.ao.quantization.quantize_dynamic`` (int8 ``nn.Linear`` with dynamic
  activations);
* ``openvino``: NNCF's ``nncf.quantize`` with the transformer preset (static int8 with
  calibration) on the OpenVINO model read from the float32 ONNX export.
"""

from __future__ import annotations

import contextlib
import copy
import io
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mixprec.progress_bars import bars_hidden
from mixprec.quant.inputs import ModelInputs, input_names, sample_count, take, tensors

PEER_NAMES = {"onnxruntime": "ORT quantize_dynamic", "torch": "torch.ao dynamic int8",
              "openvino": "NNCF + OpenVINO int8"}
"""Runtime -> the name of its one-line peer."""
NNCF_SAMPLES = 128
"""Calibration images NNCF's statistics see at most (its default subset is 300)."""


def build_peer(model: nn.Module, runtime: str, example: ModelInputs, threads: int,
               calib: ModelInputs | None = None) -> Callable[..., Any]:
    """The runtime's one-line int8 peer of ``model`` (called like the model).

    Args:
        model: the float model.
        runtime: ``onnxruntime``, ``torch`` or ``openvino``.
        example: inputs to export the graph with.
        threads: intra-op threads.
        calib: calibration inputs of a static peer (NNCF; default ``example``).

    Raises:
        ValueError: an unknown runtime.
    """
    if runtime == "onnxruntime":
        return ort_quantize_dynamic(model, example, threads)
    if runtime == "openvino":
        return nncf_openvino(model, example, calib if calib is not None else example, threads)
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

    from mixprec.deploy.onnx_graph import export_onnx
    from mixprec.deploy.onnx_runtime import OrtModel

    fp32 = export_onnx(model, example)
    with tempfile.TemporaryDirectory(prefix="mixprec-peer-") as folder:
        source, target = Path(folder) / "fp32.onnx", Path(folder) / "dynamic.onnx"
        source.write_bytes(fp32.onnx_bytes)
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
        return OrtModel(target.read_bytes(), fp32.inputs, threads, fp32.outputs)


def nncf_openvino(model: nn.Module, example: ModelInputs, calib: ModelInputs, threads: int
                  ) -> Any:
    """NNCF's ``quantize`` (transformer preset, one calibration image per item, at most
    :data:`NNCF_SAMPLES`) of the model's float32 export read by OpenVINO, as an
    :class:`~mixprec.deploy.openvino_runtime.OvModel`."""
    import nncf
    import openvino

    from mixprec.deploy.onnx_graph import export_onnx
    from mixprec.deploy.openvino_runtime import OvModel

    fp32 = export_onnx(model, example)
    names = input_names(example)
    count = min(NNCF_SAMPLES, sample_count(calib))
    items = [dict(zip(names, (t.numpy() for t in tensors(take(calib, i, i + 1)))))
             for i in range(count)]
    hush = contextlib.redirect_stdout(io.StringIO()) if bars_hidden() else \
        contextlib.nullcontext()
    with warnings.catch_warnings(), hush:  # NNCF's progress bars print to stdout
        warnings.simplefilter("ignore")
        quantized = nncf.quantize(openvino.Core().read_model(fp32.onnx_bytes),
                                  nncf.Dataset(items), model_type=nncf.ModelType.TRANSFORMER,
                                  subset_size=count)
    return OvModel(fp32.onnx_bytes, fp32.inputs, threads, fp32.outputs, graph=quantized)
