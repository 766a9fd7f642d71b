"""Which tokens a token-split spec keeps at its high precision, shared by the simulation and
the kernels so that both select the same tokens.

``k`` tokens of each image (every index of the leading dims of ``x [..., N, C]``) are *high*
tokens; ``k`` is the spec's fraction of ``N``, rounded, at least one. With ``per_image``
selection they are the image's ``k`` tokens with the largest absolute value over their
channels; with ``positions`` selection, ``k`` fixed positions calibrated on the calibration
images (:meth:`~mixprec.quant.observers.Observer.high_positions`). Static specs calibrate
each group's range on the calibration tokens split the same way; dynamic specs take each
group's range from its own tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from mixprec.quant.spec import QuantSpec, TokenSplit

if TYPE_CHECKING:
    from mixprec.quant.observers import Observer


@dataclass(frozen=True)
class TokenGroup:
    """One group of a token split: its high tokens (``high``) or the others."""

    split: TokenSplit
    high: bool


def high_token_count(tokens: int, fraction: float) -> int:
    """How many of ``tokens`` tokens are high: ``round(fraction * tokens)``, at least one."""
    return max(1, round(fraction * tokens))


def token_importance(x: torch.Tensor) -> torch.Tensor:
    """``[..., N]``: each token's largest absolute value over its channels."""
    return x.abs().amax(dim=-1)


def high_tokens(importance: torch.Tensor, fraction: float) -> torch.Tensor:
    """Indices ``[..., k]`` of each image's high tokens, from their importance ``[..., N]``."""
    return importance.topk(high_token_count(importance.shape[-1], fraction), dim=-1).indices


def high_token_flags(importance: torch.Tensor, fraction: float) -> torch.Tensor:
    """``[..., N]`` bool: True on each image's high tokens, from their importance."""
    flags = torch.zeros(importance.shape, dtype=torch.bool, device=importance.device)
    return flags.scatter_(-1, high_tokens(importance, fraction), True)


def high_token_mask(x: torch.Tensor, fraction: float) -> torch.Tensor:
    """``[..., N, 1]`` bool: True on each image's high tokens of ``x [..., N, C]``."""
    return high_token_flags(token_importance(x), fraction).unsqueeze(-1)


def high_token_rows(importance: torch.Tensor, fraction: float) -> torch.Tensor:
    """Indices of the high tokens' rows in ``x.reshape(-1, C)`` (image by image), from the
    tokens' importance ``[..., N]``: for gathering them into one GEMM and scattering back."""
    top = high_tokens(importance, fraction)
    images = top.reshape(-1, top.shape[-1])
    starts = torch.arange(images.shape[0], device=top.device).unsqueeze(-1)
    return (images + starts * importance.shape[-1]).reshape(-1)


class FixedPositions(nn.Module):
    """The high token positions of a ``positions`` token split, fixed at calibration on
    inputs of ``tokens`` tokens (inputs of another token count are refused; None: the
    calibration inputs had no token axis, and neither may the inputs).

    Args:
        positions: the high positions (ascending).
        tokens: the calibration inputs' token count.
    """

    def __init__(self, positions: torch.Tensor, tokens: int | None) -> None:
        super().__init__()
        self.register_buffer("positions", positions)
        self.tokens = tokens

    @classmethod
    def calibrated(cls, observer: Observer, fraction: float) -> FixedPositions:
        """The positions that ``observer``'s calibration inputs select for ``fraction``."""
        if not observer.token_counts:
            return cls(torch.empty(0, dtype=torch.long), None)
        positions = observer.high_positions(fraction)
        return cls(positions, next(iter(observer.token_counts)))

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 1]`` bool: True on the high positions of ``x [..., N, C]``."""
        tokens = self._check(x)
        mask = torch.zeros(tokens, 1, dtype=torch.bool, device=x.device)
        return mask.index_fill_(0, self.positions, True)

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """Indices of the high positions' rows in ``x.reshape(-1, C)``, image by image."""
        tokens = self._check(x)
        starts = torch.arange(0, x.numel() // x.shape[-1], tokens, device=x.device)
        return (starts.unsqueeze(-1) + self.positions).reshape(-1)

    def _check(self, x: torch.Tensor) -> int:
        """The token count of ``x``, if it is the calibration's."""
        if self.tokens is None or x.shape[-2] != self.tokens:
            calibrated = ("inputs without a token axis" if self.tokens is None
                          else f"inputs of {self.tokens} tokens")
            raise ValueError(f"this token split's high positions were calibrated on "
                             f"{calibrated}; this input has {x.shape[-2]} tokens")
        return self.tokens

    def extra_repr(self) -> str:
        return f"positions={self.positions.tolist()}, tokens={self.tokens}"


def fixed_positions(spec: QuantSpec, observer: Observer | None) -> FixedPositions | None:
    """The calibrated high positions of a ``positions`` token split (None for others)."""
    split = spec.token_split
    if split is None or split.selection != "positions":
        return None
    if observer is None or observer.empty:
        raise RuntimeError(f"{spec.label}: calibrated token positions need calibration data")
    return FixedPositions.calibrated(observer, split.fraction)


def own_scale_split(spec: QuantSpec) -> bool:
    """Whether ``spec``'s high tokens share its grid with a scale of their own (static or
    per-tensor dynamic activations: per-token scales leave nothing to split)."""
    split = spec.token_split
    return (split is not None and split.high_bits == spec.act_bits
            and (spec.act_mode == "static" or spec.act_granularity == "per_tensor"))
