import numpy as np
import pytest
import torch
from PIL import Image

from mixprec import data, models


def test_tensor_file_formats(tmp_path):
    images, labels = torch.randn(5, 3, 8, 8), torch.arange(5)
    torch.save({"images": images, "labels": labels}, tmp_path / "d.pt")
    torch.save(images, tmp_path / "x.pt")
    np.savez(tmp_path / "d.npz", x=images.numpy(), y=labels.numpy())
    for name in ("d.pt", "d.npz"):
        got_x, got_y = data.tensor_file(tmp_path / name)
        assert torch.equal(got_x, images) and torch.equal(got_y, labels)
    assert data.tensor_file(tmp_path / "x.pt")[1] is None
    torch.save({"images": images, "labels": labels[:3]}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="5 images but 3 labels"):
        data.tensor_file(tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError):
        data.tensor_file(tmp_path / "missing.pt")


def test_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            pixels = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / cls / f"{i}.png")
    images, labels = data.image_folder(tmp_path, input_size=32)
    assert images.shape == (6, 3, 32, 32) and labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.image_folder(tmp_path, input_size=32, limit=2)[0].shape[0] == 2
    with pytest.raises(FileNotFoundError):
        data.image_folder(tmp_path / "nope")


def test_models_load(tmp_path):
    assert models.load("mnist-vit").num_classes == 10
    with pytest.raises(ValueError, match="no model named 'not-a-model'"):
        models.load("not-a-model")
    with pytest.raises(FileNotFoundError, match="not in the local cache"):
        models.load("deit_tiny_patch16_224")
    rand = models.load("deit_tiny_patch16_224", pretrained=False)
    torch.save(rand.state_dict(), tmp_path / "w.pt")
    loaded = models.load("deit_tiny_patch16_224", weights=tmp_path / "w.pt")
    assert torch.equal(loaded.head.weight, rand.head.weight)


def test_an_embedded_model_loads_retrained_weights(tmp_path):
    shipped = models.load("mnist-vit-small")
    retrained = {k: v.half() + 1 for k, v in shipped.state_dict().items()}
    torch.save({"config": {}, "state_dict": retrained, "meta": {}}, tmp_path / "ckpt.pt")
    loaded = models.load("mnist-vit-small", weights=tmp_path / "ckpt.pt")
    assert not loaded.training
    assert torch.equal(loaded.head.weight, retrained["head.weight"].float())
    torch.save({"head.weight": retrained["head.weight"]}, tmp_path / "partial.pt")
    with pytest.raises(RuntimeError, match="Missing key"):
        models.load("mnist-vit-small", weights=tmp_path / "partial.pt")
