"""Probe: are ONNX Runtime's u8 x s8 GEMMs exact on this machine?

ONNX Runtime's MLAS kernels on x86 CPUs without VNNI sum u8 x s8 pairs in 16 bits and
saturate like oneDNN (its quantization guide asks for ``reduce_range``, 7-bit activations,
there). The probe runs the two operators the runtime uses (``MatMulIntegerToFloat`` with a
constant weight, ``MatMulInteger`` with a batched activation operand) on operands at the
grid's limits, once per process.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from mixprec.kernels.cpu.exactness import exact_product, probe_operands
from mixprec.kernels.cpu.int8 import grid_max, u8_offset

MS_DOMAIN = "com.microsoft"


@cache
def ort_int8_exact(bits: int) -> bool:
    """Whether ONNX Runtime's u8 x s8 GEMMs are exact for ``bits``-bit activations here."""
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    acts, weights = probe_operands(grid_max(bits))
    offset = u8_offset(bits)
    a = (acts.numpy() + offset).astype(np.uint8)
    b = weights.numpy().T.astype(np.int8)  # [K, N]
    want = exact_product(acts, weights).numpy()
    one = numpy_helper.from_array(np.array(1.0, np.float32), "one")
    zero_point = numpy_helper.from_array(np.array(offset, np.uint8), "zp")
    nodes = [helper.make_node("MatMulIntegerToFloat", ["a", "w", "one", "one", "zp"], ["f"],
                              domain=MS_DOMAIN),
             helper.make_node("MatMulInteger", ["a", "b", "zp"], ["i"])]
    graph = helper.make_graph(
        nodes, "probe",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, list(a.shape)),
         helper.make_tensor_value_info("b", TensorProto.INT8, list(b.shape))],
        [helper.make_tensor_value_info("f", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("i", TensorProto.INT32, None)],
        initializer=[numpy_helper.from_array(b, "w"), one, zero_point])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21),
                                                    helper.make_opsetid(MS_DOMAIN, 1)])
    model.ir_version = 10
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    as_float, as_int = session.run(None, {"a": a, "b": b})
    return bool(np.array_equal(as_float, want.astype(np.float32))
                and np.array_equal(as_int, want))
