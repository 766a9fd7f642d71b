"""Which tokens a token-split spec keeps at its high precision, shared by the simulation and
the kernels so that both select the same tokens.

Per image (every index of the leading dims of ``x [..., N, C]``), the ``k`` tokens with the
largest absolute value over their channels are *high* tokens; ``k`` is the spec's fraction of
``N``, rounded, at least one. Static specs calibrate each group's range on the calibration
rows split the same way (:meth:`~mixprec.quant.observers.Observer.split_rows`); dynamic specs
take each group's range from its own tokens.
"""

from __future__ import annotations

import torch

from mixprec.quant.spec import QuantSpec


def high_token_count(tokens: int, fraction: float) -> int:
    """How many of ``tokens`` tokens are high: ``round(fraction * tokens)``, at least one."""
    return max(1, round(fraction * tokens))


def token_importance(x: torch.Tensor) -> torch.Tensor:
    """``[..., N]``: each token's largest absolute value over its channels."""
    return x.abs().amax(dim=-1)


def high_tokens(importance: torch.Tensor, fraction: float) -> torch.Tensor:
    """Indices ``[..., k]`` of each image's high tokens, from their importance ``[..., N]``."""
    return importance.topk(high_token_count(importance.shape[-1], fraction), dim=-1).indices


def high_token_mask(x: torch.Tensor, fraction: float) -> torch.Tensor:
    """``[..., N, 1]`` bool: True on each image's high tokens of ``x [..., N, C]``."""
    importance = token_importance(x)
    mask = torch.zeros(importance.shape, dtype=torch.bool, device=x.device)
    return mask.scatter_(-1, high_tokens(importance, fraction), True).unsqueeze(-1)


def high_token_rows(importance: torch.Tensor, fraction: float) -> torch.Tensor:
    """Indices of the high tokens' rows in ``x.reshape(-1, C)`` (image by image), from the
    tokens' importance ``[..., N]``: for gathering them into one GEMM and scattering back."""
    top = high_tokens(importance, fraction)
    images = top.reshape(-1, top.shape[-1])
    starts = torch.arange(images.shape[0], device=top.device).unsqueeze(-1)
    return (images + starts * importance.shape[-1]).reshape(-1)


def own_scale_split(spec: QuantSpec) -> bool:
    """Whether ``spec``'s high tokens share its grid with a scale of their own (static or
    per-tensor dynamic activations: per-token scales leave nothing to split)."""
    split = spec.token_split
    return (split is not None and split.high_bits == spec.act_bits
            and (spec.act_mode == "static" or spec.act_granularity == "per_tensor"))
