"""The ONNX Runtime runtime: a plan's model as an ONNX graph run by ``InferenceSession``.

The model's units are swapped for the stand-ins of :mod:`mixprec.kernels.ort.modules` and the
model is exported with PyTorch's TorchScript exporter (opset 21 plus ``com.microsoft``
operators, :func:`~mixprec.deploy.onnx_graph.export_onnx`); float units stay the float
graph. The same bytes are what ``OrtModel.save`` writes (the export format of a plan).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import numpy as np
from torch import nn

from mixprec.deploy.onnx_graph import GraphModel, export_onnx
from mixprec.deploy.outputs import OutputStructure
from mixprec.kernels.ort.modules import (
    OrtAttention,
    OrtInt8Conv,
    OrtInt8Linear,
    OrtNBitsLinear,
)
from mixprec.quant.calibrate import CalibrationStats
from mixprec.quant.inputs import ModelInputs
from mixprec.quant.observers import Observer
from mixprec.quant.plan import Plan
from mixprec.quant.simulate import swap_units
from mixprec.quant.spec import QuantSpec
from mixprec.quant.units import Unit


class OrtModel(GraphModel):
    """A deployed model backed by an ``onnxruntime.InferenceSession`` on the CPU provider
    (see :class:`~mixprec.deploy.onnx_graph.GraphModel` for how it is called).

    One session serves every batch size: fixing the batch dimension per batch size
    (``add_free_dimension_override_by_name``) lets ONNX Runtime fold the export's shape
    computations but ran the plans slower when measured side by side on a Xeon.

    The session's threads spin while a run lasts and stop when it returns
    (``session.force_spinning_stop``): they do not burn the cores between requests, nor slow
    down the next model run in the process (a session timed right after another one, whose
    threads still spun, ran 2x slower).
    """

    def __init__(self, onnx_bytes: bytes, inputs: Sequence[str], threads: int,
                 outputs: OutputStructure | None = None) -> None:
        import onnxruntime

        super().__init__(onnx_bytes, inputs, threads, outputs)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.force_spinning_stop", "1")
        self.session = onnxruntime.InferenceSession(onnx_bytes, options,
                                                    providers=["CPUExecutionProvider"])

    def run_arrays(self, arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The session's outputs."""
        return self.session.run(None, arrays)


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
    exported = copy.deepcopy(model).eval()

    def gemm(unit: Unit, module: nn.Module, spec: QuantSpec,
             observer: Observer | None) -> nn.Module:
        if kernels[unit.name] in ("w4a16", "w4a8"):
            return OrtNBitsLinear(module, spec)
        if unit.kind == "conv_gemm":
            return OrtInt8Conv(module, spec, observer, split)
        return OrtInt8Linear(module, spec, observer, split)

    def attention(qk: QuantSpec, pv: QuantSpec, points: dict) -> nn.Module:
        return OrtAttention(qk, pv, points, split)

    swap_units(exported, units, plan, stats, gemm, attention)
    return OrtModel.of(export_onnx(exported, example, ms_domain=bool(units)), threads)
