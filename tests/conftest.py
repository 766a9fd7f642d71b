"""Shared fixtures: the small embedded model (``mnist-vit-small``, width 64: fast) and the
embedded data, loaded once per session."""

from __future__ import annotations

import pytest
import torch

from mixprec import data, quant


@pytest.fixture(scope="session")
def mnist_model() -> torch.nn.Module:
    return data.mnist_vit("mnist-vit-small")


@pytest.fixture(scope="session")
def mnist_test() -> tuple[torch.Tensor, torch.Tensor]:
    return data.mnist("test")


@pytest.fixture(scope="session")
def mnist_calib() -> torch.Tensor:
    return data.mnist("train")[0][:256]


@pytest.fixture(scope="session")
def mnist_units(mnist_model, mnist_test) -> quant.UnitList:
    return quant.discover_units(mnist_model, mnist_test[0][:1])


@pytest.fixture(autouse=True, scope="session")
def private_cache_dir(tmp_path_factory) -> None:
    """Latency caches and saved tables go to a temporary folder, not ~/.cache/mixprec."""
    import os

    os.environ["MIXPREC_CACHE_DIR"] = str(tmp_path_factory.mktemp("mixprec-cache"))
