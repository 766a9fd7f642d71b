"""Int8 attention against float attention, deployed, side by side in each runtime.

For each model, batch and runtime: two plans deployed with the runtime's real kernels, both
with every linear (and the patch embedding) in W8A8 static; one keeps attention's two
matmuls in float32, the other runs them in int8 too (static, per tensor). They are timed
against each other in interleaved rounds (``time_against``, each turn corrected for the
machine's speed of the moment). Printed: the CPU fingerprint, then per case the int8-attention
plan's time as a ratio of the float-attention plan's, with its ~95% confidence interval
(below 1: int8 attention pays). Runtimes where 8-bit static attention is not exact on this
CPU are skipped with the reason. No assertions.

    python benchmarks/bench_attention.py [--models mnist-vit deit_small_patch16_224]
        [--batches 1 8] [--runtimes torch onnxruntime openvino] [--threads 2]
"""

from __future__ import annotations

import argparse

from bench_cost_model import case_inputs

STATIC = "W8A8-static"


def attention_ratio(name: str, batch: int, runtime: str, threads: int) -> str:
    """One case's line: int8-attention time over float-attention time, or why it is
    skipped."""
    import torch

    from mixprec import deploy, kernels, quant
    from mixprec.cost_models.table import FLOAT32
    from mixprec.cost_models.timing import TimingPolicy, time_against

    torch.set_num_threads(threads)
    model, x = case_inputs(name, batch)
    units = quant.discover_units(model, x[:1])
    offered = {kind: {s.label: s for s in kernels.candidates("cpu", kind, runtime=runtime)}
               for kind in {u.kind for u in units}}
    if any(STATIC not in offered[k] for k in ("attn_qk", "attn_pv") if k in offered):
        return f"{name} b{batch} {runtime}: skipped (no exact {STATIC} attention here)"
    calls = []
    for kinds in (("linear", "conv_gemm"), ("linear", "conv_gemm", "attn_qk", "attn_pv")):
        plan = quant.Plan.uniform(units, FLOAT32).replace(
            {u.name: offered[u.kind][STATIC] for u in units
             if u.kind in kinds and STATIC in offered[u.kind]})
        real = deploy(model, plan, calib=x, runtime=runtime, units=units, threads=threads)
        calls.append(lambda real=real: real(x))
    with torch.inference_mode():
        found = time_against(calls[0], calls[1:], TimingPolicy(min_rounds=16, max_rounds=24))[0]
    return (f"{name} b{batch} {runtime}: int8 attention {found.ratio:.3f}x the time of float "
            f"attention (±{found.ratio_ci:.1%}; float attention {found.reference_ms:.2f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mnist-vit", "deit_small_patch16_224"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--runtimes", nargs="+", default=["torch", "onnxruntime", "openvino"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from mixprec.kernels.cpu.capabilities import cpu_fingerprint

    print(f"cpu: {cpu_fingerprint(args.threads).summary()}", flush=True)
    for name in args.models:
        for batch in args.batches:
            for runtime in args.runtimes:
                print(attention_ratio(name, batch, runtime, args.threads), flush=True)


if __name__ == "__main__":
    main()
