"""Real quantized execution: Triton GPU kernels (``triton/``), CPU modules (``cpu/``), ONNX
Runtime graph pieces (``ort/``), OpenVINO's quantize-dequantize stand-ins (``ov/``), and the
registry of what runs exactly where."""

from mixprec.kernels.cpu.capabilities import CpuFingerprint, cpu_fingerprint
from mixprec.kernels.registry import (
    DEVICES,
    RUNTIMES,
    TARGET_CLASSES,
    Kernel,
    candidates,
    check_deployable,
    kernel_for,
    kernels,
)

__all__ = ["DEVICES", "RUNTIMES", "TARGET_CLASSES", "CpuFingerprint", "Kernel", "candidates",
           "check_deployable", "cpu_fingerprint", "kernel_for", "kernels"]
