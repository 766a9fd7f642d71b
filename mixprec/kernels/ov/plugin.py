"""How this project compiles a model with OpenVINO's CPU plugin, and what it ran in int8."""

from __future__ import annotations

from typing import Any

INT8_LAYER_TYPES = ("FullyConnected", "Convolution", "MatMul")
"""Layer types of the compiled model whose integer precision marks an int8 GEMM."""


NIBBLES = "nibbles"
"""Name suffix of the int8 / uint8 constants that hold 4-bit weights (see
:class:`~mixprec.kernels.ov.modules.CompressedLinear`)."""


def cpu_config(threads: int) -> dict[str, Any]:
    """The CPU plugin's settings: ``threads`` inference threads, one stream, latency mode,
    float32 for float layers (on CPUs with bf16 the plugin would otherwise run them in
    bf16, which a plan did not ask for), and no dynamic quantization of the activations of
    compressed-weight layers (it would turn W4A16 into an 8-bit-activation kernel the plan
    did not ask for: measured 2x faster on a DeiT-S fc1, but not the simulation's numbers)."""
    return {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
            "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0}


def narrow_nibbles(graph: Any) -> int:
    """Store every 4-bit weight constant of ``graph`` (int8 / uint8, named ``*nibbles``) as
    OpenVINO's i4 / u4 (in place); returns how many."""
    import openvino
    from openvino import opset13

    narrowed = 0
    for op in graph.get_ops():
        if op.get_type_name() != "Constant" or not op.get_friendly_name().endswith(NIBBLES):
            continue
        signed = op.get_element_type() == openvino.Type.i8
        four = opset13.constant(op.get_data(), dtype=openvino.Type.i4 if signed
                                else openvino.Type.u4)
        op.output(0).replace(four.output(0))
        narrowed += 1
    return narrowed


def int8_layer_count(compiled: Any) -> int:
    """How many GEMM layers of a compiled model run in int8 / uint8."""
    found = 0
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        kind = info["layerType"].astype(str) if "layerType" in info else ""
        precision = info["runtimePrecision"].astype(str) if "runtimePrecision" in info else ""
        found += kind in INT8_LAYER_TYPES and precision in ("i8", "u8")
    return found
