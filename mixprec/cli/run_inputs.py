"""The model and data of a run folder, loaded again as its search loaded them."""

from __future__ import annotations

import torch
from torch import nn

from mixprec.report.run_folder import RunFolder


def run_model_and_data(run: RunFolder) -> tuple[nn.Module, torch.Tensor, torch.Tensor | None,
                                                torch.Tensor]:
    """(model, evaluation images, labels or None, calibration images) of ``run``, from the
    model name, weights and data its ``result.json`` records.

    Raises:
        ValueError: the run does not record its model (written by an older mixprec).
    """
    from mixprec.workloads import load_inputs

    summary = run.summary
    if "model" not in summary:
        raise ValueError(f"{run.path}/result.json does not name its model; run the search "
                         "again with this mixprec")
    model, images, labels, calib = load_inputs(summary["model"], summary.get("weights"),
                                               summary.get("data"), summary.get("calib"),
                                               summary.get("calib_size", 256))
    eval_size = summary.get("eval_size", len(images))
    return model, images[:eval_size], None if labels is None else labels[:eval_size], calib
