"""The ``mixprec`` command (also ``python -m mixprec``); one module per larger subcommand."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

import torch

from mixprec.quant import Plan, parse_spec

DEFAULT_PLANS = ("fp32", "w8a8", "w4a4")


ModelAndData = tuple[torch.nn.Module, torch.Tensor, torch.Tensor | None, torch.Tensor]
"""(model, test images, their labels or None, calibration images)."""


def load_model_and_data(args: argparse.Namespace) -> ModelAndData:
    """The model, test images, labels and calibration images that the arguments name."""
    return load_inputs(args.model, args.weights, args.data, args.calib, args.calib_size)


def load_inputs(model_name: str, weights: str | None, data_path: str | None,
                calib_path: str | None, calib_size: int) -> ModelAndData:
    """The model and its images: the embedded digits when ``data_path`` is None, else the
    images of that folder or tensor file (calibration: the first ``calib_size`` of
    ``calib_path`` or of ``data_path``)."""
    from mixprec import data, models

    _require_data(model_name, data_path)
    model = models.load(model_name, weights=weights)
    if data_path is None:
        images, labels = data.mnist("test")
        calib = data.mnist("train")[0][:calib_size]
        return model, images, labels, calib
    images, labels = _user_data(data_path, model)
    calib = images[:calib_size]
    if calib_path is not None:
        calib = _user_data(calib_path, model)[0][:calib_size]
    return model, images, labels, calib


def load_calibration(args: argparse.Namespace, model: torch.nn.Module) -> torch.Tensor | None:
    """The first ``--calib-size`` images of ``--data``, or None for an embedded model
    without ``--data`` (it brings its own)."""
    _require_data(args.model, args.data)
    if args.data is None:
        return None
    return _user_data(args.data, model)[0][: args.calib_size]


def _require_data(model_name: str, data_path: str | None) -> None:
    """Refuse a model other than the embedded ones without ``--data``."""
    from mixprec import models

    if data_path is None and model_name not in models.EMBEDDED_MODELS:
        raise ValueError(f"--data is required for {model_name}: images (an image folder or "
                         "a tensor file); only the embedded "
                         f"{' / '.join(models.EMBEDDED_MODELS)} bring their own")


def _user_data(path: str, model: torch.nn.Module):
    from pathlib import Path

    from mixprec import data

    if Path(path).is_dir():
        return data.image_folder(path, model)
    return data.tensor_file(path)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixprec", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser("evaluate", help=cmd_evaluate.__doc__)
    _add_model_args(ev)
    ev.add_argument("--data", help="image folder or tensor file (default: embedded digits)")
    ev.add_argument("--calib", help="calibration folder or tensor file (default: --data)")
    ev.add_argument("--calib-size", type=int, default=256)
    ev.add_argument("--batch-size", type=int, default=250)
    ev.add_argument("--plans", nargs="+", default=list(DEFAULT_PLANS),
                    help="uniform plans by spec name: fp32, w8a8, w8a8-dynamic, w4a8-dynamic, ...")
    ev.set_defaults(func=cmd_evaluate)

    un = sub.add_parser("units", help=cmd_units.__doc__)
    _add_model_args(un)
    un.add_argument("--random-weights", action="store_true")
    un.add_argument("--input-shape", default="1x28x28", help="per-image shape, e.g. 3x224x224")
    un.set_defaults(func=cmd_units)

    from mixprec.cli import cpu, dashboard, export, measure, report, search, sensitivity, study
    for module in (sensitivity, search, report, export, dashboard, study, cpu, measure):
        module.register(sub)
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
