"""Model inputs as one value: a tensor, a tuple of tensors (positional) or a dict (keyword).

Vision models take one image tensor; Hugging Face models take keywords
(``model(pixel_values=x)``, ``model(input_ids=..., attention_mask=...)``). Every part of
mixprec that runs a model (unit discovery, calibration, simulation, sensitivity, deploy)
handles its inputs through these functions, so all three forms work everywhere. Every
tensor of one value is batched along dim 0, with the same batch size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

ModelInputs = torch.Tensor | tuple[torch.Tensor, ...] | Mapping[str, torch.Tensor]
"""A batch of inputs for one forward call (see the module docstring)."""


def tensors(inputs: ModelInputs) -> list[torch.Tensor]:
    """The tensors of ``inputs``, in call order."""
    if isinstance(inputs, torch.Tensor):
        return [inputs]
    if isinstance(inputs, Mapping):
        return list(inputs.values())
    if isinstance(inputs, (tuple, list)):
        return list(inputs)
    raise TypeError(f"model inputs must be a tensor, a tuple or a dict of tensors, got "
                    f"{type(inputs).__name__}")


def check_inputs(inputs: ModelInputs, what: str = "calibration data") -> None:
    """Refuse inputs that are not non-empty, batched, finite tensors of one batch size.

    Floating-point tensors must be finite; a lone tensor (images) must be floating point,
    while tuples and dicts may hold integer tensors (token ids, attention masks).
    """
    parts = tensors(inputs)
    if not parts:
        raise ValueError(f"{what} is empty (no tensors)")
    for part in parts:
        if not isinstance(part, torch.Tensor):
            raise TypeError(f"{what} must be tensors, got {type(part).__name__}")
        if part.dim() < 1 or part.shape[0] == 0:
            raise ValueError(f"{what} is empty or unbatched (shape {tuple(part.shape)})")
    sizes = {part.shape[0] for part in parts}
    if len(sizes) > 1:
        raise ValueError(f"{what}: the tensors have different batch sizes {sorted(sizes)}")
    if isinstance(inputs, torch.Tensor):
        if inputs.dim() < 2:
            raise ValueError(f"{what} is unbatched (shape {tuple(inputs.shape)})")
        if not inputs.is_floating_point():
            raise TypeError(f"{what} must be floating point, got {inputs.dtype}")
    for name, part in _named(inputs):
        if part.is_floating_point():
            _check_finite(part, f"{what}{name}")


def sample_count(inputs: ModelInputs) -> int:
    """Samples in the batch."""
    return int(tensors(inputs)[0].shape[0])


def take(inputs: ModelInputs, start: int, stop: int) -> ModelInputs:
    """Samples ``start:stop`` of every tensor."""
    if isinstance(inputs, torch.Tensor):
        return inputs[start:stop]
    if isinstance(inputs, Mapping):
        return {k: v[start:stop] for k, v in inputs.items()}
    return tuple(t[start:stop] for t in inputs)


def to_device(inputs: ModelInputs, device: str | torch.device) -> ModelInputs:
    """Every tensor of ``inputs`` on ``device``."""
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device)
    if isinstance(inputs, Mapping):
        return {k: v.to(device) for k, v in inputs.items()}
    return tuple(t.to(device) for t in inputs)


def first_samples(inputs: ModelInputs, count: int) -> ModelInputs:
    """The first ``count`` samples (fewer if the batch is smaller)."""
    return take(inputs, 0, count)


def split(inputs: ModelInputs, size: int) -> Iterator[ModelInputs]:
    """Consecutive chunks of at most ``size`` samples."""
    total = sample_count(inputs)
    for start in range(0, total, size):
        yield take(inputs, start, min(start + size, total))


def concat(chunks: list[ModelInputs]) -> ModelInputs:
    """Inverse of :func:`split`."""
    first = chunks[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(chunks)  # type: ignore[arg-type]
    if isinstance(first, Mapping):
        return {k: torch.cat([c[k] for c in chunks]) for k in first}  # type: ignore[index]
    return tuple(torch.cat(parts) for parts in zip(*chunks))


def call_model(model: nn.Module | Any, inputs: ModelInputs) -> Any:
    """``model(x)``, ``model(*inputs)`` or ``model(**inputs)``."""
    if isinstance(inputs, torch.Tensor):
        return model(inputs)
    if isinstance(inputs, Mapping):
        return model(**inputs)
    return model(*inputs)


def input_names(inputs: ModelInputs) -> list[str]:
    """Names of the inputs: the dict's keys, else ``input``, ``input_1``, ..."""
    if isinstance(inputs, Mapping):
        return list(inputs)
    return ["input" if i == 0 else f"input_{i}" for i in range(len(tensors(inputs)))]


def sample_shape(inputs: ModelInputs) -> tuple[int, ...]:
    """Per-sample shape of the first input (what plans and unit lists pin)."""
    return tuple(tensors(inputs)[0].shape[1:])


def content_hash(inputs: ModelInputs) -> str:
    """Short content hash of every tensor (and its name), for provenance."""
    digest = hashlib.sha256()
    for name, part in _named(inputs):
        digest.update(name.encode())
        digest.update(part.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def with_input_grad(inputs: ModelInputs) -> ModelInputs:
    """A copy whose floating-point tensors require grad (integer ids and masks cannot)."""
    def prepared(part: torch.Tensor) -> torch.Tensor:
        part = part.detach()
        return part.requires_grad_(True) if part.is_floating_point() else part

    if isinstance(inputs, torch.Tensor):
        return prepared(inputs)
    if isinstance(inputs, Mapping):
        return {k: prepared(v) for k, v in inputs.items()}
    return tuple(prepared(t) for t in inputs)


def primary_output(output: Any) -> torch.Tensor:
    """The tensor a model's output leads with: itself, ``logits`` / ``last_hidden_state`` of
    a Hugging Face output, or the first tensor of a tuple."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        for key in ("logits", "last_hidden_state"):
            if isinstance(output.get(key), torch.Tensor):
                return output[key]
        output = list(output.values())
    for item in output:
        if isinstance(item, torch.Tensor):
            return item
    raise TypeError(f"model output {type(output).__name__} holds no tensor")


def _named(inputs: ModelInputs) -> list[tuple[str, torch.Tensor]]:
    if isinstance(inputs, torch.Tensor):
        return [("", inputs)]
    if isinstance(inputs, Mapping):
        return [(f"[{k!r}]", v) for k, v in inputs.items()]
    return [(f"[{i}]", t) for i, t in enumerate(tensors(inputs))]


def _check_finite(part: torch.Tensor, where: str) -> None:
    bad = ~torch.isfinite(part)
    if bad.any():
        first = int(bad.reshape(part.shape[0], -1).any(dim=1).nonzero()[0])
        kind = "NaN" if torch.isnan(part).any() else "Inf"
        raise ValueError(f"{where} contains {kind} values ({int(bad.sum())} elements; "
                         f"first in sample {first})")
