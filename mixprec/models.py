"""Model loading by name: the embedded ``mnist-vit`` (and ``mnist-vit-small``) or any timm
model."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

EMBEDDED = "mnist-vit"
"""The default model of every command."""
EMBEDDED_MODELS = ("mnist-vit", "mnist-vit-small")


def load(name: str, weights: str | Path | None = None, pretrained: bool = True) -> nn.Module:
    """Load a model in eval mode.

    Args:
        name: ``mnist-vit`` / ``mnist-vit-small`` (the embedded models) or a timm model name.
        weights: a state-dict file (``torch.save``/safetensors, or a checkpoint holding a
            ``state_dict``) for the model: a timm model's or retrained embedded weights
            (e.g. written by ``python -m mixprec.data.train_mnist_vit --out``).
        pretrained: for a timm name without ``weights``: use the pretrained weights from the
            local cache (nothing is downloaded); False gives random weights.

    Raises:
        ValueError: unknown model name.
        FileNotFoundError: pretrained weights are not cached and no ``weights`` file given.
    """
    if name in EMBEDDED_MODELS:
        from mixprec.data import build_mnist_vit, mnist_vit

        return mnist_vit(name) if weights is None else _loaded(build_mnist_vit(name), weights)
    import timm

    check_name(name)
    if weights is not None:
        return _loaded(timm.create_model(name, pretrained=False), weights)
    if not pretrained:
        return timm.create_model(name, pretrained=False).eval()
    return _cached_pretrained(name)


def check_name(name: str) -> None:
    """Refuse a name that is neither an embedded model nor a timm model, naming the close
    ones.

    Raises:
        ValueError: unknown model name.
    """
    import difflib

    import timm

    if name in EMBEDDED_MODELS or timm.is_model(name):
        return
    close = difflib.get_close_matches(name, [*EMBEDDED_MODELS, *timm.list_models()], n=4)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"no model named {name!r}: use {' or '.join(EMBEDDED_MODELS)} (embedded) "
                     f"or a timm model name such as deit_small_patch16_224{hint}")


def embedded_name(model: nn.Module) -> str | None:
    """The name of the embedded model that ``model`` is an instance of (by architecture),
    or None."""
    from mixprec.data import build_mnist_vit
    from mixprec.quant.units import model_fingerprint

    fingerprint = model_fingerprint(model)
    for name in EMBEDDED_MODELS:
        if model_fingerprint(build_mnist_vit(name)) == fingerprint:
            return name
    return None


def _cached_pretrained(name: str) -> nn.Module:
    """Create ``name`` with pretrained weights found in the local Hugging Face cache."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    probe = timm.create_model(name, pretrained=False)
    hub_id = probe.pretrained_cfg.get("hf_hub_id")
    cached = None
    if hub_id:
        for filename in ("model.safetensors", "pytorch_model.bin"):
            found = try_to_load_from_cache(hub_id, filename)
            if isinstance(found, str):
                cached = found
                break
    if cached is None:
        raise FileNotFoundError(
            f"pretrained weights for {name!r} ({hub_id or 'no hub id'}) are not in the local "
            "cache and nothing is downloaded here: pass weights=FILE, or pretrained=False "
            "for random weights")
    return _loaded(probe, cached)


def _loaded(model: nn.Module, weights: str | Path) -> nn.Module:
    """``model`` with the weights of the file ``weights``, in eval mode."""
    model.load_state_dict(_read_state_dict(Path(weights)))
    return model.eval()


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict")
    return state
