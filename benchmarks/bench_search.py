"""Speed and quality of the exact search on deit_small_patch16_224, in one run.

The problem: deit_small_patch16_224 (timm; random weights unless ``--weights``), the A100
analytic latency table built for the candidates below (10 per linear unit: every format the
A100 class deploys with a Triton kernel; the attention matmuls and the patch embedding take
what their kernels run), sqnr_global sensitivity over ``--images`` calibration images
(Gaussian noise unless ``--data``; cached, so a re-run skips it).

Printed: the problem's size; one ILP solve (CBC and HiGHS, budget halfway along the front),
the median of ``--repeats`` solves; the whole exact front (its points and time); and at
``--budgets`` budgets spread over the front, the predicted error of the ILP plan against a
greedy baseline (start from the most accurate plan; while over budget, take the single-unit
change with the least error added per ms saved). Targets of the search issue: one solve
<= 0.5 s, a front of >= 50 points <= 5 s. No assertions.

    python benchmarks/bench_search.py [--batch 8] [--images 8] [--budgets 10] [--repeats 3]
        [--weights FILE] [--data IMAGENET_DIR] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from mixprec import models
from mixprec.cost_models import analytic_table
from mixprec.kernels import registry as reg
from mixprec.quant.spec import QuantSpec
from mixprec.quant.units import discover_units
from mixprec.search import SearchProblem, best_within, build_problem, pareto_front
from mixprec.search.problem import Choice
from mixprec.search.sensitivity_cache import cached_sensitivity

MODEL = "deit_small_patch16_224"
W8A8_DYNAMIC_TENSOR = QuantSpec(weight_bits=8, act_bits=8, act_mode="dynamic",
                                act_granularity="per_tensor")
CANDIDATES = [reg.FP16, reg.BF16, reg.W8A8_STATIC, reg.W8A8_DYNAMIC, W8A8_DYNAMIC_TENSOR,
              *(QuantSpec(weight_bits=4, act_bits=16, act_mode="none",
                          weight_granularity="per_group", group_size=g, float_dtype=dtype)
                for g, dtype in [(32, "float16"), (64, "float16"), (128, "float16"),
                                 (128, "bfloat16")])]


def greedy(problem: SearchProblem, budget_ms: float) -> Choice | None:
    """Most accurate plan first; then, while over budget, the single-unit change that adds
    the least error per ms saved (None if no change reaches the budget)."""
    choice = [min(range(len(row)), key=row.__getitem__) for row in problem.error]
    latency = problem.latency_of(tuple(choice))
    while latency > budget_ms:
        best: tuple[float, int, int, float] | None = None
        for i, options in enumerate(problem.options):
            for a in range(len(options)):
                trial = choice.copy()
                trial[i] = a
                saved = latency - problem.latency_of(tuple(trial))
                if saved <= 0 or not problem.allows(tuple(trial)):
                    continue
                ratio = (problem.error[i][a] - problem.error[i][choice[i]]) / saved
                if best is None or ratio < best[0]:
                    best = (ratio, i, a, latency - saved)
        if best is None:
            return None
        _, i, a, latency = best
        choice[i] = a
    return tuple(choice)


def timed(fn, repeats: int) -> tuple[object, float]:
    """fn's result and the median wall time of ``repeats`` calls (s)."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8, help="images per call")
    parser.add_argument("--budgets", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--weights", help="a state dict of deit_small_patch16_224")
    parser.add_argument("--data", help="an ImageNet-style folder for calibration images")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    torch.manual_seed(0)  # the same random weights every run (the sensitivity cache hits)
    model = models.load(MODEL, weights=args.weights, pretrained=False).eval()
    if args.data:
        from mixprec.data import image_folder

        calib = image_folder(args.data, model, limit=args.images)
    else:
        calib = torch.randn(args.images, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    units = discover_units(model, calib[:1])
    table = analytic_table(units, "a100", batch=args.batch, candidates=CANDIDATES, model_name=MODEL)
    start = time.perf_counter()
    quantized = [c for c in CANDIDATES if not c.is_float]
    scores = cached_sensitivity(model, units, quantized, calib, "sqnr_global", seed=0)
    print(f"sensitivity (sqnr_global, {args.images} images; cached after the first run): "
          f"{time.perf_counter() - start:.1f} s")
    problem = build_problem(units, table, scores)
    counts = [len(o) for o in problem.options]
    print(f"{MODEL}: {len(counts)} units, {sum(counts)} unit options "
          f"(per unit: min {min(counts)}, max {max(counts)}; "
          f"{sum(c >= 8 for c in counts)} units with >= 8), {len(problem.pairs)} pair terms; "
          f"A100 analytic table, batch {args.batch}; {args.threads} threads")

    front, front_s = timed(lambda: pareto_front(problem), args.repeats)
    print(f"exact front (dynamic programming): {len(front)} points in {front_s:.3f} s "
          f"({front[0].latency_ms:.3f} .. {front[-1].latency_ms:.3f} ms)")
    float_mb = problem.size_of(front[-1].choice)
    for solver in ("cbc", "highs"):
        swept, sweep_s = timed(
            lambda s=solver: pareto_front(problem, size_mb=float_mb, solver=s), 1)
        print(f"front by epsilon-constraint ILP sweep ({solver}; what a size or BOPs limit "
              f"uses): {len(swept)} points in {sweep_s:.3f} s")
    middle = (front[0].latency_ms + front[-1].latency_ms) / 2
    for solver in ("cbc", "highs"):
        _, solve_s = timed(lambda s=solver: best_within(problem, middle, solver=s),
                           args.repeats)
        print(f"one ILP solve ({solver}, budget {middle:.3f} ms): {solve_s:.3f} s")

    print(f"\n{'budget ms':>10} {'ILP error':>12} {'greedy error':>13} {'greedy/ILP':>11}")
    ratios = []
    for k in range(args.budgets):
        budget = front[0].latency_ms + (k + 0.5) / args.budgets * (
            front[-1].latency_ms - front[0].latency_ms)
        exact = problem.error_of(best_within(problem, budget))
        found = greedy(problem, budget)
        if found is None:
            print(f"{budget:10.3f} {exact:12.5g} {'none':>13}")
            continue
        baseline = problem.error_of(found)
        ratio = baseline / exact if exact > 0 else float("inf") if baseline > 0 else 1.0
        ratios.append(ratio)
        print(f"{budget:10.3f} {exact:12.5g} {baseline:13.5g} {ratio:11.3f}")
    if ratios:
        print(f"greedy error / ILP error: median {statistics.median(ratios):.3f}, "
              f"max {max(ratios):.3f} over {len(ratios)} budgets")


if __name__ == "__main__":
    main()
