"""The model and data of a run folder, loaded again as its search loaded them."""

from __future__ import annotations

import argparse

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
    from mixprec.cli import load_model_and_data

    summary = run.summary
    if "model" not in summary:
        raise ValueError(f"{run.path}/result.json does not name its model; run the search "
                         "again with this mixprec")
    args = argparse.Namespace(model=summary["model"], weights=summary.get("weights"),
                              data=summary.get("data"), calib=summary.get("calib"),
                              calib_size=summary.get("calib_size", 256))
    model, images, labels, calib = load_model_and_data(args)
    eval_size = summary.get("eval_size", len(images))
    return model, images[:eval_size], None if labels is None else labels[:eval_size], calib
