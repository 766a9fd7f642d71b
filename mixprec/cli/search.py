"""The ``mixprec search`` subcommand, end to end: load, estimate, search, confirm the choice by
measuring it beside the baselines on this CPU, write the run folder, and report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from mixprec.cli.progress import Progress
from mixprec.kernels.registry import RUNTIMES

if TYPE_CHECKING:

    from mixprec.cost_models.timing import TimingPolicy
    from mixprec.search import SearchResult


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``search`` to the ``mixprec`` command's subparsers."""
    p = subparsers.add_parser(
        "search", help="search the plan of a model for a device and a budget; on the CPU, "
        "confirm it by measurement",
        description=run.__doc__)
    p.add_argument("--model", default="mnist-vit",
                   help="mnist-vit (default), mnist-vit-small or a timm model name")
    p.add_argument("--weights", default=None,
                   help="state-dict file for --model (timm or retrained embedded weights)")
    p.add_argument("--data", default=None,
                   help="images: an ImageNet-style folder or a tensor file (required for "
                        "models other than the embedded ones); the first --calib-size "
                        "calibrate, up to --eval-size are evaluated")
    p.add_argument("--calib", default=None, help="calibration images (default: --data)")
    p.add_argument("--calib-size", type=int, default=256)
    p.add_argument("--eval-size", type=int, default=1000,
                   help="images the deployed plans are evaluated on")
    p.add_argument("--device", default="cpu", help="cpu (this machine), xeon, a15 or a100")
    p.add_argument("--devices", nargs="+", default=None, help="more devices to give fronts of")
    p.add_argument("--runtime", default=None, choices=RUNTIMES,
                   help="CPU runtime (default: the faster one here by its tables)")
    p.add_argument("--budget-ms", type=budget, default=None,
                   help="latency budget per call in ms, or a percentage of the float32 plan's "
                        "predicted latency (80%%: at least 1.25x faster); default: the most "
                        "accurate plan")
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
    p.add_argument("--out", type=Path, default=None,
                   help="write the run folder here (plan, fronts, tables, measurements, report)")
    p.add_argument("--no-deploy", action="store_true",
                   help="return the solver's plan without deploying and measuring it here "
                        "(on cpu the choice is otherwise confirmed by measurement)")
    p.add_argument("--front-points", type=int, default=3,
                   help="front plans measured on each side of the solver's choice")
    p.add_argument("--rounds", type=int, default=None,
                   help="interleaved timing rounds (default: adaptive, until each plan's "
                        "latency is known within 2%%, 12 to 24 rounds)")
    p.add_argument("--token-splits", action="store_true",
                   help="also offer patch-wise specs on linear units: int8 with each image's "
                        "outlier tokens in float (cpu, torch runtime; its table is measured "
                        "with them)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Search the plan of a model for a device (the most accurate within the budget); on this
    CPU, confirm it by measurement: deploy it beside the front plans around it, the uniform
    baselines and the runtime's one-line peer, time them together and return the best
    measured plan."""
    if args.worker:
        return _work(args)
    from mixprec import search
    from mixprec.cli import load_model_and_data
    from mixprec.search.accuracy import top1_on

    say = Progress(args.quiet)
    say(f"loading {args.model} and its data")
    model, images, labels, calib = load_model_and_data(args)
    images = images[: args.eval_size]
    labels = None if labels is None else labels[: args.eval_size]
    say("searching: sensitivity, latency tables, Pareto front")
    budget_ms, fraction = args.budget_ms if args.budget_ms is not None else (None, None)
    verify = not args.no_deploy and args.device == "cpu"
    result = search.run(
        model, budget_ms, args.device, calib, runtime=args.runtime, budget_fraction=fraction,
        sensitivity=args.sensitivity, max_drop=args.max_drop, size_mb=args.size_mb,
        bops=args.bops, devices=args.devices, refine_trials=args.refine_trials,
        storage=_storage(args), study_name=args.study, seed=args.seed, batch=args.batch,
        threads=args.threads, solver=args.solver, verify=verify,
        eval_fn=None if labels is None else top1_on(images, labels),
        timing=_timing(args.rounds), side=args.front_points, token_splits=args.token_splits,
        progress=say)
    say(f"front of {len(result.front)} plans; chosen plan {result.latency_ms:.3f} ms predicted")
    if args.out is not None:
        result.save(args.out)
        _annotate(args.out, args)
        from mixprec.report import write_report

        say("writing the report")
        write_report(args.out)
    if args.device != "cpu" and not args.no_deploy:
        say(f"not deploying: the plan is for {args.device}, not this CPU")
    _print(args, result)
    return 0


def _timing(rounds: int | None) -> TimingPolicy | None:
    """``--rounds N``: exactly N rounds; default: the adaptive policy."""
    from mixprec.cost_models.timing import TimingPolicy

    if rounds is None:
        return None
    return TimingPolicy(min_rounds=rounds, max_rounds=rounds)


def budget(text: str) -> tuple[float | None, float | None]:
    """``--budget-ms``: ``5`` -> (5.0, None) ms; ``80%`` -> (None, 0.8) of float32."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a budget: {text!r} (ms, or a percentage of "
                                         "float32's latency such as 80%)") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"a budget must be a positive finite time or "
                                         f"percentage, got {text!r}")
    return (None, value) if text.endswith("%") else (value, None)


def _storage(args: argparse.Namespace) -> str | None:
    if args.storage is None and args.refine_trials and args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(args.out / 'study.db').resolve()}"
    return args.storage


def _annotate(folder: Path, args: argparse.Namespace) -> None:
    """Add the model and the run's settings to ``result.json``."""
    from mixprec.files import write_atomic

    path = folder / "result.json"
    summary = json.loads(path.read_text())
    summary.update(model=args.model, weights=args.weights, data=args.data, calib=args.calib,
                   calib_size=args.calib_size, eval_size=args.eval_size, batch=args.batch,
                   threads=args.threads)
    write_atomic(path, json.dumps(summary, indent=1))


def _print(args: argparse.Namespace, result: SearchResult) -> None:
    summary = result.summary()
    if args.out is not None:
        summary["out"] = str(args.out)
    if args.json:
        print(json.dumps(summary, indent=1))
        return
    verified = result.measured.get("verified")
    print(f"{args.model} on {result.device} ({result.runtime}, batch {args.batch}): plan "
          f"{result.latency_ms:.3f} ms predicted, predicted error {result.error:.4g}; "
          f"front of {len(result.front)} points")
    for device, table in result.tables.items():
        print(f"latency table ({device}, {table.runtime}): {table.trust_summary()}")
        if table.fidelity is not None and not table.trusted and device == result.device:
            print("  its predictions are not to be trusted here: the plan is chosen by "
                  "measuring the candidates" if verified else
                  "  its predictions are not to be trusted here: measure the plan before "
                  "relying on it (run without --no-deploy)")
    if result.study_name:
        print(f"study {result.study_name} in {result.storage}: measured "
              f"{result.measured['refined']['error_measure']} "
              f"{result.measured['refined']['measured_error']:.4f}")
    if verified:
        _print_verified(result, verified)
    if args.out is not None:
        print(f"\nwrote {args.out} (report: {args.out / 'report.html'})")


def _print_verified(result: SearchResult, verified: dict) -> None:
    """The measured choice: every row, the rule, what the chosen plan beat."""
    from mixprec.search.validate import fp32_ms

    rows = verified["rows"]
    fp32 = fp32_ms(rows)
    predicted_fp32 = next(r["predicted_ms"] for r in rows if r["name"] == "fp32")
    scale = fp32 / predicted_fp32 if fp32 and predicted_fp32 else 1.0
    print(f"\ndeployed on this CPU ({result.runtime}) and timed together against float32 "
          f"(predictions at this run's speed: float32 measured {fp32:.3f} ms, x{scale:.2f} "
          "the table's):")
    print(f"{'plan':<26}{'predicted ms':>13}{'measured ms':>13}{'vs fp32':>9}{'top-1':>8}"
          f"{'SQNR vs simulation':>20}")
    for r in rows:
        mark = " <- chosen" if r["name"] == verified["chosen"] else ""
        predicted = "" if r["predicted_ms"] is None else f"{scale * r['predicted_ms']:.3f}"
        top1 = "" if r["top1"] is None else f"{r['top1']:.4f}"
        sqnr = ("peer, same model" if r.get("same_as") else
                "peer" if r["role"] == "peer" else
                "identical" if r["sqnr_db"] is None else f"{r['sqnr_db']:.1f} dB")
        print(f"{r['name'][:25]:<26}{predicted:>13}{r['latency_ms']:>13.3f}"
              f"{fp32 / r['latency_ms']:>8.2f}x{top1:>8}{sqnr:>20}{mark}")
    print(f"chosen: {verified['chosen']} ({verified['rule']})"
          + ("" if not verified["replaced"] else
             f"; the solver's choice was {verified['predicted']}"))
    for name, relation in verified["relations"].items():
        print(f"  vs {name}: {relation}")
    if verified["learned"]:
        print(f"{verified['learned']} timings joined the latency table's fit")


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
