"""The ``mixprec measure`` subcommand: a latency table measured on this machine."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from mixprec.kernels.registry import RUNTIMES


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``measure`` to the ``mixprec`` command's subparsers."""
    p = subparsers.add_parser(
        "measure", help="measure a model's latency table on this machine",
        description=run.__doc__)
    p.add_argument("--model", default="mnist-vit",
                   help="mnist-vit (default), mnist-vit-small or a timm model name")
    p.add_argument("--weights", default=None,
                   help="state-dict file for a timm model (default: random weights; the "
                        "time does not depend on them)")
    p.add_argument("--device", default="cpu",
                   help="cpu (this machine), xeon (on a Xeon with AVX-512 VNNI: that target "
                        "class's kernels, timed here), or a100 with CUDA")
    p.add_argument("--runtime", default="torch", choices=RUNTIMES)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--candidates", nargs="+", default=None,
                   help="spec names to measure (default: what deploys exactly here)")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed calls per turn of a plan (their median is the turn's time)")
    p.add_argument("--rounds", type=int, default=None,
                   help="interleaved rounds per block (default: adaptive, 12 to 24)")
    p.add_argument("--mixes", type=int, default=None,
                   help="random mixed plans the table is fitted to (default: half its terms, "
                        "at least 20)")
    p.add_argument("--cache", type=Path, default=None,
                   help="measurement cache file (default: one per machine under "
                        "$MIXPREC_CACHE_DIR or ~/.cache/mixprec)")
    p.add_argument("--out", type=Path, default=None, help="write the table here (and a .csv)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def example_images(name: str, model: torch.nn.Module, batch: int) -> torch.Tensor:
    """``batch`` inputs for timing: embedded test digits, or random images of the timm
    model's input size (times do not depend on pixel values)."""
    from mixprec import data, models

    if name in models.EMBEDDED_MODELS:
        return data.mnist("test")[0][:batch]
    size = getattr(model, "pretrained_cfg", {}).get("input_size", (3, 224, 224))
    return torch.randn(batch, *size, generator=torch.Generator().manual_seed(0))


def run(args: argparse.Namespace) -> int:
    """Measure a model's latency table on this machine with a runtime's real kernels."""
    from mixprec import cost_models, models
    from mixprec.cost_models.timing import TimingPolicy
    from mixprec.quant import parse_spec

    pretrained = args.weights is None and args.model in models.EMBEDDED_MODELS
    model = models.load(args.model, weights=args.weights, pretrained=pretrained)
    candidates = [parse_spec(c) for c in args.candidates] if args.candidates else None
    table = cost_models.measure(
        model, example_images(args.model, model, args.batch), device=args.device,
        runtime=args.runtime, threads=args.threads, batch=args.batch, candidates=candidates,
        cache=args.cache, model_name=args.model, mixes=args.mixes, progress=not args.quiet,
        policy=TimingPolicy(repeats=args.repeats) if args.rounds is None else
        TimingPolicy(repeats=args.repeats, min_rounds=args.rounds, max_rounds=args.rounds))
    if args.out is not None:
        table.save(args.out)
        print(f"wrote {args.out} and {args.out.with_suffix('.csv')}")
    print(f"{args.model} on {args.device} ({args.runtime}, batch {args.batch}, {args.threads} "
          f"threads): float32 model {table.provenance['float32_model_ms']:.3f} ms, "
          f"{len(table.entries)} entries, {len(table.transitions)} transitions, remainder "
          f"{table.remainder_ms:.3f} ms")
    print(f"cpu: {table.provenance['cpu']}")
    print(f"trust: {table.trust_summary()}")
    return 0
