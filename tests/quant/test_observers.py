import pytest
import torch

from mixprec.quant.observers import Observer


def _observed(seed: int = 0) -> Observer:
    obs = Observer(seed)
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        obs.observe(torch.randn(64, 50, 32, generator=gen))
    return obs


def test_minmax_is_exact_and_sampling_is_reproducible():
    a, b = _observed(), _observed()
    assert torch.equal(a.rows, b.rows)
    scale, zp = a.qparams(8, True)
    assert torch.isclose(scale, torch.maximum(a.lo.abs(), a.hi.abs()) / 127)
    assert zp.item() == 0


def test_percentile_and_mse_clip_below_minmax():
    obs = _observed()
    full = obs.qparams(8, True)[0]
    assert obs.qparams(8, True, "percentile", 99.0)[0] < full
    assert obs.qparams(4, True, "mse")[0] < obs.qparams(4, True)[0]


def test_split_rows_by_absmax():
    obs = Observer()
    x = torch.ones(10, 4)
    x[3] *= 50
    obs.observe(x)
    high, low = obs.split_rows(0.1)
    assert high.shape[0] == 1 and high.abs().max() == 50 and low.abs().max() == 1


def test_non_finite_and_empty():
    with pytest.raises(FloatingPointError):
        Observer().observe(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(RuntimeError, match="no data"):
        Observer().qparams(8, True)


def test_high_positions_follow_data_observed_after_they_were_asked_for():
    obs = Observer()
    x = torch.randn(8, 20, 4, generator=torch.Generator().manual_seed(0))
    x[:, 3] *= 50.0
    obs.observe(x)
    assert obs.high_positions(0.05).tolist() == [3]
    later = torch.randn(64, 20, 4, generator=torch.Generator().manual_seed(1))
    later[:, 11] *= 500.0
    obs.observe(later)
    assert obs.high_positions(0.05).tolist() == [11]
