"""Output error measures between a perturbed and a float model output (logits)."""

from __future__ import annotations

import torch


def check_finite(output: torch.Tensor, where: str) -> None:
    """Raise ``FloatingPointError`` naming ``where`` if ``output`` has NaN/Inf values."""
    if not torch.isfinite(output).all():
        kind = "NaN" if torch.isnan(output).any() else "Inf"
        raise FloatingPointError(f"{kind} values in the model output {where}")


def noise_to_signal(output: torch.Tensor, reference: torch.Tensor) -> float:
    """Noise-to-signal power ratio ``||out - ref||^2 / ||ref||^2`` (= 10^(-SQNR/10)); it
    adds up over independent noise sources."""
    ref = reference.double()
    return ((output.double() - ref).pow(2).sum() / ref.pow(2).sum().clamp_min(1e-300)).item()


def kl_to_reference(output: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean KL(softmax(ref) || softmax(out)) over images, in nats."""
    ref = reference.double().log_softmax(-1)
    out = output.double().log_softmax(-1)
    return (ref.exp() * (ref - out)).sum(-1).mean().item()


def sqnr_db(output: torch.Tensor, reference: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio in dB."""
    nsr = noise_to_signal(output, reference)
    return float("inf") if nsr == 0 else -10.0 * torch.log10(torch.tensor(nsr)).item()


METRICS = {"nsr": noise_to_signal, "kl": kl_to_reference}
"""Additive error measures an SQNR-style estimator can score with."""
