import torch

from mixprec.quant import QuantSpec
from mixprec.quant.fake import (
    fake_quant_dynamic,
    fake_quant_dynamic_groups,
    qparams_from_range,
    qrange,
    quantize,
    quantize_weight,
    symmetric_qmax,
)


def test_grids():
    assert qrange(8, True) == (-128, 127)
    assert qrange(4, True) == (-8, 7)
    assert qrange(8, False) == (0, 255)
    assert symmetric_qmax(8) == 127 and symmetric_qmax(7) == 63


def test_symmetric_scales_map_the_absmax_to_qmax_and_clamp_beyond_at_the_full_range():
    scale, zero = qparams_from_range(torch.tensor(-2.0), torch.tensor(1.0), 8, True)
    assert torch.isclose(scale, torch.tensor(2.0 / 127)) and zero == 0
    x = torch.tensor([-2.0, 2.0, -2.01, -5.0, 5.0])
    assert quantize(x, scale, zero, 8, True).tolist() == [-127, 127, -128, -128, 127]


def test_per_channel_weights_land_on_their_grid():
    w = torch.randn(6, 10)
    wq = quantize_weight(w, QuantSpec(weight_bits=4))
    scale = w.abs().amax(dim=1, keepdim=True) / 7
    levels = wq / scale
    assert torch.allclose(levels, levels.round(), atol=1e-4)
    assert levels.abs().max() <= 7 + 1e-4
    assert (wq - w).abs().max() <= scale.max() / 2 + 1e-6


def test_per_group_uses_one_scale_per_group_and_short_last_group():
    w = torch.zeros(1, 10)
    w[0, :8] = 1.0
    w[0, 8:] = torch.tensor([0.01, -0.02])
    spec = QuantSpec(weight_bits=4, weight_granularity="per_group", group_size=8)
    wq = quantize_weight(w, spec)
    assert torch.allclose(wq[0, :8], torch.ones(8))
    # the short last group keeps its own small scale: both values stay nearly exact
    assert torch.allclose(wq[0, 8:], w[0, 8:], atol=0.02 / 14 + 1e-6)


def test_float_weight_spec_is_exact_copy():
    w = torch.randn(3, 4)
    out = quantize_weight(w, QuantSpec(weight_bits=16, act_bits=16, act_mode="none"))
    assert torch.equal(out, w) and out.data_ptr() != w.data_ptr()


def test_dynamic_per_token_and_affine():
    x = torch.tensor([[1.0, -0.5, 0.25], [100.0, 0.0, -100.0]])
    out = fake_quant_dynamic(x, 8, True, dim=-1)
    assert torch.allclose(out[0], x[0], atol=1 / 254)
    scale, zp = qparams_from_range(torch.tensor(0.5), torch.tensor(2.0), 8, False)
    assert zp.item() == 0 and torch.isclose(scale, torch.tensor(2.0 / 255))


def test_dynamic_groups_scale_each_token_block_on_its_own_and_keep_the_short_last_block():
    x = torch.tensor([[1.0, -2.0, 300.0, 0.5, 0.03], [4.0, 4.0, 0.25, -0.5, 0.0]])
    out = fake_quant_dynamic_groups(x, 8, True, group=2)
    for row in range(2):
        for start in range(0, 5, 2):
            block = x[row, start:start + 2]
            torch.testing.assert_close(out[row, start:start + 2],
                                       fake_quant_dynamic(block, 8, True, dim=-1))
    assert out[0, 4] == x[0, 4]  # a block of one element is its own absmax
    torch.testing.assert_close(fake_quant_dynamic_groups(x, 8, True, group=8),
                               fake_quant_dynamic(x, 8, True, dim=-1))
