"""A dataset's own augmentation preset (``DatasetSplits.augment``) is the default of a run that names none."""

from __future__ import annotations

import pytest

from contrastkit.augment.pipeline import OBJECT_CROP_SCALE
from contrastkit.config import TrainConfig
from contrastkit.data import load_dataset
from contrastkit.data.builtin import DATA_ENV
from contrastkit.run import build_run
from tests.data.idx_files import tiny_set, write_idx_folder


@pytest.fixture
def tiny_fashion(tmp_path, monkeypatch):
    """A 10-class, 8 x 8 stand-in for fashion-mnist under $CONTRASTKIT_DATA (the real files are not needed)."""
    write_idx_folder(tmp_path / "fashion-mnist", *tiny_set(classes=10, train_per_class=3, test_per_class=1))
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    return tmp_path


def _run(tmp_path, **settings):
    config = TrainConfig(method="simclr", out=str(tmp_path / "run"), epochs=1, batch_size=8, device="cpu", **settings)
    return build_run(config)


def test_fashion_mnist_defaults_to_the_objects_preset(tiny_fashion) -> None:
    assert load_dataset("fashion-mnist").augment == "objects"
    assert load_dataset("fashion-mnist", classes="Bag,Coat").augment == "objects"  # kept by class selection
    run = _run(tiny_fashion, data="fashion-mnist")
    assert run.config.augment == "objects"  # recorded in the config: eval and resume use the same views
    assert run.augment.crop.flip_p == 0.5 and run.augment.crop.scale == (OBJECT_CROP_SCALE, 1.0)
    assert run.augment.crop.size == (8, 8)


def test_a_named_augmentation_wins_over_the_datas(tiny_fashion) -> None:
    run = _run(tiny_fashion, data="fashion-mnist", augment="mnist")
    assert run.config.augment == "mnist" and run.augment.crop.flip_p == 0.0


def test_other_data_keeps_the_modalitys_default(tmp_path) -> None:
    assert load_dataset("digits").augment is None
    assert _run(tmp_path, data="digits").config.augment == "mnist"
    # an IDX folder given by path is not known to hold objects: the gray-image default (no flips)
    folder = write_idx_folder(tmp_path / "idx", *tiny_set(classes=3))
    assert load_dataset(str(folder)).augment is None


def test_a_trainer_built_from_parts_takes_the_datas_preset(tiny_fashion) -> None:
    from contrastkit.methods.registry import build_method
    from contrastkit.models.encoders import SmallCNN
    from contrastkit.train import Trainer

    data = load_dataset("fashion-mnist")
    encoder = SmallCNN(1, 8, width=2, feature_dim=8)
    method = build_method("simclr", encoder, encoder.feature_dim)
    config = TrainConfig(method="simclr", data="fashion-mnist", out=str(tiny_fashion / "parts"), epochs=1, batch_size=8,
                         device="cpu")
    assert Trainer(method, data, config).batches.augment.crop.flip_p == 0.5
    mnist = Trainer(method, data, config.replace(augment="mnist")).batches.augment
    assert mnist.crop.flip_p == 0.0
