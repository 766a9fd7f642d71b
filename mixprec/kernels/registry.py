"""Which specs have a real kernel on which device.

A spec is deployable on a device only where a kernel exists there (DESIGN.md, "Devices and
candidates"). :func:`kernel_for` names the kernel; :func:`check_deployable` raises an error
naming the unit and the device when there is none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mixprec.quant.spec import QuantSpec
from mixprec.quant.units import Unit

WEIGHT_KINDS = ("linear", "conv_gemm")
ATTENTION_KINDS = ("attn_qk", "attn_pv")
INT4_GROUP_SIZES = (32, 64, 128, 256)


@dataclass(frozen=True)
class Kernel:
    """A kernel: its name, the unit kinds it runs and the specs it accepts.

    Attributes:
        name: kernel name (the key deploy builds a module from).
        kinds: unit kinds it runs.
        accepts: predicate over specs.
        summary: what it runs, for error messages.
    """

    name: str
    kinds: tuple[str, ...]
    accepts: Callable[[QuantSpec], bool]
    summary: str


def _float(*dtypes: str) -> Callable[[QuantSpec], bool]:
    return lambda s: s.is_float and s.float_dtype in dtypes


def _w8a8(s: QuantSpec) -> bool:
    return (s.weight_bits == 8 and s.act_bits == 8 and s.act_mode in ("static", "dynamic")
            and s.weight_symmetric and s.act_symmetric and s.token_split is None
            and s.weight_granularity in ("per_channel", "per_tensor"))


def _weight_only(bits: int, granularities: tuple[str, ...], dtypes: tuple[str, ...],
                 affine: bool, groups: tuple[int, ...] = INT4_GROUP_SIZES
                 ) -> Callable[[QuantSpec], bool]:
    def accepts(s: QuantSpec) -> bool:
        groups_ok = s.weight_granularity != "per_group" or s.group_size in groups
        return (s.weight_bits == bits and not s.quantizes_acts and s.float_dtype in dtypes
                and s.weight_granularity in granularities and groups_ok
                and (affine or s.weight_symmetric))
    return accepts


def _int8_attention(s: QuantSpec) -> bool:
    return (s.act_bits == 8 and s.act_mode in ("static", "dynamic") and s.act_symmetric
            and s.token_split is None)


_ALL_KINDS = WEIGHT_KINDS + ATTENTION_KINDS
_CPU_INT8 = [
    Kernel("w8a8", WEIGHT_KINDS, _w8a8, "W8A8 static/dynamic (symmetric, per-channel)"),
    Kernel("int8_attention", ATTENTION_KINDS, _int8_attention, "int8 attention matmuls"),
]
KERNELS: dict[str, list[Kernel]] = {
    "xeon": [
        Kernel("float32", _ALL_KINDS, _float("float32"), "fp32"),
        Kernel("bfloat16", _ALL_KINDS, _float("bfloat16"), "bf16"),
        *_CPU_INT8,
        Kernel("w8a16", WEIGHT_KINDS,
               _weight_only(8, ("per_channel", "per_tensor"), ("float32", "bfloat16"), False),
               "W8A16 weight-only (symmetric, per-channel)"),
        Kernel("w4a16", WEIGHT_KINDS,
               _weight_only(4, ("per_channel", "per_tensor", "per_group"),
                            ("float32", "bfloat16"), True),
               "W4A16 weight-only (groups of 32/64/128/256)"),
    ],
    "a15": [
        Kernel("float32", _ALL_KINDS, _float("float32"), "fp32"),
        *_CPU_INT8,
    ],
    "a100": [
        Kernel("float16", _ALL_KINDS, _float("float16", "bfloat16", "float32"), "fp16/bf16"),
        Kernel("w8a8", ("linear",), _w8a8, "W8A8 static/dynamic (Triton int8 GEMM)"),
        Kernel("w4a16", ("linear",),
               _weight_only(4, ("per_group",), ("float16", "bfloat16"), False, (32, 64, 128)),
               "W4A16 (Triton, symmetric groups of 32/64/128)"),
        Kernel("int8_qk", ("attn_qk",), lambda s: _int8_attention(s) and s.act_mode == "dynamic",
               "INT8 QKᵀ (dynamic, Triton flash attention)"),
        Kernel("fp16_pv", ("attn_pv",), _float("float16", "bfloat16"), "FP16 PV"),
    ],
}
DEVICES = tuple(KERNELS)


def kernel_for(kind: str, spec: QuantSpec, device: str) -> Kernel | None:
    """The kernel that runs ``spec`` on a unit of ``kind`` on ``device``, or None."""
    if device not in KERNELS:
        raise ValueError(f"unknown device {device!r}; known: {DEVICES}")
    for kernel in KERNELS[device]:
        if kind in kernel.kinds and kernel.accepts(spec):
            return kernel
    return None


def check_deployable(unit: Unit, spec: QuantSpec, device: str) -> Kernel:
    """The kernel for ``unit`` under ``spec`` on ``device``.

    Raises:
        ValueError: no kernel on the device runs this spec; the message names the unit,
            the spec and the device, and lists what the device runs for this unit kind.
    """
    kernel = kernel_for(unit.kind, spec, device)
    if kernel is None:
        offered = "; ".join(k.summary for k in KERNELS[device] if unit.kind in k.kinds)
        raise ValueError(f"unit {unit.name!r} ({unit.kind}): no kernel for {spec.label} on "
                         f"device {device!r} (it runs: {offered or 'nothing for this kind'})")
    return kernel
