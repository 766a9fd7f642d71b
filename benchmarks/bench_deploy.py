"""Whole-model latency of deployed plans against what users run instead, measured side by side.

For each model and batch size, the peers (what users run instead of mixprec): torch fp32,
torch bf16, torch.ao dynamic int8 (what PyTorch users run), ONNX Runtime fp32 and its
one-line ``quantize_dynamic`` int8 (what ONNX users run), OpenVINO fp32 and NNCF's
``nncf.quantize`` (transformer preset) compiled by OpenVINO (what OpenVINO users run); and
mixprec-deployed plans in the three runtimes: uniform W8A8 static, uniform W8A8 dynamic, 4-bit
weight-only (and W4A8 in ONNX Runtime), the Hybrid Quantization plan, and hand-built mixed
plans. Uniform plans cover
every unit (linears, patch embedding, attention matmuls) where the runtime has an exact kernel
for it here (8-bit static activations become 7-bit ones where only those are exact), and leave
the others in fp32; plans that a runtime can only run in fp32, or that equal another plan
there, are left out of it.

Each runtime runs in its own worker process (two runtimes' thread pools in one process slow
each other down); the parent times one configuration at a time, interleaving all of them
round by round, and reports the median per-call latency. It prints the CPU fingerprint
first, then ms, the ratio to torch fp32 and to the fastest peer (above 1: faster), the output
SQNR against torch fp32 and, for the embedded model, top-1 on its 1,000 test digits. The last
lines per case: the fastest peer, and the fastest mixprec plan whose SQNR is within 1 dB of
that peer's (or better) with its speed-up over it (targets: 1.3x on a CPU with VNNI, 1.1x
without). No assertions.

    python benchmarks/bench_deploy.py [--models deit_small_patch16_224 mnist-vit]
        [--batches 1 8] [--threads 2] [--rounds 7] [--min-block-s 0.25]
        [--runtimes torch onnxruntime openvino]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time
from collections.abc import Callable

import numpy as np

EMBEDDED = ("mnist-vit", "mnist-vit-small")
SQNR_SLACK_DB = 1.0


def load_case(name: str, batch: int):
    """(model, timing input, calibration images, evaluation images, labels or None)."""
    import torch

    from mixprec import data, models

    if name in EMBEDDED:
        images, labels = data.mnist("test")
        return (models.load(name), images[:batch], data.mnist("train")[0][:256], images, labels)
    torch.manual_seed(0)  # the same random weights in every worker process
    model = models.load(name, pretrained=False)
    gen = torch.Generator().manual_seed(0)
    shape = (3, *model.pretrained_cfg["input_size"][1:])
    calib = torch.randn(32, *shape, generator=gen)
    return model, torch.randn(batch, *shape, generator=gen), calib, None, None


def mixprec_plans(model, calib) -> dict:
    """Plan name -> (plan, units): uniform plans over every unit (attention matmuls included),
    the Hybrid Quantization plan, and hand-built mixed plans."""
    from mixprec import quant, sensitivity
    from mixprec.kernels.registry import FP32, W8A8_DYNAMIC, W8A8_STATIC
    from mixprec.quant import Plan

    units = quant.discover_units(model, calib[:1])
    static = Plan.uniform(units, W8A8_STATIC)
    embed = {u.name: FP32 for u in units if u.kind == "conv_gemm"}
    plans = {"W8A8 static": static,
             "W8A8 dynamic": Plan.uniform(units, W8A8_DYNAMIC),
             "HQ (linears static/dynamic by SQNR)": sensitivity.hybrid_plan(model, units, calib),
             "mixed: W8A8 static, fp32 patch embed": static.replace(embed),
             "mixed: static, fp32 embed + attention": static.replace(embed).replace(
                 {u.name: FP32 for u in units if u.is_attention}),
             "mixed: static, fp32 embed, dynamic fc2": static.replace(embed).replace(
                 {u.name: W8A8_DYNAMIC for u in units if u.name.endswith("fc2")})}
    return {name: (plan, units) for name, plan in plans.items()}


def deployable(plan, units, runtime: str):
    """``plan`` with every spec this CPU cannot run exactly in ``runtime`` set to its 7-bit
    activation twin where that runs, else to fp32."""
    import dataclasses

    from mixprec.kernels.registry import FP32, kernel_for

    def runnable(unit, spec):
        if kernel_for(unit.kind, spec, "cpu", runtime) is not None:
            return spec
        if spec.act_bits == 8 and spec.quantizes_acts:
            seven = dataclasses.replace(spec, act_bits=7)
            if kernel_for(unit.kind, seven, "cpu", runtime) is not None:
                return seven
        return FP32

    return plan.replace({u.name: runnable(u, plan[u.name]) for u in units if u.name in plan})


def runtime_plans(plans: dict, runtime: str) -> dict:
    """Plan name -> the deployable plan in ``runtime``, without those it can only run in
    fp32 and those equal to an earlier one."""
    found: dict = {}
    for name, (plan, units) in plans.items():
        real = deployable(plan, units, runtime)
        if any(not spec.is_float for _, spec in real.specs) and real not in found.values():
            found[name] = real
    return found


def runtime_mixprec_plans(model, calib, runtime: str) -> dict:
    """:func:`mixprec_plans` and uniform 4-bit linears (each of the runtime's proposed W4
    candidates: weight-only, and W4A8 where it has one) as the runtime deploys them
    (:func:`runtime_plans`)."""
    from mixprec import kernels
    from mixprec.quant import Plan

    plans = mixprec_plans(model, calib)
    units = next(iter(plans.values()))[1]
    linears = [u for u in units if u.kind == "linear"]
    for spec in kernels.candidates("cpu", "linear", runtime):
        if spec.weight_bits == 4:
            acts = spec.act_bits if spec.quantizes_acts else 16
            plans[f"W4A{acts} ({spec.label})"] = (Plan.uniform(linears, spec), [])
    return runtime_plans(plans, runtime)


def torch_configs(model, x, calib, extra: dict[str, str]) -> dict[str, Callable]:
    import copy

    import torch

    from mixprec import deploy
    from mixprec.deploy.peers import build_peer
    from mixprec.quant import Plan

    bf16 = copy.deepcopy(model).to(torch.bfloat16)
    dynamic = build_peer(model, "torch", calib, torch.get_num_threads())
    configs = {"torch fp32": lambda v: model(v),
               "torch bf16": lambda v: bf16(v.to(torch.bfloat16)).float(),
               "torch.ao dynamic int8": lambda v: dynamic(v)}
    for name, plan in runtime_mixprec_plans(model, calib, "torch").items():
        configs[f"mixprec torch {name}"] = deploy(model, plan, calib=calib)
    for name, plan_json in extra.items():
        configs[name] = deploy(model, Plan.from_json(plan_json), calib=calib)
    return configs


def ort_configs(model, x, calib, threads: int, extra: dict[str, str]
                ) -> dict[str, Callable]:
    from mixprec import deploy
    from mixprec.deploy.onnx_graph import export_onnx
    from mixprec.deploy.onnx_runtime import OrtModel
    from mixprec.deploy.peers import ort_quantize_dynamic
    from mixprec.quant import Plan

    configs = {"ORT fp32": OrtModel.of(export_onnx(model, calib), threads),
               "ORT quantize_dynamic int8": ort_quantize_dynamic(model, calib, threads)}
    for name, plan in runtime_mixprec_plans(model, calib, "onnxruntime").items():
        configs[f"mixprec ORT {name}"] = deploy(model, plan, calib=calib, runtime="onnxruntime",
                                                threads=threads)
    for name, plan_json in extra.items():
        configs[name] = deploy(model, Plan.from_json(plan_json), calib=calib,
                               runtime="onnxruntime", threads=threads)
    return configs


def openvino_configs(model, x, calib, threads: int, extra: dict[str, str]
                     ) -> dict[str, Callable]:
    from mixprec import deploy
    from mixprec.deploy.onnx_graph import export_onnx
    from mixprec.deploy.openvino_runtime import OvModel
    from mixprec.deploy.peers import nncf_openvino
    from mixprec.quant import Plan

    configs = {"OpenVINO fp32": OvModel.of(export_onnx(model, calib), threads),
               "NNCF + OpenVINO int8": nncf_openvino(model, calib, calib, threads)}
    for name, plan in runtime_mixprec_plans(model, calib, "openvino").items():
        configs[f"mixprec OpenVINO {name}"] = deploy(model, plan, calib=calib,
                                                     runtime="openvino", threads=threads)
    for name, plan_json in extra.items():
        configs[name] = deploy(model, Plan.from_json(plan_json), calib=calib,
                               runtime="openvino", threads=threads)
    return configs


CONFIGS = {"torch": lambda model, x, calib, threads, extra: torch_configs(model, x, calib, extra),
           "onnxruntime": ort_configs, "openvino": openvino_configs}
"""Runtime -> the builder of its configurations."""


def worker(conn, runtime: str, model_name: str, batch: int, threads: int,
           extra: dict[str, str]) -> None:
    """Build one runtime's configurations (and the ``extra`` plans, name -> plan JSON),
    then time / evaluate them on request."""
    import logging

    import torch

    logging.getLogger("mixprec").setLevel(logging.ERROR)  # uniform GEMM plans leave attention
    torch.set_num_threads(threads)
    model, x, calib, images, labels = load_case(model_name, batch)
    with torch.inference_mode():
        configs = CONFIGS[runtime](model, x, calib, threads, extra)
        conn.send(list(configs))
        while True:
            message = conn.recv()
            if message[0] == "stop":
                return
            fn = configs[message[1]]
            if message[0] == "outputs":
                evaluate = images if images is not None else x
                out = [np.asarray(fn(chunk)).astype(np.float32) for chunk in evaluate.split(250)]
                conn.send(np.concatenate(out))
            else:
                conn.send(block_time(fn, x, message[2]))


def block_time(fn: Callable, x, min_block_s: float) -> float:
    """Per-call seconds of the fastest whole block of calls lasting at least ``min_block_s``
    after one warm-up call (the block mean, not one call: timer noise averages out)."""
    fn(x)
    calls, start = 0, time.perf_counter()
    while True:
        fn(x)
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_block_s:
            return elapsed / calls


def sqnr_db(out: np.ndarray, ref: np.ndarray) -> float:
    """Output SQNR in dB (infinite for identical outputs)."""
    noise = float(np.mean((out.astype(np.float64) - ref) ** 2))
    if noise == 0.0:
        return float("inf")
    return float(10 * np.log10(np.mean(ref.astype(np.float64) ** 2) / noise))


def measure_configs(model_name: str, batch: int, args: argparse.Namespace,
                    extra: dict[str, dict[str, str]] | None = None
                    ) -> tuple[dict[str, list[float]], dict[str, np.ndarray]]:
    """Per-call seconds of every configuration, interleaved round by round, and its outputs
    on the evaluation images; ``extra``: runtime -> plan name -> plan JSON to add."""
    ctx = mp.get_context("spawn")
    workers = {}
    for runtime in args.runtimes:
        parent, child = ctx.Pipe()
        process = ctx.Process(target=worker, args=(child, runtime, model_name, batch,
                                                   args.threads, (extra or {}).get(runtime, {})),
                              daemon=True)
        process.start()
        workers[runtime] = (parent, process)
    names = {runtime: conn.recv() for runtime, (conn, _) in workers.items()}
    samples: dict[str, list[float]] = {n: [] for ns in names.values() for n in ns}
    for _ in range(args.rounds):
        for runtime, (conn, _) in workers.items():
            for name in names[runtime]:
                conn.send(("time", name, args.min_block_s))
                samples[name].append(conn.recv())
    outputs = {}
    for runtime, (conn, process) in workers.items():
        for name in names[runtime]:
            conn.send(("outputs", name))
            outputs[name] = conn.recv()
        conn.send(("stop",))
        process.join()
    return samples, outputs


def run_case(model_name: str, batch: int, args: argparse.Namespace) -> None:
    report(model_name, batch, args, *measure_configs(model_name, batch, args))


def report(model_name: str, batch: int, args: argparse.Namespace,
           samples: dict[str, list[float]], outputs: dict[str, np.ndarray]) -> None:
    from mixprec import data
    from mixprec.kernels import cpu_fingerprint

    ms = {n: statistics.median(s) * 1e3 for n, s in samples.items()}
    reference = outputs["torch fp32"]
    labels = data.mnist("test")[1].numpy() if model_name in EMBEDDED else None
    sqnr = {n: sqnr_db(o, reference) for n, o in outputs.items()}
    peers = [n for n in ms if not n.startswith("mixprec")]
    fastest_peer = min(peers, key=ms.get)
    print(f"\n{model_name}{'' if model_name in EMBEDDED else ' (random weights)'}, batch "
          f"{batch}, {args.threads} threads, median of {args.rounds} interleaved rounds")
    head = f"{'configuration':<52}{'ms':>9}{'vs torch fp32':>15}{'vs peer':>10}{'SQNR dB':>9}"
    print(head + ("  top-1" if labels is not None else ""))
    for name in ms:
        line = (f"{name:<52}{ms[name]:>9.2f}{ms['torch fp32'] / ms[name]:>14.2f}x"
                f"{ms[fastest_peer] / ms[name]:>9.2f}x{sqnr[name]:>9.1f}")
        if labels is not None:
            line += f"  {float(np.mean(outputs[name].argmax(-1) == labels)):.4f}"
        print(line)
    target = 1.3 if cpu_fingerprint(args.threads).has_int8_dot else 1.1
    print(f"fastest peer: {fastest_peer}, {ms[fastest_peer]:.2f} ms, {sqnr[fastest_peer]:.1f} dB")
    eligible = [n for n in ms if n.startswith("mixprec")
                and sqnr[n] >= sqnr[fastest_peer] - SQNR_SLACK_DB]
    if eligible:
        best = min(eligible, key=ms.get)
        print(f"fastest mixprec plan within {SQNR_SLACK_DB:.0f} dB of it: {best}, "
              f"{sqnr[best]:.1f} dB, {ms[fastest_peer] / ms[best]:.2f}x the fastest peer "
              f"(target {target}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["deit_small_patch16_224", "mnist-vit"])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--min-block-s", type=float, default=0.25)
    parser.add_argument("--runtimes", nargs="+", default=["torch", "onnxruntime", "openvino"],
                        choices=["torch", "onnxruntime", "openvino"])
    args = parser.parse_args()
    from mixprec.kernels import cpu_fingerprint

    print(f"CPU: {cpu_fingerprint(args.threads).summary()}")
    for model_name in args.models:
        for batch in args.batches:
            run_case(model_name, batch, args)


if __name__ == "__main__":
    main()
