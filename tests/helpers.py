"""Small helpers shared by tests."""

from __future__ import annotations

import torch

from mixprec.quant.observers import Observer


def top1(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of ``model``."""
    with torch.inference_mode():
        return (model(images).argmax(-1) == labels).float().mean().item()


def sqnr(out: torch.Tensor, ref: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio of ``out`` against ``ref`` in dB (300 when equal)."""
    noise = (out.float() - ref.float()).pow(2).mean().clamp_min(1e-30)
    return (10 * torch.log10(ref.float().pow(2).mean() / noise)).item()


def observer(x: torch.Tensor) -> Observer:
    """An observer that has seen ``x``."""
    obs = Observer()
    obs.observe(x)
    return obs
