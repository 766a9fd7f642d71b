"""Wall-clock timing of callables: warm-up, repeats, median and spread; paired timing of a
variant against a baseline, interleaved so that drifts of the machine hit both alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Timing:
    """Repeated timings of one callable, in milliseconds.

    Attributes:
        median_ms: the median.
        spread_ms: the interquartile range.
        repeats: how many timed calls.
    """

    median_ms: float
    spread_ms: float
    repeats: int

    @classmethod
    def of(cls, samples_ms: list[float]) -> Timing:
        """Summary of raw samples (at least one)."""
        if not samples_ms:
            raise ValueError("no timing samples")
        if len(samples_ms) < 4:
            return cls(statistics.median(samples_ms), 0.0, len(samples_ms))
        q1, _, q3 = statistics.quantiles(samples_ms, n=4)
        return cls(statistics.median(samples_ms), q3 - q1, len(samples_ms))


def _synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _once_ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    _synchronize()
    return (time.perf_counter() - start) * 1e3


def time_call(fn: Callable[[], object], repeats: int = 20, warmup: int = 3) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then the median of ``repeats`` calls."""
    for _ in range(warmup):
        fn()
    _synchronize()
    return Timing.of([_once_ms(fn) for _ in range(repeats)])


def time_pair(base: Callable[[], object], variant: Callable[[], object], repeats: int = 20,
              warmup: int = 3) -> tuple[Timing, Timing]:
    """Time ``base`` and ``variant`` alternately (base, variant, base, ...) after warming up
    both: the difference of their medians is robust to slow drifts of the machine."""
    for _ in range(warmup):
        base()
        variant()
    base_ms, variant_ms = [], []
    for _ in range(repeats):
        base_ms.append(_once_ms(base))
        variant_ms.append(_once_ms(variant))
    return Timing.of(base_ms), Timing.of(variant_ms)
