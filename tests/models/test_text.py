"""The byte-level text tower: features of a text do not depend on the batch's padding or on the other texts of the
batch; token ids are refused in one line; gradients reach the byte embedding."""

from __future__ import annotations

import pytest
import torch

from contrastkit.data.text import encode_texts
from contrastkit.models.text import ByteCNN


def test_features_ignore_padding_and_the_rest_of_the_batch() -> None:
    torch.manual_seed(0)
    tower = ByteCNN(width=16, depth=3)
    texts = encode_texts(["seven red apples", "a"])  # (2, 16)
    padded = torch.cat([texts, torch.zeros(2, 9, dtype=torch.uint8)], dim=1)
    alone = tower(encode_texts(["a"]))
    for mode in (True, False):  # no statistics over the batch: train and eval mode agree
        tower.train(mode)
        out = tower(texts)
        assert out.shape == (2, 16)
        assert torch.allclose(out, tower(padded), atol=1e-6)
        assert torch.allclose(out[1], alone[0], atol=1e-6)
    assert not torch.allclose(out[0], out[1])


def test_word_order_and_spelling_change_the_features() -> None:
    torch.manual_seed(0)
    tower = ByteCNN(width=32)
    a, b, c = tower(encode_texts(["seven cats", "cats seven", "seven bats"]))
    assert not torch.allclose(a, c)  # one byte differs
    assert (a - b).abs().max() > 1e-4  # the order of the words


def test_token_ids_and_bad_sizes_are_refused() -> None:
    tower = ByteCNN(width=8)
    with pytest.raises(ValueError, match=r"ByteCNN: expects UTF-8 bytes, uint8 \(N, L\) padded with 0, got "
                                         r"torch.int32 \(2, 3\) \(token ids need a text encoder of their own"):
        tower(torch.ones(2, 3, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"ByteCNN: `depth` must be an integer >= 1, got 0"):
        ByteCNN(depth=0)


def test_gradients_reach_the_embedding_of_the_bytes_used() -> None:
    tower = ByteCNN(width=8)
    tower(encode_texts(["ab"])).sum().backward()
    grad = tower.embedding.weight.grad
    used = {ord("a"), ord("b")}
    assert all(grad[i].abs().sum() > 0 for i in used)
    assert grad[ord("z")].abs().sum() == 0 and grad[0].abs().sum() == 0  # padding and unused bytes: none
