"""The sequence encoder (contrastkit.models.sequence.Conv1dEncoder).

Rules checked: ``forward`` is the mean over time of ``steps`` (N, width, T'); each layer is a Conv1d of kernel k
(default 2 s), stride s and padding ``(k - s + 1) // 2``, so T' follows the convolution length formula
``floor((T + 2 p - k) / s) + 1`` applied layer by layer; the rule verified for the downsampling is the exact
one: with the default kernels, T' = T / prod(strides) whenever T is a multiple of prod(strides) (40 for the
default (5, 4, 2)), and for any other T the formula's value, which lies within one step of T / prod(strides).
"""

from __future__ import annotations

import math

import pytest
import torch

from contrastkit.models.sequence import Conv1dEncoder


def _length(t: int, strides: tuple[int, ...], kernels: tuple[int, ...]) -> int:
    for s, k in zip(strides, kernels, strict=True):
        t = (t + 2 * ((k - s + 1) // 2) - k) // s + 1
    return t


@pytest.mark.parametrize("strides", [(5, 4, 2), (2, 2), (3,), (4, 3)])
@pytest.mark.parametrize("multiple", [1, 2, 7])
def test_steps_downsample_by_the_product_of_strides(strides, multiple) -> None:
    product = math.prod(strides)
    encoder = Conv1dEncoder(in_channels=2, width=8, strides=strides).eval()
    t = multiple * product
    steps = encoder.steps(torch.randn(3, 2, t))
    assert steps.shape == (3, 8, t // product)


@pytest.mark.parametrize("t", [41, 57, 99, 123, 400, 1001])
def test_steps_length_for_other_lengths(t) -> None:
    encoder = Conv1dEncoder().eval()
    steps = encoder.steps(torch.randn(2, 1, t))
    expected = _length(t, (5, 4, 2), (10, 8, 4))
    assert steps.shape == (2, 64, expected)
    assert abs(expected - t / 40) <= 1


def test_explicit_kernels() -> None:
    encoder = Conv1dEncoder(in_channels=1, width=4, strides=(2, 3), kernels=(5, 3)).eval()
    assert [m.kernel_size[0] for m in encoder.modules() if isinstance(m, torch.nn.Conv1d)] == [5, 3]
    assert encoder.steps(torch.randn(1, 1, 60)).shape == (1, 4, _length(60, (2, 3), (5, 3)))


def test_forward_is_the_mean_of_steps_over_time() -> None:
    encoder = Conv1dEncoder(in_channels=3, width=16).eval()
    x = torch.randn(4, 3, 200)
    out = encoder(x)
    assert out.shape == (4, 16) and encoder.feature_dim == 16
    steps = encoder.steps(x).double()
    expected = torch.stack([sum(steps[:, :, j] for j in range(steps.shape[2])) / steps.shape[2]])[0]
    assert torch.allclose(out.double(), expected, atol=1e-6)


def test_a_sequence_shorter_than_the_receptive_field_still_gives_features() -> None:
    # receptive field of the default layers: 10 + 7 * 5 + 3 * 20 = 105 samples; 80 < 105 is padded
    encoder = Conv1dEncoder().eval()
    assert encoder(torch.randn(2, 1, 80)).shape == (2, 64)


def test_kernel_count_must_match_strides() -> None:
    with pytest.raises(ValueError, match="one kernel per stride"):
        Conv1dEncoder(strides=(2, 2), kernels=(4,))
    with pytest.raises(ValueError, match="one kernel per stride"):
        Conv1dEncoder(strides=())


def test_sequences_shorter_than_the_receptive_field_are_refused_clearly():
    encoder = Conv1dEncoder()
    assert encoder.min_length == 39  # strides (5, 4, 2), kernels (10, 8, 4): the shortest input giving one step
    assert encoder(torch.zeros(2, 1, 39)).shape == (2, 64)
    with pytest.raises(ValueError, match=r"T >= 39"):
        encoder(torch.zeros(2, 1, 38))
