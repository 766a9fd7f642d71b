"""Quantization-aware attention for training the embedded ViTs.

Deployed int8 attention multiplies the softmax probabilities P on the symmetric signed grid
of its static spec (s8: P in [0, 1] gets the 128 levels 0..127), so small probabilities
round to zero. Training through that rounding, with straight-through gradients, teaches a
model to tolerate it; the float model stays the model that ships.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from mixprec.quant.fake import fake_quant, symmetric_qmax
from mixprec.quant.sdpa import SdpaCall, attention_scores, intercept_sdpa


def straight_through_probabilities(p: torch.Tensor, bits: int) -> torch.Tensor:
    """``p`` rounded to the symmetric ``bits``-bit grid spanning its own maximum (as a minmax
    observer's static range would), with the identity as its gradient."""
    scale = p.detach().amax().clamp_min(torch.finfo(p.dtype).tiny) / symmetric_qmax(bits)
    rounded = fake_quant(p.detach(), scale, torch.zeros_like(scale), bits, symmetric=True)
    return p + (rounded - p.detach())


@contextmanager
def quantized_attention_probabilities(bits: int) -> Iterator[None]:
    """Inside the block, every ``scaled_dot_product_attention`` call on this thread computes
    its attention explicitly with P through :func:`straight_through_probabilities`."""
    def handler(call: SdpaCall) -> torch.Tensor:
        if call.dropout_p:
            raise ValueError("quantization-aware attention does not apply attention dropout")
        p = attention_scores(call, call.q, call.k)
        return straight_through_probabilities(p, bits) @ call.v

    with intercept_sdpa(handler):
        yield
