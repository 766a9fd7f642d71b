import copy

import pytest
import timm
import torch
from timm.layers import Attention

from mixprec.quant import Plan, QuantSpec, TokenSplit, discover_units, simulate
from mixprec.quant.modules import AttentionQuant, FakeQuantLinear
from mixprec.quant.simulate import FLOAT_SPEC, attach_attention_quant
from tests.helpers import top1

W8A8 = QuantSpec(weight_bits=8, act_bits=8, act_mode="static")
W4A4 = QuantSpec(weight_bits=4, act_bits=4, act_mode="static")


def test_all_float_plan_is_exact(mnist_model, mnist_units, mnist_test, mnist_calib):
    sim = simulate(mnist_model, Plan.uniform(mnist_units, FLOAT_SPEC), mnist_calib)
    x = mnist_test[0][:64]
    with torch.inference_mode():
        assert (sim(x) - mnist_model(x)).abs().max().item() == 0


def test_w8a8_close_and_w4a4_worse(mnist_model, mnist_units, mnist_test, mnist_calib):
    x, y = mnist_test
    fp32 = top1(mnist_model, x, y)
    w8a8 = top1(simulate(mnist_model, Plan.uniform(mnist_units, W8A8), mnist_calib), x, y)
    w4a4 = top1(simulate(mnist_model, Plan.uniform(mnist_units, W4A4), mnist_calib), x, y)
    assert fp32 >= 0.95
    assert fp32 - w8a8 <= 0.005
    assert w4a4 < w8a8 - 0.01


def test_original_model_untouched(mnist_model, mnist_units, mnist_calib):
    before = copy.deepcopy(mnist_model.state_dict())
    sim = simulate(mnist_model, Plan.uniform(mnist_units, W8A8), mnist_calib)
    assert all(torch.equal(before[k], v) for k, v in mnist_model.state_dict().items())
    assert isinstance(sim.get_submodule("blocks.0.attn.qkv"), FakeQuantLinear)
    assert type(mnist_model.get_submodule("blocks.0.attn.qkv")) is torch.nn.Linear
    assert not any(m._forward_pre_hooks for m in mnist_model.modules())


def test_report_lists_uncovered_units(mnist_model, mnist_units, mnist_calib):
    plan = Plan((("blocks.0.mlp.fc1", W8A8),), mnist_units.model_id)
    sim = simulate(mnist_model, plan, mnist_calib)
    report = sim.simulation_report
    assert report.quantized == ("blocks.0.mlp.fc1",)
    assert len(report.uncovered) == len(mnist_units) - 1


@pytest.mark.parametrize("spec", [
    QuantSpec(weight_bits=8, act_bits=8, act_mode="dynamic"),
    QuantSpec(weight_bits=4, act_bits=8, act_mode="dynamic", weight_granularity="per_group",
              group_size=32),
    QuantSpec(weight_bits=8, act_bits=8, act_mode="static", observer="percentile"),
    QuantSpec(weight_bits=8, act_bits=8, act_mode="static", observer="mse"),
    QuantSpec(weight_bits=8, act_bits=8, act_mode="static", act_symmetric=False),
])
def test_other_specs_run_and_stay_close(spec, mnist_model, mnist_units, mnist_test, mnist_calib):
    x, y = mnist_test[0][:200], mnist_test[1][:200]
    sim = simulate(mnist_model, Plan.uniform(mnist_units, spec), mnist_calib)
    assert top1(sim, x, y) >= top1(mnist_model, x, y) - 0.03


def test_token_split_reduces_low_bit_error(mnist_model, mnist_units, mnist_test, mnist_calib):
    x = mnist_test[0][:200]
    linears = [u.name for u in mnist_units if u.kind == "linear"]
    base = Plan.uniform(mnist_units, FLOAT_SPEC)
    with torch.inference_mode():
        ref = mnist_model(x)
    errors = {}
    for mode in ("static", "dynamic"):
        low = QuantSpec(weight_bits=8, act_bits=4, act_mode=mode)
        split = QuantSpec(weight_bits=8, act_bits=4, act_mode=mode, token_split=TokenSplit(0.25, 8))
        for name, spec in (("low", low), ("split", split)):
            sim = simulate(mnist_model, base.replace({n: spec for n in linears}), mnist_calib)
            with torch.inference_mode():
                errors[mode, name] = (sim(x) - ref).pow(2).mean().item()
        assert errors[mode, "split"] < errors[mode, "low"]


def test_rewritten_attention_equals_timm_explicit_path():
    torch.manual_seed(0)
    attn = Attention(dim=32, num_heads=4).eval()
    attn.fused_attn = False
    x = torch.randn(2, 7, 32)
    rewritten = copy.deepcopy(attn)
    attach_attention_quant(rewritten, AttentionQuant(FLOAT_SPEC, FLOAT_SPEC, {}))
    with torch.inference_mode():
        assert torch.equal(rewritten(x), attn(x))
    clone = copy.deepcopy(rewritten)  # hooks survive a deepcopy
    with torch.inference_mode():
        assert torch.equal(clone(x), attn(x))


def test_swin_window_attention_quantizes():
    torch.manual_seed(0)
    model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, depths=(1, 1, 1, 1),
                              img_size=112).eval()
    x = torch.randn(2, 3, 112, 112)
    units = discover_units(model, x[:1])
    plan = Plan.uniform(units, FLOAT_SPEC).replace(
        {u.name: W8A8 for u in units if u.is_attention})
    sim = simulate(model, plan, x)
    with torch.inference_mode():
        ref, out = model(x), sim(x)
    noise = (out - ref).pow(2).mean() / ref.pow(2).mean()
    assert 0 < noise < 1e-2


def test_bad_calibration_data(mnist_model, mnist_units):
    plan = Plan.uniform(mnist_units, W8A8)
    bad = torch.zeros(4, 1, 28, 28)
    bad[2, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN.*sample 2"):
        simulate(mnist_model, plan, bad)
    with pytest.raises(ValueError, match="empty"):
        simulate(mnist_model, plan, torch.zeros(0, 1, 28, 28))
    with pytest.raises(TypeError, match="tensor"):
        simulate(mnist_model, plan, [[0.0]])


def test_plan_for_another_model_is_refused(mnist_model, mnist_calib):
    other = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=28, patch_size=4,
                              in_chans=1, num_classes=10, depth=2)
    plan = Plan.uniform(discover_units(other, torch.randn(1, 1, 28, 28)), W8A8)
    with pytest.raises(ValueError, match="plan is for model"):
        simulate(mnist_model, plan, mnist_calib)
