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
    middle_c,
    pixel_features,
)
from contrastkit.models import SmallCNN
from tests.references import fit_standardised_logistic


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
    assert set(result) == {"knn_accuracy", "knn_k", "linear_accuracy", "linear_C", "linear_cv_accuracy",
                           "linear_folds", "notes"}
    assert result["knn_accuracy"] == knn_accuracy(train, train_y, test, test_y)
    assert result["knn_k"] == 20 and result["linear_folds"] == 5 and result["notes"] == []
    probe = fit_linear_probe(train, train_y)
    assert result["linear_C"] == probe.C and result["linear_cv_accuracy"] == probe.cv_accuracy
    assert result["linear_accuracy"] == probe.score(test, test_y)
    assert set(evaluate_features(train, train_y, test, test_y, linear=False)) == {"knn_accuracy", "knn_k", "notes"}


def _clusters(per_class: list[int], seed: int = 0, dim: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Well separated Gaussian clusters; ``per_class[c]`` samples of class c."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(per_class)), per_class)
    return np.eye(len(per_class), dim)[y] * 6 + rng.normal(size=(y.size, dim)), y


def test_tiny_train_split_lowers_the_default_k_and_says_so() -> None:
    # a 10-image run: 8 train / 2 test once failed with "k must be in [1, 8]" and no way to set k
    train, train_y = _clusters([4, 4])
    test, test_y = _clusters([1, 1], seed=1)
    result = evaluate_features(train, train_y, test, test_y)
    assert result["knn_k"] == 8
    assert result["knn_accuracy"] == knn_accuracy(train, train_y, test, test_y, k=8)
    assert "kNN used k = 8 instead of the default 20: the train split has only 8 samples" in result["notes"]
    assert result["linear_folds"] == 4  # the smallest class has 4 samples
    assert "linear probe: CV folds lowered from 5 to 4: class 0 has only 4 training samples" in result["notes"]


def test_explicit_knn_k_is_used_as_given_or_refused() -> None:
    train, train_y = _clusters([4, 4])
    test, test_y = _clusters([2, 2], seed=1)
    result = evaluate_features(train, train_y, test, test_y, knn_k=3, linear=False)
    assert result["knn_k"] == 3 and result["notes"] == []
    assert result["knn_accuracy"] == knn_accuracy(train, train_y, test, test_y, k=3)
    with pytest.raises(ValueError, match=r"`knn_k` = 20 is more than the 8 samples of the train split; use knn_k <= 8"):
        evaluate_features(train, train_y, test, test_y, knn_k=20)
    for bad in (0, -1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="`knn_k` must be an integer >= 1"):
            evaluate_features(train, train_y, test, test_y, knn_k=bad)


def test_single_class_skips_the_probe_with_a_reason_and_keeps_knn() -> None:
    train, _ = _clusters([6, 6])
    test, _ = _clusters([2, 2], seed=1)
    ones_train, ones_test = np.full(12, 3), np.full(4, 3)
    result = evaluate_features(train, ones_train, test, ones_test)
    assert result["knn_accuracy"] == 1.0 and result["knn_k"] == 12
    assert result["linear_accuracy"] is None and result["linear_C"] is None
    assert result["linear_cv_accuracy"] is None and result["linear_folds"] is None
    assert ("linear probe skipped: the train split holds a single class (3); a probe needs at least two"
            in result["notes"])


def test_a_class_with_one_train_image_fits_without_cv_and_says_so() -> None:
    train, train_y = _clusters([5, 5, 1])
    test, test_y = _clusters([2, 2, 2], seed=1)
    result = evaluate_features(train, train_y, test, test_y)
    assert result["linear_C"] == middle_c() == 0.1
    assert result["linear_folds"] == 0 and result["linear_cv_accuracy"] is None
    scaler, model = fit_standardised_logistic(train, train_y, C=0.1)  # independent: plain scikit-learn at C = 0.1
    assert result["linear_accuracy"] == float(np.mean(model.predict(scaler.transform(test)) == test_y))
    assert any(note.startswith("linear probe: no cross-validation: class 2 has a single training sample")
               and "C = 0.1, the middle of the grid" in note for note in result["notes"])
    assert result["knn_k"] == 11


def test_test_classes_missing_from_train_are_noted_and_empty_test_scores_nothing() -> None:
    train, train_y = _clusters([4, 4, 4])
    test, test_y = _clusters([1, 1, 1, 1], seed=1)  # class 3 only in test
    result = evaluate_features(train, train_y, test, test_y)
    assert ("test class(es) 3 never occur in the train split: no classifier can predict them"
            in result["notes"])
    empty = evaluate_features(train, train_y, test[:0], test_y[:0])
    assert empty["knn_accuracy"] is None and empty["linear_accuracy"] is None
    assert empty["notes"][-1] == "nothing scored: the test split is empty"


def test_large_class_ids_cost_no_memory() -> None:
    # kNN once allocated (test rows x (max id + 1)) votes: 10**12 ids would need terabytes
    train, train_y = _clusters([6, 6])
    test, test_y = _clusters([3, 3], seed=1)
    big = np.array([7, 10**12])
    result = evaluate_features(train, big[train_y], test, big[test_y])
    plain = evaluate_features(train, train_y, test, test_y)
    assert result["knn_accuracy"] == plain["knn_accuracy"] == 1.0
    assert result["linear_accuracy"] == plain["linear_accuracy"]


def test_notes_name_classes_by_their_names_when_given() -> None:
    train, _ = _clusters([6, 6])
    test, _ = _clusters([2, 2], seed=1)
    result = evaluate_features(train, np.zeros(12, dtype=int), test, np.array([0, 0, 1, 1]),
                               class_names=("4", "1000000000"))
    assert ("linear probe skipped: the train split holds a single class ('4'); a probe needs at least two"
            in result["notes"])
    assert ("test class(es) '1000000000' never occur in the train split: no classifier can predict them"
            in result["notes"])
    train, train_y = _clusters([5, 5, 1])
    result = evaluate_features(train, train_y, test, np.array([0, 1, 2, 2]), class_names=("cat", "dog", "eel"))
    assert any("class 'eel' has a single training sample" in note for note in result["notes"])
