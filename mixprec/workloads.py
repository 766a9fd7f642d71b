"""A model and its images, from the names and paths a user gives (the command line, a study
recipe, a run folder): the embedded digits for the embedded models, else an image folder or
a tensor file."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mixprec import data, models

ModelAndData = tuple[nn.Module, torch.Tensor, torch.Tensor | None, torch.Tensor]
"""(model, test images, their labels or None, calibration images)."""


def load_inputs(model_name: str, weights: str | None, data_path: str | None,
                calib_path: str | None, calib_size: int) -> ModelAndData:
    """The model and its images: the embedded digits when ``data_path`` is None, else the
    images of that folder or tensor file (calibration: the first ``calib_size`` of
    ``calib_path`` or of ``data_path``).

    Raises:
        ValueError: an unknown model, or a model other than the embedded ones without data.
    """
    require_data(model_name, data_path)
    model = models.load(model_name, weights=weights)
    if data_path is None:
        images, labels = data.mnist("test")
        return model, images, labels, data.mnist("train")[0][:calib_size]
    images, labels = user_images(data_path, model)
    calib = images[:calib_size]
    if calib_path is not None:
        calib = user_images(calib_path, model)[0][:calib_size]
    return model, images, labels, calib


def require_data(model_name: str, data_path: str | None) -> None:
    """Refuse an unknown model name, then a model other than the embedded ones without data.

    Raises:
        ValueError: what is wrong, in that order.
    """
    models.check_name(model_name)
    if data_path is None and model_name not in models.EMBEDDED_MODELS:
        raise ValueError(f"--data is required for {model_name}: its images (an image folder "
                         "or a tensor file); only the embedded "
                         f"{' / '.join(models.EMBEDDED_MODELS)} bring their own")


def user_images(path: str, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(images, labels or None) of an image folder (the model's eval transforms) or a tensor
    file (``.pt``, ``.npy``, ``.npz``)."""
    if Path(path).is_dir():
        return data.image_folder(path, model)
    return data.tensor_file(path)
