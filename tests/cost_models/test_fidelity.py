"""A table's held-out figures: median |error|, Kendall tau and share within ±10%."""

import pytest

from mixprec.cost_models.fidelity import TARGET, Fidelity, FidelityTarget, fidelity


def test_figures_are_computed_from_the_pairs():
    measured = [10.0, 20.0, 30.0, 40.0, 50.0]
    predicted = [11.0, 19.0, 36.0, 38.0, 50.0]  # errors 10%, 5%, 20%, 5%, 0%
    found = fidelity(predicted, measured)
    assert found.plans == 5
    assert found.median_abs_error == pytest.approx(0.05)
    assert found.within_10pct == pytest.approx(4 / 5)  # 10% itself counts as within
    assert found.kendall_tau == pytest.approx(1.0)  # the same order
    swapped = fidelity([11.0, 19.0, 36.0, 50.0, 38.0], measured)
    assert swapped.kendall_tau == pytest.approx(0.8)  # one discordant pair of ten


def test_targets():
    assert Fidelity(20, 0.03, 0.9, 0.95).meets()
    assert not Fidelity(20, 0.07, 0.9, 0.95).meets()
    assert not Fidelity(20, 0.03, 0.8, 0.95).meets()
    assert not Fidelity(20, 0.03, 0.9, 0.80).meets()
    assert Fidelity(20, 0.07, 0.9, 0.95).meets(FidelityTarget(max_median_error=0.08))
    assert TARGET == FidelityTarget(0.06, 0.85, 0.85)


def test_round_trip_and_summary():
    found = Fidelity(20, 0.031, 0.912, 0.95)
    assert Fidelity.from_dict(found.to_dict()) == found
    assert found.summary() == ("20 held-out plans: median |error| 3.1%, Kendall tau 0.91, "
                               "95% within ±10%")


def test_too_few_pairs_are_refused():
    with pytest.raises(ValueError, match="two or more"):
        fidelity([1.0], [1.0])
    with pytest.raises(ValueError, match="two or more"):
        fidelity([1.0, 2.0], [1.0])
