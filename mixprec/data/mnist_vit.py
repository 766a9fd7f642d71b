"""The embedded models: timm VisionTransformers trained on the embedded MNIST digits.

Patches of 2x2 pixels give 196 patch tokens plus the class token: the 197 tokens of DeiT at
224x224, so attention matrices (and their softmax, the activation most sensitive to low-bit
quantization in real ViTs) have the shape they have in the models users bring.

Two are shipped:

* ``mnist-vit`` (the default of every command): DeiT-Tiny's block (width 192, 3 heads,
  MLP ratio 4) at depth 4, wide enough that int8 GEMMs pay on a CPU;
* ``mnist-vit-small``: width 64, 2 heads, MLP ratio 2, depth 4, the fast model of the tests.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import torch
from timm.models.vision_transformer import VisionTransformer

_COMMON: dict[str, Any] = {"img_size": 28, "patch_size": 2, "in_chans": 1, "num_classes": 10}
CONFIGS: dict[str, dict[str, Any]] = {
    "mnist-vit": {**_COMMON, "embed_dim": 192, "depth": 4, "num_heads": 3, "mlp_ratio": 4.0},
    "mnist-vit-small": {**_COMMON, "embed_dim": 64, "depth": 4, "num_heads": 2, "mlp_ratio": 2.0},
}
"""Embedded model name -> timm VisionTransformer keyword arguments."""
CHECKPOINTS = {"mnist-vit": "mnist_vit.pt", "mnist-vit-small": "mnist_vit_small.pt"}
DEFAULT = "mnist-vit"


def build_mnist_vit(name: str = DEFAULT) -> VisionTransformer:
    """An untrained embedded-model architecture (timm VisionTransformer)."""
    return VisionTransformer(**config_of(name))


def config_of(name: str) -> dict[str, Any]:
    """The architecture of an embedded model; an unknown name is an error listing the known."""
    if name not in CONFIGS:
        raise ValueError(f"unknown embedded model {name!r}; known: {sorted(CONFIGS)}")
    return dict(CONFIGS[name])


def mnist_vit(name: str = DEFAULT) -> VisionTransformer:
    """A trained embedded MNIST ViT, in eval mode (checkpoints shipped in the package).

    Args:
        name: ``mnist-vit`` (default) or ``mnist-vit-small``.
    """
    config_of(name)
    ref = resources.files("mixprec.data").joinpath(CHECKPOINTS[name])
    if not ref.is_file():
        raise FileNotFoundError(f"{CHECKPOINTS[name]} is missing from the package: train it with "
                                f"`python -m mixprec.data.train_mnist_vit --model {name}`")
    with resources.as_file(ref) as path:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = VisionTransformer(**checkpoint["config"])
    state = {k: v.float() for k, v in checkpoint["state_dict"].items()}
    model.load_state_dict(state)
    return model.eval()
