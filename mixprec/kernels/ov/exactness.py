"""Probe: does OpenVINO's CPU plugin run a quantize-dequantize GEMM in exact int8 here?

On x86 CPUs without VNNI, 8-bit integer GEMMs sum u8 x s8 pairs in 16 bits and saturate
(NNCF's ``overflow_fix`` quantizes weights to 7 bits there for that reason). The probe
builds the graph the export makes of one static linear
(:class:`~mixprec.kernels.ov.modules.QdqLinear`: QuantizeLinear, a Clip for 7 bits,
DequantizeLinear, per-channel weights through QuantizeLinear / DequantizeLinear, Gemm) with
operands at the grid's limits (:func:`mixprec.kernels.cpu.exactness.probe_operands`),
compiles it, and checks both that the plugin chose an int8 kernel and that its result equals
the exact integer product; once per process.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from mixprec.kernels.cpu.exactness import exact_product, probe_operands
from mixprec.kernels.cpu.int8 import grid_max
from mixprec.kernels.ov.plugin import cpu_config, int8_layer_count


@cache
def ov_int8_exact(bits: int) -> bool:
    """Whether OpenVINO runs static GEMMs of 8-bit weights and ``bits``-bit activations in
    int8, exactly, on this machine."""
    import openvino

    acts, weights = probe_operands(grid_max(bits))
    want = exact_product(acts, weights).numpy().astype(np.float64)
    core = openvino.Core()
    compiled = core.compile_model(core.read_model(_probe_graph(bits, weights.numpy())), "CPU",
                                  cpu_config(1))
    got = compiled({0: acts.numpy().astype(np.float32)})[0].astype(np.float64)
    return bool(int8_layer_count(compiled) > 0 and np.array_equal(got, want))


def _probe_graph(bits: int, weights: np.ndarray) -> bytes:
    """The exported form of a static linear with unit scales (the grid values themselves)
    and integer weights ``[N, K]``, as ONNX bytes."""
    from onnx import TensorProto, helper, numpy_helper

    rows, depth = weights.shape
    seven = bits == 7  # [-64, 63] rides on u8 [0, 127] with its zero point at 64
    zero = np.array(64, np.uint8) if seven else np.array(0, np.int8)
    initializers = [
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(zero, "zero"),
        numpy_helper.from_array(np.array(127, np.uint8), "top"),
        numpy_helper.from_array(weights.astype(np.float32), "w"),
        numpy_helper.from_array(np.ones(rows, np.float32), "w_scale"),
        numpy_helper.from_array(np.zeros(rows, np.int8), "w_zero"),
    ]
    nodes = [helper.make_node("QuantizeLinear", ["a", "one", "zero"], ["aq"])]
    if seven:
        nodes.append(helper.make_node("Clip", ["aq", "", "top"], ["aq7"]))
    nodes += [
        helper.make_node("DequantizeLinear", ["aq7" if seven else "aq", "one", "zero"], ["ad"]),
        helper.make_node("QuantizeLinear", ["w", "w_scale", "w_zero"], ["wq"], axis=0),
        helper.make_node("DequantizeLinear", ["wq", "w_scale", "w_zero"], ["wd"], axis=0),
        helper.make_node("Gemm", ["ad", "wd"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "probe", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, depth])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    return model.SerializeToString()
