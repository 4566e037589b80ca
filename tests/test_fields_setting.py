"""The `fields` setting (issue 15, item 5): TrainConfig.fields / --fields / YAML `fields` names the fields of an
.npz that a run loads; the method must use each (a field loaded for nothing is an error, like any ignored setting);
a built-in data set holds one field; the fields are part of the data's identity (no resume with other fields)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from contrastkit.cli import main
from contrastkit.config import RESUMABLE_CHANGES, TrainConfig
from contrastkit.data import encode_texts, load_dataset
from contrastkit.methods.base import Batch, BatchSpec, Method, StepOutput
from contrastkit.methods.registry import register_method
from contrastkit.run import resolve_run
from contrastkit.settings import SettingsError

N = 48
CAPTIONS = ("a small dot", "two lines", "a ring", "noise")


pytestmark = pytest.mark.usefixtures("registry_restored")  # methods a test registers are gone after it


@pytest.fixture
def pairs(tmp_path) -> Path:
    """Float vectors x (N, 6), a caption per sample (text) and labels; split by load_dataset."""
    rng = np.random.default_rng(0)
    labels = np.arange(N) % 4
    path = tmp_path / "pairs.npz"
    np.savez(path, x=rng.normal(size=(N, 6)).astype(np.float32), caption=np.array([CAPTIONS[y] for y in labels]),
             y=labels)
    return path


def _train(capsys, *args: str) -> tuple[int, list[str]]:
    code = main(["train", *args, "--epochs", "1", "--batch-size", "16", "--no-progress"])
    return code, capsys.readouterr().err.strip().splitlines()


class ReadsCaption(Method):
    """Takes the inputs themselves and the caption of each sample; remembers the first batch's caption rows."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.batch_spec = BatchSpec(views=0, fields={"caption": 0})
        self.encoder = encoder
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, batch: Batch, group=None) -> StepOutput:
        caption = batch.field("caption")  # (B, L) uint8 bytes, as stored
        self.seen.append((batch.indices.cpu(), caption.cpu()))
        loss = (self.encoder(batch.views[0]).mean(1) - caption.float().mean(1) / 100).square().mean()
        return StepOutput(loss, logs={"loss": loss.detach()})


def test_two_fields_train_from_the_cli_and_the_method_gets_each_rows_caption(pairs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    built: list[ReadsCaption] = []
    register_method("reads_caption", lambda ctx, s: built.append(ReadsCaption(ctx.encoder)) or built[-1])
    code, err = _train(capsys, "--data", str(pairs), "--fields", "x,caption", "--method", "reads_caption",
                       "--out", str(tmp_path / "run"))
    assert code == 0, err
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["fields"] == "x,caption"
    train = load_dataset(pairs, fields="x,caption").train
    indices, caption = built[-1].seen[0]
    assert torch.equal(caption, train.field("caption")[indices])
    expected = encode_texts([CAPTIONS[int(y)] for y in train.labels[indices]])  # the captions written, row for row
    assert torch.equal(caption[:, :expected.shape[1]], expected)
    from contrastkit.report import evaluate_run

    metrics = evaluate_run(tmp_path / "run", baselines=False, plots=False, quiet=True)  # the saved fields load again
    assert metrics["method"] == "reads_caption" and "linear_acc" in metrics


def test_a_field_the_method_does_not_use_is_one_line_naming_it_and_the_method(pairs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = _train(capsys, "--data", str(pairs), "--fields", "x,caption", "--method", "simclr",
                       "--out", str(tmp_path / "run"))
    assert code == 2 and len(err) == 1, err
    assert re.fullmatch(r"contrastkit train: error: `fields` 'x,caption': field 'caption' is ignored by method "
                        r"'simclr', which asks for no such field \(its batch_spec.fields: none\), and evaluation "
                        r"embeds the default field 'x'; remove it \(fields: x\)", err[0]), err[0]
    assert not (tmp_path / "run").exists()


def test_the_same_from_yaml(pairs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "run.yaml"
    config.write_text("method: simclr\nfields: x,caption\n")
    code, err = _train(capsys, "--config", str(config), "--data", str(pairs), "--out", str(tmp_path / "run"))
    assert code == 2 and len(err) == 1 and "field 'caption' is ignored by method 'simclr'" in err[0], err


def test_without_fields_the_caption_key_is_refused_pointing_to_fields(pairs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = _train(capsys, "--data", str(pairs), "--method", "simclr", "--out", str(tmp_path / "run"))
    assert code == 2 and len(err) == 1, err
    assert "'caption'" in err[0] and "`fields`" in err[0] and "fields='x,caption'" in err[0], err[0]
    assert "--fields x,caption on the command line" in err[0], err[0]  # the flag a CLI user types


@pytest.mark.parametrize("fields", ["x,caption", "x=vectors", "image"])
def test_a_built_in_data_set_takes_no_fields(fields):
    with pytest.raises(SettingsError, match=rf"^`fields` '{fields}' is ignored by the built-in data set 'mnist5k', "
                                            r"which holds one field, x \(images\)"):
        resolve_run(TrainConfig(data="mnist5k", fields=fields))


@pytest.mark.parametrize("fields", ["x", "audio", "text,audio", "audio=vectors,text"])
def test_the_paired_built_in_sets_hold_audio_and_text(fields):
    with pytest.raises(SettingsError, match=rf"^`fields` '{fields}' is ignored by the built-in data set 'speech-text', "
                                            r"which holds the fields audio \(sequences\), text \(text\): "):
        resolve_run(TrainConfig(method="clip", data="speech-text", fields=fields))
    resolve_run(TrainConfig(method="clip", data="speech-text", fields="audio,text=text"))  # what it holds: no error


def test_fields_that_change_nothing_for_a_built_in_set_and_bad_text():
    assert resolve_run(TrainConfig(data="mnist5k", fields="x")).config.fields == "x"
    assert resolve_run(TrainConfig(data="toyspeech", method="cpc", fields="x=sequences")).config.fields \
        == "x=sequences"
    with pytest.raises(SettingsError, match=r"`fields` names 'x' twice"):
        resolve_run(TrainConfig(data="pairs.npz", fields="x,x"))
    with pytest.raises(SettingsError, match=r"`modality` must be 'auto' or one of"):
        resolve_run(TrainConfig(data="pairs.npz", fields="x=words"))


def test_fields_are_data_identity_and_text_is_a_modality():
    assert "fields" not in RESUMABLE_CHANGES
    assert TrainConfig(modality="text").modality == "text"


@pytest.mark.parametrize("modality", [[], ["--modality", "text"]])
def test_text_as_the_default_field_without_an_encoder_for_it_is_one_line(tmp_path, capsys, monkeypatch, modality):
    """Before, a built-in method on a text default field failed with KeyError: 'text' (a traceback)."""
    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "words.npz", x=np.array(["ab", "cd"] * 20), y=np.arange(40) % 2)
    code, err = _train(capsys, "--data", str(tmp_path / "words.npz"), *modality, "--out", str(tmp_path / "run"))
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("contrastkit train: error: no built-in encoder reads text (the default field 'x' of "), err
    assert not (tmp_path / "run").exists()
