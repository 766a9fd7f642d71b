import numpy as np
import pytest
import torch

from mixprec import data
from mixprec.data.mnist import split_indices
from tests.helpers import top1


def test_splits_are_stratified_disjoint_and_reproducible():
    x_train, y_train = data.mnist("train")
    x_test, y_test = data.mnist("test")
    assert x_train.shape == (4000, 1, 28, 28) and x_test.shape == (1000, 1, 28, 28)
    assert torch.equal(y_test.bincount(), torch.full((10,), 100))
    assert torch.equal(y_train.bincount(), torch.full((10,), 400))
    labels = np.repeat(np.arange(10), 500)
    a, b = split_indices(labels), split_indices(labels)
    assert np.array_equal(a["test"], b["test"])
    assert not set(a["test"]) & set(a["train"])
    assert torch.equal(data.mnist("test")[0], x_test)


def test_bad_split():
    with pytest.raises(ValueError, match="split"):
        data.mnist("val")


def test_embedded_model_is_trained(mnist_model, mnist_test):
    assert not mnist_model.training
    assert top1(mnist_model, *mnist_test) >= 0.95
