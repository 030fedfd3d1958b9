"""Fixtures for the trainables tests: tiny seeded data and models, no Ray anywhere.

On a GPU machine the trainers here train on the GPU (device auto-detection); the unit tests
that compare a trainer's tensors with ones they built on the CPU pass ``device="cpu"``, and
``test_gpu.py`` holds the GPU's own checks.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainables.data import DataSplits, load_data


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    # The models here are tiny: thread start-up costs more than it saves on a 2-core runner.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def toy_xy() -> tuple[torch.Tensor, torch.Tensor]:
    """70 samples, 6 features, 3 classes that a linear model can learn (70 = 4 * 16 + 6)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(70, 6, generator=gen)
    y = (x[:, 0] > 0.5).long() + (x[:, 1] > 0.0).long()
    return x, y


@pytest.fixture()
def toy_loaders(toy_xy: tuple[torch.Tensor, torch.Tensor]) -> tuple[DataLoader, DataLoader]:
    """A shuffled, seeded train loader and an ordered val loader (last batches unequal)."""
    x, y = toy_xy
    train = DataLoader(TensorDataset(x[:54], y[:54]), batch_size=16, shuffle=True,
                       generator=torch.Generator().manual_seed(1))
    val = DataLoader(TensorDataset(x[54:], y[54:]), batch_size=5)
    return train, val


def make_mlp(seed: int = 0, in_features: int = 6, classes: int = 3, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(in_features, 16), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(16, classes))
    return nn.Sequential(*layers)


@pytest.fixture()
def make_model():
    """``make_model(seed=0, in_features=6, classes=3, dropout=0.0)``: a seeded 1-hidden-layer MLP."""
    return make_mlp


@pytest.fixture(scope="session")
def small_madelon() -> DataSplits:
    """300 samples, 20 features (4 informative): enough for feature-selection smoke runs."""
    return load_data({"name": "madelon", "n_samples": 300, "n_features": 20, "n_informative": 4})
