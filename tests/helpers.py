"""Small helpers shared by tests."""

from __future__ import annotations

import torch


def top1(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of ``model``."""
    with torch.inference_mode():
        return (model(images).argmax(-1) == labels).float().mean().item()
