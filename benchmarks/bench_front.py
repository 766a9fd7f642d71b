"""The searched front against uniform plans and what users run instead, deployed and measured.

For the embedded model on this CPU: ``search.run`` (this machine's measured latency tables,
one per runtime; sqnr_global sensitivity) gives the exact Pareto front of each runtime;
``--points`` plans spread along each front are deployed in their runtime and measured side
by side, interleaved round by round, with every configuration of ``bench_deploy.py``: torch
fp32 / bf16, torch.ao dynamic int8, ONNX Runtime fp32 and ``quantize_dynamic`` int8, OpenVINO
fp32 and NNCF + OpenVINO int8, and the uniform mixprec plans (W8A8 static, W8A8 dynamic,
W4A16, Hybrid Quantization) in the three runtimes. Printed: the CPU fingerprint; every
configuration's measured ms and top-1 on the 1,000 test digits (front plans also with their
predicted ms); then, for every other
configuration, the fastest front plan at the same or better top-1 and its measured speed-up
("dominated" when that plan is also no slower). No assertions.

    python benchmarks/bench_front.py [--model mnist-vit] [--batches 1 8] [--points 6]
        [--threads 2] [--rounds 5] [--min-block-s 0.25]
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
from bench_deploy import measure_configs

FRONT = "front"


def front_plans(model: str, batch: int, threads: int, points: int
                ) -> tuple[dict[str, dict[str, str]], dict[str, float]]:
    """runtime -> config name -> plan JSON of ``points`` plans spread along each runtime's
    front, and config name -> predicted ms."""
    from mixprec import search
    from mixprec.kernels.registry import RUNTIMES
    from mixprec.search.pareto import spread

    plans: dict[str, dict[str, str]] = {}
    predicted: dict[str, float] = {}
    for runtime in RUNTIMES:
        result = search.run(model, device="cpu", runtime=runtime, batch=batch, threads=threads)
        front = result.front
        plans[runtime] = {}
        for rank, point in enumerate(spread(front, points)):
            name = f"{FRONT} {runtime} #{rank} (of {len(front)})"
            plans[runtime][name] = point.plan.to_json()
            predicted[name] = point.latency_ms
        print(f"{runtime}: exact front of {len(front)} points, predicted "
              f"{front[0].latency_ms:.3f} .. {front[-1].latency_ms:.3f} ms")
    return plans, predicted


def report(batch: int, args: argparse.Namespace, samples: dict[str, list[float]],
           outputs: dict[str, np.ndarray], predicted: dict[str, float]) -> None:
    from mixprec import data

    labels = data.mnist("test")[1].numpy()
    ms = {n: statistics.median(s) * 1e3 for n, s in samples.items()}
    top1 = {n: float(np.mean(o.argmax(-1) == labels)) for n, o in outputs.items()}
    print(f"\n{args.model}, batch {batch}, {args.threads} threads, median of {args.rounds} "
          "interleaved rounds")
    print(f"{'configuration':<52}{'predicted':>10}{'ms':>9}{'vs torch fp32':>15}  top-1")
    for name in sorted(ms, key=ms.get):
        pred = f"{predicted[name]:10.2f}" if name in predicted else f"{'':10}"
        print(f"{name:<52}{pred}{ms[name]:>9.2f}{ms['torch fp32'] / ms[name]:>14.2f}x"
              f"  {top1[name]:.4f}")
    front = [n for n in ms if n.startswith(FRONT)]
    dominated = 0
    print(f"\n{'other configuration':<54}{'fastest front plan at >= its top-1':<36}"
          f"{'speed-up':>9}")
    for name in (n for n in ms if not n.startswith(FRONT)):
        better = [f for f in front if top1[f] >= top1[name]]
        if not better:
            print(f"{name:<54}{'none':<36}")
            continue
        best = min(better, key=ms.get)
        dominated += ms[best] <= ms[name]
        print(f"{name:<54}{best:<36}{ms[name] / ms[best]:>8.2f}x")
    others = sum(1 for n in ms if not n.startswith(FRONT))
    print(f"the measured front dominates {dominated} of {others} other configurations "
          "(as fast or faster at the same or better top-1)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mnist-vit", choices=["mnist-vit", "mnist-vit-small"])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--points", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-block-s", type=float, default=0.25)
    args = parser.parse_args()
    from mixprec.kernels.registry import RUNTIMES

    args.runtimes = list(RUNTIMES)
    from mixprec.kernels import cpu_fingerprint

    print(f"CPU: {cpu_fingerprint(args.threads).summary()}")
    for batch in args.batches:
        plans, predicted = front_plans(args.model, batch, args.threads, args.points)
        samples, outputs = measure_configs(args.model, batch, args, plans)
        report(batch, args, samples, outputs, predicted)


if __name__ == "__main__":
    main()
