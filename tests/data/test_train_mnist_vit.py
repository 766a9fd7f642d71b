import torch

from mixprec.data.augment import BACKGROUND, augment
from mixprec.data.mnist_vit import build_mnist_vit
from mixprec.data.train_mnist_vit import decay_groups, use_patch_dropout


def test_norms_and_biases_do_not_decay():
    model = build_mnist_vit("mnist-vit-small")
    decay, no_decay = decay_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in no_decay["params"]} == {
        n for n, p in model.named_parameters() if n.endswith((".bias", "norm.weight",
                                                               "norm1.weight", "norm2.weight"))}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_augment_keeps_shape_and_background():
    images = torch.full((4, 1, 28, 28), BACKGROUND)
    out = augment(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    torch.testing.assert_close(out, images, atol=1e-4, rtol=0)


def test_a_warm_restart_must_start_from_the_same_architecture(tmp_path, monkeypatch):
    import pytest

    from mixprec.data import train_mnist_vit
    from mixprec.data.mnist_vit import config_of

    small = tmp_path / "small.pt"
    torch.save({"config": config_of("mnist-vit-small"), "state_dict": {}, "meta": {}}, small)
    monkeypatch.setattr("sys.argv", ["train", "--model", "mnist-vit", "--init", str(small),
                                     "--out", str(tmp_path / "out.pt")])
    with pytest.raises(SystemExit, match="another architecture"):
        train_mnist_vit.main()
    assert not (tmp_path / "out.pt").exists()


def test_hard_distillation_averages_the_true_and_the_teachers_labels():
    import torch.nn.functional as F

    from mixprec.data.teacher import hard_distillation_loss

    logits = torch.randn(6, 10, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    teacher = torch.tensor([0, 1, 2, 9, 9, 9])
    same = hard_distillation_loss(logits, labels, labels, label_smoothing=0.0)
    torch.testing.assert_close(same, F.cross_entropy(logits, labels))
    mixed = hard_distillation_loss(logits, labels, teacher, label_smoothing=0.1)
    torch.testing.assert_close(mixed, 0.5 * (F.cross_entropy(logits, labels, label_smoothing=0.1)
                                             + F.cross_entropy(logits, teacher)))


def test_the_teacher_learns_the_training_digits():
    from mixprec.data.mnist import mnist
    from mixprec.data.teacher import train_teacher

    torch.manual_seed(0)
    images, labels = mnist("train")
    teacher = train_teacher(images[:1024], labels[:1024], epochs=4,
                            gen=torch.Generator().manual_seed(0))
    assert not teacher.training
    with torch.no_grad():
        top1 = (teacher(images[:1024]).argmax(-1) == labels[:1024]).float().mean().item()
    assert top1 > 0.8


def test_patch_dropout_thins_the_tokens_in_training_only():
    model = build_mnist_vit("mnist-vit-small")
    use_patch_dropout(model, 0.75)
    seen = []
    model.blocks[0].register_forward_pre_hook(lambda _, args: seen.append(args[0].shape[1]))
    images = torch.randn(2, 1, 28, 28)
    model.train()(images)
    model.eval()(images)
    assert seen == [1 + 49, 1 + 196]


def test_patch_dropout_must_keep_some_tokens(tmp_path, monkeypatch):
    import pytest

    from mixprec.data import train_mnist_vit

    monkeypatch.setattr("sys.argv", ["train", "--patch-drop", "1", "--out", str(tmp_path / "o.pt")])
    with pytest.raises(SystemExit):
        train_mnist_vit.main()
    assert not (tmp_path / "o.pt").exists()
