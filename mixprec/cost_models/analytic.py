"""Analytic (roofline) latency tables for target classes that cannot be measured here:
``a100`` (an NVIDIA A100 GPU running this project's Triton kernels), ``a15`` (an A15-class
ARM CPU running int8 dot-product kernels on its two performance cores) and ``xeon`` (two
cores of a Sapphire Rapids Xeon: AVX-512 float32, AMX bf16 and int8). A Xeon at hand measures
its own ``xeon`` table (``measure(device="xeon")``), which is then preferred.

Every op takes ``max(compute, memory) + launch``:

* compute = operations / (peak of the dtype x efficiency), the efficiency being a base
  fraction of peak times the tile and wave utilisation of the GEMM's shape;
* memory = bytes moved / bandwidth;
* launch = the fixed cost of one kernel (GPU) or one op dispatch (CPU).

Quantized activations add passes: a static spec quantizes its input in one pass (read the
float tensor, write int8); a dynamic spec first reads it once more to find each token's
abs-max. A token split adds an abs-max pass to select the outlier tokens, and either one
int8 GEMM of every row (outliers on a wider grid: the patch-wise kernel) or, as the CPU runs
it, a second GEMM of the outliers' gathered rows (float, or int8 with their own scale). Weight-only
int4 GEMMs read half-byte weights and run at a fraction of float peak
(dequantization in the main loop). The remainder is one elementwise pass (read and write)
over every linear unit's input and output (LayerNorm, GELU, residual adds, bias) plus, on a
CPU, the softmax over attention scores, one launch each.

The spec figures (peaks, bandwidth, clocks) are cited in :data:`DEVICE_MODELS`; the
efficiencies and launch costs are modelling assumptions, named as such. Tables built here
say ``source: analytic`` and carry those figures and citations in their provenance.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace

from mixprec.cost_models.table import FLOAT32, Entry, LatencyTable, ShapeKey
from mixprec.kernels.cpu.nupes import stored_code_bits
from mixprec.kernels.registry import candidates as default_candidates
from mixprec.kernels.registry import kernel_for
from mixprec.quant.spec import FLOAT_BITS, QuantSpec
from mixprec.quant.token_split import high_token_count
from mixprec.quant.units import Unit, UnitList


@dataclass(frozen=True)
class DeviceModel:
    """Spec-sheet figures of a device class, and the modelling assumptions used with them.

    Attributes:
        name: device name in the registry.
        description: what the figures describe.
        peak_ops: dtype (``float32``, ``float16``, ``int8``) -> dense peak, operations/s
            (a multiply-accumulate counts as 2).
        bandwidth: memory bandwidth, bytes/s.
        float_dtype: the dtype float units run in (``float16`` on the GPU).
        base_efficiency: fraction of peak a well-tiled large GEMM reaches (assumption).
        tile: (rows, cols) of the GEMM tile one core / SM computes (assumption).
        parallel_units: SMs or cores the tiles are spread over.
        launch_s: fixed cost per kernel launch / op dispatch, seconds (assumption).
        int4_efficiency: fraction of float peak of a weight-only int4 GEMM (assumption).
        w4a8_efficiency: fraction of int8 peak of a GEMM whose 4-bit weights are unpacked
            to int8 in its inner loop (assumption).
        fused_softmax: attention's softmax runs inside the attention kernel (flash style).
        citations: figure -> source.
    """

    name: str
    description: str
    peak_ops: dict[str, float]
    bandwidth: float
    float_dtype: str
    base_efficiency: float
    tile: tuple[int, int]
    parallel_units: int
    launch_s: float
    int4_efficiency: float
    w4a8_efficiency: float
    fused_softmax: bool
    citations: dict[str, str]


A100 = DeviceModel(
    name="a100",
    description="NVIDIA A100 SXM4 40GB, dense tensor-core peaks",
    peak_ops={"float32": 19.5e12, "float16": 312e12, "int8": 624e12},
    bandwidth=1555e9,
    float_dtype="float16",
    base_efficiency=0.7,
    tile=(128, 128),
    parallel_units=108,
    launch_s=4e-6,
    int4_efficiency=0.6,
    w4a8_efficiency=0.7,
    fused_softmax=True,
    citations={
        "peaks (FP32 19.5 TFLOPS, FP16 tensor 312 TFLOPS, INT8 tensor 624 TOPS) and HBM2 "
        "bandwidth 1,555 GB/s": "NVIDIA A100 Tensor Core GPU datasheet (2021), A100 40GB SXM",
        "108 SMs": "NVIDIA A100 Tensor Core GPU Architecture whitepaper (2020)",
        "base efficiency 0.7, 128x128 tiles, 4 us per launch, int4 at 0.6 of FP16 peak, "
        "4-bit weights unpacked for int8 math at 0.7 of INT8 peak":
            "modelling assumptions, not spec figures",
    },
)

A15 = DeviceModel(
    name="a15",
    description="Apple A15 Bionic class: 2 performance cores at 3.23 GHz, 4 x 128-bit NEON "
                "pipes each (FP32 FMA 32 flop/cycle, FP16 64, INT8 SDOT 128 ops/cycle)",
    peak_ops={"float32": 2 * 3.23e9 * 32, "float16": 2 * 3.23e9 * 64,
              "int8": 2 * 3.23e9 * 128},
    bandwidth=34.1e9,
    float_dtype="float32",
    base_efficiency=0.6,
    tile=(8, 12),
    parallel_units=2,
    launch_s=2e-6,
    int4_efficiency=0.5,
    w4a8_efficiency=0.7,
    fused_softmax=False,
    citations={
        "2 performance cores at 3.23 GHz": "Apple A15 Bionic (iPhone 13 Pro), AnandTech, "
                                           "'The iPhone 13 & 13 Pro Review' (2021)",
        "4 x 128-bit NEON/FP pipes per performance core (Firestorm lineage)":
            "AnandTech, 'Apple Announces The Apple Silicon M1' microarchitecture deep dive "
            "(2020)",
        "LPDDR4X-4266 on a 64-bit bus = 34.1 GB/s": "AnandTech, 'The iPhone 13 & 13 Pro "
                                                    "Review' (2021)",
        "base efficiency 0.6, 8x12 micro-kernel tiles, 2 us per op, int4 at 0.5 of float "
        "peak, 4-bit weights unpacked to int8 for SDOT at 0.7 of int8 peak":
            "modelling assumptions, not spec figures",
        "int4 x int8 GEMMs on SDOT (4-bit weights in groups of 32, int8 activations per "
        "row)": "Arm KleidiAI matmul micro-kernels (qai8dxp x qsi4c32p, 2024)",
    },
)

XEON = DeviceModel(
    name="xeon",
    description="Intel Xeon Platinum 8480+ class (4th Gen Xeon Scalable, Sapphire Rapids): 2 "
                "cores at 3.0 GHz all-core turbo; AVX-512 with 2 FMA units (FP32 64 "
                "flop/cycle), AMX-BF16 1,024 and AMX-INT8 2,048 ops/cycle per core",
    peak_ops={"float32": 2 * 3.0e9 * 64, "float16": 2 * 3.0e9 * 1024,
              "int8": 2 * 3.0e9 * 2048},
    bandwidth=2 * 20e9,
    float_dtype="float32",
    base_efficiency=0.5,
    tile=(16, 64),
    parallel_units=2,
    launch_s=5e-6,
    int4_efficiency=0.3,
    w4a8_efficiency=0.7,
    fused_softmax=False,
    citations={
        "56 cores, 3.0 GHz all-core turbo, AVX-512 with two FMA units per core":
            "Intel Xeon Platinum 8480+ specifications (Intel ARK, 2023) and the Intel 64 and "
            "IA-32 Architectures Optimization Reference Manual (2023), Sapphire Rapids",
        "AMX: 2,048 INT8 / 1,024 BF16 operations per cycle per core":
            "Intel, 'Accelerate Artificial Intelligence (AI) Workloads with Intel Advanced "
            "Matrix Extensions (Intel AMX)' (solution brief, 2023)",
        "bf16 math at the AMX-BF16 peak (the table's 'float16' figure is bf16 here)":
            "modelling choice: the class has no fp16 GEMMs in this project's kernels",
        "2 of the cores (the thread count of the measured tables), about 20 GB/s of DRAM "
        "bandwidth per core, base efficiency 0.5, 16x64 tiles, 5 us per op, int4 at 0.3 of "
        "bf16 peak, 4-bit weights unpacked for int8 math at 0.7 of int8 peak":
            "modelling assumptions, not spec figures",
    },
)

DEVICE_MODELS = {"a100": A100, "a15": A15, "xeon": XEON}
_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}


def analytic_table(units: UnitList, device: str, batch: int = 1,
                   candidates: list[QuantSpec] | None = None, model_name: str = ""
                   ) -> LatencyTable:
    """The roofline table of a model's ``units`` on the target class ``device``.

    Args:
        units: the model's units (``discover_units``; weights are not needed).
        device: ``a100``, ``a15`` or ``xeon``.
        batch: images per call.
        candidates: specs to cover (each where its unit kind has a kernel on the device);
            default :func:`mixprec.kernels.candidates` per unit kind.
        model_name: the model's name, recorded in the table.

    Raises:
        ValueError: an unknown device class.
    """
    if device not in DEVICE_MODELS:
        raise ValueError(f"no analytic model for device {device!r}; known: "
                         f"{sorted(DEVICE_MODELS)}")
    dev = DEVICE_MODELS[device]
    by_kind = {k: [s for s in (candidates or default_candidates(device, k))
                   if kernel_for(k, s, device) is not None]
               for k in {u.kind for u in units}}
    entries: dict[tuple, Entry] = {}
    for unit in units:
        shape = ShapeKey.of(unit)
        if unit.kind == "attn_pv":
            continue
        if unit.kind == "attn_qk":
            pv = next(u for u in units if u.name == f"{unit.module_name}.pv")
            for a in [FLOAT32, *by_kind["attn_qk"]]:
                for b in [FLOAT32, *by_kind["attn_pv"]]:
                    ms = 1e3 * (_attention_s(unit, pv, a, b, batch, dev))
                    entries[(shape, a, b)] = Entry(shape, a, ms, _kernel(unit.kind, a, device),
                                                   spec2=b)
            continue
        for spec in [FLOAT32, *by_kind[unit.kind]]:
            ms = 1e3 * _gemm_unit_s(batch * unit.m * unit.groups, unit.k, unit.n, spec, dev,
                                    images=batch)
            entries[(shape, spec, None)] = Entry(shape, spec, ms, _kernel(unit.kind, spec,
                                                                         device))
    remainder = 1e3 * _remainder_s(units, batch, dev)
    figures = json.loads(json.dumps(asdict(dev)))  # as it reads back from a file
    provenance = {"source": "analytic", "device_model": figures, "model_name": model_name,
                  "method": "roofline: max(compute, memory) + launch per op"}
    return LatencyTable(device, "torch", batch, 0 if device == "a100" else 2, units.model_id,
                        tuple(units), tuple(entries.values()), remainder, (), (), provenance)


def _peak(spec: QuantSpec, dev: DeviceModel) -> float:
    """Peak of the math ``spec`` runs in (bfloat16 as float16)."""
    if spec.quantizes_acts:
        return dev.peak_ops["int8"]
    return dev.peak_ops["float16" if spec.float_dtype == "bfloat16" else spec.float_dtype]


def _kernel(kind: str, spec: QuantSpec, device: str) -> str:
    kernel = kernel_for(kind, spec, device)
    return kernel.name if kernel else "float"


def _efficiency(m: int, n: int, dev: DeviceModel, gemms: int = 1) -> float:
    """Base efficiency x tile utilisation x wave utilisation of ``gemms`` m x n outputs
    computed together (a batched GEMM)."""
    tm, tn = dev.tile
    tiles_m, tiles_n = math.ceil(m / tm), math.ceil(n / tn)
    tile_util = (m * n) / (tiles_m * tm * tiles_n * tn)
    tiles = tiles_m * tiles_n * gemms
    waves = math.ceil(tiles / dev.parallel_units)
    return dev.base_efficiency * tile_util * tiles / (waves * dev.parallel_units)


def _op_s(ops: float, peak: float, efficiency: float, bytes_moved: float,
          dev: DeviceModel) -> float:
    return max(ops / (peak * efficiency), bytes_moved / dev.bandwidth) + dev.launch_s


def _elementwise_s(elements: float, in_bytes: float, out_bytes: float, dev: DeviceModel
                   ) -> float:
    return elements * (in_bytes + out_bytes) / dev.bandwidth + dev.launch_s


def _act_quant_s(elements: float, spec: QuantSpec, dev: DeviceModel) -> float:
    """Quantizing an activation of ``elements`` floats: one pass, plus an abs-max pass when
    dynamic."""
    if not spec.quantizes_acts:
        return 0.0
    fbytes = _BYTES[dev.float_dtype]
    quantize = _elementwise_s(elements, fbytes, 1, dev)
    absmax = _elementwise_s(elements, fbytes, 0, dev) if spec.act_mode == "dynamic" else 0.0
    return quantize + absmax


def _gemm_unit_s(m: int, k: int, n: int, spec: QuantSpec, dev: DeviceModel,
                 images: int = 1) -> float:
    """One weight GEMM (m x k by k x n, the rows of ``images`` images) under ``spec``, with
    its activation quantization."""
    if spec.token_split is not None:
        return _token_split_s(m, k, n, spec, dev, images)
    fbytes = _BYTES[dev.float_dtype]
    if spec.weight_format == "nupes":  # codes decoded to a float32 weight, then a float GEMM
        decode = _elementwise_s(k * n, stored_code_bits(spec.weight_bits) / 8, fbytes, dev)
        return decode + _gemm_unit_s(m, k, n, FLOAT32, dev)
    eff = _efficiency(m, n, dev)
    ops = 2.0 * m * k * n
    if spec.quantizes_acts:  # W8A8 / W4A8: int8 tensor / dot-product units
        bytes_moved = m * k + k * n * spec.weight_bits / 8 + m * n * fbytes
        peak = dev.peak_ops["int8"] * (dev.w4a8_efficiency if spec.weight_bits < 8 else 1.0)
        return _op_s(ops, peak, eff, bytes_moved, dev) + _act_quant_s(m * k, spec, dev)
    peak, dtype = _peak(spec, dev), spec.float_dtype
    if spec.quantizes_weights:  # weight-only: narrow weights, float math
        wbytes = spec.weight_bits / 8
        return _op_s(ops, peak * dev.int4_efficiency, eff,
                     m * k * fbytes + k * n * wbytes + m * n * fbytes, dev)
    return _op_s(ops, peak, eff, (m * k + k * n + m * n) * _BYTES[dtype], dev)


def _token_split_s(m: int, k: int, n: int, spec: QuantSpec, dev: DeviceModel,
                   images: int) -> float:
    """A token-split GEMM: an abs-max pass over the input selects each image's high tokens
    (none with fixed positions). High tokens on a wider grid (the patch-wise kernel): every
    row through one int8 GEMM, each group quantized on its grid, rows scattered back in the
    epilogue. Otherwise (as the CPU runs it): every row through the int8 GEMM with the low
    scale, then the high rows gathered, through a second GEMM (float, or int8 with their own
    scale) and scattered."""
    split = spec.token_split
    assert split is not None
    fbytes = _BYTES[dev.float_dtype]
    low_spec = replace(spec, token_split=None)
    per_image = split.selection == "per_image"
    select = _elementwise_s(m * k, fbytes, 0, dev) if per_image else 0.0
    if FLOAT_BITS > split.high_bits > spec.act_bits:
        return select + _gemm_unit_s(m, k, n, low_spec, dev)
    high = images * high_token_count(m // images, split.fraction)
    high_spec = FLOAT32 if split.high_bits >= FLOAT_BITS else low_spec
    gather = _elementwise_s(high * k, fbytes, fbytes, dev)
    scatter = _elementwise_s(high * n, fbytes, fbytes, dev)
    return (select + _gemm_unit_s(m, k, n, low_spec, dev) + gather
            + _gemm_unit_s(high, k, n, high_spec, dev) + scatter)


def _attention_s(qk: Unit, pv: Unit, qk_spec: QuantSpec, pv_spec: QuantSpec, batch: int,
                 dev: DeviceModel) -> float:
    """One attention module: QKᵀ and PV matmuls (and, without a fused softmax, the softmax
    pass over the scores)."""
    fbytes = _BYTES[dev.float_dtype]
    heads = batch * qk.groups
    tokens, head_dim, keys = qk.m, qk.k, qk.n
    total = 0.0
    for spec, (m, k, n) in ((qk_spec, (tokens, head_dim, keys)), (pv_spec, (tokens, keys,
                                                                            pv.n))):
        quantized = spec.quantizes_acts
        peak = _peak(spec, dev)
        abytes = 1 if quantized else _BYTES[spec.float_dtype]
        ops = 2.0 * heads * m * k * n
        eff = _efficiency(m, n, dev, heads)
        if dev.fused_softmax:  # flash attention: operands read once, scores stay on chip
            bytes_moved = heads * (m * k + k * n) * abytes
        else:
            bytes_moved = heads * (m * k + k * n) * abytes + heads * m * n * fbytes
        total += _op_s(ops, peak, eff, bytes_moved, dev) + _act_quant_s(heads * m * k, spec, dev)
    if not dev.fused_softmax:
        total += _elementwise_s(heads * tokens * keys, fbytes, fbytes, dev)
    return total


def _remainder_s(units: UnitList, batch: int, dev: DeviceModel) -> float:
    """One elementwise pass over every linear unit's input and output (norms, activations,
    residual adds, bias), plus the reshapes of each attention module's q, k, v."""
    fbytes = _BYTES[dev.float_dtype]
    total = 0.0
    for unit in units:
        if unit.kind == "linear":
            rows = batch * unit.m
            total += _elementwise_s(rows * unit.k, fbytes, fbytes, dev)
            total += _elementwise_s(rows * unit.n, fbytes, fbytes, dev)
        elif unit.kind == "attn_qk":
            total += _elementwise_s(3 * batch * unit.groups * unit.m * unit.k, fbytes, fbytes,
                                    dev)
    return total


__all__ = ["A100", "A15", "DEVICE_MODELS", "XEON", "DeviceModel", "analytic_table"]
