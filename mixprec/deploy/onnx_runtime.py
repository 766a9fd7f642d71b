"""The ONNX Runtime runtime: a plan's model as an ONNX graph run by ``InferenceSession``.

The model's units are swapped for the stand-ins of :mod:`mixprec.kernels.ort.modules` and the
model is exported with PyTorch's TorchScript exporter (opset 21 plus ``com.microsoft``
operators); float units stay the float graph. The same bytes are what ``OrtModel.save``
writes (the export format of a plan).
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from mixprec.deploy.outputs import OutputStructure
from mixprec.kernels.ort.modules import (
    OrtAttention,
    OrtInt8Conv,
    OrtInt8Linear,
    OrtNBitsLinear,
)
from mixprec.kernels.ort.ops import MS_DOMAIN, OPSET
from mixprec.quant.calibrate import CalibrationStats
from mixprec.quant.inputs import ModelInputs, call_model, first_samples, input_names, tensors
from mixprec.quant.observers import Observer
from mixprec.quant.plan import Plan
from mixprec.quant.simulate import swap_units
from mixprec.quant.spec import QuantSpec
from mixprec.quant.units import Unit

logger = logging.getLogger(__name__)

BATCH_AXIS = "batch"


class OrtModel:
    """A deployed model backed by an ``onnxruntime.InferenceSession`` on the CPU provider.

    Call it like the PyTorch model: it returns what the model returned (a tensor, a tuple, a
    dict, a Hugging Face ``ModelOutput`` with its fields) when built from
    :func:`export_onnx`'s graph; from bare ONNX bytes, a tensor, or a tuple when the graph
    has several outputs. ``deploy_report`` says what was built. The session's threads spin
    while a run lasts and stop when it returns (``session.force_spinning_stop``): they do not
    burn the cores between requests, nor slow down the next model run in the process (a
    session timed right after another one, whose threads still spun, ran 2x slower).

    Args:
        onnx_bytes: the serialized ONNX model.
        inputs: the graph's input names, in the order the model takes them.
        threads: intra-op threads of the session.
        outputs: the model output's structure, which the graph's outputs are put back into.
    """

    def __init__(self, onnx_bytes: bytes, inputs: Sequence[str], threads: int,
                 outputs: OutputStructure | None = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.force_spinning_stop", "1")
        self.onnx_bytes = onnx_bytes
        self.session = onnxruntime.InferenceSession(onnx_bytes, options,
                                                    providers=["CPUExecutionProvider"])
        self.inputs = list(inputs)
        self.threads = threads
        self.outputs = outputs
        self.deploy_report: Any = None

    def __call__(self, *args: torch.Tensor, **kwargs: torch.Tensor) -> Any:
        feeds = dict(zip(self.inputs, args))
        feeds.update(kwargs)
        missing = [n for n in self.inputs if n not in feeds]
        if missing:
            raise ValueError(f"missing model input(s) {missing}; the graph takes {self.inputs}")
        arrays = {name: _as_array(value) for name, value in feeds.items()}
        outputs = [torch.from_numpy(o) for o in self.session.run(None, arrays)]
        if self.outputs is not None:
            return self.outputs.rebuild(outputs)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    @classmethod
    def of(cls, graph: OnnxGraph, threads: int) -> OrtModel:
        """A session on an exported graph, returning what the model returned."""
        return cls(graph.onnx_bytes, graph.inputs, threads, graph.outputs)

    def eval(self) -> OrtModel:
        """No-op (an ONNX Runtime session is always in inference mode)."""
        return self

    def save(self, path: str | Path) -> Path:
        """Write the ONNX model to ``path``."""
        path = Path(path)
        path.write_bytes(self.onnx_bytes)
        return path


def build(model: nn.Module, units: list[Unit], plan: Plan, stats: CalibrationStats,
          kernels: Mapping[str, str], example: ModelInputs, split: bool, threads: int
          ) -> OrtModel:
    """Export ``model`` with ``units`` computed as ``plan`` says and open it in ONNX Runtime.

    Args:
        model: the float model (a copy is exported; it is not modified).
        units: the units to quantize (those the plan does not leave in float32).
        plan: unit name -> spec.
        stats: calibration statistics of the static units.
        kernels: unit name -> ONNX Runtime kernel name (from the registry).
        example: a batch of inputs to trace the export with.
        split: compute 8-bit GEMMs as two 7-bit ones (CPUs where u8 x s8 saturates).
        threads: intra-op threads of the session.
    """
    import copy

    exported = copy.deepcopy(model).eval()

    def gemm(unit: Unit, module: nn.Module, spec: QuantSpec,
             observer: Observer | None) -> nn.Module:
        if kernels[unit.name] == "w4a16":
            return OrtNBitsLinear(module, spec)
        if unit.kind == "conv_gemm":
            return OrtInt8Conv(module, spec, observer, split)
        return OrtInt8Linear(module, spec, observer, split)

    def attention(qk: QuantSpec, pv: QuantSpec, points: dict) -> nn.Module:
        return OrtAttention(qk, pv, points, split)

    swap_units(exported, units, plan, stats, gemm, attention)
    return OrtModel.of(export_onnx(exported, example), threads)


class OnnxGraph(NamedTuple):
    """An exported model: the ONNX bytes, the graph's input names (in the order the model
    takes them) and the structure its outputs are put back into."""

    onnx_bytes: bytes
    inputs: list[str]
    outputs: OutputStructure


def export_onnx(model: nn.Module, example: ModelInputs) -> OnnxGraph:
    """``model`` traced on ``example`` into ONNX (dynamic batch axis); the graph returns the
    tensors of the model's output, flat."""
    names = input_names(example)
    sample = first_samples(example, 2)
    positional = _Positional(model, names, isinstance(sample, Mapping))
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            positional, tuple(tensors(sample)),
            buffer, dynamo=False, opset_version=OPSET, custom_opsets={MS_DOMAIN: 1},
            input_names=names, dynamic_axes={n: {0: BATCH_AXIS} for n in names})
    logger.info("exported ONNX graph: %.1f MB", buffer.tell() / 1e6)
    if positional.structure is None:
        raise RuntimeError("the ONNX export did not call the model")
    return OnnxGraph(buffer.getvalue(), names, positional.structure)


class _Positional(nn.Module):
    """Takes the inputs positionally, in ``input_names`` order (as the exporter passes
    them), calls the model as it expects them (keywords for dict inputs) and returns its
    output's tensors, flat, keeping the output's structure."""

    def __init__(self, model: nn.Module, names: list[str], keywords: bool) -> None:
        super().__init__()
        self.model, self.names, self.keywords = model, names, keywords
        self.structure: OutputStructure | None = None

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        inputs: ModelInputs = dict(zip(self.names, args)) if self.keywords else \
            (args[0] if len(args) == 1 else args)
        output = call_model(self.model, inputs)
        self.structure = OutputStructure.of(output)
        return OutputStructure.flatten(output)


def _as_array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().contiguous().numpy()
    return np.asarray(value)
