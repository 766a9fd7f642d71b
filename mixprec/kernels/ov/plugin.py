"""How this project compiles a model with OpenVINO's CPU plugin, and what it ran in int8."""

from __future__ import annotations

from typing import Any

INT8_LAYER_TYPES = ("FullyConnected", "Convolution", "MatMul")
"""Layer types of the compiled model whose integer precision marks an int8 GEMM."""


def cpu_config(threads: int) -> dict[str, Any]:
    """The CPU plugin's settings: ``threads`` inference threads, one stream, latency mode,
    float32 for float layers (on CPUs with bf16 the plugin would otherwise run them in
    bf16, which a plan did not ask for)."""
    return {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}


def int8_layer_count(compiled: Any) -> int:
    """How many GEMM layers of a compiled model run in int8 / uint8."""
    found = 0
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        kind = info["layerType"].astype(str) if "layerType" in info else ""
        precision = info["runtimePrecision"].astype(str) if "runtimePrecision" in info else ""
        found += kind in INT8_LAYER_TYPES and precision in ("i8", "u8")
    return found
