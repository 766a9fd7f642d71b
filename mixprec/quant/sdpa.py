"""Interception of ``F.scaled_dot_product_attention`` calls, and its explicit math.

Attention modules (timm ``Attention``, Swin ``WindowAttention``, and any other module that
calls ``torch.nn.functional.scaled_dot_product_attention``) are found and quantized by
routing their SDPA call to a handler. The dispatcher is installed only while a handler is
active on the current thread and removed afterwards: no import-time side effects.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

_ORIGINAL_SDPA = F.scaled_dot_product_attention
_state = threading.local()
_install_lock = threading.Lock()
_install_count = 0


@dataclass
class SdpaCall:
    """One intercepted call: its operands and options."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    attn_mask: torch.Tensor | None
    dropout_p: float
    is_causal: bool
    scale: float | None
    enable_gqa: bool

    def run_original(self) -> torch.Tensor:
        """Compute the call with PyTorch's own SDPA."""
        return _ORIGINAL_SDPA(self.q, self.k, self.v, attn_mask=self.attn_mask,
                              dropout_p=self.dropout_p, is_causal=self.is_causal,
                              scale=self.scale, enable_gqa=self.enable_gqa)

    @property
    def softmax_scale(self) -> float:
        """The scale applied to Q·Kᵀ (SDPA's default is 1/sqrt(head_dim))."""
        return self.scale if self.scale is not None else self.q.shape[-1] ** -0.5

    def bias(self, scores: torch.Tensor) -> torch.Tensor | None:
        """Additive bias for ``scores`` from the mask and causality, or None."""
        if self.is_causal:
            n_q, n_k = scores.shape[-2:]
            keep = torch.ones(n_q, n_k, dtype=torch.bool, device=scores.device).tril()
            causal = torch.zeros(n_q, n_k, dtype=scores.dtype, device=scores.device)
            return causal.masked_fill(~keep, float("-inf"))
        if self.attn_mask is None:
            return None
        if self.attn_mask.dtype == torch.bool:
            zeros = torch.zeros(self.attn_mask.shape, dtype=scores.dtype, device=scores.device)
            return zeros.masked_fill(~self.attn_mask, float("-inf"))
        return self.attn_mask


SdpaHandler = Callable[[SdpaCall], torch.Tensor]


def _dispatch(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              attn_mask: torch.Tensor | None = None, dropout_p: float = 0.0,
              is_causal: bool = False, scale: float | None = None,
              enable_gqa: bool = False) -> torch.Tensor:
    handlers = getattr(_state, "handlers", None)
    call = SdpaCall(q, k, v, attn_mask, dropout_p, is_causal, scale, enable_gqa)
    if not handlers:
        return call.run_original()
    return handlers[-1](call)


@contextmanager
def intercept_sdpa(handler: SdpaHandler) -> Iterator[None]:
    """Route SDPA calls on this thread to ``handler`` inside the ``with`` block."""
    global _install_count
    with _install_lock:
        if _install_count == 0:
            F.scaled_dot_product_attention = _dispatch
        _install_count += 1
    if not hasattr(_state, "handlers"):
        _state.handlers = []
    _state.handlers.append(handler)
    try:
        yield
    finally:
        _state.handlers.pop()
        with _install_lock:
            _install_count -= 1
            if _install_count == 0:
                F.scaled_dot_product_attention = _ORIGINAL_SDPA


def attention_scores(call: SdpaCall, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Softmax probabilities of ``q·kᵀ`` with the call's scale and mask, in timm's op order."""
    scores = (q * call.softmax_scale) @ k.transpose(-2, -1)
    bias = call.bias(scores)
    if bias is not None:
        scores = scores + bias
    return scores.softmax(dim=-1)
