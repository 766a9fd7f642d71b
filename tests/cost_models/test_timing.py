"""Timing against a reference: ratios per round, adaptive rounds, busy blocks timed again."""

import itertools
import math
import statistics
import time

import pytest

from mixprec.cost_models import timing as timing_module
from mixprec.cost_models.timing import TimingPolicy, median_ci, time_against, time_call

QUICK = TimingPolicy(repeats=2, warmup=1, min_rounds=4, max_rounds=4, retries=0)
"""Four rounds exactly: no busy block timed again (real sleeps drift on a loaded machine)."""


def sleeper(seconds: float, calls: list | None = None):
    def call():
        if calls is not None:
            calls.append(seconds)
        time.sleep(seconds)
    return call


def test_ratios_order_the_callables_and_every_one_runs_every_round():
    calls: list[float] = []
    found = time_against(sleeper(0.004, calls), [sleeper(s, calls) for s in (0.002, 0.008)],
                         QUICK)
    per_turn = QUICK.warmup + QUICK.repeats
    assert calls.count(0.002) == calls.count(0.008) == 4 * per_turn
    assert calls.count(0.004) == 4 * per_turn + 2  # and one warm and one timed call first
    fast, slow = found
    assert fast.ratio < 1 < slow.ratio
    assert fast.ms < fast.reference_ms < slow.ms
    assert fast.rounds == slow.rounds == 4 and len(fast.ratios) == 4
    # ratios to the reference (0.5 and 2 with exact sleeps; sleeps overrun on a busy machine)
    assert fast.ratio < 0.8 and slow.ratio > 1.25


def test_a_long_call_gets_fewer_timed_calls_per_turn():
    calls: list[float] = []
    policy = TimingPolicy(repeats=3, warmup=1, turn_ms=10, min_rounds=2, max_rounds=2,
                          retries=0)
    time_against(sleeper(0.012, calls), [sleeper(0.001, calls)], policy)
    assert calls.count(0.001) == 2 * (1 + 1)  # 12 ms a call: one timed call per turn
    calls.clear()
    roomy = TimingPolicy(repeats=3, warmup=1, turn_ms=100, min_rounds=2, max_rounds=2,
                         retries=0)
    time_against(sleeper(0.002, calls), [sleeper(0.001, calls)], roomy)
    assert calls.count(0.001) == 2 * (1 + 3)  # 2 ms a call (under 33 ms): all three


def test_rounds_are_added_until_the_ratios_are_known_closely_enough(monkeypatch):
    # a fake clock: the callable's time alternates 1.0 / 1.5 ms while the reference's is 1 ms,
    # so its ratios spread widely and the interval never narrows: rounds go to the maximum
    times = {"ref": itertools.repeat(1.0), "var": itertools.cycle([1.0, 1.5])}
    monkeypatch.setattr(timing_module, "_turn_ms", lambda fn, policy: next(times[fn()]))
    policy = TimingPolicy(min_rounds=4, max_rounds=9, target_ci=0.02)
    wide = time_against(lambda: "ref", [lambda: "var"], policy)[0]
    assert wide.rounds == 9
    times["var"] = itertools.repeat(1.25)
    steady = time_against(lambda: "ref", [lambda: "var"], policy)[0]
    assert steady.rounds == 4 and steady.ratio == pytest.approx(1.25)
    assert steady.ratio_ci == 0.0


def test_a_busy_block_is_timed_again_and_the_calmer_attempt_kept(monkeypatch):
    # the reference drifts 2x within the first attempt (a busy spell), not in the second
    attempts = iter([[1.0, 2.0, 1.0, 2.0], [1.0, 1.0, 1.05, 1.0]])
    current: list[float] = []

    def turn(fn, policy):
        if fn() == "ref":
            if not current:
                current.extend(next(attempts))
            return current.pop(0)
        return 3.0

    monkeypatch.setattr(timing_module, "_turn_ms", turn)
    policy = TimingPolicy(min_rounds=4, max_rounds=4, busy_drift=0.25, retries=1)
    found = time_against(lambda: "ref", [lambda: "plan"], policy)[0]
    assert not found.busy and found.reference_ms == pytest.approx(1.0)
    attempts = iter([[1.0, 2.0, 1.0, 2.0], [1.0, 2.2, 1.0, 2.2]])
    assert time_against(lambda: "ref", [lambda: "plan"], policy)[0].busy


def test_median_confidence_interval():
    assert math.isinf(median_ci([1.0, 2.0, 3.0]))
    assert median_ci([2.0] * 8) == 0.0
    samples = [1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.0, 1.0]
    assert 0 < median_ci(samples) < median_ci([1.0, 1.4, 0.6, 1.0, 1.2, 0.8, 1.0, 1.0])


@pytest.mark.parametrize("changes", [{"repeats": 0}, {"min_rounds": 0},
                                     {"min_rounds": 5, "max_rounds": 4}])
def test_policy_refuses_empty_timings(changes):
    with pytest.raises(ValueError, match="timing policy"):
        TimingPolicy(**changes)


def test_time_call_counts_warmup_and_repeats():
    calls: list[float] = []
    found = time_call(sleeper(0.001, calls), repeats=5, warmup=2)
    assert len(calls) == 7 and found.repeats == 5 and found.median_ms >= 1.0


def test_the_machine_speed_of_the_moment_drops_out_of_the_ratios(monkeypatch):
    # a fake clock: six callables with known times on a machine whose speed swings by ±30%
    # over forty turns, one turn in seventeen hit by a 60% slow spell; turns run in order, so
    # a round's reference turn and its other turns see different speeds
    levels = {"ref": 1.0, **{f"p{i}": 1.0 + 0.1 * i for i in range(6)}}
    log: list[tuple[str, float]] = []

    def turn(fn, policy):
        k = len(log)
        ms = levels[fn()] * (1 + 0.3 * math.sin(2 * math.pi * k / 40)) * (
            1.6 if k % 17 == 5 else 1.0)
        log.append((fn(), ms))
        return ms

    monkeypatch.setattr(timing_module, "_turn_ms", turn)
    policy = TimingPolicy(min_rounds=16, max_rounds=16)
    found = time_against(lambda: "ref", [lambda n=n: n for n in levels if n != "ref"], policy)
    reference = [ms for name, ms in log if name == "ref"]
    per_round_errors = []
    for (name, level), timing in zip(list(levels.items())[1:], found):
        assert timing.ratio == pytest.approx(level, rel=0.015), name
        per_round = [ms / r for ms, r in zip([ms for n, ms in log if n == name], reference)]
        per_round_errors.append(abs(statistics.median(per_round) / level - 1))
    assert max(per_round_errors) > 0.03  # the per-round ratio alone misses by more
