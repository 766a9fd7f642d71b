"""Speed of sqnr_global and patch_global against the naive per-unit method, in one run.

The naive method is the test suite's reference: for every unit x candidate, a fake-quant
copy of the model with only that unit quantized (``quant.simulate``, calibration statistics
shared) and one full forward pass; its score is the output noise-to-signal ratio, the same
quantity sqnr_global computes from cached block inputs. Prints wall times, speedups and rank
agreement (Spearman): sqnr_global vs naive, patch_global vs sqnr_global. No assertions.

Defaults follow the issue: deit_small_patch16_224 (random weights), 32 images at 224x224,
6 candidates, 2 threads. On a small or shared machine, ``--unit-stride K`` times naive and
sqnr_global on every K-th unit only (the same units for both, spread over all depths; the
naive total is also extrapolated to all units) and ``--images`` shrinks the batch.

    python benchmarks/bench_sensitivity_speed.py [--images 32] [--unit-stride 1] [--threads 2]
        [--rounds 3]
"""

from __future__ import annotations

import argparse
import time

import torch

CANDIDATES = [(8, 8, "static"), (8, 8, "dynamic"), (4, 8, "dynamic"), (4, 16, "none"),
              (4, 4, "static"), (4, 4, "dynamic")]


def naive_scores(model, units, candidates, calib, stats) -> list[list[float]]:
    """One simulated model and full forward per unit x candidate (the reference)."""
    from mixprec import quant
    from mixprec.quant import Plan, QuantSpec
    from mixprec.sensitivity.metrics import noise_to_signal

    float_plan = Plan.uniform(units, QuantSpec(weight_bits=16, act_bits=16, act_mode="none"))
    with torch.inference_mode():
        reference = model(calib)
    matrix = []
    for unit in units:
        row = []
        for spec in candidates:
            sim = quant.simulate(model, float_plan.replace({unit.name: spec}), calib,
                                 units=units, stats=stats)
            with torch.inference_mode():
                row.append(noise_to_signal(sim(calib), reference))
        matrix.append(row)
    return matrix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="deit_small_patch16_224")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--unit-stride", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="naive/sqnr_global alternations")
    args = parser.parse_args()

    import timm
    from scipy.stats import spearmanr

    from mixprec import quant, sensitivity
    from mixprec.quant import QuantSpec, UnitList

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = timm.create_model(args.model, pretrained=False).eval()
    size = model.pretrained_cfg.get("input_size", (3, 224, 224))
    calib = torch.randn(args.images, *size, generator=torch.Generator().manual_seed(0))
    candidates = [QuantSpec(weight_bits=w, act_bits=a, act_mode=m) for w, a, m in CANDIDATES]
    all_units = quant.discover_units(model, calib[:1])
    sample = UnitList(all_units[:: args.unit_stride], all_units.model_id,
                      all_units.input_shape, all_units.skipped)
    print(f"{args.model}: {len(all_units)} units, timing naive and sqnr_global on "
          f"{len(sample)}; {len(candidates)} candidates; {args.images} images "
          f"{'x'.join(map(str, size))}; {args.threads} threads")

    start = time.perf_counter()
    stats = quant.calibrate(model, all_units, calib, batch_size=args.images)
    t_calib = time.perf_counter() - start
    # the methods alternate over rounds (naive and sqnr_global on a share of the units,
    # patch_global on all, its time averaged), so that a load change on a shared machine does
    # not land on one method only; each sqnr_global round pays its own calibration and float
    # pass (conservative)
    naive, glob, timed, t_naive, t_global, t_patch = [], [], [], t_calib, 0.0, 0.0
    for r in range(args.rounds):
        part = UnitList(sample[r:: args.rounds], all_units.model_id, all_units.input_shape,
                        all_units.skipped)
        start = time.perf_counter()
        naive += naive_scores(model, part, candidates, calib, stats)
        t_naive += time.perf_counter() - start
        start = time.perf_counter()
        glob += sensitivity.estimate(model, part, candidates, calib, method="sqnr_global",
                                     batch_size=args.images).scores
        t_global += time.perf_counter() - start
        timed += part
        start = time.perf_counter()
        patch = sensitivity.estimate(model, all_units, candidates, calib,
                                     method="patch_global", batch_size=args.images)
        t_patch += (time.perf_counter() - start) / args.rounds

    scale = len(all_units) / len(sample)
    t_naive_all = t_calib + (t_naive - t_calib) * scale
    flat = lambda m: [v for row in m for v in row]  # noqa: E731
    rho_global = spearmanr(flat(glob), flat(naive)).correlation
    patch_rows = [patch.scores[all_units.index(u)] for u in timed]
    rho_patch = spearmanr(flat(patch_rows), flat(glob)).correlation
    print(f"calibration (shared, counted in every method): {t_calib:8.1f} s")
    print(f"naive       ({len(sample)} units): {t_naive:8.1f} s")
    print(f"sqnr_global ({len(sample)} units): {t_global:8.1f} s  -> {t_naive / t_global:5.2f}x "
          f"faster than naive; Spearman vs naive {rho_global:.4f}")
    print(f"patch_global ({len(all_units)} units, mean of {args.rounds}): {t_patch:8.1f} s  -> "
          f"{t_naive_all / t_patch:5.1f}x faster than naive on all units "
          f"({t_naive_all:.0f} s{', extrapolated' if scale > 1 else ''}); "
          f"Spearman vs sqnr_global {rho_patch:.4f}")


if __name__ == "__main__":
    main()
