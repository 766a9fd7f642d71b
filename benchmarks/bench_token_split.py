"""Patch-wise precision on the CPU: token-split plans deployed and measured beside the rest.

A token-split spec runs a linear in int8 except for each image's outlier tokens (the top
5% or 10% by abs-max), which run in float32 against the same int8 weights, or on the int8
grid with a scale of their own (torch runtime, ``TokenSplitInt8Gemm``). Two parts, each on
this CPU with the fingerprint printed first:

* ``front`` (embedded model only): ``search.run(..., runtime="torch", token_splits=True)``
  measures the torch table with the token-split candidates and gives the front with them; the
  same search without them (the same table) gives the front without. ``--points`` plans
  spread along each front are deployed, their top-1 measured on the 1,000 test digits and
  their latency timed side by side (ratios to float32 in interleaved rounds, ``time_against``).
  Printed: each plan's predicted and measured ms, top-1 and token-split units; then, for each
  plan with token splits, the best top-1 of a plan without them at the same or lower measured
  latency: a token-split plan *wins* when its top-1 is higher.
* ``a100`` (embedded model only): the same two fronts on the analytic ``a100`` table, whose
  token-split candidates are W8A4 dynamic with the outlier tokens on 8 bits (the Triton
  patch-wise GEMM); plans along each are simulated (no GPU here) and their top-1 printed.
* ``recovery``: uniform W8A8 static with int8 attention (the plan that loses the most to
  per-tensor static scales), and the same with token splits (outlier tokens in float, or on
  the int8 grid with a static scale of their own) on every linear, or only on the attention
  outputs (``proj``) and ``fc2``, at each fraction, with each image's outlier tokens or
  with fixed calibrated positions (``pos``). Printed: measured ms and accuracy (the
  embedded model: top-1 on the test digits, and the share of W8A8 static's loss each plan
  recovers; timm models with random weights and random images: output SQNR against
  float32 and the dB gained), and that gain per millisecond added.

No assertions.

    python benchmarks/bench_token_split.py [--models mnist-vit deit_small_patch16_224]
        [--parts front a100 recovery] [--batch 1] [--points 6] [--threads 2]
        [--selections per_image positions]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import TYPE_CHECKING

import torch
from cases import accuracy_fn, fronts_side_by_side, model_and_data, print_wins, timed

if TYPE_CHECKING:
    from mixprec.quant import Plan


def split_units(plan: Plan) -> int:
    """Units of ``plan`` with a token split."""
    return sum(plan[n].token_split is not None for n in plan)


def front_part(name: str, args: argparse.Namespace) -> None:
    fronts_side_by_side(name, {"with": {"token_splits": True}, "without": {}}, split_units,
                        "token-split units", args)


def a100_part(name: str, args: argparse.Namespace) -> None:
    """The fronts with and without token splits on the analytic ``a100`` table (W8A4 with
    each image's outlier tokens on 8 bits), with the simulated top-1 of plans along each."""
    from mixprec import quant, search
    from mixprec.search.pareto import spread

    model, calib, images, labels = model_and_data(name)
    metric, accuracy = accuracy_fn(model, images, labels)
    units = quant.discover_units(model, images[:1])
    stats = quant.calibrate(model, list(units), calib)
    rows = []
    for splits in (True, False):
        front = search.run(model, device="a100", batch=args.batch, token_splits=splits).front
        kind = "with" if splits else "without"
        print(f"a100 front {kind} token splits: {len(front)} plans, predicted "
              f"{front[0].latency_ms:.4f} .. {front[-1].latency_ms:.4f} ms (analytic)")
        for rank, point in enumerate(spread(front, args.points)):
            sim = quant.simulate(model, point.plan, calib, units=units, stats=stats)
            rows.append((f"{kind} #{rank}", point.latency_ms, accuracy(sim),
                         split_units(point.plan)))
    print(f"\n{name}, batch {args.batch}, a100 (analytic table; simulated {metric})")
    print(f"{'plan':<14}{'predicted ms':>13}{metric:>9}  token-split units")
    for plan_name, ms, score, count in sorted(rows, key=lambda r: r[1]):
        print(f"{plan_name:<14}{ms:>13.4f}{score:>9.4f}  {count}")
    print_wins({r[0]: r[1:] for r in rows}, "token splits")


def recovery_part(name: str, args: argparse.Namespace) -> None:
    from mixprec import quant
    from mixprec.kernels.registry import FP32, TOKEN_SPLIT_FRACTIONS, W8A8_STATIC, kernel_for
    from mixprec.quant import TokenSplit

    model, calib, images, labels = model_and_data(name)
    units = quant.discover_units(model, images[:1])
    uniform = quant.Plan.uniform(units, FP32).replace(
        {u.name: W8A8_STATIC for u in units if kernel_for(u.kind, W8A8_STATIC, "cpu")})
    plans = {"float32": quant.Plan.uniform(units, FP32), "W8A8 static": uniform}
    linears = [u.name for u in units if u.kind == "linear"]
    groups = {"every linear": linears,
              "proj+fc2": [n for n in linears if n.endswith((".proj", ".fc2"))]}
    for fraction in TOKEN_SPLIT_FRACTIONS:
        for high_bits, how in ((16, "float"), (8, "own scale")):
            for selection in args.selections:
                split = replace(W8A8_STATIC,
                                token_split=TokenSplit(fraction, high_bits, selection))
                at = " pos" if selection == "positions" else ""
                for group, names in groups.items():
                    plans[f"t{round(fraction * 100)}%{at} {how}, {group}"] = uniform.replace(
                        {n: split for n in names})
    metric, accuracy = accuracy_fn(model, images, labels)
    found = timed(model, plans, calib, images[: args.batch], args.threads, accuracy)
    base_ms, base_score = found["W8A8 static"]
    loss = found["float32"][1] - base_score
    gain = "recovered" if labels is not None else "dB gained"
    what = ("recovered: the share of W8A8 static's top-1 loss" if labels is not None
            else "output SQNR against float32")
    print(f"\n{name}, batch {args.batch}, torch runtime: W8A8 static with int8 attention "
          f"and token splits ({what})")
    print(f"{'plan':<36}{'ms':>9}{metric:>9}{gain:>11}{'per ms added':>14}")
    best = None
    for plan_name, (ms, score) in found.items():
        won = ((score - base_score) / loss if loss > 0 else float("nan")) \
            if labels is not None else score - base_score
        added = ms - base_ms
        rate = won / added if added > 0 else float("nan")
        shown = f"{won:>10.0%} {rate:>12.1%}" if labels is not None else \
            f"{won:>10.2f} {rate:>12.3f}"
        print(f"{plan_name:<36}{ms:>9.3f}{score:>9.4f} {shown}")
        if plan_name.startswith("t") and rate > 0 and (best is None or rate > best[1]):
            best = (plan_name, rate)
    unit = "of the loss" if labels is not None else "dB"
    print(f"most recovered per ms added: {best[0]} ({best[1]:.3g} {unit} per ms)"
          if best is not None else "no token split recovers any of the loss")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mnist-vit", "deit_small_patch16_224"])
    parser.add_argument("--parts", nargs="+", default=["front", "a100", "recovery"],
                        choices=["front", "a100", "recovery"])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--points", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--selections", nargs="+", default=["per_image", "positions"],
                        choices=["per_image", "positions"],
                        help="token selections the recovery part compares")
    args = parser.parse_args()
    from mixprec import models
    from mixprec.kernels import cpu_fingerprint

    torch.set_num_threads(args.threads)
    print(f"cpu: {cpu_fingerprint(args.threads).summary()}", flush=True)
    for name in args.models:
        if "front" in args.parts and name in models.EMBEDDED_MODELS:
            front_part(name, args)
        if "a100" in args.parts and name in models.EMBEDDED_MODELS:
            a100_part(name, args)
        if "recovery" in args.parts:
            recovery_part(name, args)


if __name__ == "__main__":
    main()
