"""Random affine augmentation of normalized MNIST digits (training the embedded models)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mixprec.data.mnist import MNIST_MEAN, MNIST_STD

BACKGROUND = -MNIST_MEAN / MNIST_STD  # a black pixel after normalization


def augment(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random rotation (+-12 deg), scale (0.9-1.1), shear and shift (+-2.5 px), batched."""
    n = images.shape[0]
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(12)
    scale = 0.9 + torch.rand(n, generator=gen) * 0.2
    shear = (torch.rand(n, generator=gen) * 2 - 1) * 0.15
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * (2.5 / 14)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin + shear, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    shifted = F.grid_sample(images - BACKGROUND, grid, align_corners=False)
    return shifted + BACKGROUND
