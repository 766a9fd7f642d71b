"""Export a plan's deployed model: the PyTorch module (saved whole, reloaded to the same
outputs), the ONNX Runtime graph (QuantizeLinear / DequantizeLinear, MatMulInteger,
MatMulNBits) or the OpenVINO IR (FakeQuantize around the integer GEMMs), each reloaded and
checked against the simulation."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mixprec.kernels.registry import FP32, LOCAL_DEVICE, kernel_for
from mixprec.quant.calibrate import calibrate
from mixprec.quant.plan import Plan
from mixprec.quant.simulate import simulate
from mixprec.quant.units import UnitList
from mixprec.sensitivity.metrics import sqnr_db

FORMATS = ("plan", "torch", "onnx", "openvino")
RUNTIMES = {"torch": "torch", "onnx": "onnxruntime", "openvino": "openvino"}
"""Export format -> the runtime that deploys it."""
ONNX_MIN_SQNR_DB = 30.0
"""Output SQNR an ONNX or OpenVINO model must keep against the simulated model."""


class UnsupportedUnitsError(ValueError):
    """Units whose spec has no form in the export format (listed in the message)."""


@dataclass(frozen=True)
class Exported:
    """What an export wrote and how it was checked.

    Attributes:
        path: the file written.
        format: ``plan``, ``torch``, ``onnx`` or ``openvino``.
        sqnr_db: output SQNR of the exported model against the simulated model on the
            check images (inf: identical; None for ``plan``).
        reloaded_identical: ``torch``: the reloaded module gives bit-identical outputs.
        left_float: units exported in float32 because their spec has no form in the format
            (only with ``float_unsupported``).
        ops: ``onnx`` / ``openvino``: how many nodes of each operator type the graph has.
    """

    path: Path
    format: str
    sqnr_db: float | None = None
    reloaded_identical: bool | None = None
    left_float: tuple[str, ...] = ()
    ops: dict[str, int] | None = None


def unsupported_units(plan: Plan, units: UnitList, runtime: str) -> list[str]:
    """Units of ``plan`` whose spec has no kernel in ``runtime`` on this CPU
    (``name: spec``)."""
    by_name = {u.name: u for u in units}
    return [f"{name}: {plan[name].label}" for name in plan.names
            if name in by_name and kernel_for(by_name[name].kind, plan[name], LOCAL_DEVICE,
                                              runtime) is None]


def export_plan(model: nn.Module, plan: Plan, units: UnitList, calib: torch.Tensor,
                check_images: torch.Tensor, fmt: str, path: str | Path, *,
                float_unsupported: bool = False, threads: int = 2) -> Exported:
    """Write ``plan`` in format ``fmt`` to ``path`` and check it (see :class:`Exported`).

    Raises:
        ValueError: an unknown format.
        UnsupportedUnitsError: units whose spec the format cannot hold, unless
            ``float_unsupported`` (then they are exported in float32 and listed).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose from {FORMATS}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "plan":
        path.write_text(plan.to_json())
        return Exported(path, fmt)
    from mixprec.deploy import deploy

    runtime = RUNTIMES[fmt]
    missing = unsupported_units(plan, units, runtime)
    if missing and not float_unsupported:
        raise UnsupportedUnitsError(
            f"{len(missing)} unit(s) have no {fmt} form on this CPU: {'; '.join(missing)} "
            "(pass --float-unsupported to export them in float32)")
    left = tuple(m.split(":")[0] for m in missing)
    plan = plan.replace({name: FP32 for name in left})
    stats = calibrate(model, list(units), calib)
    deployed = deploy(model, plan, calib=calib, runtime=runtime, units=units, stats=stats,
                      threads=threads)
    with torch.inference_mode():
        simulated = simulate(model, plan, calib, units=units, stats=stats)(check_images)
        if fmt in ("onnx", "openvino"):
            reloaded, ops = _saved_graph(deployed, path, fmt, threads)
            return Exported(path, fmt, sqnr_db=sqnr_db(torch.as_tensor(
                reloaded(check_images)), simulated), left_float=left, ops=ops)
        before = deployed(check_images)
        torch.save(deployed, path)
        after = load_torch(path)(check_images)
    return Exported(path, fmt, sqnr_db=sqnr_db(before, simulated),
                    reloaded_identical=bool(torch.equal(before, after)), left_float=left)


def _saved_graph(deployed: Any, path: Path, fmt: str, threads: int
                 ) -> tuple[Any, dict[str, int]]:
    """Save a graph runtime's model as ``fmt`` and read it back: (the reloaded model, its
    operator counts)."""
    if fmt == "onnx":
        from mixprec.deploy.onnx_runtime import OrtModel

        deployed.save(path)
        return OrtModel(path.read_bytes(), deployed.inputs, threads, deployed.outputs), \
            onnx_ops(path)
    from mixprec.deploy.openvino_runtime import OvModel, graph_ops

    deployed.save(path)
    reloaded = OvModel.load_ir(path, deployed.inputs, threads, deployed.outputs)
    return reloaded, graph_ops(reloaded)


def load_torch(path: str | Path) -> nn.Module:
    """A deployed PyTorch model saved by :func:`export_plan` (it unpickles mixprec's
    modules: load only files you trust)."""
    return torch.load(path, map_location="cpu", weights_only=False)


def meets_onnx_target(exported: Exported) -> bool:
    """Whether an ONNX or OpenVINO export keeps :data:`ONNX_MIN_SQNR_DB` against the
    simulation."""
    return exported.sqnr_db is not None and (math.isinf(exported.sqnr_db)
                                             or exported.sqnr_db >= ONNX_MIN_SQNR_DB)


def onnx_ops(path: str | Path) -> dict[str, int]:
    """Operator type -> node count of an ONNX model file (its main graph)."""
    import onnx

    counts = Counter(node.op_type for node in onnx.load(str(path)).graph.node)
    return dict(counts.most_common())
