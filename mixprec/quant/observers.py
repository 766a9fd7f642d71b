"""Calibration observers: they watch a tensor in float and give static quantization ranges.

One observer per quantization point serves every spec: it keeps the exact running min/max
and a seeded sample of rows (tokens), from which the ``percentile`` and ``mse`` ranges and
the per-group ranges of patch-wise (token-split) specs are derived for any bit-width.
"""

from __future__ import annotations

import torch

from mixprec.quant.fake import fake_quant, qparams_from_range
from mixprec.quant.token_split import high_token_count

SAMPLE_ELEMENTS = 1 << 16
"""Elements of each observer's row sample (rows = this // row length, at least 16)."""

MSE_CLIP_RATIOS = torch.linspace(0.30, 1.0, 36)


class Observer:
    """Running statistics of one activation tensor, reduced over rows of its last dim.

    Args:
        seed: seed of the row sampling (same seed and data give the same ranges).
    """

    def __init__(self, seed: int = 0) -> None:
        self.lo = torch.tensor(float("inf"))
        self.hi = torch.tensor(float("-inf"))
        self.rows: torch.Tensor | None = None
        self.seen_rows = 0
        self._gen = torch.Generator().manual_seed(seed)

    def observe(self, x: torch.Tensor) -> None:
        """Fold a batch into the statistics; non-finite values raise, naming nothing here
        (the caller adds the quantization point's name)."""
        x = x.detach().float()
        if not torch.isfinite(x).all():
            raise FloatingPointError("non-finite (NaN/Inf) activation values")
        self.lo = torch.minimum(self.lo, x.min())
        self.hi = torch.maximum(self.hi, x.max())
        rows = x.reshape(-1, x.shape[-1])
        cap = max(16, SAMPLE_ELEMENTS // rows.shape[1])
        pool = rows if self.rows is None else torch.cat([self.rows, rows])
        if pool.shape[0] > cap:
            # reservoir-style: keep a uniform sample of everything seen so far
            self.seen_rows += rows.shape[0]
            keep_new = round(cap * rows.shape[0] / self.seen_rows)
            old = self.rows if self.rows is not None else rows[:0]
            old = old[torch.randperm(old.shape[0], generator=self._gen)[: cap - keep_new]]
            new = rows[torch.randperm(rows.shape[0], generator=self._gen)[:keep_new]]
            pool = torch.cat([old, new])
        else:
            self.seen_rows += rows.shape[0]
        self.rows = pool

    @property
    def empty(self) -> bool:
        """Whether nothing was observed."""
        return self.rows is None

    def qparams(self, bits: int, symmetric: bool, method: str = "minmax",
                percentile: float = 99.99, rows: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale and zero point of the observed tensor (or of a subset of sampled ``rows``).

        Args:
            bits: integer bit-width.
            symmetric: symmetric or affine grid.
            method: ``minmax``, ``percentile`` or ``mse``.
            percentile: clipping percentile for ``percentile``.
            rows: restrict to these sampled rows (patch-wise groups); default all data.
        """
        if self.empty:
            raise RuntimeError("observer saw no data: run calibration first")
        if rows is None and method == "minmax":
            return qparams_from_range(self.lo, self.hi, bits, symmetric)
        sample = (self.rows if rows is None else rows).flatten()
        if method == "minmax":
            return qparams_from_range(sample.min(), sample.max(), bits, symmetric)
        if method == "percentile":
            return _percentile_qparams(sample, bits, symmetric, percentile)
        return _mse_qparams(sample, bits, symmetric)

    def split_rows(self, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled rows split into the top ``fraction`` by abs-max and the rest."""
        if self.rows is None:
            raise RuntimeError("observer saw no data: run calibration first")
        importance = self.rows.abs().amax(dim=1)
        n_high = high_token_count(len(importance), fraction)
        order = torch.argsort(importance, descending=True, stable=True)
        return self.rows[order[:n_high]], self.rows[order[n_high:]]

    def low_rows(self, fraction: float) -> torch.Tensor:
        """The sampled rows whose range a token split's low group is calibrated on (those
        of :meth:`split_rows` below the top ``fraction``; the high ones if none are)."""
        high, low = self.split_rows(fraction)
        return low if len(low) else high


def _percentile_qparams(sample: torch.Tensor, bits: int, symmetric: bool,
                        percentile: float) -> tuple[torch.Tensor, torch.Tensor]:
    q = percentile / 100.0
    if symmetric:
        top = torch.quantile(sample.abs(), q)
        return qparams_from_range(-top, top, bits, symmetric)
    lo, hi = torch.quantile(sample, torch.tensor([1.0 - q, q]))
    return qparams_from_range(lo, hi, bits, symmetric)


def _mse_qparams(sample: torch.Tensor, bits: int, symmetric: bool
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    lo, hi = sample.min(), sample.max()
    best, best_err = None, float("inf")
    for ratio in MSE_CLIP_RATIOS:
        scale, zp = qparams_from_range(lo * ratio, hi * ratio, bits, symmetric)
        err = (fake_quant(sample, scale, zp, bits, symmetric) - sample).pow(2).mean().item()
        if err < best_err:
            best, best_err = (scale, zp), err
    assert best is not None
    return best
