"""The ``mixprec export`` subcommand: a run's chosen plan as plan JSON, a deployed PyTorch
model, an ONNX Runtime model or OpenVINO IR."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mixprec.deploy.export import FORMATS

SUFFIXES = {"plan": ".plan.json", "torch": ".pt", "onnx": ".onnx", "openvino": ".xml"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``export`` to the ``mixprec`` command's subparsers."""
    p = subparsers.add_parser(
        "export", help="export a run's plan as plan JSON, a saved PyTorch module, an ONNX model "
        "or OpenVINO IR",
        description=run.__doc__)
    p.add_argument("run_folder", type=Path, help="a folder written by `mixprec search --out`")
    p.add_argument("--format", choices=FORMATS, default="plan")
    p.add_argument("--out", type=Path, default=None,
                   help="file to write (default: RUN_FOLDER/export/model<suffix>)")
    p.add_argument("--float-unsupported", action="store_true",
                   help="export units whose spec has no form in the format in float32 "
                        "(listed) instead of refusing")
    p.add_argument("--check-images", type=int, default=256,
                   help="images the exported model is checked on")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export the chosen plan of a run folder: "plan" (the plan JSON), "torch" (the
    deployed module, saved whole and reloaded to identical outputs), "onnx" (the ONNX
    Runtime graph) or "openvino" (OpenVINO IR, model.xml and model.bin); the last two are
    read back and checked for output SQNR >= 30 dB against the simulated model."""
    from mixprec.cli.progress import Progress
    from mixprec.cli.run_inputs import run_model_and_data
    from mixprec.deploy.export import export_plan, meets_onnx_target
    from mixprec.quant import discover_units
    from mixprec.report import load_run

    say = Progress(args.quiet)
    run_folder = load_run(args.run_folder)
    out = args.out or args.run_folder / "export" / f"model{SUFFIXES[args.format]}"
    say(f"loading {run_folder.summary.get('model')} and its calibration data")
    model, images, _, calib = run_model_and_data(run_folder)
    units = discover_units(model, calib[:1])
    say(f"exporting the chosen plan as {args.format}")
    done = export_plan(model, run_folder.plan, units, calib, images[: args.check_images],
                       args.format, out, float_unsupported=args.float_unsupported,
                       threads=run_folder.summary.get("threads", 2))
    outcome = {"path": str(done.path), "format": done.format, "sqnr_db": done.sqnr_db,
               "reloaded_identical": done.reloaded_identical,
               "left_float": list(done.left_float), "ops": done.ops}
    if args.json:
        print(json.dumps(outcome, indent=1, default=str))
    else:
        print(f"wrote {done.path}")
        if done.sqnr_db is not None:
            print(f"output SQNR against the simulated model on {len(images[:args.check_images])}"
                  f" images: {done.sqnr_db:.1f} dB")
        if done.reloaded_identical is not None:
            print("reloaded: " + ("identical outputs" if done.reloaded_identical
                                  else "outputs DIFFER"))
        if done.ops:
            print("operators: " + ", ".join(f"{op} x{n}" for op, n in done.ops.items()))
        if done.left_float:
            print(f"left in float32 (no {args.format} form): {', '.join(done.left_float)}")
    if args.format in ("onnx", "openvino") and not meets_onnx_target(done):
        print(f"mixprec export: error: the {args.format} model's output SQNR "
              f"{done.sqnr_db:.1f} dB is below 30 dB against the simulation", flush=True)
        return 1
    if done.reloaded_identical is False:
        return 1
    return 0
