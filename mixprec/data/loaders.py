"""Users' own calibration/evaluation data: ImageNet-style folders and tensor files."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def image_folder(root: str | Path, model: nn.Module | None = None, *, limit: int | None = None,
                 input_size: int = 224, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Load an ImageNet-style folder (one sub-folder per class) with timm's eval transforms.

    Args:
        root: folder with class sub-folders of images.
        model: a timm model whose pretrained config (size, crop, mean/std) sets the
            transforms; default: 224-pixel ImageNet transforms.
        limit: at most this many images, drawn with ``seed`` across classes.
        input_size: image side when ``model`` gives none.
        seed: seed of the draw when ``limit`` is set.

    Returns:
        images ``[N, 3, H, W]`` and labels ``[N]`` (class index by sorted folder name).
    """
    from timm.data import create_transform, resolve_data_config
    from torchvision.datasets import ImageFolder

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    config = resolve_data_config({"input_size": (3, input_size, input_size)}, model=model)
    dataset = ImageFolder(str(root), transform=create_transform(**config, is_training=False))
    if len(dataset) == 0:
        raise ValueError(f"no images found under {root}")
    indices = list(range(len(dataset)))
    if limit is not None and limit < len(indices):
        gen = torch.Generator().manual_seed(seed)
        indices = sorted(torch.randperm(len(indices), generator=gen)[:limit].tolist())
    images, labels = zip(*(dataset[i] for i in indices))
    return torch.stack(images), torch.tensor(labels)


def tensor_file(path: str | Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Load images (and labels, if present) saved with ``torch.save`` or as ``.npy``/``.npz``.

    Accepted contents: a tensor of images; a ``(images, labels)`` tuple; a dict with keys
    ``images`` (or ``x``) and optionally ``labels`` (or ``y``). ``.npz`` files use the same keys.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tensor file {path} does not exist")
    if path.suffix in (".npy", ".npz"):
        import numpy as np

        loaded = np.load(path)
        content = dict(loaded) if path.suffix == ".npz" else torch.from_numpy(loaded)
    else:
        content = torch.load(path, map_location="cpu", weights_only=True)
    images, labels = _unpack(content, path)
    images = torch.as_tensor(images).float()
    if images.dim() < 2 or images.shape[0] == 0:
        raise ValueError(f"{path}: images must be a non-empty batch, got shape "
                         f"{tuple(images.shape)}")
    if labels is not None:
        labels = torch.as_tensor(labels).long()
        if labels.shape[0] != images.shape[0]:
            raise ValueError(f"{path}: {images.shape[0]} images but {labels.shape[0]} labels")
    return images, labels


def _unpack(content: object, path: Path) -> tuple[object, object | None]:
    if isinstance(content, torch.Tensor):
        return content, None
    if isinstance(content, (tuple, list)) and len(content) == 2:
        return content[0], content[1]
    if isinstance(content, dict):
        images = content.get("images", content.get("x"))
        if images is None:
            raise ValueError(f"{path}: dict has no 'images' (or 'x') entry: {sorted(content)}")
        return images, content.get("labels", content.get("y"))
    raise ValueError(f"{path}: expected a tensor, an (images, labels) pair or a dict, got "
                     f"{type(content).__name__}")
