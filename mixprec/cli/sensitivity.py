"""The ``mixprec sensitivity`` subcommand."""

from __future__ import annotations

import argparse

from mixprec.quant.spec import parse_spec

DEFAULT_CANDIDATES = ("w8a8", "w8a8-dynamic", "w4a8-dynamic", "w4a4", "w4a4-dynamic")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sensitivity`` to the ``mixprec`` command's subparsers."""
    from mixprec.sensitivity.registry import available

    p = subparsers.add_parser(
        "sensitivity", help="write a model's sensitivity table (unit x candidate)",
        description=run.__doc__)
    p.add_argument("--model", default="mnist-vit", help="mnist-vit or a timm model name")
    p.add_argument("--weights", default=None,
                   help="state-dict file for --model (timm or retrained embedded weights)")
    p.add_argument("--method", default="sqnr_global", choices=available())
    p.add_argument("--candidates", nargs="+", type=parse_spec,
                   default=[parse_spec(c) for c in DEFAULT_CANDIDATES],
                   help="specs to score, e.g. w8a8 w8a8-dynamic w4a8-dynamic w4a16")
    p.add_argument("--data", help="image folder or tensor file (default: embedded digits)")
    p.add_argument("--calib", help="calibration folder or tensor file (default: --data)")
    p.add_argument("--calib-size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="JSON file for the table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Score every unit x candidate and write the sensitivity table (JSON)."""
    from mixprec.cli import load_model_and_data
    from mixprec.quant import discover_units
    from mixprec.sensitivity.estimate import estimate

    model, _, _, calib = load_model_and_data(args)
    units = discover_units(model, calib[:1])
    table = estimate(model, units, args.candidates, calib, method=args.method, seed=args.seed,
                     batch_size=args.batch_size, progress=True)
    table.save(args.out)
    print(f"{args.method}: {len(units)} units x {len(table.candidates)} candidates "
          f"-> {args.out}")
    worst = table.labels[-1]
    ranked = sorted(table.as_dict().items(), key=lambda item: -item[1][worst])
    print(f"most sensitive under {worst}: "
          + ", ".join(f"{name} ({row[worst]:.3g})" for name, row in ranked[:5]))
    return 0
