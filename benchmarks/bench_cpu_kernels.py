"""Ratio benchmark of the CPU kernels against fp32 at DeiT-S shapes (measured here).

For every CPU spec, on each int8 backend exact on this machine, the latency of the DeiT-S
linears (197 tokens x batch; qkv 384->1152, proj 384->384, fc1 384->1536, fc2 1536->384)
and of the attention matmuls (6 heads, 197 tokens, head dim 64: the deployed SDPA handler
against fp32 ``F.scaled_dot_product_attention``), at batch 1 and 8 on 2 threads. All
implementations of a shape are timed in one run, interleaved repetition by repetition; the
table gives
``fp32 median / spec median`` (above 1: faster than fp32) and fp32's median in ms. The modules
are the ones deploy() builds (mixprec.deploy.build.CPU_BUILDERS, picked by the kernel registry
for device ``cpu``); a spec or backend this CPU does not run exactly is left out. No assertions.

    python benchmarks/bench_cpu_kernels.py [--batches 1 8] [--reps 15] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from mixprec.deploy.build import CPU_BUILDERS
from mixprec.kernels import cpu_fingerprint
from mixprec.kernels.cpu import CpuAttention, exact_backends
from mixprec.kernels.cpu.exactness import onednn_exact
from mixprec.kernels.registry import kernel_for
from mixprec.quant import QuantSpec
from mixprec.quant.modules import attention_operands
from mixprec.quant.observers import Observer
from mixprec.quant.sdpa import SdpaCall

TOKENS, DIM, HEADS = 197, 384, 6
LINEARS = {"qkv 384x1152": (384, 1152), "proj 384x384": (384, 384),
           "fc1 384x1536": (384, 1536), "fc2 1536x384": (1536, 384)}
FLOAT = QuantSpec(weight_bits=16, act_bits=16, act_mode="none")
BF16 = QuantSpec(weight_bits=16, act_bits=16, act_mode="none", float_dtype="bfloat16")
STATIC = QuantSpec(weight_bits=8, act_bits=8, act_mode="static")
DYNAMIC = QuantSpec(weight_bits=8, act_bits=8, act_mode="dynamic")
STATIC7 = QuantSpec(weight_bits=8, act_bits=7, act_mode="static")
LINEAR_SPECS: dict[str, tuple[QuantSpec, str]] = {
    "bf16": (BF16, ""),
    "W8A8 static (oneDNN)": (STATIC, "onednn"),
    "W8A8 static (oneDNN split)": (STATIC, "onednn_split"),
    "W8A8 static (_int_mm)": (STATIC, "int_mm"),
    "W8A7 static (oneDNN)": (STATIC7, "onednn"),
    "W8A8 dynamic (oneDNN)": (DYNAMIC, "onednn"),
    "W8A8 dynamic (_int_mm)": (DYNAMIC, "int_mm"),
    "W8A16 bf16 act": (QuantSpec(weight_bits=8, act_bits=16, act_mode="none",
                                 float_dtype="bfloat16"), ""),
    "W8A16 fp32 act": (QuantSpec(weight_bits=8, act_bits=16, act_mode="none"), ""),
    "W4A16 g128 bf16 act": (QuantSpec(weight_bits=4, act_bits=16, act_mode="none",
                                      weight_granularity="per_group", group_size=128,
                                      float_dtype="bfloat16"), ""),
    "W4A16 g128 fp32 act": (QuantSpec(weight_bits=4, act_bits=16, act_mode="none",
                                      weight_granularity="per_group", group_size=128), ""),
}
"""Label -> (spec, int8 backend; "" for float and weight-only kernels)."""
ATTENTION_SPECS: dict[str, tuple[QuantSpec, QuantSpec]] = {
    "bf16 QK, bf16 PV": (BF16, BF16),
    "int8 static QK+PV": (STATIC, STATIC),
    "int8 dynamic QK+PV": (DYNAMIC, DYNAMIC),
    "int8 dynamic QK, bf16 PV": (DYNAMIC, BF16),
}


def measure(fns: dict[str, Callable[[], object]], reps: int, min_s: float = 0.02
            ) -> dict[str, float]:
    """Median seconds per call of each function, repetitions interleaved across functions."""
    inner = {}
    for name, fn in fns.items():  # warm up and size each timed block to >= min_s
        fn()
        start, calls = time.perf_counter(), 0
        while time.perf_counter() - start < min_s:
            fn()
            calls += 1
        inner[name] = max(1, calls)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(inner[name]):
                fn()
            samples[name].append((time.perf_counter() - start) / inner[name])
    return {name: statistics.median(s) for name, s in samples.items()}


def linear_fns(k: int, n: int, batch: int) -> dict[str, Callable[[], object]]:
    """fp32 F.linear and every deployed linear module for one shape."""
    x = torch.randn(batch, TOKENS, k)
    observer = Observer()
    observer.observe(x)
    linear = nn.Linear(k, n).eval()
    fns: dict[str, Callable[[], object]] = {"fp32": lambda: linear(x)}
    for label, (spec, backend) in LINEAR_SPECS.items():
        kernel = kernel_for("linear", spec, "cpu")
        if kernel is None or (backend and not exact_here(backend, spec.act_bits)):
            continue  # not exact on this CPU
        module = CPU_BUILDERS[kernel.name](nn.Linear(k, n).eval(), spec, observer, backend)
        fns[label] = lambda module=module: module(x)
    return fns


def exact_here(backend: str, bits: int) -> bool:
    """Whether ``backend`` gives exact sums here (the split is exact wherever oneDNN's 7-bit
    path is, VNNI or not: timed everywhere, for what CPUs without VNNI pay)."""
    return backend in exact_backends(bits) or (backend == "onednn_split" and onednn_exact(63))


def attention_fns(batch: int) -> dict[str, Callable[[], object]]:
    """fp32 SDPA and the deployed SDPA handler for every attention spec pair."""
    q, k, v = (torch.randn(batch, HEADS, TOKENS, DIM // HEADS) for _ in range(3))
    call = SdpaCall(q, k, v, None, 0.0, False, None, False)
    observers = {}
    for point, value in attention_operands(call).items():
        observers[point] = Observer()
        observers[point].observe(value)
    fns: dict[str, Callable[[], object]] = {
        "fp32": lambda: F.scaled_dot_product_attention(q, k, v)}
    for label, (qk, pv) in ATTENTION_SPECS.items():
        if any(kernel_for(kind, spec, "cpu") is None
               for kind, spec in (("attn_qk", qk), ("attn_pv", pv))):
            continue  # not exact on this CPU
        handler = CpuAttention(qk, pv, observers)
        fns[label] = lambda handler=handler: handler(call)
    return fns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_fingerprint(args.threads).summary()}")
    print("speedup = fp32 median / spec median (>1 is faster than fp32); "
          f"{args.reps} interleaved repetitions")
    labels = list(LINEAR_SPECS) + list(ATTENTION_SPECS)
    for batch in args.batches:
        results: dict[str, dict[str, float]] = {}
        for shape in [*LINEARS, "attention"]:
            fns = attention_fns(batch) if shape == "attention" else linear_fns(*LINEARS[shape],
                                                                                batch)
            with torch.inference_mode():
                results[shape] = measure(fns, args.reps)
        print(f"\nbatch {batch} (M = {TOKENS * batch} tokens)")
        print(f"{'spec':<26}" + "".join(f"{shape:>15}" for shape in results))
        print(f"{'fp32 median (ms)':<26}"
              + "".join(f"{r['fp32'] * 1e3:>15.3f}" for r in results.values()))
        for label in labels:
            cells = [f"{r['fp32'] / r[label]:>14.2f}x" if label in r else f"{'-':>15}"
                     for r in results.values()]
            print(f"{label:<26}" + "".join(cells))

if __name__ == "__main__":
    main()
