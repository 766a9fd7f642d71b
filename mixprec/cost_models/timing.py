"""Wall-clock timing of callables on a noisy machine.

* :func:`time_call`: warm-up, repeats, median and spread of one callable;
* :func:`time_against`: several callables timed against a reference in interleaved rounds,
  each summarised by its ratio to the reference. A slow spell of the machine (seconds long on
  the shared VMs seen here: a mnist-vit call at 7 ms instead of 5.2 for a few seconds) hits
  one round of every callable instead of all the calls of one of them. Each turn's time is
  compared with the turns around it, whatever callables those were, so the machine's speed
  of the moment drops out (the benchmark ``bench_cost_model.py`` prints how well repeated
  passes of the same plans then agree); the median over turns keeps
  their order, rounds are added until it is known closely enough, and a block whose
  reference drifts too much is timed again.

Turns follow each other without pauses: PyTorch's OpenMP pool is shared by every model of
the process, and ONNX Runtime sessions stop their threads' spinning when a run ends
(:class:`~mixprec.deploy.onnx_runtime.OrtModel`), so no model's threads spin against the
next one's; a pause would only let the cores go cold (mnist-vit: 6.2 ms instead of 5.3).
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

logger = logging.getLogger(__name__)

SPEED_WINDOW = 4
"""Turns on each side of a turn whose times tell how fast the machine ran at that turn."""

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
    def of(cls, samples_ms: Sequence[float]) -> Timing:
        """Summary of raw samples (at least one)."""
        if not samples_ms:
            raise ValueError("no timing samples")
        return cls(statistics.median(samples_ms), interquartile_range(samples_ms),
                   len(samples_ms))


@dataclass(frozen=True)
class TimingPolicy:
    """How :func:`time_against` times a block.

    Many short turns beat few long ones: timing a block of eight mnist-vit plans twice, the
    ratios of the two runs differed by a median 1.1% with 24 rounds of 3 calls against 3.8%
    with 8 rounds of 10 calls, in about the same time (a slow spell then spoils a few
    turns' medians, which the median over rounds leaves out).

    Attributes:
        repeats: timed calls per turn at most (their median is the turn's time); fewer when
            the reference's call is long: as many as ``turn_ms`` takes, at least one (DeiT-S
            at 45 ms a call: one, which halves a block's time; the rounds, not the calls of a
            turn, average out a busy machine).
        turn_ms: the timed time a turn aims at.
        warmup: untimed calls at the start of a turn.
        min_rounds: rounds always timed.
        max_rounds: rounds at most (adaptive: added while a ratio's confidence interval is
            wider than ``target_ci``).
        target_ci: wanted half-width of a ratio's ~95% confidence interval, relative.
        busy_drift: the reference's per-round medians spreading (interquartile range over
            median) more than this marks the block busy: it is timed again.
        retries: busy blocks are timed again at most this many times.
    """

    repeats: int = 3
    turn_ms: float = 20.0
    warmup: int = 1
    min_rounds: int = 12
    max_rounds: int = 24
    target_ci: float = 0.02
    busy_drift: float = 0.3
    retries: int = 1

    def __post_init__(self) -> None:
        if self.repeats < 1 or self.min_rounds < 1 or self.max_rounds < self.min_rounds:
            raise ValueError(f"timing policy needs repeats >= 1 and 1 <= min_rounds <= "
                             f"max_rounds, got {self.repeats}, {self.min_rounds}, "
                             f"{self.max_rounds}")


@dataclass(frozen=True)
class RatioTiming:
    """One callable timed against the reference of its block.

    Attributes:
        ratio: median over rounds of its speed-corrected round time over the reference's
            level (see :func:`time_against`).
        ratio_ci: half-width of the ratio's ~95% confidence interval, relative to it.
        ms: median of its per-round times.
        reference_ms: median of the reference's per-round times in the same rounds.
        rounds: rounds timed.
        busy: the reference drifted more than the policy allows in every attempt.
        ratios: the per-round (speed-corrected) ratios.
    """

    ratio: float
    ratio_ci: float
    ms: float
    reference_ms: float
    rounds: int
    busy: bool
    ratios: tuple[float, ...]


def interquartile_range(samples: Sequence[float]) -> float:
    """Q3 - Q1 (0 below four samples)."""
    if len(samples) < 4:
        return 0.0
    q1, _, q3 = statistics.quantiles(samples, n=4)
    return q3 - q1


def median_ci(samples: Sequence[float]) -> float:
    """Half-width of a ~95% confidence interval of the median, relative to it (McGill's
    notch: 1.58 IQR / sqrt(n)); infinite below four samples."""
    if len(samples) < 4:
        return math.inf
    middle = statistics.median(samples)
    return 1.58 * interquartile_range(samples) / math.sqrt(len(samples)) / abs(middle)


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


def _turn_ms(fn: Callable[[], object], policy: TimingPolicy) -> float:
    for _ in range(policy.warmup):
        fn()
    _synchronize()
    return statistics.median(_once_ms(fn) for _ in range(policy.repeats))


def _rounds(reference: Callable[[], object], fns: Sequence[Callable[[], object]],
            policy: TimingPolicy) -> list[tuple[int, float]]:
    """The block's turns in the order they ran, as (callable, ms); callable 0 is the
    reference, ``i + 1`` is ``fns[i]``. ``min_rounds`` rounds, then more while some ratio's
    confidence interval is wider than the target. Each round times the reference first and
    the others in an order rotated by one."""
    turns: list[tuple[int, float]] = []
    for done in range(policy.max_rounds):
        shift = done % max(1, len(fns))
        turns.append((0, _turn_ms(reference, policy)))
        for i in list(range(shift, len(fns))) + list(range(shift)):
            turns.append((i + 1, _turn_ms(fns[i], policy)))
        if done + 1 >= policy.min_rounds and all(
                median_ci(r) <= policy.target_ci for r in _speed_corrected_ratios(turns)):
            break
    return turns


def _machine_speed(callables: np.ndarray, log_ms: np.ndarray, window: int = SPEED_WINDOW,
                   iterations: int = 8) -> np.ndarray:
    """The machine's log slowness at every turn of a block: the median of how far the
    ``window`` turns on each side (the turn itself left out) ran from their callables'
    levels; a callable's level is the median of its turns' log times less the slowness.
    The two are refined in turn."""
    count = int(callables.max()) + 1
    slowness = np.zeros_like(log_ms)
    for _ in range(iterations):
        level = np.array([np.median((log_ms - slowness)[callables == i])
                          for i in range(count)])
        padded = np.pad(log_ms - level[callables], window, constant_values=np.nan)
        around = sliding_window_view(padded, 2 * window + 1).copy()
        around[:, window] = np.nan
        slowness = np.nanmedian(around, axis=1)
    return slowness


def _speed_corrected_ratios(turns: Sequence[tuple[int, float]]) -> list[list[float]]:
    """Per callable (the reference left out), its turns' times with the machine's slowness
    at each taken out, divided by the reference's level: ratios to the reference whose
    median is the callable's level over the reference's."""
    callables = np.array([c for c, _ in turns])
    log_ms = np.log(np.array([ms for _, ms in turns]))
    corrected = log_ms - _machine_speed(callables, log_ms)
    reference_level = float(np.median(corrected[callables == 0]))
    return [np.exp(corrected[callables == i] - reference_level).tolist()
            for i in range(1, int(callables.max()) + 1)]


def _turns_for(reference: Callable[[], object], policy: TimingPolicy) -> TimingPolicy:
    """``policy`` with as many timed calls per turn as ``policy.turn_ms`` takes of the
    reference (one warm call timed), at least one, at most ``policy.repeats``."""
    reference()
    call_ms = _once_ms(reference)
    calls = max(1, min(policy.repeats, math.ceil(policy.turn_ms / max(call_ms, 1e-3))))
    return replace(policy, repeats=calls)


def time_against(reference: Callable[[], object], fns: Sequence[Callable[[], object]],
                 policy: TimingPolicy | None = None) -> list[RatioTiming]:
    """Time every callable of ``fns`` against ``reference`` in interleaved rounds.

    A callable's ratio is the median over its turns of its time over the reference's, with
    the machine's speed at each turn taken out (:func:`_machine_speed`: the turns around it
    tell how slow the machine ran then). Rounds continue (up to ``policy.max_rounds``) until
    every ratio's confidence interval is within ``policy.target_ci``. When the reference's
    per-round times spread by more than ``policy.busy_drift`` (the machine was busy), the
    block is timed again, up to ``policy.retries`` times; the calmest attempt is kept and,
    if still busy, marked so.
    """
    policy = _turns_for(reference, policy or TimingPolicy())
    best: tuple[float, list[tuple[int, float]]] | None = None
    for attempt in range(policy.retries + 1):
        turns = _rounds(reference, fns, policy)
        reference_ms = [ms for c, ms in turns if c == 0]
        drift = interquartile_range(reference_ms) / statistics.median(reference_ms)
        if best is None or drift < best[0]:
            best = (drift, turns)
        if drift <= policy.busy_drift:
            break
        logger.info("busy machine: the reference drifted %.0f%% over %d rounds (attempt %d); "
                    "timing the block again", 100 * drift, len(reference_ms), attempt + 1)
    drift, turns = best
    reference_ms = [ms for c, ms in turns if c == 0]
    found = []
    for i, ratios in enumerate(_speed_corrected_ratios(turns), start=1):
        samples = [ms for c, ms in turns if c == i]
        found.append(RatioTiming(statistics.median(ratios), median_ci(ratios),
                                 statistics.median(samples), statistics.median(reference_ms),
                                 len(reference_ms), drift > policy.busy_drift, tuple(ratios)))
    return found
