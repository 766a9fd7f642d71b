"""The OpenVINO runtime: a plan's model as an ONNX graph compiled by OpenVINO's CPU plugin.

Integer units are swapped for the stand-ins of :mod:`mixprec.kernels.ov.modules`
(quantize-dequantize pairs for static activations, compressed weights for weight-only specs),
the model is exported to ONNX
(:func:`~mixprec.deploy.onnx_graph.export_onnx`) and OpenVINO reads it: its low-precision
transformations run those GEMMs in int8 (compressed weights: 4- or 8-bit weights
decompressed inside the fully connected layer), the rest in float32
(:func:`~mixprec.kernels.ov.plugin.cpu_config`: the given number of threads, one stream,
latency mode). The model is compiled once per input shape (static shapes run faster than
the dynamic batch axis).
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from mixprec.deploy.onnx_graph import GraphModel, export_onnx
from mixprec.deploy.outputs import OutputStructure
from mixprec.kernels.ov.modules import CompressedLinear, QdqAttention, QdqConv, QdqLinear
from mixprec.kernels.ov.plugin import cpu_config, int8_layer_count, narrow_nibbles
from mixprec.quant.calibrate import CalibrationStats
from mixprec.quant.inputs import ModelInputs
from mixprec.quant.observers import Observer
from mixprec.quant.plan import Plan
from mixprec.quant.simulate import swap_units
from mixprec.quant.spec import QuantSpec
from mixprec.quant.units import Unit


class OvModel(GraphModel):
    """A deployed model compiled by OpenVINO for the CPU (see
    :class:`~mixprec.deploy.onnx_graph.GraphModel` for how it is called).

    Args:
        onnx_bytes: the serialized ONNX model (what :meth:`save` writes).
        inputs: the graph's input names, in the order the model takes them.
        threads: inference threads of the CPU plugin.
        outputs: the model output's structure.
        graph: an OpenVINO model to compile instead of ``onnx_bytes`` (NNCF's quantized
            model of the same export, or IR read back).
    """

    def __init__(self, onnx_bytes: bytes, inputs: Sequence[str], threads: int,
                 outputs: OutputStructure | None = None, graph: Any = None) -> None:
        import openvino

        super().__init__(onnx_bytes, inputs, threads, outputs)
        self.core = openvino.Core()
        self.own_graph = graph is not None
        if graph is None:
            graph = self.core.read_model(onnx_bytes)
            narrow_nibbles(graph)
        self.graph = graph
        self.compiled: dict[tuple[tuple[int, ...], ...], Any] = {}
        self.requests: dict[tuple[tuple[int, ...], ...], Any] = {}

    def compiled_for(self, shapes: tuple[tuple[int, ...], ...]) -> Any:
        """The model compiled for inputs of ``shapes`` (in :attr:`inputs` order), with its
        infer request (made once: a call only runs it)."""
        if shapes not in self.compiled:
            graph = self.graph.clone()
            graph.reshape({name: list(shape) for name, shape in zip(self.inputs, shapes)})
            compiled = self.core.compile_model(graph, "CPU", cpu_config(self.threads))
            self.compiled[shapes] = compiled
            self.requests[shapes] = compiled.create_infer_request()
        return self.compiled[shapes]

    def run_arrays(self, arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The compiled model's outputs (copied: the plugin reuses its buffers)."""
        shapes = tuple(arrays[n].shape for n in self.inputs)
        compiled = self.compiled_for(shapes)
        results = self.requests[shapes].infer({n: arrays[n] for n in self.inputs})
        return [np.array(results[out]) for out in compiled.outputs]

    def save(self, path: str | Path) -> Path:
        """Write the model to ``path``: OpenVINO IR where ``path`` ends in ``.xml`` (its
        weights in the ``.bin`` beside it, float32 kept), else the ONNX model (a model given
        as ``graph`` has none: IR only)."""
        path = Path(path)
        if path.suffix != ".xml" and not self.own_graph:
            return super().save(path)
        if path.suffix != ".xml":
            raise ValueError(f"{path}: this model was given as an OpenVINO graph; save it as "
                             "OpenVINO IR (a path ending in .xml)")
        import openvino

        openvino.save_model(self.graph, str(path), compress_to_fp16=False)
        return path

    @classmethod
    def load_ir(cls, path: str | Path, inputs: Sequence[str], threads: int,
                outputs: OutputStructure | None = None) -> OvModel:
        """A model saved as OpenVINO IR by :meth:`save`."""
        import openvino

        return cls(b"", inputs, threads, outputs, graph=openvino.Core().read_model(str(path)))


def graph_ops(model: OvModel) -> dict[str, int]:
    """Operator type -> count in ``model``'s OpenVINO graph (before compilation)."""
    counts = Counter(op.get_type_name() for op in model.graph.get_ops())
    return dict(counts.most_common())


def int8_layers(model: OvModel) -> int:
    """How many GEMM layers of ``model``'s compiled forms run in int8 / uint8 (0 before a
    call)."""
    return sum(int8_layer_count(c) for c in model.compiled.values())


def build(model: nn.Module, units: list[Unit], plan: Plan, stats: CalibrationStats,
          example: ModelInputs, threads: int) -> OvModel:
    """Export ``model`` with ``units`` computed as ``plan`` says and compile it in OpenVINO.

    Args:
        model: the float model (a copy is exported; it is not modified).
        units: the units to quantize (those the plan does not leave in float32; each one
            static 7- or 8-bit, or weight-only, which the registry checked).
        plan: unit name -> spec.
        stats: calibration statistics of the static units.
        example: a batch of inputs to trace the export with.
        threads: intra-op threads of the CPU plugin.
    """
    exported = copy.deepcopy(model).eval()

    def gemm(unit: Unit, module: nn.Module, spec: QuantSpec,
             observer: Observer | None) -> nn.Module:
        if not spec.quantizes_acts:
            return CompressedLinear(module, spec)
        if unit.kind == "conv_gemm":
            return QdqConv(module, spec, observer)
        return QdqLinear(module, spec, observer)

    def attention(qk: QuantSpec, pv: QuantSpec, points: dict) -> nn.Module:
        return QdqAttention(qk, pv, points)

    swap_units(exported, units, plan, stats, gemm, attention)
    graph = export_onnx(exported, example, fold_constants=False)
    return OvModel(graph.onnx_bytes, graph.inputs, threads, graph.outputs)
