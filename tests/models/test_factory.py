"""Encoders for any modality (contrastkit.models.factory).

Rules checked: ``encoder_for_data(None, data)`` builds the modality's default (small_cnn / mlp / conv1d) with the
data's input size and returns the true feature size (that of a forward pass); the mlp is standardised with the
training rows' statistics; an encoder of another modality is refused with a message naming both modalities, the
data and the suitable encoders; ``feature_dim_of`` works for any user module, on its dtype, leaving its train /
eval modes and BatchNorm statistics as they were, and refuses outputs that are not (batch, features).
"""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from contrastkit.data import ArrayDataset, DatasetSplits
from contrastkit.models.encoders import SmallCNN
from contrastkit.models.factory import DEFAULT_ENCODERS, ENCODER_MODALITY, encoder_for_data, feature_dim_of
from contrastkit.models.sequence import Conv1dEncoder
from contrastkit.models.tabular import MLPEncoder, Standardize


def _splits(x_train: torch.Tensor, x_test: torch.Tensor, name: str = "toy") -> DatasetSplits:
    return DatasetSplits(name, ArrayDataset(x_train, torch.arange(len(x_train)) % 2),
                         ArrayDataset(x_test, torch.arange(len(x_test)) % 2), num_classes=2)


def _images(c: int = 1, size: int = 16) -> DatasetSplits:
    return _splits(torch.randint(0, 256, (6, c, size, size), dtype=torch.uint8),
                   torch.randint(0, 256, (2, c, size, size), dtype=torch.uint8), "pics")


def _vectors(d: int = 5) -> DatasetSplits:
    return _splits(torch.randn(20, d) * 4 + 2, torch.randn(4, d), "table")


def _sequences(c: int = 2, t: int = 120) -> DatasetSplits:
    return _splits(torch.randn(6, c, t), torch.randn(2, c, t), "waves")


def test_default_encoders_cover_every_modality() -> None:
    assert DEFAULT_ENCODERS == {"images": "small_cnn", "vectors": "mlp", "sequences": "conv1d"}
    assert all(ENCODER_MODALITY[name] == modality for modality, name in DEFAULT_ENCODERS.items())


def test_images_get_the_small_cnn() -> None:
    data = _images(c=3, size=16)
    encoder, dim = encoder_for_data(None, data)
    assert isinstance(encoder, SmallCNN)
    out = encoder.eval()(data.train.x.float() / 255)
    assert out.shape == (6, dim) and dim == encoder.feature_dim


def test_vectors_get_a_standardised_mlp() -> None:
    data = _vectors(d=5)
    encoder, dim = encoder_for_data(None, data)
    assert isinstance(encoder, MLPEncoder) and dim == 256
    standardize = encoder.net[0]
    assert isinstance(standardize, Standardize)
    train = data.train.x.double()
    assert torch.allclose(standardize.mean.double(), train.mean(0), atol=1e-5)
    assert torch.allclose(standardize.std.double(), train.std(0, unbiased=False), rtol=1e-5)
    assert encoder.eval()(data.test.x).shape == (4, 256)
    same, _ = encoder_for_data("mlp", data)
    assert isinstance(same, MLPEncoder)


def test_sequences_get_the_conv1d_encoder() -> None:
    data = _sequences(c=2)
    encoder, dim = encoder_for_data(None, data)
    assert isinstance(encoder, Conv1dEncoder) and dim == 64
    assert encoder.net[0].in_channels == 2
    assert encoder.eval()(data.train.x).shape == (6, 64)


@pytest.mark.parametrize(("name", "data", "match"), [
    ("small_cnn", _vectors(), r"encoder 'small_cnn' is for images, but 'table' holds vectors; use one of \['mlp'\]"),
    ("resnet18", _sequences(), r"encoder 'resnet18' is for images, but 'waves' holds sequences; "
                                r"use one of \['conv1d', 'cpc', 'mel_cnn'\]"),
    ("mlp", _images(), r"encoder 'mlp' is for vectors, but 'pics' holds images; use one of "
                       r"\['resnet18', 'small_cnn', 'small_cnn_gap'\]"),
    ("conv1d", _vectors(), r"encoder 'conv1d' is for sequences, but 'table' holds vectors"),
    ("transformer", _vectors(), r"unknown encoder 'transformer'; choose one of \['byte_cnn', 'conv1d', 'cpc', "
                                r"'mel_cnn', 'mlp'"),
])
def test_encoder_of_another_modality_is_refused(name, data, match) -> None:
    with pytest.raises(ValueError, match=match):
        encoder_for_data(name, data)


class _Pool(nn.Module):
    """A user's encoder: conv, BatchNorm, global pooling, linear to 7."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3)
        self.bn = nn.BatchNorm2d(5)
        self.fc = nn.Linear(5, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.bn(self.conv(x)).mean(dim=(2, 3)))


def test_feature_dim_of_a_user_module_leaves_it_as_it_was() -> None:
    module = _Pool()
    module.train()
    module.fc.eval()  # mixed modes are kept, module by module
    before = {k: v.clone() for k, v in module.state_dict().items()}
    assert feature_dim_of(module, (3, 9, 9)) == 7
    assert module.training and module.conv.training and module.bn.training and not module.fc.training
    after = module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm statistics did not move


def test_feature_dim_of_runs_in_the_modules_dtype_and_without_grad() -> None:
    seen = {}

    class Probe(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(12, 3).double()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.update(dtype=x.dtype, shape=tuple(x.shape), grad=torch.is_grad_enabled(), training=self.training)
            return self.linear(x.flatten(1))

    assert feature_dim_of(Probe(), (3, 4)) == 3
    assert seen == {"dtype": torch.float64, "shape": (2, 3, 4), "grad": False, "training": False}


def test_feature_dim_of_a_module_without_parameters() -> None:
    assert feature_dim_of(nn.Flatten(), (2, 3, 5)) == 30


@pytest.mark.parametrize(("module", "shape"), [
    (nn.Conv1d(1, 4, 3), "(2, 4, 8)"),
    (nn.Identity(), "(2, 1, 10)"),
])
def test_feature_dim_of_refuses_outputs_that_are_not_features(module, shape) -> None:
    with pytest.raises(ValueError, match=re.escape(f"must return (batch, features), got {shape} for a batch of 2")):
        feature_dim_of(module, (1, 10))


def test_feature_dim_of_refuses_non_tensor_outputs() -> None:
    class Pair(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple:
            return x, x

    with pytest.raises(ValueError, match="got tuple"):
        feature_dim_of(Pair(), (4,))


def test_feature_dim_of_restores_modes_after_an_error() -> None:
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("boom")

    module = Broken().train()
    with pytest.raises(RuntimeError, match="boom"):
        feature_dim_of(module, (3,))
    assert module.training and module.linear.training
