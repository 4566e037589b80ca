"""data_fingerprint: a function of the data's contents and splits; empty splits are fine."""

import torch

from contrastkit.data.containers import ArrayDataset, DatasetSplits
from contrastkit.data.fingerprint import data_fingerprint, describe_change


def _splits(x: torch.Tensor, test_rows: int) -> DatasetSplits:
    labels = torch.arange(x.shape[0]) % 2
    return DatasetSplits("d", ArrayDataset(x[test_rows:], labels[test_rows:]),
                         ArrayDataset(x[:test_rows], labels[:test_rows]), 2)


def test_contents_and_splits_change_the_fingerprint_and_an_empty_split_is_fine() -> None:
    x = torch.randn(10, 3)
    base = data_fingerprint(_splits(x, 2))
    assert data_fingerprint(_splits(x.clone(), 2)) == base
    changed = x.clone()
    changed[5, 1] += 1.0
    assert describe_change(base, data_fingerprint(_splits(changed, 2))) == (
        "the data differs from the data this run was trained on (same sizes, different contents)")
    empty_test = data_fingerprint(_splits(x, 0))  # a trainer given only training data
    assert empty_test["test"] == 0 and empty_test["sha256"] != base["sha256"]
    assert "test images 2 then, 0 now" in describe_change(base, empty_test)
