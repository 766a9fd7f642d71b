"""Fidelity of every sensitivity method: predicted vs measured error of random mixed plans.

On the embedded MNIST ViT: one table per registered method (timed), then ``--plans`` random
plans over 4-bit and 8-bit, static and dynamic candidates (every unit W8A8-static, each unit
moved to a random candidate with probability 0.35), each simulated and measured on the
1,000 test digits (output noise-to-signal ratio and KL against float, top-1 drop). Prints
Spearman and Kendall correlations for every method side by side, and where additivity
breaks: the ratio of measured to predicted output noise (sqnr_global scores are output
noise-to-signal ratios, so a sum that holds gives 1) by the number of 4-bit-activation
units in the plan. No assertions.

    python benchmarks/bench_sensitivity_fidelity.py [--model mnist-vit] [--plans 50] [--seed 0]
        [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

CANDIDATES = [(8, 8, "static"), (8, 8, "dynamic"), (4, 8, "dynamic"), (4, 4, "static"),
              (4, 4, "dynamic")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calib-size", type=int, default=256)
    parser.add_argument("--methods", nargs="+", default=None)
    parser.add_argument("--model", default="mnist-vit", help="mnist-vit or mnist-vit-small")
    args = parser.parse_args()

    from mixprec import data, quant, sensitivity
    from mixprec.quant import QuantSpec
    from mixprec.sensitivity.fidelity import random_plans

    torch.set_num_threads(args.threads)
    model = data.mnist_vit(args.model).eval()
    images, labels = data.mnist("test")
    calib = data.mnist("train")[0][: args.calib_size]
    units = quant.discover_units(model, images[:1])
    candidates = [QuantSpec(weight_bits=w, act_bits=a, act_mode=m) for w, a, m in CANDIDATES]
    methods = args.methods or sensitivity.available()
    print(f"{args.model}: {len(units)} units, candidates {[c.label for c in candidates]}, "
          f"{len(calib)} calibration images, {args.plans} plans (seed {args.seed}), "
          f"{args.threads} threads")
    tables = {}
    for method in methods:
        start = time.perf_counter()
        tables[method] = sensitivity.estimate(model, units, candidates, calib, method=method)
        print(f"  {method:<14} table in {time.perf_counter() - start:6.1f} s")
    report = sensitivity.fidelity(model, units, tables, calib, images, labels,
                                  n_plans=args.plans, seed=args.seed)
    print(f"float top-1 {report.float_top1:.3f}; measured top-1 drop "
          f"{min(report.measured['top1_drop']):.3f} .. {max(report.measured['top1_drop']):.3f}")
    print("\n".join(report.lines()))

    if "sqnr_global" in tables and tables["sqnr_global"].provenance["settings"].get(
            "metric") == "nsr":
        plans = random_plans(units, candidates, args.plans, args.seed)
        low = [sum(spec.act_bits == 4 for spec in plan.as_dict().values()) for plan in plans]
        ratios = [m / p for m, p in zip(report.measured["nsr"],
                                        report.predicted["sqnr_global"])]
        print("additivity of sqnr_global (measured / predicted output noise) by number of "
              "4-bit-activation units:")
        for lo, hi in ((0, 2), (3, 4), (5, 6), (7, 99)):
            sel = [r for n, r in zip(low, ratios) if lo <= n <= hi]
            if sel:
                print(f"  {lo}-{hi if hi < 99 else '':<2} units: {len(sel):3d} plans, ratio "
                      f"median {sorted(sel)[len(sel) // 2]:.2f}, max {max(sel):.2f}")


if __name__ == "__main__":
    main()
