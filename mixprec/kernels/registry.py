"""Which specs have a real kernel on which device and runtime, and which the search proposes.

Devices (DESIGN.md, "Devices and candidates"):

* ``cpu``: the machine at hand, whatever it is (its :func:`cpu_fingerprint` keys everything).
  Its kernel list is built from what runs *exactly* here: the int8 paths are probed
  (:mod:`mixprec.kernels.cpu.exactness`), so an x86 CPU without VNNI gets 8-bit activations
  through the saturation-free ``onednn_split`` GEMMs and a fast 7-bit grid as its own spec.
* ``xeon``, ``a15``, ``a100``: target classes (an AVX-512 VNNI Xeon, an A15-class ARM core,
  an A100 GPU): what their kernels run, for plans and cost models made for them.

Runtimes: ``torch`` (this project's modules on PyTorch / oneDNN / Triton), ``onnxruntime``
(an ONNX graph run by ONNX Runtime's CPU provider; CPU devices) and ``openvino`` (a
quantize-dequantize ONNX graph compiled by OpenVINO's CPU plugin; the machine at hand and
the ``xeon`` class).

:func:`kernel_for` names the kernel of a spec; :func:`check_deployable` raises an error
naming the unit, the spec and the device when there is none; :func:`candidates` lists the
specs a search should consider by default (exact *and* worth measuring: bf16 without native
bf16 support and weight-only int8/int4 with float32 activations deploy, but run 7x to 100x
slower than float32 through PyTorch, so they are not proposed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache

from mixprec.kernels.ov.modules import runs_as_qdq
from mixprec.quant.spec import FLOAT_BITS, QuantSpec, TokenSplit
from mixprec.quant.token_split import own_scale_split
from mixprec.quant.units import UNIT_KINDS, Unit

WEIGHT_KINDS = ("linear", "conv_gemm")
ATTENTION_KINDS = ("attn_qk", "attn_pv")
INT4_GROUP_SIZES = (32, 64, 128, 256)
TOKEN_SPLIT_FRACTIONS = (0.05, 0.1)
"""Shares of each image's tokens that token-split candidates keep in float."""
LOCAL_DEVICE = "cpu"
TARGET_CLASSES = ("xeon", "a15", "a100")
DEVICES = (LOCAL_DEVICE, *TARGET_CLASSES)
CPU_DEVICES = (LOCAL_DEVICE, "xeon", "a15")
RUNTIMES = ("torch", "onnxruntime", "openvino")
OPENVINO_DEVICES = (LOCAL_DEVICE, "xeon")

FP32 = QuantSpec(weight_bits=16, act_bits=16, act_mode="none")
BF16 = QuantSpec(weight_bits=16, act_bits=16, act_mode="none", float_dtype="bfloat16")
FP16 = QuantSpec(weight_bits=16, act_bits=16, act_mode="none", float_dtype="float16")
W8A8_STATIC = QuantSpec(weight_bits=8, act_bits=8, act_mode="static")
W8A8_DYNAMIC = QuantSpec(weight_bits=8, act_bits=8, act_mode="dynamic")
W8A7_STATIC = QuantSpec(weight_bits=8, act_bits=7, act_mode="static")
W8A7_DYNAMIC = QuantSpec(weight_bits=8, act_bits=7, act_mode="dynamic")
W8A8_DYNAMIC_AFFINE = QuantSpec(weight_bits=8, act_bits=8, act_mode="dynamic",
                                weight_granularity="per_tensor", act_granularity="per_tensor",
                                act_symmetric=False)
"""ONNX Runtime ``quantize_dynamic``'s format: one symmetric int8 scale per weight tensor, one
affine scale and zero point per activation tensor (a model of such units computes what
``quantize_dynamic``'s model computes)."""
W8A16_BF16 = QuantSpec(weight_bits=8, act_bits=16, act_mode="none", float_dtype="bfloat16")
W4A16_G32 = QuantSpec(weight_bits=4, act_bits=16, act_mode="none",
                      weight_granularity="per_group", group_size=32)
W4A16_G32_BF16 = QuantSpec(weight_bits=4, act_bits=16, act_mode="none",
                           weight_granularity="per_group", group_size=32, float_dtype="bfloat16")
W4A8_G32_BLOCKS = QuantSpec(weight_bits=4, act_bits=8, act_mode="dynamic",
                            weight_granularity="per_group", group_size=32,
                            act_granularity="per_group")
"""4-bit weights in groups of 32 with int8 compute, activations quantized per token and
group (ONNX Runtime's ``MatMulNBits`` with ``accuracy_level`` 4)."""
W4A8_G32_TOKENS = QuantSpec(weight_bits=4, act_bits=8, act_mode="dynamic",
                            weight_granularity="per_group", group_size=32)
"""4-bit weights in groups of 32, int8 activations per token (the int4 x int8 dot-product
GEMMs of ARM cores: weights unpacked to int8 in registers)."""
W4A16_NUPES = QuantSpec(weight_bits=4, act_bits=16, act_mode="none", weight_format="nupes")
"""NUPES 4-bit weights (per-channel power-exponent levels), float32 activations."""
W4A16_G128_FP16 = QuantSpec(weight_bits=4, act_bits=16, act_mode="none",
                            weight_granularity="per_group", group_size=128, float_dtype="float16")


@dataclass(frozen=True)
class Kernel:
    """A kernel: its name, the unit kinds it runs, the specs it accepts and proposes.

    Attributes:
        name: kernel name (the key deploy builds a module or graph from).
        kinds: unit kinds it runs.
        accepts: predicate over specs.
        summary: what it runs, for error messages.
        proposes: the specs a search considers by default (may be empty: deployable only).
    """

    name: str
    kinds: tuple[str, ...]
    accepts: Callable[[QuantSpec], bool]
    summary: str
    proposes: tuple[QuantSpec, ...] = ()


def _float(*dtypes: str) -> Callable[[QuantSpec], bool]:
    return lambda s: s.is_float and s.float_dtype in dtypes


def _int8_gemm(act_bits: int) -> Callable[[QuantSpec], bool]:
    def accepts(s: QuantSpec) -> bool:
        return (s.weight_bits == 8 and s.act_bits == act_bits
                and s.act_mode in ("static", "dynamic") and s.weight_symmetric
                and s.act_symmetric and s.token_split is None
                and s.weight_granularity in ("per_channel", "per_tensor"))
    return accepts


def _token_split_gemm(act_bits: int) -> Callable[[QuantSpec], bool]:
    """An int8 GEMM spec whose high tokens run in float (``token_split.high_bits`` 16) or
    on its grid with a scale of their own."""
    def accepts(s: QuantSpec) -> bool:
        split = s.token_split
        return (split is not None and (split.high_bits >= FLOAT_BITS or own_scale_split(s))
                and _int8_gemm(act_bits)(replace(s, token_split=None)))
    return accepts


def _two_grid_split(low_bits: int, high_bits: int) -> Callable[[QuantSpec], bool]:
    """8-bit weights, per-token dynamic activations on ``low_bits`` with each image's outlier
    tokens on ``high_bits``."""
    def accepts(s: QuantSpec) -> bool:
        split = s.token_split
        return (split is not None and split.high_bits == high_bits and s.act_bits == low_bits
                and split.selection == "per_image" and s.act_mode == "dynamic"
                and s.act_granularity == "per_token"
                and s.act_symmetric and s.weight_bits == 8 and s.weight_symmetric
                and s.weight_granularity in ("per_channel", "per_tensor"))
    return accepts


def _affine_dynamic_gemm(s: QuantSpec) -> bool:
    """8-bit weights with ONNX Runtime ``quantize_dynamic``'s activations: affine, dynamic,
    one range per tensor (DynamicQuantizeLinear)."""
    return (s.weight_bits == 8 and s.act_bits == 8 and s.act_mode == "dynamic"
            and not s.act_symmetric and s.act_granularity == "per_tensor" and s.weight_symmetric
            and s.token_split is None and s.weight_granularity in ("per_channel", "per_tensor"))


def _qdq_act(act_bits: int, s: QuantSpec) -> bool:
    """The quantize-dequantize form OpenVINO runs as integers
    (:func:`~mixprec.kernels.ov.modules.runs_as_qdq`), with ``act_bits`` activations."""
    return s.act_bits == act_bits and runs_as_qdq(s)


def _qdq_gemm(act_bits: int) -> Callable[[QuantSpec], bool]:
    def accepts(s: QuantSpec) -> bool:
        return (s.weight_bits == 8 and s.weight_symmetric and _qdq_act(act_bits, s)
                and s.weight_granularity in ("per_channel", "per_tensor"))
    return accepts


def _weight_only(bits: int, granularities: tuple[str, ...], dtypes: tuple[str, ...],
                 affine: bool, groups: tuple[int, ...] = INT4_GROUP_SIZES
                 ) -> Callable[[QuantSpec], bool]:
    def accepts(s: QuantSpec) -> bool:
        groups_ok = s.weight_granularity != "per_group" or s.group_size in groups
        return (s.weight_bits == bits and not s.quantizes_acts and s.float_dtype in dtypes
                and s.weight_format == "uniform" and s.weight_granularity in granularities
                and groups_ok and (affine or s.weight_symmetric))
    return accepts


def _nupes(s: QuantSpec) -> bool:
    """NUPES weights of up to 8 bits with float32 activations."""
    return s.weight_format == "nupes" and s.weight_bits <= 8 and s.float_dtype == "float32"


def _w4a8(act_granularity: str, groups: tuple[int, ...] = INT4_GROUP_SIZES
          ) -> Callable[[QuantSpec], bool]:
    """4-bit symmetric weights in ``groups`` with 8-bit symmetric dynamic activations of
    ``act_granularity``."""
    def accepts(s: QuantSpec) -> bool:
        return (s.weight_bits == 4 and s.weight_symmetric and s.group_size in groups
                and s.act_bits == 8 and s.act_mode == "dynamic" and s.act_symmetric
                and s.act_granularity == act_granularity and s.token_split is None)
    return accepts


def _int8_attention(*act_bits: int) -> Callable[[QuantSpec], bool]:
    def accepts(s: QuantSpec) -> bool:
        return (s.act_bits in act_bits and s.act_mode in ("static", "dynamic")
                and s.act_symmetric and s.token_split is None
                and s.act_granularity != "per_group")
    return accepts


_ALL_KINDS = WEIGHT_KINDS + ATTENTION_KINDS
_ANY_INT4 = ("per_channel", "per_tensor", "per_group")
_INT8_PROPOSALS = (W8A8_STATIC, W8A8_DYNAMIC)
_A7_PROPOSALS = (W8A7_STATIC, W8A7_DYNAMIC)


def _float32() -> Kernel:
    return Kernel("float32", _ALL_KINDS, _float("float32"), "fp32", (FP32,))


def _bfloat16(native: bool) -> Kernel:
    summary = "bf16" if native else "bf16 (emulated: no native bf16 here)"
    return Kernel("bfloat16", _ALL_KINDS, _float("bfloat16"), summary, (BF16,) if native else ())


def _torch_weight_only(native_bf16: bool) -> list[Kernel]:
    dtypes = ("float32", "bfloat16")
    return [
        Kernel("w8a16", WEIGHT_KINDS,
               _weight_only(8, ("per_channel", "per_tensor"), dtypes, False),
               "W8A16 weight-only (symmetric, per-channel)",
               (W8A16_BF16,) if native_bf16 else ()),
        Kernel("w4a16", WEIGHT_KINDS, _weight_only(4, _ANY_INT4, dtypes, True),
               "W4A16 weight-only (groups of 32/64/128/256)",
               (W4A16_G32_BF16,) if native_bf16 else ()),
    ]


def _nupes_kernel() -> Kernel:
    """This project's NUPES module: plain PyTorch ops, so every CPU class runs it."""
    return Kernel("nupes", WEIGHT_KINDS, _nupes,
                  "NUPES weight-only (power-exponent levels decoded on the fly, float32 GEMM)",
                  (W4A16_NUPES,))


def _ort_kernels(int8: bool, propose_a7: bool) -> list[Kernel]:
    """ONNX Runtime's kernels; ``int8``: whether its u8 x s8 GEMMs are exact at least for
    7-bit activations (8-bit ones then run as two 7-bit GEMMs where they saturate)."""
    kernels = [
        Kernel("float32", _ALL_KINDS, _float("float32"), "fp32", (FP32,)),
        Kernel("w4a16", ("linear",), _weight_only(4, _ANY_INT4, ("float32",), True),
               "W4A16 (MatMulNBits, float32 activations)", (W4A16_G32,)),
    ]
    kernels.append(Kernel("w4a8", ("linear",), _w4a8("per_group"),
                          "W4A8 (MatMulNBits, int8 compute: activations per token and block)",
                          (W4A8_G32_BLOCKS,)))
    if int8:
        kernels += [
            Kernel("w8a8", WEIGHT_KINDS, lambda s: _int8_gemm(8)(s) or _affine_dynamic_gemm(s),
                   "W8A8 (QuantizeLinear + MatMulIntegerToFloat / ConvInteger; affine "
                   "per-tensor dynamic as DynamicQuantizeLinear + MatMulInteger)",
                   (*_INT8_PROPOSALS, W8A8_DYNAMIC_AFFINE)),
            Kernel("w8a7", WEIGHT_KINDS, _int8_gemm(7), "W8A7 (7-bit activations, same ops)",
                   _A7_PROPOSALS if propose_a7 else ()),
            Kernel("int8_attention", ATTENTION_KINDS, _int8_attention(8, 7),
                   "int8 attention matmuls (MatMulInteger)", _INT8_PROPOSALS),
        ]
    return kernels


def _ov_kernels(int8: bool, int7: bool) -> list[Kernel]:
    """OpenVINO's kernels; ``int8`` / ``int7``: whether its integer GEMMs are exact for 8- /
    7-bit static activations (CPUs without VNNI: only 7-bit ones)."""
    kernels = [_float32()]
    if int8:
        kernels += [Kernel("w8a8", WEIGHT_KINDS, _qdq_gemm(8),
                           "W8A8 static (FakeQuantize, OpenVINO int8)", (W8A8_STATIC,)),
                    Kernel("int8_attention", ATTENTION_KINDS, lambda s: _qdq_act(8, s),
                           "int8 attention matmuls (FakeQuantize)", (W8A8_STATIC,))]
    if int7:
        kernels.append(Kernel("w8a7", WEIGHT_KINDS, _qdq_gemm(7),
                              "W8A7 static (FakeQuantize, u8 operands below 128)",
                              () if int8 else (W8A7_STATIC,)))
    kernels += [
        Kernel("w4a16", ("linear",), _weight_only(4, _ANY_INT4, ("float32",), True),
               "W4A16 (compressed 4-bit weights, float32 activations)", (W4A16_G32,)),
        Kernel("w8a16", ("linear",),
               _weight_only(8, ("per_channel", "per_tensor"), ("float32",), True),
               "W8A16 (compressed 8-bit weights, float32 activations)"),
    ]
    return kernels


def _cpu_int8(instructions: str) -> list[Kernel]:
    """A CPU target class's int8 GEMMs and attention matmuls (8-bit activations)."""
    return [Kernel("w8a8", WEIGHT_KINDS, _int8_gemm(8),
                   f"W8A8 static/dynamic ({instructions})", _INT8_PROPOSALS),
            Kernel("w8a8_token_split", ("linear",), _token_split_gemm(8),
                   f"W8A8 with each image's outlier tokens in float32 ({instructions})"),
            Kernel("int8_attention", ATTENTION_KINDS, _int8_attention(8),
                   "int8 attention matmuls", _INT8_PROPOSALS)]


_CLASS_KERNELS: dict[tuple[str, str], list[Kernel]] = {
    ("xeon", "torch"): [_float32(), _bfloat16(native=True), *_cpu_int8("oneDNN, VNNI"),
                        *_torch_weight_only(native_bf16=True), _nupes_kernel()],
    ("xeon", "onnxruntime"): _ort_kernels(int8=True, propose_a7=False),
    ("xeon", "openvino"): _ov_kernels(int8=True, int7=True),
    ("a15", "torch"): [_float32(), *_cpu_int8("int8 dot product"),
                       Kernel("w4a8", ("linear",), _w4a8("per_token"),
                              "W4A8 (int4 weights unpacked to int8 for the dot-product "
                              "GEMM, activations per token)", (W4A8_G32_TOKENS,)),
                       _nupes_kernel()],
    ("a15", "onnxruntime"): _ort_kernels(int8=True, propose_a7=False),
    ("a100", "torch"): [
        Kernel("float16", _ALL_KINDS, _float("float16", "bfloat16", "float32"), "fp16/bf16",
               (FP16,)),
        Kernel("w8a8", ("linear",), _int8_gemm(8), "W8A8 static/dynamic (Triton int8 GEMM)",
               _INT8_PROPOSALS),
        Kernel("w4a16", ("linear",),
               _weight_only(4, ("per_group",), ("float16", "bfloat16"), False, (32, 64, 128)),
               "W4A16 (Triton, symmetric groups of 32/64/128)", (W4A16_G128_FP16,)),
        Kernel("w4a8", ("linear",), _w4a8("per_token", (32, 64, 128)),
               "W4A8 (Triton: int4 weights unpacked to int8 for the int8 tensor-core dot, "
               "per-token int8 activations)", (W4A8_G32_TOKENS,)),
        Kernel("w8a4_token_split", ("linear",), _two_grid_split(4, 8),
               "W8A4 dynamic with each image's outlier tokens at 8 bits (Triton patch-wise "
               "GEMM)"),
        Kernel("int8_qk", ("attn_qk",), lambda s: _int8_attention(8)(s) and s.act_mode == "dynamic",
               "INT8 QKᵀ (dynamic, Triton flash attention)", (W8A8_DYNAMIC,)),
        Kernel("fp16_pv", ("attn_pv",), _float("float16", "bfloat16"), "FP16 PV", (FP16,)),
    ],
}


@cache
def _local_kernels(runtime: str) -> tuple[Kernel, ...]:
    """The kernels that compute exactly what the simulation computes on this machine."""
    from mixprec.kernels.cpu.capabilities import cpu_fingerprint
    from mixprec.kernels.cpu.exactness import int_mm_exact
    from mixprec.kernels.cpu.int8 import default_backend

    fingerprint = cpu_fingerprint()
    if runtime == "onnxruntime":
        from mixprec.kernels.ort.exactness import ort_int8_exact

        return tuple(_ort_kernels(int8=ort_int8_exact(7), propose_a7=not ort_int8_exact(8)))
    if runtime == "openvino":
        from mixprec.kernels.ov.exactness import ov_int8_exact

        return tuple(_ov_kernels(int8=ov_int8_exact(8), int7=ov_int8_exact(7)))
    kernels = [_float32(), _bfloat16(fingerprint.has_native_bf16)]
    backend8, backend7 = default_backend(8), default_backend(7)
    if backend8 is not None:
        kernels.append(Kernel("w8a8", WEIGHT_KINDS, _int8_gemm(8),
                              f"W8A8 static/dynamic ({backend8})", _INT8_PROPOSALS))
    if backend7 is not None:
        # the 7-bit grid pays only where 8-bit activations need the two-GEMM split
        proposes = _A7_PROPOSALS if backend8 != backend7 else ()
        kernels.append(Kernel("w8a7", WEIGHT_KINDS, _int8_gemm(7),
                              f"W8A7 static/dynamic ({backend7})", proposes))
    kernels += [Kernel(f"w8a{bits}_token_split", ("linear",), _token_split_gemm(bits),
                       f"W8A{bits} with each image's outlier tokens in float32 ({backend})")
                for bits, backend in ((8, backend8), (7, backend7)) if backend is not None]
    kernels.append(Kernel("int8_attention", ATTENTION_KINDS, _int8_attention(8, 7),
                          "int8 attention matmuls (exact float32 products up to 1024-long "
                          "reductions" + (", torch._int_mm beyond)" if int_mm_exact() else ")"),
                          _INT8_PROPOSALS))
    kernels += [*_torch_weight_only(fingerprint.has_native_bf16), _nupes_kernel()]
    return tuple(kernels)


def check_device(device: str, runtime: str = "torch") -> None:
    """Refuse an unknown device or runtime, or a runtime the device does not have."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; known: {DEVICES}")
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; known: {RUNTIMES}")
    if runtime == "onnxruntime" and device not in CPU_DEVICES:
        raise ValueError(f"runtime 'onnxruntime' runs on the CPU devices {CPU_DEVICES}, "
                         f"not {device!r}")
    if runtime == "openvino" and device not in OPENVINO_DEVICES:
        raise ValueError(f"runtime 'openvino' runs on the devices {OPENVINO_DEVICES}, "
                         f"not {device!r}")


def kernels(device: str, runtime: str = "torch") -> list[Kernel]:
    """Every kernel of ``device`` in ``runtime`` (``cpu``: those exact on this machine)."""
    check_device(device, runtime)
    if device == LOCAL_DEVICE:
        return list(_local_kernels(runtime))
    return list(_CLASS_KERNELS[(device, runtime)])


def kernel_for(kind: str, spec: QuantSpec, device: str, runtime: str = "torch"
               ) -> Kernel | None:
    """The kernel that runs ``spec`` on a unit of ``kind`` on ``device``, or None."""
    for kernel in kernels(device, runtime):
        if kind in kernel.kinds and kernel.accepts(spec):
            return kernel
    return None


def check_deployable(unit: Unit, spec: QuantSpec, device: str, runtime: str = "torch"
                     ) -> Kernel:
    """The kernel for ``unit`` under ``spec`` on ``device``.

    Raises:
        ValueError: no kernel on the device runs this spec; the message names the unit,
            the spec, the device and runtime, and lists what they run for this unit kind.
    """
    kernel = kernel_for(unit.kind, spec, device, runtime)
    if kernel is None:
        offered = "; ".join(k.summary for k in kernels(device, runtime) if unit.kind in k.kinds)
        where = f"device {device!r}" + (f" (runtime {runtime!r})" if runtime != "torch" else "")
        raise ValueError(f"unit {unit.name!r} ({unit.kind}): no kernel for {spec.label} on "
                         f"{where} (it runs: {offered or 'nothing for this kind'})")
    return kernel


def token_split_candidates(device: str = LOCAL_DEVICE, runtime: str = "torch"
                           ) -> list[QuantSpec]:
    """Patch-wise specs a search may add for linear units: each int8 candidate with each
    image's outlier tokens (:data:`TOKEN_SPLIT_FRACTIONS` of them) in float, or on its grid
    with a scale of their own, or on 8 bits with the other tokens on 4, where ``device``
    runs that in ``runtime`` (empty where it runs none)."""
    found = []
    for spec in candidates(device, "linear", runtime):
        if spec.weight_bits != 8 or not spec.quantizes_acts:
            continue
        per_token = spec.act_mode == "dynamic" and spec.act_granularity == "per_token"
        for fraction in TOKEN_SPLIT_FRACTIONS:
            # per-token scales already fit each outlier token: only a coarser grid for the
            # other tokens (4 bits, the outliers on 8) pays there
            splits = [replace(spec, act_bits=4, token_split=TokenSplit(fraction, 8))]
            if not per_token:
                splits += [replace(spec, token_split=TokenSplit(fraction, FLOAT_BITS)),
                           replace(spec, token_split=TokenSplit(fraction, spec.act_bits))]
            for split in splits:
                if split not in found and kernel_for("linear", split, device,
                                                     runtime) is not None:
                    found.append(split)
    return found


def candidates(device: str = LOCAL_DEVICE, kind: str | None = None, runtime: str = "torch"
               ) -> list[QuantSpec]:
    """The specs a search considers by default for units of ``kind`` (None: any kind).

    Every one deploys on ``device`` in ``runtime`` with a kernel that computes the
    simulation's integers exactly (on ``cpu``: probed on this machine); float32 comes first.
    """
    if kind is not None and kind not in UNIT_KINDS:
        raise ValueError(f"unknown unit kind {kind!r}; known: {UNIT_KINDS}")
    found: list[QuantSpec] = []
    for kernel in kernels(device, runtime):
        if kind is None or kind in kernel.kinds:
            found += [s for s in kernel.proposes if s not in found]
    return found
