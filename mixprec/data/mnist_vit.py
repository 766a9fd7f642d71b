"""The embedded model: a small timm VisionTransformer trained on the embedded MNIST digits.

Patches of 2x2 pixels give 196 patch tokens plus the class token: the 197 tokens of DeiT at
224x224, so attention matrices (and their softmax, the activation most sensitive to low-bit
quantization in real ViTs) have the shape they have in the models users bring.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import torch
from timm.models.vision_transformer import VisionTransformer

CHECKPOINT = "mnist_vit.pt"
MNIST_VIT_CONFIG: dict[str, Any] = {
    "img_size": 28,
    "patch_size": 2,
    "in_chans": 1,
    "num_classes": 10,
    "embed_dim": 64,
    "depth": 4,
    "num_heads": 2,
    "mlp_ratio": 2.0,
}


def build_mnist_vit(config: dict[str, Any] | None = None) -> VisionTransformer:
    """An untrained embedded-model architecture (timm VisionTransformer)."""
    return VisionTransformer(**(config or MNIST_VIT_CONFIG))


def mnist_vit() -> VisionTransformer:
    """The trained embedded MNIST ViT, in eval mode (checkpoint shipped in the package)."""
    ref = resources.files("mixprec.data").joinpath(CHECKPOINT)
    if not ref.is_file():
        raise FileNotFoundError(f"{CHECKPOINT} is missing from the package: train it with "
                                "`python -m mixprec.data.train_mnist_vit`")
    with resources.as_file(ref) as path:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = build_mnist_vit(checkpoint["config"])
    state = {k: v.float() for k, v in checkpoint["state_dict"].items()}
    model.load_state_dict(state)
    return model.eval()
