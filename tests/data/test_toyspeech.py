"""toy_speech: the synthetic sequences' known factors (speaker pitch, phone labels) and determinism."""

import torch

from contrastkit.data.toyspeech import toy_speech, toy_speech_factors


def test_the_synthetic_factors_are_recoverable():
    """toyspeech's speakers are their pitch: an autocorrelation pitch estimate of each utterance lands within the
    +-3 % jitter (plus estimation error) of its speaker's base pitch, and is closer to it than to any other
    speaker's; each frame's label is one of the phones; the data is a function of the seed."""
    kw = dict(num_speakers=4, train_per_speaker=3, test_per_speaker=1, frames=40)
    data = toy_speech(seed=3, **kw)
    pitch = toy_speech_factors(seed=3, num_speakers=4)["pitch"]
    assert data.train.frame_labels.shape == (12, 40) and data.train.frame_hop == 160
    assert set(data.train.frame_labels.unique().tolist()) <= set(range(10))
    x = data.train.x[:, 0].double()
    x = x - x.mean(1, keepdim=True)
    spectrum = torch.fft.rfft(x, n=2 * x.shape[1])
    autocorrelation = torch.fft.irfft(spectrum.abs() ** 2)[:, : x.shape[1]]
    lags = torch.arange(16000 // 260, 16000 // 75)  # periods of 75-260 Hz
    estimate = 16000 / lags[autocorrelation[:, lags].argmax(1)].double()
    truth = torch.tensor(pitch)[data.train.labels]
    assert bool(((estimate / truth - 1).abs() < 0.06).all()), (estimate, truth)
    nearest = (estimate[:, None] - torch.tensor(pitch)[None, :]).abs().argmin(1)
    assert torch.equal(nearest, data.train.labels)
    assert toy_speech(seed=3, **kw).train.x.equal(data.train.x) and not toy_speech(seed=4, **kw).train.x.equal(
        data.train.x)
