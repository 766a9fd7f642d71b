"""The ``mixprec cpu`` subcommand: what this machine is and what deploys exactly on it."""

from __future__ import annotations

import argparse
import json

KINDS = ("linear", "conv_gemm", "attn_qk", "attn_pv")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``cpu`` to the ``mixprec`` command's subparsers."""
    p = subparsers.add_parser(
        "cpu", help="this CPU's fingerprint, exact int8 paths and default candidates",
        description=run.__doc__)
    p.add_argument("--threads", type=int, default=None, help="threads to record (default: "
                   "torch's)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the CPU fingerprint, its exact int8 paths and the default candidates per runtime."""
    from mixprec import kernels
    from mixprec.kernels.cpu import exact_backends
    from mixprec.kernels.ort.exactness import ort_int8_exact
    from mixprec.kernels.ov.exactness import ov_int8_exact

    fingerprint = kernels.cpu_fingerprint(args.threads)
    report = {
        "fingerprint": {**fingerprint.to_dict(), "key": fingerprint.key},
        "int8_dot_products": fingerprint.has_int8_dot,
        "native_bf16": fingerprint.has_native_bf16,
        "exact_int8": {"torch": {f"{bits}-bit": list(exact_backends(bits)) for bits in (8, 7)},
                       "onnxruntime": {f"{bits}-bit": ort_int8_exact(bits) for bits in (8, 7)},
                       "openvino": {f"{bits}-bit": ov_int8_exact(bits) for bits in (8, 7)}},
        "candidates": {runtime: {kind: [c.label for c in kernels.candidates("cpu", kind, runtime)]
                                 for kind in KINDS}
                       for runtime in kernels.RUNTIMES},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"cpu: {fingerprint.summary()}")
    print(f"int8 dot products: {'yes' if fingerprint.has_int8_dot else 'no'}; native bf16: "
          f"{'yes' if fingerprint.has_native_bf16 else 'no'}")
    for runtime, paths in report["exact_int8"].items():
        print(f"exact int8 paths ({runtime}): " + "; ".join(f"{k}: {v}" for k, v in paths.items()))
    for runtime, by_kind in report["candidates"].items():
        print(f"candidates ({runtime}):")
        for kind, labels in by_kind.items():
            print(f"  {kind:<10} {', '.join(labels)}")
    return 0
