"""The two-tower methods clip and siglip: the loss of a step equals the library's loss on the two towers'
normalised projections; the settings reach the parts; the fields are found in the data or refused in one line;
training pairs tones with their words; a stopped run resumes exactly."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from contrastkit.config import TrainConfig
from contrastkit.data.containers import ArrayDataset, DatasetSplits
from contrastkit.data.text import encode_texts
from contrastkit.losses import clip_loss, siglip_loss
from contrastkit.methods.base import Batch, BuildContext, check_method
from contrastkit.methods.two_tower import TwoTowerMethod, TwoTowerSettings, build_clip, build_siglip
from contrastkit.run import build_run, resolve_run
from contrastkit.settings import SettingsError
from contrastkit.train import Trainer
from tests.helpers import assert_same_state, train_in_two_sessions

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _tones(n: int, seed: int, length: int = 3200) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy tones of 16 kHz audio (n, length), the tone's class k in 0..9 at 300 + 250 k Hz, and the labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    t = np.arange(length) / 16_000
    audio = np.sin(2 * np.pi * (300 + 250 * labels[:, None]) * t) + 0.3 * rng.standard_normal((n, length))
    return (0.5 * audio).astype(np.float32), labels


@pytest.fixture(scope="module")
def tones_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    audio, labels = _tones(160, 0)
    path = tmp_path_factory.mktemp("pairs") / "tones.npz"
    np.savez(path, audio=audio, text=np.array([WORDS[k] for k in labels]))
    return path


def _splits(fields: dict[str, torch.Tensor], name: str = "pairs") -> DatasetSplits:
    part = ArrayDataset.from_fields(fields)
    return DatasetSplits(name, part, part, 0)


def _vector_method(loss: str, **settings: object) -> TwoTowerMethod:
    torch.manual_seed(0)
    data = _splits({"x": torch.randn(8, 5), "text": encode_texts([f"text {i}" for i in range(8)])})
    s = TwoTowerSettings(**{"temperature": 0.07 if loss == "clip" else 0.1, **settings})  # type: ignore[arg-type]
    encoder = nn.Linear(5, 6)
    build = build_clip if loss == "clip" else build_siglip
    return build(BuildContext(encoder, 6, seed=0, data=data), s)


@pytest.mark.parametrize("loss", ["clip", "siglip"])
def test_a_step_is_the_library_loss_of_the_normalised_projections(loss: str) -> None:
    method = _vector_method(loss)
    check_method(method)
    x, text = torch.randn(8, 5), encode_texts([f"pair number {i}" for i in range(8)])
    out = method(Batch([x], torch.arange(8), fields={"text": [text]}))
    za = F.normalize(method.head(method.encoder(x)), dim=1)
    zb = F.normalize(method.pair_head(method.pair_encoder(text)), dim=1)
    if loss == "clip":
        expected = clip_loss(za, zb, math.log(1 / 0.07))
        assert set(out.logs) == {"loss", "logit_scale"}
    else:
        expected = siglip_loss(za, zb, math.log(10.0), -10.0)
        assert set(out.logs) == {"loss", "logit_scale", "bias"}
        assert out.logs["bias"].item() == pytest.approx(-10.0)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert out.logs["logit_scale"].item() == pytest.approx(1 / 0.07 if loss == "clip" else 10.0, rel=1e-5)
    out.loss.backward()
    assert method.pair_encoder.embedding.weight.grad is not None and method.encoder.weight.grad is not None


def test_the_settings_reach_the_parts() -> None:
    method = _vector_method("clip", out_dim=7, head_layers=2, head_hidden=9, learnable_temperature=False)
    assert method.paired_fields == ("x", "text") and method.batch_spec.fields == {"text": 0}
    assert method.batch_spec.views == 0
    assert method.embed("text", encode_texts(["a", "bb"])).shape == (2, 7)
    assert [m.out_features for m in method.head.modules() if isinstance(m, nn.Linear)] == [9, 7]
    assert not any(p.requires_grad for p in method.scale.parameters())
    norms = method.embed("x", torch.randn(3, 5)).norm(dim=1)
    assert torch.allclose(norms, torch.ones(3))
    with pytest.raises(ValueError, match=r"no tower reads field 'image'; its fields are \('x', 'text'\)"):
        method.embed("image", torch.randn(3, 5))


def test_the_fields_come_from_the_data_or_a_one_line_error() -> None:
    s = TwoTowerSettings()
    encoder = nn.Linear(5, 6)
    one = _splits({"x": torch.randn(4, 5)}, "single")
    with pytest.raises(SettingsError, match=r"method 'clip' needs two fields of each sample, and 'single' has 1 \(x\); "
                                            r"load a second one with `fields`"):
        build_clip(BuildContext(encoder, 6, data=one), s)
    three = _splits({"x": torch.randn(4, 5), "title": encode_texts(list("abcd")), "body": encode_texts(list("efgh"))})
    with pytest.raises(SettingsError, match=r"name the second with `pair_field` \(one of title, body\)"):
        build_clip(BuildContext(encoder, 6, data=three), s)
    with pytest.raises(SettingsError, match=r"`pair_field` 'caption': the data 'pairs' has no such further field"):
        build_clip(BuildContext(encoder, 6, data=three), TwoTowerSettings(pair_field="caption"))
    method = build_clip(BuildContext(encoder, 6, data=three), TwoTowerSettings(pair_field="body"))
    assert method.paired_fields == ("x", "body")
    with pytest.raises(SettingsError, match=r"pairs two fields of the data; build it through build_run"):
        build_clip(BuildContext(encoder, 6), s)


@pytest.mark.parametrize(("method", "options", "match"), [
    ("clip", {"sigmoid_bias": -5.0}, r"`sigmoid_bias` -5.0 is ignored by method 'clip'"),
    ("siglip", {"memory_efficient": True}, r"`memory_efficient` is ignored by method 'siglip'"),
    ("clip", {"head_hidden": 64}, r"`head_hidden` 64 is ignored by a one-layer \(linear\) projection head"),
])
def test_a_setting_the_method_ignores_is_an_error(method: str, options: dict, match: str) -> None:
    with pytest.raises(SettingsError, match=match):
        resolve_run(TrainConfig(method=method, data="speech-text", method_options=options))
    if "head_hidden" in options:  # with a hidden layer it is used
        resolve_run(TrainConfig(method=method, data="speech-text", method_options={**options, "head_layers": 2}))


def _trainer(path: Path, out: Path, method: str = "clip", epochs: int = 12) -> Trainer:
    return Trainer.from_config(TrainConfig(method=method, data=str(path), fields="audio=sequences,text", epochs=epochs,
                                           batch_size=32, out=str(out), progress=False, num_threads=1,
                                           precision="fp32", seed=0))


@pytest.mark.parametrize("method", ["clip", "siglip"])
def test_training_pairs_each_tone_with_its_word(method: str, tones_npz: Path, tmp_path: Path) -> None:
    trainer = _trainer(tones_npz, tmp_path / method, method)
    model = trainer.method
    assert model.paired_fields == ("audio", "text") and trainer.config.encoder == "mel_cnn"
    trainer.fit()
    model.eval()
    audio, labels = _tones(50, 1)
    words = encode_texts(list(WORDS))
    scores = model.embed("audio", torch.from_numpy(audio)[:, None]) @ model.embed("text", words).T  # (50, 10)
    accuracy = (scores.argmax(1).numpy() == labels).mean()
    assert accuracy >= 0.9, accuracy  # chance 0.1: the towers learned which word goes with which tone


def test_a_stopped_clip_run_resumes_exactly(tones_npz: Path, tmp_path: Path) -> None:
    straight = _trainer(tones_npz, tmp_path / "straight", epochs=2)
    straight.fit()
    resumed = train_in_two_sessions(lambda: _trainer(tones_npz, tmp_path / "resumed", epochs=2), stop_after=5)
    assert_same_state(straight.method, resumed.method)


def test_build_run_gives_speech_a_mel_tower_and_text_a_byte_tower(tones_npz: Path) -> None:
    run = build_run(TrainConfig(method="siglip", data=str(tones_npz), fields="audio=sequences,text", batch_size=32))
    assert type(run.method.encoder).__name__ == "MelCNN" and type(run.method.pair_encoder).__name__ == "ByteCNN"
    assert run.config.encoder == "mel_cnn"
    with pytest.raises(ValueError, match=r"encoder 'small_cnn' is for images, but field 'text' of .* holds text"):
        build_run(TrainConfig(method="clip", data=str(tones_npz), fields="audio=sequences,text",
                              batch_size=32, method_options={"pair_encoder": "small_cnn"}))
