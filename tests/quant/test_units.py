import pytest
import timm
import torch
from torch import nn

from mixprec.quant import discover_units


def _counts(units):
    counts: dict[str, int] = {}
    for u in units:
        counts[u.kind] = counts.get(u.kind, 0) + 1
    return counts


@pytest.mark.parametrize("name, linear", [
    ("deit_small_patch16_224", 49),
    ("deit3_small_patch16_224", 49),
    ("swin_tiny_patch4_window7_224", 52),  # 12 blocks x 4 + 3 patch merges + head
])
def test_counts_on_timm_models(name, linear):
    model = timm.create_model(name, pretrained=False).eval()
    units = discover_units(model, torch.randn(1, 3, 224, 224))
    assert _counts(units) == {"linear": linear, "conv_gemm": 1, "attn_qk": 12, "attn_pv": 12}
    assert not units.skipped


def test_deit_names_dims_and_order():
    model = timm.create_model("deit_small_patch16_224", pretrained=False).eval()
    units = discover_units(model, torch.randn(2, 3, 224, 224))
    names = [u.name for u in units]
    assert names[:5] == ["patch_embed.proj", "blocks.0.attn.qkv", "blocks.0.attn.qk",
                         "blocks.0.attn.pv", "blocks.0.attn.proj"]
    by = units.by_name()
    assert (by["patch_embed.proj"].m, by["patch_embed.proj"].k) == (196, 768)
    qkv = by["blocks.0.attn.qkv"]
    assert (qkv.m, qkv.k, qkv.n, qkv.params) == (197, 384, 1152, 384 * 1152)
    qk, pv = by["blocks.0.attn.qk"], by["blocks.0.attn.pv"]
    assert (qk.m, qk.k, qk.n, qk.heads, qk.groups) == (197, 64, 197, 6, 6)
    assert (pv.m, pv.k, pv.n) == (197, 197, 64)
    assert by["head"].m == 1 and units.input_shape == (3, 224, 224)


def test_swin_window_groups():
    model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False).eval()
    qk = discover_units(model, torch.randn(1, 3, 224, 224)).by_name()["layers.0.blocks.0.attn.qk"]
    assert (qk.m, qk.k, qk.heads, qk.groups) == (49, 32, 3, 3 * 64)


def test_model_left_untouched(mnist_model):
    flags = [m.fused_attn for m in mnist_model.modules() if hasattr(m, "fused_attn")]
    for m in mnist_model.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = False
    discover_units(mnist_model, torch.randn(1, 1, 28, 28))
    assert all(not m.fused_attn for m in mnist_model.modules() if hasattr(m, "fused_attn"))
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in mnist_model.modules())
    for m, flag in zip([m for m in mnist_model.modules() if hasattr(m, "fused_attn")], flags):
        m.fused_attn = flag


class _WithUnsupported(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1d = nn.Conv1d(4, 4, 3, padding=1)
        self.mha = nn.MultiheadAttention(4, 2, batch_first=True)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = self.conv1d(x.transpose(1, 2)).transpose(1, 2)
        x = self.mha(x, x, x)[0]
        return self.fc(x)


def test_unsupported_modules_are_reported(caplog):
    units = discover_units(_WithUnsupported().eval(), torch.randn(1, 5, 4))
    assert [u.name for u in units] == ["fc"]
    assert set(units.skipped) == {"conv1d", "mha"}
    assert "Conv1d" in units.skipped["conv1d"] and "not quantized" in caplog.text


class _CustomSdpa(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(8, 24)

    def forward(self, x):
        q, k, v = self.qkv(x).reshape(x.shape[0], x.shape[1], 3, 2, 4).permute(2, 0, 3, 1, 4)
        out = nn.functional.scaled_dot_product_attention(q, k, v)
        return out.transpose(1, 2).flatten(2)


def test_any_module_calling_sdpa_is_found():
    model = nn.Sequential()
    model.add_module("attn", _CustomSdpa())
    units = discover_units(model, torch.randn(1, 5, 8))
    assert [(u.name, u.kind) for u in units] == [("attn.qkv", "linear"), ("attn.qk", "attn_qk"),
                                                 ("attn.pv", "attn_pv")]
    assert units[1].module_name == "attn" and units[1].heads == 2


def test_bad_example_input():
    with pytest.raises(ValueError, match="batched"):
        discover_units(nn.Linear(2, 2), torch.randn(2))
