"""The ``mixprec search`` subcommand: a plan within a budget, its front, an Optuna study."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``search`` to the ``mixprec`` command's subparsers."""
    p = subparsers.add_parser("search", help=run.__doc__, description=run.__doc__)
    p.add_argument("--model", default="mnist-vit",
                   help="mnist-vit (default), mnist-vit-small or a timm model name")
    p.add_argument("--weights", default=None, help="state-dict file for a timm model")
    p.add_argument("--data", default=None,
                   help="calibration images: image folder or tensor file (required for "
                        "models other than the embedded ones)")
    p.add_argument("--calib-size", type=int, default=256)
    p.add_argument("--device", default="cpu", help="cpu (this machine), xeon, a15 or a100")
    p.add_argument("--devices", nargs="+", default=None, help="more devices to give fronts of")
    p.add_argument("--runtime", default=None, choices=("torch", "onnxruntime"),
                   help="CPU runtime (default: the faster one here by its tables)")
    p.add_argument("--budget-ms", type=float, default=None,
                   help="latency budget per call (default: the most accurate plan)")
    p.add_argument("--max-drop", type=float, default=None,
                   help="the fastest plan losing at most this top-1 (0.01 = 1 point)")
    p.add_argument("--size-mb", type=float, default=None)
    p.add_argument("--bops", type=float, default=None, help="GBOPs per image")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sensitivity", default="sqnr_global")
    p.add_argument("--solver", default="cbc", choices=("cbc", "highs"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--refine-trials", type=int, default=0,
                   help="Optuna trials refining the front with measured error")
    p.add_argument("--storage", default=None,
                   help="study storage: Optuna RDB URL or journal file (default: SQLite in "
                        "--out, else under the cache root)")
    p.add_argument("--study", default=None, help="study name")
    p.add_argument("--worker", action="store_true",
                   help="join the running study --study in --storage and work on its trials")
    p.add_argument("--out", type=Path, default=None, help="write the run folder here")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Search the plan of a model for a device: the most accurate within the budget."""
    from mixprec import search

    if args.worker:
        return _work(args)
    from mixprec import models
    from mixprec.cli import load_calibration, require_data

    require_data(args)
    model = models.load(args.model, weights=args.weights)
    calib = load_calibration(args, model)
    storage = args.storage
    if storage is None and args.refine_trials and args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        storage = f"sqlite:///{(args.out / 'study.db').resolve()}"
    result = search.run(
        model, args.budget_ms, args.device, calib, runtime=args.runtime,
        sensitivity=args.sensitivity, max_drop=args.max_drop, size_mb=args.size_mb,
        bops=args.bops, devices=args.devices, refine_trials=args.refine_trials,
        storage=storage, study_name=args.study, seed=args.seed, batch=args.batch,
        threads=args.threads, solver=args.solver)
    if args.out is not None:
        result.save(args.out)
    summary = result.summary()
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(f"{args.model} on {result.device} ({result.runtime}, batch {args.batch}): plan "
          f"{result.latency_ms:.3f} ms predicted, predicted error {result.error:.4g}; "
          f"front of {len(result.front)} points")
    if result.study_name:
        print(f"study {result.study_name} in {result.storage}: measured "
              f"{result.measured['refined']['error_measure']} "
              f"{result.measured['refined']['measured_error']:.4f}")
    if args.out is not None:
        print(f"wrote {args.out}")
    return 0


def _work(args: argparse.Namespace) -> int:
    from mixprec import models
    from mixprec.cli import load_calibration
    from mixprec.search.refine import join

    if args.storage is None or args.study is None:
        raise ValueError("--worker needs --storage and --study (the running study)")
    calib = None
    if args.data is not None:
        calib = load_calibration(args, models.load(args.model, weights=args.weights))
    done = join(args.storage, args.study, calib=calib, weights=args.weights)
    print(f"study {done.study_name}: {len(done.points)} points on its measured front")
    return 0
