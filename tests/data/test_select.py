"""The `classes` option: a subset of the classes, selected after the split, renumbered in the data's order."""

import pytest
import torch

from contrastkit.config import TrainConfig
from contrastkit.data import load_dataset
from contrastkit.data.select import parse_classes
from contrastkit.settings import SettingsError


def test_digits_4_and_9_keep_their_split_and_are_renumbered():
    whole = load_dataset("digits")
    some = load_dataset("digits", classes="9, 4")  # written in any order: the data's order is kept
    assert some.num_classes == 2 and some.class_names == ("4", "9")
    for part, full, indices, full_indices in ((some.train, whole.train, some.train_indices, whole.train_indices),
                                              (some.test, whole.test, some.test_indices, whole.test_indices)):
        keep = (full.labels == 4) | (full.labels == 9)
        assert torch.equal(part.x, full.x[keep])
        assert torch.equal(part.labels, (full.labels[keep] == 9).long())
        assert (indices == full_indices[keep.numpy()]).all()
    assert torch.equal(load_dataset("digits", classes=["4", "9"]).train.x, some.train.x)


@pytest.mark.parametrize(("classes", "message"), [
    ("4,x", "has no class named \\['x'\\]"),
    ("4,4", "names \\['4'\\] more than once"),
    ("4,,9", "at least one class, without empty names"),
    (4, "comma-separated string of class names"),
])
def test_bad_classes_are_refused_in_one_line(classes, message):
    with pytest.raises((ValueError, TypeError), match=message):
        load_dataset("digits", classes=classes)


def test_the_config_setting_is_a_string():
    assert TrainConfig(classes="4,9").classes == "4,9"
    assert parse_classes(" 4 ,9") == ("4", "9")
    with pytest.raises(SettingsError, match="`classes`"):
        TrainConfig.from_dict({"classes": 4})
