"""Wall-clock timing of callables: warm-up, repeats, median and spread; paired timing of a
variant against a baseline, interleaved in blocks so that drifts of the machine hit both
alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

SETTLE_S = 0.05
"""Pause before timing a model right after another one ran (see :func:`time_pair`)."""


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
              warmup: int = 3, block: int = 5, settle_s: float = SETTLE_S
              ) -> tuple[Timing, Timing]:
    """Time ``base`` and ``variant`` in alternating blocks of ``block`` calls after warming
    up both: the difference of their medians is robust to slow drifts of the machine.

    Each block starts after a pause of ``settle_s`` and one untimed call: the worker threads
    of the other model keep spinning for a while after its last call (ONNX Runtime's
    intra-op pool: a mnist-vit call took 10 ms instead of 5.5 right after the other
    session's), and would slow this model's calls down.
    """
    for _ in range(warmup):
        base()
        variant()
    base_ms: list[float] = []
    variant_ms: list[float] = []
    while len(base_ms) < repeats:
        count = min(block, repeats - len(base_ms))
        for fn, samples in ((base, base_ms), (variant, variant_ms)):
            time.sleep(settle_s)
            fn()
            samples.extend(_once_ms(fn) for _ in range(count))
    return Timing.of(base_ms), Timing.of(variant_ms)


def time_round_robin(fns: list[Callable[[], object]], rounds: int = 5, repeats: int = 10,
                     warmup: int = 2, settle_s: float = SETTLE_S) -> list[Timing]:
    """Time several callables in turn, ``rounds`` times over: per callable, the median of
    its per-round medians (and their interquartile range as the spread).

    A slow spell of the machine then hits one round of every callable instead of all the
    calls of one of them, which keeps their order (what a ranking needs) far steadier than
    timing each in one go. Each turn starts after a pause of ``settle_s`` and ``warmup``
    untimed calls (see :func:`time_pair`).
    """
    if rounds < 1 or repeats < 1:
        raise ValueError(f"rounds and repeats must be >= 1, got {rounds} and {repeats}")
    medians: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, found in zip(fns, medians):
            time.sleep(settle_s)
            for _ in range(warmup):
                fn()
            _synchronize()
            found.append(statistics.median(_once_ms(fn) for _ in range(repeats)))
    return [Timing(summary.median_ms, summary.spread_ms, rounds * repeats)
            for summary in map(Timing.of, medians)]
