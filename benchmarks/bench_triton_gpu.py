"""Ratio benchmark of the Triton kernels against torch at ViT-S/B/L shapes (GPU only).

Measures, side by side in one run with ``triton.testing.do_bench``: every linear of a ViT
block (qkv, proj, fc1, fc2 at 197 tokens x batch) as torch fp16 ``F.linear``,
``torch._int_mm`` (int8 -> int32, where available), the Triton int8 GEMM with fused dequant,
the dynamic W8A8 linear (quantize + GEMM), the patch-wise linear (25% of tokens at 8 bits,
the rest at 4) and W4A16 (group 128); and attention as fp16 ``F.scaled_dot_product_attention``
against the INT8-QK Triton kernel. Prints TOPS and speedups over torch fp16; no assertions.
Without CUDA it prints one line saying so and exits 0.

    python benchmarks/bench_triton_gpu.py [--batch 64] [--models vit_s vit_b vit_l]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torch.nn.functional as F

MODELS = {"vit_s": (384, 6), "vit_b": (768, 12), "vit_l": (1024, 16)}
TOKENS = 197


def _bench(fn: Callable[[], object]) -> float:
    import triton.testing

    return float(triton.testing.do_bench(fn, warmup=25, rep=100))


def _row(label: str, ms: float, ops: float, base_ms: float) -> None:
    print(f"  {label:<30} {ms * 1e3:10.1f} us {ops / ms / 1e9:9.1f} TOPS {base_ms / ms:7.2f}x")


def bench_linear(m: int, n: int, k: int) -> None:
    """One linear ``[m, k] x [n, k]ᵀ`` in every implementation, speedup over torch fp16."""
    from mixprec.kernels.triton import reference as ref
    from mixprec.kernels.triton.int8_gemm import int8_gemm, int8_linear_dynamic
    from mixprec.kernels.triton.patchwise_gemm import patchwise_linear
    from mixprec.kernels.triton.quantize import quantize_per_token
    from mixprec.kernels.triton.w4a16_gemm import w4a16_gemm

    x = torch.randn(m, k, device="cuda", dtype=torch.float16)
    w_float = torch.randn(n, k, device="cuda") * k**-0.5
    bias = torch.randn(n, device="cuda", dtype=torch.float16)
    w16 = w_float.half()
    w8, w8_scale = ref.quantize_weight_int8(w_float)
    w4, w4_scale = ref.quantize_weight_int4(w_float, 128)
    xq, xs = quantize_per_token(x)
    perm, split = ref.patchwise_rows(torch.rand(m // TOKENS, TOKENS, device="cuda"), TOKENS // 4)
    ops = 2.0 * m * n * k

    base = _bench(lambda: F.linear(x, w16, bias))
    _row("torch fp16 F.linear", base, ops, base)
    if hasattr(torch, "_int_mm"):
        w8_t = w8.t()
        _row("torch._int_mm (int32 out)", _bench(lambda: torch._int_mm(xq, w8_t)), ops, base)
    _row("triton int8 GEMM (int32 out)", _bench(lambda: int8_gemm(xq, w8)), ops, base)
    _row(
        "triton int8 GEMM + dequant",
        _bench(lambda: int8_gemm(xq, w8, xs, w8_scale, bias)),
        ops,
        base,
    )
    _row(
        "triton W8A8 dynamic (q+GEMM)",
        _bench(lambda: int8_linear_dynamic(x, w8, w8_scale, bias)),
        ops,
        base,
    )
    _row(
        "triton patch-wise 25%@8 rest@4",
        _bench(lambda: patchwise_linear(x, w8, w8_scale, bias, perm, split, 8, 4)),
        ops,
        base,
    )
    _row(
        "triton W4A16 (g128)",
        _bench(lambda: w4a16_gemm(x, w4, w4_scale.half(), 128, bias)),
        ops,
        base,
    )
    err = (int8_gemm(xq, w8) - ref.int_matmul_ref(xq, w8)).abs().max().item()
    print(f"  (int8 GEMM vs exact reference: max |diff| = {err})")


def bench_attention(batch: int, heads: int, head_dim: int) -> None:
    """Attention ``[batch, heads, 197, head_dim]``: SDPA fp16 against the INT8-QK kernel."""
    from mixprec.kernels.triton.attention import attention

    q, k, v = (
        torch.randn(batch, heads, TOKENS, head_dim, device="cuda", dtype=torch.float16)
        for _ in range(3)
    )
    ops = 4.0 * batch * heads * TOKENS * TOKENS * head_dim
    base = _bench(lambda: F.scaled_dot_product_attention(q, k, v))
    _row("torch fp16 SDPA", base, ops, base)
    _row("triton INT8-QK attention", _bench(lambda: attention(q, k, v)), ops, base)
    exact = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
    noise = (attention(q, k, v).float() - exact).pow(2).sum()
    print(f"  (SQNR vs fp32 SDPA: {10 * torch.log10(exact.pow(2).sum() / noise).item():.1f} dB)")


def main() -> int:
    """Run the benchmark; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA: skipped, no GPU figures")
        return 0
    import triton

    print(
        f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}  "
        f"triton {triton.__version__}  batch {args.batch} x {TOKENS} tokens"
    )
    print("  (speedup = torch fp16 time / this time, measured in this run)")
    m = args.batch * TOKENS
    for name in args.models:
        dim, heads = MODELS[name]
        for layer, n, k in (
            ("qkv", 3 * dim, dim),
            ("proj", dim, dim),
            ("fc1", 4 * dim, dim),
            ("fc2", dim, 4 * dim),
        ):
            print(f"{name} {layer}: [{m}, {k}] x [{n}, {k}]^T")
            bench_linear(m, n, k)
        print(f"{name} attention: [{args.batch}, {heads}, {TOKENS}, {dim // heads}]")
        bench_attention(args.batch, heads, dim // heads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
