"""Where the time of a plan deployed in ONNX Runtime goes: ORT's own per-node profile.

Deploys one of bench_deploy's plans on a model with ``runtime="onnxruntime"``, runs the saved
graph in a profiling ``InferenceSession`` and prints, per ONNX Runtime op type, its share of
the summed node time and its mean ms per call, with ORT ``quantize_dynamic``'s graph of the
same model profiled beside it. Prints the CPU fingerprint first. No assertions.

    python benchmarks/profile_ort_plan.py [--model mnist-vit]
        [--plan "mixed: static, fp32 embed + attention"] [--batch 1] [--threads 2] [--calls 200]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
from bench_deploy import deployable, load_case, mixprec_plans


def profile(onnx_path: Path, x: np.ndarray, threads: int, calls: int) -> dict[str, float]:
    """Op type -> summed node microseconds over ``calls`` runs (after 10 warm-up runs)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}
    for _ in range(10):
        session.run(None, feed)
    options.enable_profiling = True
    options.profile_file_prefix = str(onnx_path.with_suffix(""))
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    for _ in range(calls):
        session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    per_op: dict[str, float] = defaultdict(float)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += event["dur"]
    return per_op


def report(title: str, per_op: dict[str, float], calls: int) -> None:
    total = sum(per_op.values())
    print(f"\n{title}: {total / calls / 1000:.2f} ms of node time per call")
    for op, us in sorted(per_op.items(), key=lambda item: -item[1]):
        print(f"  {op:28s} {100 * us / total:5.1f}%  {us / calls / 1000:7.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mnist-vit")
    parser.add_argument("--plan", default="mixed: static, fp32 embed + attention")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()

    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from mixprec import deploy
    from mixprec.deploy.onnx_graph import export_onnx
    from mixprec.kernels.cpu.capabilities import cpu_fingerprint

    print(f"CPU: {cpu_fingerprint(args.threads).summary()}")
    torch.set_num_threads(args.threads)
    model, x, calib, _, _ = load_case(args.model, args.batch)
    plans = mixprec_plans(model, calib)
    if args.plan not in plans:
        raise SystemExit(f"unknown plan {args.plan!r}; known: {list(plans)}")
    plan, units = plans[args.plan]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        real = deploy(model, deployable(plan, units, "onnxruntime"), device="cpu", calib=calib,
                      runtime="onnxruntime", threads=args.threads)
        ours = real.save(folder / "plan.onnx")
        fp32 = folder / "fp32.onnx"
        fp32.write_bytes(export_onnx(model, calib).onnx_bytes)
        theirs = folder / "ort_dynamic.onnx"
        quantize_dynamic(str(fp32), str(theirs), weight_type=QuantType.QInt8)
        for title, path in ((f"mixprec ORT {args.plan}", ours),
                            ("ORT quantize_dynamic int8", theirs)):
            report(f"{args.model} b{args.batch} {title}",
                   profile(path, x.numpy(), args.threads, args.calls), args.calls)


if __name__ == "__main__":
    main()
