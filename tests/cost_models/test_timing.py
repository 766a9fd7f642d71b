"""Round-robin timing: every callable timed in every round, the order of durations kept."""

import time

import pytest

from mixprec.cost_models.timing import time_round_robin


def test_round_robin_times_each_callable_every_round_and_keeps_their_order():
    calls = {0.002: 0, 0.006: 0, 0.004: 0}

    def sleeper(seconds):
        def call():
            calls[seconds] += 1
            time.sleep(seconds)
        return call

    timings = time_round_robin([sleeper(s) for s in calls], rounds=3, repeats=4, warmup=1,
                               settle_s=0.0)
    assert all(n == 3 * (4 + 1) for n in calls.values())
    medians = [t.median_ms for t in timings]
    assert all(m >= s * 1e3 for m, s in zip(medians, calls))
    assert medians[0] < medians[2] < medians[1]
    assert all(t.repeats == 12 for t in timings)


@pytest.mark.parametrize("rounds, repeats", [(0, 5), (3, 0)])
def test_round_robin_refuses_empty_timings(rounds, repeats):
    with pytest.raises(ValueError, match="rounds and repeats"):
        time_round_robin([lambda: None], rounds=rounds, repeats=repeats)
