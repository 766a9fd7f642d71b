"""The ``mixprec`` command (also ``python -m mixprec``); one module per larger subcommand."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

import torch

from mixprec.quant import Plan, parse_spec
from mixprec.workloads import ModelAndData, load_inputs, require_data, user_images

DEFAULT_PLANS = ("fp32", "w8a8", "w4a4")


def load_model_and_data(args: argparse.Namespace) -> ModelAndData:
    """The model, test images, labels and calibration images that the arguments name."""
    return load_inputs(args.model, args.weights, args.data, args.calib, args.calib_size)


def load_calibration(args: argparse.Namespace, model: torch.nn.Module) -> torch.Tensor | None:
    """The first ``--calib-size`` images of ``--data``, or None for an embedded model
    without ``--data`` (it brings its own)."""
    require_data(args.model, args.data)
    if args.data is None:
        return None
    return user_images(args.data, model)[0][: args.calib_size]


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Top-1 of the float model and of uniform plans (fake-quant simulation)."""
    from mixprec import quant

    model, images, labels, calib = load_model_and_data(args)
    if labels is None:
        raise SystemExit("evaluation needs labels: the data file has none")
    units = quant.discover_units(model, images[:1])
    print(f"model {args.model}: {len(units)} units, {len(images)} test images, "
          f"{len(calib)} calibration images")
    for name in args.plans:
        spec = parse_spec(name)
        plan = Plan.uniform(units, spec)
        sim = model if spec.is_float else quant.simulate(model, plan, calib, units=units)
        print(f"{name:>14}: top-1 {_accuracy(sim, images, labels, args.batch_size):.4f}")
    return 0


def cmd_units(args: argparse.Namespace) -> int:
    """List the quantizable units of a model."""
    from mixprec import models, quant

    model = models.load(args.model, weights=args.weights, pretrained=not args.random_weights)
    shape = tuple(int(s) for s in args.input_shape.split("x"))
    units = quant.discover_units(model, torch.randn(1, *shape))
    for u in units:
        print(f"{u.name:<40} {u.kind:<9} M={u.m:<5} K={u.k:<5} N={u.n:<5} groups={u.groups}")
    for name, reason in units.skipped.items():
        print(f"not quantized: {name}: {reason}")
    return 0


def _accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
              batch_size: int) -> float:
    correct = 0
    with torch.inference_mode():
        for x, y in zip(images.split(batch_size), labels.split(batch_size)):
            correct += int((model(x).argmax(-1) == y).sum())
    return correct / len(labels)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="mnist-vit",
                   help="mnist-vit (default), mnist-vit-small or a timm model name")
    p.add_argument("--weights", default=None,
                   help="state-dict file for --model (timm or retrained embedded weights)")


DESCRIPTION = """\
Find the mixed-precision plan of a Vision Transformer for a device and a latency budget,
confirm it by measuring it beside the alternatives, and deploy it with real kernels.

start here:
  mixprec search --model mnist-vit --device cpu --budget-ms 80% --out runs/a
  mixprec search --model deit_small_patch16_224 --data imagenet/val --budget-ms 5
"""
EPILOG = ("exit codes: 0 done, 1 failed, 2 bad input, 3 no plan meets the limits, "
          "130 interrupted. `mixprec COMMAND --help` gives a command's options.")


def build_parser() -> argparse.ArgumentParser:
    """The ``mixprec`` parser; commands in the order a user needs them."""
    from mixprec.cli import cpu, dashboard, export, measure, report, search, sensitivity, study

    parser = argparse.ArgumentParser(prog="mixprec", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log progress and show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (search, report, export, dashboard, study, measure, sensitivity):
        module.register(sub)

    ev = sub.add_parser("evaluate", help="top-1 of the float model and of uniform plans "
                        "(simulated)", description=cmd_evaluate.__doc__)
    _add_model_args(ev)
    ev.add_argument("--data", help="image folder or tensor file (default: embedded digits)")
    ev.add_argument("--calib", help="calibration folder or tensor file (default: --data)")
    ev.add_argument("--calib-size", type=int, default=256)
    ev.add_argument("--batch-size", type=int, default=250)
    ev.add_argument("--plans", nargs="+", default=list(DEFAULT_PLANS),
                    help="uniform plans by spec name: fp32, w8a8, w8a8-dynamic, w4a16-nupes, ...")
    ev.set_defaults(func=cmd_evaluate)

    un = sub.add_parser("units", help="list a model's quantizable units",
                        description=cmd_units.__doc__)
    _add_model_args(un)
    un.add_argument("--random-weights", action="store_true")
    un.add_argument("--input-shape", default="1x28x28", help="per-image shape, e.g. 3x224x224")
    un.set_defaults(func=cmd_units)
    cpu.register(sub)
    return parser


EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_NO_PLAN, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
"""Exit codes: 0 done; 1 failed (an export that missed its check, an internal error);
2 bad input (arguments, files, data); 3 no plan meets the limits; 130 interrupted."""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    func: Callable[[argparse.Namespace], int] = args.func
    where = f"mixprec {args.command}"
    try:
        return func(args)
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # one line and a hint, not a traceback (-v shows it)
        if args.verbose:
            raise
        code, hint = _classify(err, args.command)
        print(f"{where}: error: {err}\n  hint: {hint}", file=sys.stderr)
        return code


def _classify(err: Exception, command: str) -> tuple[int, str]:
    """(exit code, hint) for an error that ends a command."""
    from mixprec.search.ilp import InfeasibleError

    if isinstance(err, InfeasibleError):
        return EXIT_NO_PLAN, "raise the budget or the limits (the message gives what fits)"
    if isinstance(err, (ValueError, FileNotFoundError, TypeError, LookupError)):
        return EXIT_BAD_INPUT, f"see `mixprec {command} --help`"
    return EXIT_FAILED, f"{type(err).__name__}; run with -v for the traceback"


if __name__ == "__main__":
    sys.exit(main())
