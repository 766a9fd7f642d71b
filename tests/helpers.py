"""Small helpers shared by tests."""

from __future__ import annotations

import torch

from mixprec.quant.observers import Observer


def top1(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of ``model``."""
    with torch.inference_mode():
        return (model(images).argmax(-1) == labels).float().mean().item()


def sqnr(out: torch.Tensor, ref: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio of ``out`` against ``ref`` in dB (300 when equal)."""
    noise = (out.float() - ref.float()).pow(2).mean().clamp_min(1e-30)
    return (10 * torch.log10(ref.float().pow(2).mean() / noise)).item()


def observer(x: torch.Tensor) -> Observer:
    """An observer that has seen ``x``."""
    obs = Observer()
    obs.observe(x)
    return obs


def deployed_against_simulated(model: torch.nn.Module, plan, calib: torch.Tensor,
                               test: tuple[torch.Tensor, torch.Tensor], runtime: str,
                               **kw) -> tuple[object, dict[str, float]]:
    """``plan`` deployed in ``runtime`` and simulated (``kw``: units, stats), both run on the
    test images: (the deployed model, {"sqnr": its output SQNR against the simulation in
    dB, "top1_gap": the absolute top-1 difference})."""
    from mixprec import deploy
    from mixprec.quant import simulate

    real = deploy(model, plan, calib=calib, runtime=runtime, **kw)
    images, labels = test
    with torch.inference_mode():
        want = simulate(model, plan, calib, **kw)(images)
    got = real(images)
    assert got.shape == want.shape
    gap = abs((got.argmax(-1) == labels).float().mean() - (want.argmax(-1) == labels).float()
              .mean()).item()
    return real, {"sqnr": sqnr(got, want), "top1_gap": gap}
