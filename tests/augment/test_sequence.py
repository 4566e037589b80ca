"""Random 1-D crops of sequences (contrastkit.augment.sequence.RandomCrop1d).

Rules checked: a crop of length L of a (B, C, T) batch is the window ``x[b, :, s:s + L]`` of each sample, one
start s per sample (the same for every channel), drawn uniformly from [0, T - L] with the given generator (same
state, same crops); ``length=None`` (or L = T) keeps whole sequences; L > T is an error; ``noise`` adds
``noise * std(sample) * N(0, 1)``.

Inputs are built so that a value names its position: ``x[b, c, t] = 10000 b + 1000 c + t``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from contrastkit.augment.sequence import RandomCrop1d


def _positions(b: int, c: int, t: int) -> torch.Tensor:
    return (10000 * torch.arange(b)[:, None, None] + 1000 * torch.arange(c)[None, :, None]
            + torch.arange(t)[None, None, :]).float()


def _starts(view: torch.Tensor, x: torch.Tensor) -> np.ndarray:
    """Check that every crop is a contiguous window of its own sample, shared by its channels; return starts."""
    b, c, length = view.shape
    t = x.shape[2]
    starts = np.empty(b, dtype=np.int64)
    for i in range(b):
        s = int(view[i, 0, 0].item()) - 10000 * i
        assert 0 <= s <= t - length, f"sample {i}: start {s} outside [0, {t - length}]"
        for ch in range(c):
            assert torch.equal(view[i, ch], x[i, ch, s:s + length]), f"sample {i}, channel {ch}"
        starts[i] = s
    return starts


@pytest.mark.parametrize(("b", "c", "t", "length"), [(16, 1, 20, 5), (8, 3, 9, 1), (8, 2, 10, 9)])
def test_crops_are_windows_of_their_own_sample(b, c, t, length, gen) -> None:
    x = _positions(b, c, t)
    view = RandomCrop1d(length)(x, gen)
    assert view.shape == (b, c, length) and view.dtype == torch.float32
    _starts(view, x)


def test_starts_cover_zero_to_t_minus_l_uniformly(gen) -> None:
    t, length, b = 12, 7, 6000
    x = _positions(1, 2, t).expand(b, -1, -1) - 0.0  # every sample the same; the start is view[:, 0, 0]
    view = RandomCrop1d(length)(x, gen)
    starts = view[:, 0, 0].long().numpy()
    assert torch.equal(view, x.gather(2, torch.from_numpy(starts)[:, None, None] + torch.arange(length)
                                      .expand(b, 2, -1)))
    counts = np.bincount(starts, minlength=t - length + 1)
    assert len(counts) == t - length + 1  # nothing beyond T - L
    k = t - length + 1  # 6 starts, each with probability 1/6
    p = 1 / k
    sd = math.sqrt(b * p * (1 - p))
    assert (counts > 0).all()  # both ends (0 and T - L) are drawn
    assert np.abs(counts - b * p).max() < 6 * sd, counts


def test_each_sample_draws_its_own_start(gen) -> None:
    x = _positions(200, 1, 50)
    starts = _starts(RandomCrop1d(10)(x, gen), x)
    assert len(set(starts.tolist())) > 10


def test_same_generator_state_gives_the_same_crops() -> None:
    x = _positions(32, 2, 40)
    crop = RandomCrop1d(8, noise=0.1)
    first = crop(x, torch.Generator().manual_seed(3))
    assert torch.equal(first, crop(x, torch.Generator().manual_seed(3)))
    assert not torch.equal(first, crop(x, torch.Generator().manual_seed(4)))


@pytest.mark.parametrize("length", [None, 15])
def test_whole_sequences_when_length_is_none_or_t(length, gen) -> None:
    x = torch.randn(4, 2, 15, dtype=torch.float64)
    view = RandomCrop1d(length)(x, gen)
    assert view.dtype == torch.float32 and torch.equal(view, x.float())


def test_length_longer_than_the_sequences_is_refused(gen) -> None:
    with pytest.raises(ValueError, match=r"crop length 11 is longer than the sequences \(10\)"):
        RandomCrop1d(11)(torch.zeros(2, 1, 10), gen)


def test_noise_is_scaled_by_each_samples_std(gen) -> None:
    t = 4000
    x = torch.randn(2, 1, t, dtype=torch.float64) * torch.tensor([0.5, 20.0], dtype=torch.float64)[:, None, None]
    view = RandomCrop1d(None, noise=0.2)(x, gen).double()
    for i in range(2):
        expected = 0.2 * x[i].std().item()
        got = (view[i] - x[i]).std().item()
        assert abs(got / expected - 1) < 0.07, (i, got, expected)  # ~1.1 % sd for 4,000 draws


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"length": 0}, "`length` must be None or an integer >= 1"),
    ({"length": True}, "`length` must be None or an integer >= 1"),
    ({"length": 2.0}, "`length` must be None or an integer >= 1"),
    ({"length": 4, "noise": -0.5}, "`noise` must be >= 0"),
])
def test_constructor_errors(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        RandomCrop1d(**kwargs)


@pytest.mark.parametrize("x", [torch.zeros(4, 10), torch.zeros(2, 1, 3, 10)])
def test_input_must_be_three_dimensional(x) -> None:
    with pytest.raises(ValueError, match=r"expected \(B, C, T\)"):
        RandomCrop1d(3)(x)
