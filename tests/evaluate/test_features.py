"""Frozen-feature extraction: equals a direct eval-mode forward, batch-size invariant, restores modes and
BatchNorm statistics, accepts numpy / grey images, preprocessing, mixed precision; pixel features and the
combined protocol."""

import numpy as np
import pytest
import torch
from torch import nn

from contrastkit.evaluate import (
    ImagePreprocess,
    evaluate_features,
    extract_features,
    fit_linear_probe,
    knn_accuracy,
    pixel_features,
)
from contrastkit.models import SmallCNN


@pytest.fixture
def images(gen: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 256, (13, 1, 12, 12), dtype=torch.uint8, generator=gen)


def test_equals_an_eval_mode_forward_and_is_batch_size_invariant(images: torch.Tensor) -> None:
    model = SmallCNN(1, 12, width=4, feature_dim=16)
    model(images.float() / 255)  # one training step's forward moves the BN statistics off their init
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    features = extract_features(model, images, batch_size=5)
    assert features.dtype == torch.float32 and features.device.type == "cpu"
    assert features.shape == (13, 16)
    model.eval()
    with torch.no_grad():
        expected = model(images.float() / 255)
    model.train()
    assert torch.allclose(features, expected, atol=1e-6)
    assert torch.allclose(extract_features(model, images, batch_size=64), features, atol=1e-6)
    assert model.training
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # BN stats untouched


def test_mixed_submodule_modes_are_restored(images: torch.Tensor) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(144, 3))
    model.train()
    model[1].eval()
    extract_features(model, images)
    assert model.training and model[0].training and not model[1].training and model[2].training


def test_numpy_and_grey_inputs_and_preprocess(images: torch.Tensor) -> None:
    model = nn.Flatten()
    grey = images[:, 0].numpy()  # (N, H, W) uint8 numpy
    assert torch.allclose(extract_features(model, grey), images.reshape(13, -1).float() / 255)
    normalise = ImagePreprocess(mean=[0.5], std=[0.25])
    features = extract_features(model, images, preprocess=normalise)
    assert torch.allclose(features, (images.reshape(13, -1).float() / 255 - 0.5) / 0.25, atol=1e-6)
    floats = images.float() / 255  # float images are taken as already in [0, 1]
    assert torch.allclose(extract_features(model, floats), features * 0.25 + 0.5, atol=1e-6)
    assert torch.allclose(pixel_features(images, normalise), features)
    assert pixel_features(grey).shape == (13, 144)


def test_channels_last_and_bf16_autocast(images: torch.Tensor) -> None:
    model = SmallCNN(1, 12, width=4, feature_dim=16)
    reference = extract_features(model, images)
    fast = extract_features(model, images, channels_last=True, autocast_dtype=torch.bfloat16)
    assert fast.dtype == torch.float32
    assert (fast - reference).abs().max() < 0.1 * reference.abs().max()


def test_image_preprocess_checks() -> None:
    with pytest.raises(ValueError, match="both"):
        ImagePreprocess(mean=[0.5])
    with pytest.raises(ValueError, match="std"):
        ImagePreprocess(mean=[0.5], std=[0.0])
    with pytest.raises(ValueError, match="3 channel"):
        ImagePreprocess(mean=[0.5] * 3, std=[0.2] * 3)(torch.zeros(2, 1, 4, 4, dtype=torch.uint8))


def test_extract_features_checks(images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"\(batch, features\)"):
        extract_features(nn.Identity(), images)
    with pytest.raises(ValueError, match="shape"):
        extract_features(nn.Flatten(), images[0, 0])
    with pytest.raises(ValueError, match="batch_size"):
        extract_features(nn.Flatten(), images, batch_size=0)
    broken = nn.Sequential(nn.Flatten(), nn.Linear(144, 2))
    with torch.no_grad():
        broken[1].bias.fill_(float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        extract_features(broken, images)


def test_evaluate_features_combines_knn_and_probe() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8)) * 4
    train_y, test_y = np.repeat(np.arange(3), 30), np.repeat(np.arange(3), 10)
    train = centres[train_y] + rng.normal(size=(90, 8))
    test = centres[test_y] + rng.normal(size=(30, 8))
    result = evaluate_features(train, train_y, test, test_y)
    assert set(result) == {"knn_accuracy", "linear_accuracy", "linear_C", "linear_cv_accuracy"}
    assert result["knn_accuracy"] == knn_accuracy(train, train_y, test, test_y)
    probe = fit_linear_probe(train, train_y)
    assert result["linear_C"] == probe.C
    assert result["linear_accuracy"] == probe.score(test, test_y)
    assert set(evaluate_features(train, train_y, test, test_y, linear=False)) == {"knn_accuracy"}
