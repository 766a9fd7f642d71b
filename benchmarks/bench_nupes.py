"""NUPES weights against uniform ones at equal size, and what decoding them costs on the CPU.

Three parts, each printed after the CPU fingerprint:

``accuracy``: every linear of the model gets the same weight spec (activations stay
float32); each NUPES spec is set beside the uniform spec of the same bits, granularity and
scales, so both store the same codes and scales (NUPES adds one exponent per layer). For
each plan: its simulated accuracy (the embedded model: top-1 on its 1,000 test digits and
the output SQNR against float32; a timm model with random weights: output SQNR against
float32 on eight random images), the exponents NUPES fitted (smallest / median / largest
over the layers). Then the deployed torch runtime's latency and accuracy of float32, of
the uniform 4-bit specs the torch search proposes here (``torch._weight_int4pack_mm_for_cpu``
with bf16 activations, on CPUs with native bf16; with float32 activations it runs tens of
times slower than float32) and of the NUPES plans (decoded on the fly from packed codes,
then a float32 GEMM), timed together in interleaved rounds. Decoding once at load
instead would run at float32's speed (the same GEMM) with float32 weights in memory.

``front`` (embedded model only): ``search.run(..., runtime="torch")`` with the default
candidates (NUPES 4-bit among them; an empty ``MIXPREC_CACHE_DIR`` measures a table that
prices it) and without NUPES, on the same table; ``--points`` plans spread along each front
deployed, timed together and their top-1 measured: a NUPES plan *wins* when its top-1 beats
every plan without NUPES at the same or lower measured latency.

``size`` (embedded model only): the most accurate torch plan within size limits
(``--size-fractions`` of uniform 8-bit's size, counted as the search counts it: codes,
per-group scales, the other parameters in float32) with and without NUPES, on the same
table; each chosen plan deployed, timed with the others and its top-1 measured.

No assertions.

    python benchmarks/bench_nupes.py [--models mnist-vit deit_small_patch16_224] [--batch 1]
        [--threads 2] [--parts accuracy front size] [--points 6] [--size-fractions 0.6 0.5]
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace

import torch
from cases import accuracy_fn, fronts_side_by_side, model_and_data, timed

BITS = (4, 3)
GRANULARITIES = ({"weight_granularity": "per_channel"},
                 {"weight_granularity": "per_group", "group_size": 32})


def weight_specs() -> list:
    """Uniform and NUPES weight-only specs, pairwise at equal size."""
    from mixprec.quant import QuantSpec

    specs = []
    for bits in BITS:
        for granularity in GRANULARITIES:
            uniform = QuantSpec(weight_bits=bits, act_bits=16, act_mode="none", **granularity)
            specs += [uniform, replace(uniform, weight_format="nupes")]
    return specs


def exponents(model: torch.nn.Module, calib_stats: dict, plan) -> list[float]:
    """The exponent NUPES fits for each layer of ``plan`` (as the simulation and deploy
    fit it: on the float weights and the layer's calibration rows)."""
    from mixprec.quant.nupes import nupes_inputs, nupes_weight

    modules = dict(model.named_modules())
    found = []
    for name in plan:
        spec = plan[name]
        if spec.weight_format == "nupes":
            weight = modules[name].weight
            rows = nupes_inputs(calib_stats.get(name), weight[0].numel())
            found.append(nupes_weight(weight, spec, rows).exponent)
    return found


def nupes_units(plan) -> int:
    """Units of ``plan`` with NUPES weights."""
    return sum(plan[n].weight_format == "nupes" for n in plan)


def front_part(name: str, args: argparse.Namespace) -> None:
    """The torch fronts on this CPU with and without the NUPES candidate (one table)."""
    from mixprec import kernels

    plain = [s for s in kernels.candidates("cpu", runtime="torch") if s.weight_format == "uniform"]
    fronts_side_by_side(name, {"with NUPES": {}, "without": {"candidates": plain}}, nupes_units,
                        "NUPES units", args)


def model_mb(model: torch.nn.Module, units, plan) -> float:
    """``plan``'s size as the search counts it (:func:`mixprec.search.problem.stored_bits`;
    parameters outside the units at 32 bits)."""
    from mixprec.search.problem import stored_bits

    by_name = {u.name: u for u in units}
    outside = sum(p.numel() for p in model.parameters()) - sum(u.params for u in units)
    return (outside * 32 + sum(by_name[n].params * stored_bits(s) for n, s in plan.specs)) / 8e6


def size_part(name: str, args: argparse.Namespace) -> None:
    """The most accurate torch plan within size limits below uniform 8-bit, with and without
    the NUPES candidate (one table); the chosen plans deployed, timed together, top-1."""
    from mixprec import kernels, quant, search
    from mixprec.kernels.registry import W4A16_NUPES, W8A8_STATIC
    from mixprec.quant import Plan

    model, calib, images, labels = model_and_data(name)
    units = quant.discover_units(model, calib[:1])
    eight_mb = model_mb(model, units, Plan.uniform(units, W8A8_STATIC))
    plain = [s for s in kernels.candidates("cpu", runtime="torch") if s.weight_format == "uniform"]
    chosen = {}
    floor_mb = model_mb(model, units, Plan.uniform(units, W4A16_NUPES))
    print(f"\n== {name}: uniform 8-bit weights {eight_mb:.4f} MB (search's accounting); "
          f"every weight at 4 bits, the rest in float32: {floor_mb:.4f} MB "
          f"({floor_mb / eight_mb:.0%})")
    for fraction in args.size_fractions:
        for kind, kwargs in (("with NUPES", {}), ("without", {"candidates": plain})):
            try:
                result = search.run(model, device="cpu", runtime="torch", batch=args.batch,
                                     threads=args.threads, size_mb=fraction * eight_mb, **kwargs)
            except search.InfeasibleError:
                print(f"{fraction:.0%} of 8-bit, {kind}: infeasible")
                continue
            label = f"{fraction:.0%} {kind}"
            chosen[label] = result.plan
            print(f"{label}: {model_mb(model, units, result.plan):.4f} MB, predicted "
                  f"{result.latency_ms:.3f} ms, NUPES units {nupes_units(result.plan)}")
    if not chosen:
        return
    metric, accuracy = accuracy_fn(model, images, labels)
    found = timed(model, chosen, calib, images[: args.batch], args.threads, accuracy)
    print(f"-- chosen plans deployed (torch, batch {args.batch}): ms, {metric}")
    for label, (ms, score) in found.items():
        print(f"{label:22s} {ms:8.3f} ms   {score:8.4f}")


def accuracy_part(name: str, args: argparse.Namespace) -> None:
    from mixprec import kernels, quant
    from mixprec.kernels.registry import FP32
    from mixprec.quant import Plan
    from mixprec.sensitivity.metrics import sqnr_db

    model, calib, images, labels = model_and_data(name)
    units = quant.discover_units(model, calib[:1])
    linears = [u for u in units if u.kind == "linear"]
    stats = quant.calibrate(model, linears, calib)
    metric, accuracy = accuracy_fn(model, images, labels)
    with torch.inference_mode():
        reference = model(images).float()
    baseline = (f"top-1 {accuracy(model):.4f} in float32" if labels is not None
                else "SQNR against float32")
    print(f"\n== {name}: every linear's weights ({len(linears)} linears), float32 "
          f"activations; {baseline}")
    all_float = Plan.uniform(units, FP32)
    plans = {spec.label: all_float.replace({u.name: spec for u in linears})
             for spec in weight_specs()}
    for label, plan in plans.items():
        sim = quant.simulate(model, plan, calib, units=units, stats=stats)
        with torch.inference_mode():
            out_sqnr = sqnr_db(sim(images).float(), reference)
        line = f"{label:22s} {metric} {accuracy(sim):8.4f}"
        if labels is not None:
            line += f"   output SQNR {out_sqnr:6.2f} dB"
        if plan[linears[0].name].weight_format == "nupes":
            found = exponents(model, stats, plan)
            line += (f"   exponents {min(found):.2f} / {statistics.median(found):.2f} / "
                     f"{max(found):.2f}")
        print(line)
    example = images[: args.batch]
    proposed = [spec for spec in kernels.candidates("cpu", "linear")
                if spec.weight_bits == 4 and spec.weight_format == "uniform"]
    runnable = {"float32": all_float,
                **{spec.label: all_float.replace({u.name: spec for u in linears})
                   for spec in proposed},
                **{label: plan for label, plan in plans.items()
                   if plan[linears[0].name].weight_format == "nupes" and all(
                       kernels.kernel_for(u.kind, plan[u.name], "cpu") for u in linears)}}
    torch.set_num_threads(args.threads)
    found = timed(model, runnable, calib, example, args.threads, accuracy)
    print(f"-- torch runtime, batch {args.batch}, {args.threads} threads (deployed {metric})")
    for label, (ms, score) in found.items():
        print(f"{label:22s} {ms:8.2f} ms   {score:8.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mnist-vit", "deit_small_patch16_224"])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parts", nargs="+", choices=("accuracy", "front", "size"),
                        default=["accuracy", "front", "size"])
    parser.add_argument("--size-fractions", nargs="+", type=float, default=[0.6, 0.5],
                        help="size limits as fractions of uniform 8-bit weights' size")
    parser.add_argument("--points", type=int, default=6, help="front plans deployed per front")
    args = parser.parse_args()
    from mixprec.kernels import cpu_fingerprint
    from mixprec.models import EMBEDDED_MODELS

    print(f"CPU: {cpu_fingerprint(args.threads).summary()}")
    parts = {"accuracy": accuracy_part, "front": front_part, "size": size_part}
    for name in args.models:
        for part in args.parts:
            if part in ("front", "size") and name not in EMBEDDED_MODELS:
                print(f"\n({part}: embedded models only; skipping {name})")
                continue
            parts[part](name, args)


if __name__ == "__main__":
    main()
