"""run.check_batching reads the method's declared capabilities (crop, split_bn, check_sequence_length) and checks the
crop against every sequence field the method's batch_spec names, not only the default field (issue 15, items 2, 5)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from contrastkit.data import ArrayDataset
from contrastkit.methods import Method
from contrastkit.methods.base import Batch, BatchSpec, StepOutput
from contrastkit.run import check_batching
from contrastkit.settings import SettingsError

N = 12


class Cropping(Method):
    """Asks for a crop of ``crop`` steps and the further fields ``fields`` (views 0)."""

    def __init__(self, crop: int, fields: tuple[str, ...] = (), split_bn: int = 0) -> None:
        super().__init__()
        self.batch_spec = BatchSpec(views=0, crop=crop, fields=dict.fromkeys(fields, 0))
        self.encoder = nn.Flatten()
        self.split_bn = split_bn
        self.lengths_seen: list[int] = []

    def forward(self, batch: Batch, group=None) -> StepOutput:
        raise AssertionError("not trained here")

    def check_sequence_length(self, length: int) -> None:
        self.lengths_seen.append(length)


def _vectors_and_audio(steps: int) -> ArrayDataset:
    """Default field: float vectors (N, 4); field ``audio``: float sequences (N, 1, steps); a text field ``caption``."""
    return ArrayDataset(torch.zeros(N, 4), torch.zeros(N, dtype=torch.int64),
                        extra_fields={"audio": torch.zeros(N, 1, steps),
                                      "caption": torch.zeros(N, 5, dtype=torch.uint8)})


def test_crop_longer_than_a_further_sequence_field_is_refused_naming_it() -> None:
    data = _vectors_and_audio(steps=30)
    with pytest.raises(SettingsError, match=r"^`crop` 40 is longer than the 30-step sequences of field 'audio' of "
                                            r"'pairs.npz'; use a crop of at most 30$"):
        check_batching(8, Cropping(40, fields=("audio",)), N, "pairs.npz", None, train=data)


def test_crop_that_fits_every_sequence_field_passes() -> None:
    data = _vectors_and_audio(steps=30)
    check_batching(8, Cropping(30, fields=("audio", "caption")), N, "pairs.npz", None, train=data)  # 30 <= 30
    # a field the method does not name is not cropped, so not checked
    check_batching(8, Cropping(40), N, "pairs.npz", None, train=data)


def test_default_field_crop_and_the_methods_own_length_check() -> None:
    method = Cropping(20)
    with pytest.raises(SettingsError, match=r"^`crop` 20 is longer than the 16-step sequences of 'seqs'; use a crop "
                                            r"of at most 16$"):
        check_batching(8, method, N, "seqs", 16)
    check_batching(8, method, N, "seqs", 25)
    assert method.lengths_seen == [25]  # the declared check_sequence_length, with the default field's length


def test_split_bn_is_read_as_declared() -> None:
    with pytest.raises(SettingsError, match=r"`split_bn` 3 needs a batch size that is a multiple of it .* is 8$"):
        check_batching(8, Cropping(4, split_bn=3), N, "seqs", 16)
    check_batching(9, Cropping(4, split_bn=3), N, "seqs", 16)  # 3 groups of 3
