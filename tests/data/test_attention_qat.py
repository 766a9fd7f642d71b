import pytest
import torch

from mixprec.data.attention_qat import (
    quantized_attention_probabilities,
    straight_through_probabilities,
)
from mixprec.data.mnist_vit import build_mnist_vit


def test_probabilities_land_on_the_grid_of_their_maximum_with_identity_gradients():
    torch.manual_seed(0)
    p = torch.rand(2, 3, 7, 7).softmax(-1).requires_grad_()
    rounded = straight_through_probabilities(p, bits=8)
    step = p.detach().amax() / 127
    levels = rounded.detach() / step
    torch.testing.assert_close(levels, levels.round(), atol=1e-4, rtol=0)
    assert (rounded.detach() - p.detach()).abs().max() <= step / 2 + 1e-7
    # The maximum is a grid point; the straight-through sum may move it by a float ulp.
    torch.testing.assert_close(rounded.detach().amax(), p.detach().amax())
    rounded.mul(torch.arange(7.0)).sum().backward()
    torch.testing.assert_close(p.grad, torch.arange(7.0).expand(2, 3, 7, 7))


def _logits_and_error(model: torch.nn.Module, images: torch.Tensor, bits: int
                      ) -> tuple[torch.Tensor, float]:
    exact = model(images)
    with quantized_attention_probabilities(bits):
        rounded = model(images)
    return rounded, (rounded - exact).abs().max().item()


def test_training_forwards_round_the_attention_and_still_train_it():
    torch.manual_seed(0)
    model = build_mnist_vit("mnist-vit-small").train()
    images = torch.randn(2, 1, 28, 28)
    _, err16 = _logits_and_error(model, images, 16)
    _, err8 = _logits_and_error(model, images, 8)
    rounded, err4 = _logits_and_error(model, images, 4)
    assert err16 < err8 / 10 and err8 < err4
    rounded.square().sum().backward()
    assert model.blocks[0].attn.qkv.weight.grad.abs().sum() > 0


def test_attention_dropout_is_refused():
    q = k = v = torch.randn(1, 2, 5, 4)
    with quantized_attention_probabilities(8), pytest.raises(ValueError, match="dropout"):
        torch.nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=0.1)


def test_the_bit_width_is_checked_before_training(tmp_path, monkeypatch):
    from mixprec.data import train_mnist_vit

    monkeypatch.setattr("sys.argv", ["train", "--quant-aware-attention", "1",
                                     "--out", str(tmp_path / "o.pt")])
    with pytest.raises(SystemExit):
        train_mnist_vit.main()
    assert not (tmp_path / "o.pt").exists()
