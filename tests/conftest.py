"""Shared test fixtures: deterministic seeds and float64 by default for reference comparisons."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def registry_restored():
    """Methods registered (or replaced) by a test are removed (restored) after it."""
    from contrastkit.methods import registry

    saved = dict(registry._REGISTRY)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)
