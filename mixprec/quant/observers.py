"""Calibration observers: they watch a tensor in float and give static quantization ranges.

One observer per quantization point serves every spec: it keeps the exact running min/max,
a seeded sample of rows (tokens), from which the ``percentile`` and ``mse`` ranges are
derived for any bit-width, and each image's per-token min/max, from which the two groups of
a patch-wise (token-split) spec get their exact ranges.
"""

from __future__ import annotations

import torch

from mixprec.quant.fake import fake_quant, qparams_from_range
from mixprec.quant.token_split import (
    TokenGroup,
    high_token_count,
    high_token_flags,
    high_tokens,
)

SAMPLE_ELEMENTS = 1 << 16
"""Elements of each observer's row sample (rows = this // row length, at least 16)."""

TOKEN_IMAGES = 4096
"""Images (index of the dims before the token axis) whose per-token ranges are kept."""

MSE_CLIP_RATIOS = torch.linspace(0.30, 1.0, 36)

NO_TOKEN_AXIS = -1
"""Position of a sampled row that came from an input without a token axis."""


class Observer:
    """Running statistics of one activation tensor, reduced over rows of its last dim.

    Inputs of three or more dims have a token axis (dim -2): their rows are tokens, and
    each image's per-token ranges are kept too (:attr:`token_ranges`).

    Args:
        seed: seed of the row sampling (same seed and data give the same ranges).
    """

    def __init__(self, seed: int = 0) -> None:
        self.lo = torch.tensor(float("inf"))
        self.hi = torch.tensor(float("-inf"))
        self.rows: torch.Tensor | None = None
        self.row_positions: torch.Tensor | None = None
        self.seen_rows = 0
        self.token_ranges: torch.Tensor | None = None
        """``[images, tokens, 2]``: each kept image's per-token min and max."""
        self.token_counts: set[int] = set()
        self.seen_images = 0
        self._high_positions: dict[float, torch.Tensor] = {}
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
        if x.dim() >= 3:
            positions = torch.arange(x.shape[-2]).repeat(rows.shape[0] // x.shape[-2])
            self._observe_tokens(x)
        else:
            positions = torch.full((rows.shape[0],), NO_TOKEN_AXIS)
        cap = max(16, SAMPLE_ELEMENTS // rows.shape[1])
        pool = None if self.rows is None else (self.rows, self.row_positions)
        self.rows, self.row_positions = self._sample(pool, (rows, positions), cap,
                                                     self.seen_rows)
        self.seen_rows += rows.shape[0]

    def _observe_tokens(self, x: torch.Tensor) -> None:
        self._high_positions.clear()
        tokens = x.shape[-2]
        self.token_counts.add(tokens)
        if len(self.token_counts) > 1:  # no fixed token count: no per-token ranges
            self.token_ranges = None
            return
        ranges = torch.stack([x.amin(dim=-1), x.amax(dim=-1)], dim=-1).reshape(-1, tokens, 2)
        pool = None if self.token_ranges is None else (self.token_ranges,)
        (self.token_ranges,) = self._sample(pool, (ranges,), TOKEN_IMAGES, self.seen_images)
        self.seen_images += ranges.shape[0]

    def _sample(self, pool: tuple[torch.Tensor, ...] | None, new: tuple[torch.Tensor, ...],
                cap: int, seen: int) -> tuple[torch.Tensor, ...]:
        """A uniform sample of at most ``cap`` of the ``seen`` rows already in ``pool`` and
        the ``new`` ones (reservoir style; tensors of a tuple are indexed together)."""
        count = new[0].shape[0]
        kept = 0 if pool is None else pool[0].shape[0]
        if kept + count <= cap:
            return new if pool is None else tuple(torch.cat(p) for p in zip(pool, new))
        keep_new = round(cap * count / (seen + count))
        old = torch.randperm(kept, generator=self._gen)[: cap - keep_new]
        fresh = torch.randperm(count, generator=self._gen)[:keep_new]
        old_parts = [t[:0] for t in new] if pool is None else [t[old] for t in pool]
        return tuple(torch.cat([o, t[fresh]]) for o, t in zip(old_parts, new))

    @property
    def empty(self) -> bool:
        """Whether nothing was observed."""
        return self.rows is None

    def qparams(self, bits: int, symmetric: bool, method: str = "minmax",
                percentile: float = 99.99, group: TokenGroup | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale and zero point of the observed tensor, or of one group of a token split.

        Args:
            bits: integer bit-width.
            symmetric: symmetric or affine grid.
            method: ``minmax``, ``percentile`` or ``mse``.
            percentile: clipping percentile for ``percentile``.
            group: restrict to a token split's high tokens or the rest (``minmax``: their
                exact range over the kept images; otherwise their sampled rows).
        """
        if self.empty:
            raise RuntimeError("observer saw no data: run calibration first")
        if method == "minmax":
            lo, hi = (self.lo, self.hi) if group is None else self._group_range(group)
            return qparams_from_range(lo, hi, bits, symmetric)
        sample = (self.rows if group is None else self._group_rows(group)).flatten()
        if method == "percentile":
            return _percentile_qparams(sample, bits, symmetric, percentile)
        return _mse_qparams(sample, bits, symmetric)

    def high_positions(self, fraction: float) -> torch.Tensor:
        """The fixed high token positions of a ``positions`` token split, ascending: the
        ``fraction`` of positions most often among an image's top ``fraction`` tokens by
        abs-max (ties: the larger mean abs-max first).

        Raises:
            ValueError: the inputs had no token axis, or no fixed token count.
        """
        if fraction not in self._high_positions:
            self._high_positions[fraction] = self._rank_positions(fraction)
        return self._high_positions[fraction]

    def _rank_positions(self, fraction: float) -> torch.Tensor:
        """:meth:`high_positions`, computed from the kept per-token ranges."""
        importance = self._token_importance()
        hits = torch.bincount(high_tokens(importance, fraction).flatten(),
                              minlength=importance.shape[1])
        by_mean = torch.argsort(importance.mean(dim=0), descending=True, stable=True)
        order = by_mean[torch.argsort(hits[by_mean], descending=True, stable=True)]
        return order[:high_token_count(importance.shape[1], fraction)].sort().values

    def split_rows(self, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled rows split into the top ``fraction`` by abs-max and the rest."""
        if self.rows is None:
            raise RuntimeError("observer saw no data: run calibration first")
        importance = self.rows.abs().amax(dim=1)
        n_high = high_token_count(len(importance), fraction)
        order = torch.argsort(importance, descending=True, stable=True)
        return self.rows[order[:n_high]], self.rows[order[n_high:]]

    def _token_importance(self) -> torch.Tensor:
        """``[images, tokens]``: each kept image's per-token abs-max."""
        if self.token_ranges is None:
            seen = sorted(self.token_counts)
            why = (f"the calibration inputs had {seen} tokens: no fixed token count" if seen
                   else "the calibration inputs had no token axis")
            raise ValueError(f"calibrating a token split's groups needs calibration inputs "
                             f"with one token count; {why}")
        return self.token_ranges.abs().amax(dim=-1)

    def _group_mask(self, group: TokenGroup) -> torch.Tensor:
        """``[images, tokens]`` bool: True on the kept images' tokens of ``group``."""
        importance = self._token_importance()
        split = group.split
        if split.selection == "positions":
            high = torch.zeros(importance.shape[1], dtype=torch.bool)
            high[self.high_positions(split.fraction)] = True
            high = high.expand_as(importance)
        else:
            high = high_token_flags(importance, split.fraction)
        return high if group.high else ~high

    def _group_range(self, group: TokenGroup) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact min and max of a group's tokens (all data where the inputs had no token
        axis: the simulation keeps such inputs whole in the high group)."""
        if self.token_ranges is None and not self.token_counts:
            return self.lo, self.hi
        ranges = self.token_ranges[self._group_mask(group)]
        if not len(ranges):  # every token is high: the low group never runs
            ranges = self.token_ranges.reshape(-1, 2)
        return ranges[:, 0].min(), ranges[:, 1].max()

    def _group_rows(self, group: TokenGroup) -> torch.Tensor:
        """The sampled rows of a group (all rows if it has none in the sample)."""
        assert self.rows is not None and self.row_positions is not None
        split = group.split
        if not self.token_counts:  # no token axis: the simulation keeps the input whole
            return self.rows
        if split.selection == "positions":
            high = torch.isin(self.row_positions, self.high_positions(split.fraction))
            rows = self.rows[high if group.high else ~high]
        else:
            rows = self.split_rows(split.fraction)[0 if group.high else 1]
        return rows if len(rows) else self.rows


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
