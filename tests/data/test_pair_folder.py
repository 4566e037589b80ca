"""Folders of pairs (contrastkit.data.pairfolder): name.png / name.wav beside name.txt, loaded as two fields."""

from __future__ import annotations

import re
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from contrastkit.data import decode_texts, load_dataset
from contrastkit.data.pairfolder import PairFolderError, load_pair_folder
from contrastkit.data.split import stratified_split


def _png(path: Path, value: int, size: tuple[int, int] = (6, 4), mode: str = "RGB") -> None:
    """A constant image of ``value``, ``size`` = (W, H)."""
    Image.new(mode, size, (value,) * 3 if mode == "RGB" else value).save(path)


def _wav(path: Path, samples: np.ndarray, rate: int = 16_000) -> None:
    """Mono 16-bit PCM."""
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(np.asarray(samples, dtype="<i2").tobytes())


def _image_pairs(root: Path, n: int) -> dict[str, int]:
    """``n`` constant RGB images p00.png .. with texts "picture k" (whitespace around them); text -> value."""
    root.mkdir(parents=True, exist_ok=True)
    values = {}
    for k in range(n):
        _png(root / f"p{k:02d}.png", 10 * k)
        (root / f"p{k:02d}.txt").write_text(f"\n  picture {k}\t \n", encoding="utf-8")
        values[f"picture {k}"] = 10 * k
    return values


# --- images ----------------------------------------------------------------------------------------------------------

def test_image_pairs_load_as_image_and_text_fields_in_the_seeded_split(tmp_path: Path) -> None:
    root = tmp_path / "pics"
    values = _image_pairs(root, 10)
    data = load_dataset(str(root), test_fraction=0.3, seed=3)
    assert data.field_names == ("image", "text")
    assert (data.field_modality("image"), data.field_modality("text")) == ("images", "text")
    assert data.train.field("image").dtype == torch.uint8 and data.train.field("image").shape == (7, 3, 4, 6)
    assert data.test.field("image").shape == (3, 3, 4, 6)
    assert not data.has_labels and data.name == "pics"
    # the split: the one stratified_split gives for 10 unlabelled samples in sorted file order
    train_idx, test_idx = stratified_split(np.full(10, -1), 0.3, 3)
    np.testing.assert_array_equal(data.train_indices, train_idx)
    np.testing.assert_array_equal(data.test_indices, test_idx)
    assert decode_texts(data.train.field("text")) == [f"picture {k}" for k in train_idx]  # stripped, in order
    assert decode_texts(data.test.field("text")) == [f"picture {k}" for k in test_idx]
    for part in (data.train, data.test):  # each image stays with its own text
        for image, text in zip(part.field("image"), decode_texts(part.field("text")), strict=True):
            assert bool((image == values[text]).all()), text


def test_the_same_seed_gives_the_same_split_and_another_seed_another(tmp_path: Path) -> None:
    root = tmp_path / "pics"
    _image_pairs(root, 20)
    a, b = load_dataset(root, seed=1), load_dataset(root, seed=1)
    c = load_dataset(root, seed=2)
    assert torch.equal(a.train.field("text"), b.train.field("text"))
    assert torch.equal(a.test.field("image"), b.test.field("image"))
    np.testing.assert_array_equal(a.test_indices, b.test_indices)
    assert not np.array_equal(a.test_indices, c.test_indices)
    assert len(a.test) == 4  # 0.2 of 20


def test_class_sub_folders_give_labels_and_a_stratified_split(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    for name, count in (("cat", 5), ("dog", 10)):
        (root / name).mkdir(parents=True)
        for k in range(count):
            _png(root / name / f"{k}.png", k)
            (root / name / f"{k}.txt").write_text(f"a {name} number {k}")
    data = load_dataset(root, test_fraction=0.2, seed=0)
    assert data.class_names == ("cat", "dog") and data.num_classes == 2
    for part in (data.train, data.test):
        for label, text in zip(part.labels.tolist(), decode_texts(part.field("text")), strict=True):
            assert text.split()[1] == ("cat", "dog")[label]
    assert sorted(data.test.labels.tolist()) == [0, 1, 1]  # 1 of 5 cats, 2 of 10 dogs


def test_images_of_other_sizes_need_size_and_gray_majority_sets_the_mode(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    root.mkdir()
    _png(root / "a.png", 50, (6, 4), "L")
    Image.new("L", (9, 7), 70).save(root / "b.jpg")
    Image.new("RGB", (3, 5), (90, 90, 90)).save(root / "c.jpeg")
    for stem in "abc":
        (root / f"{stem}.txt").write_text(f"image {stem}")
    with pytest.raises(ValueError, match=r"images differ in size: '.*a\.png' is 6x4 but '.*b\.jpg' is 9x7"):
        load_dataset(root)
    data = load_dataset(root, size=(5, 8), test_fraction=0.0)
    images = data.train.field("image")
    assert images.shape == (3, 1, 5, 8)  # two gray files of three: gray
    assert decode_texts(data.train.field("text")) == ["image a", "image b", "image c"]
    assert bool((images[0] == 50).all())  # a constant image stays constant when resized
    assert load_dataset(root, size=4, mode="RGB", test_fraction=0.0).train.field("image").shape == (3, 3, 4, 4)


# --- audio -----------------------------------------------------------------------------------------------------------

def test_audio_pairs_are_padded_to_the_longest_file_in_whole_frames(tmp_path: Path) -> None:
    root = tmp_path / "talk"
    root.mkdir()
    lengths = {"a": 1000, "b": 2500, "c": 1600}
    for stem, n in lengths.items():
        _wav(root / f"{stem}.wav", (np.arange(n) % 200) * 100 - 10_000)
        (root / f"{stem}.txt").write_text(f"words of {stem}  \n")
    data = load_dataset(str(root), test_fraction=0.0)
    assert data.field_names == ("audio", "text")
    audio = data.train.field("audio")
    assert audio.dtype == torch.float32 and audio.shape == (3, 1, 2560)  # 2,500 rounded up to 16 frames of 160
    assert decode_texts(data.train.field("text")) == ["words of a", "words of b", "words of c"]
    for row, n in enumerate(lengths.values()):
        expected = ((np.arange(n) % 200) * 100 - 10_000) / 32768.0
        np.testing.assert_array_equal(audio[row, 0, :n].numpy(), expected.astype(np.float32))
        assert bool((audio[row, 0, n:] == 0).all())


def test_audio_at_another_rate_is_resampled_to_16_khz(tmp_path: Path) -> None:
    root = tmp_path / "slow"
    root.mkdir()
    for stem, n in (("a", 800), ("b", 400)):
        _wav(root / f"{stem}.wav", np.full(n, 8192), rate=8_000)
        (root / f"{stem}.txt").write_text(stem)
    audio = load_dataset(root, test_fraction=0.0).train.field("audio")
    assert audio.shape == (2, 1, 1600)  # 800 samples at 8 kHz = 1,600 at 16 kHz
    np.testing.assert_allclose(audio[0, 0, 400:1200].numpy(), 0.25, atol=1e-3)  # the constant, away from the edges
    np.testing.assert_allclose(audio[1, 0, 200:600].numpy(), 0.25, atol=1e-3)
    assert bool((audio[1, 0, 800:] == 0).all())


def test_clip_seconds_crops_and_pads_every_file_to_one_length(tmp_path: Path) -> None:
    root = tmp_path / "talk"
    root.mkdir()
    _wav(root / "long.wav", np.arange(3000))
    _wav(root / "short.wav", np.arange(300))
    for stem in ("long", "short"):
        (root / f"{stem}.txt").write_text(stem)
    audio = load_pair_folder(root, clip_seconds=0.05, test_fraction=0.0).train.field("audio")
    assert audio.shape == (2, 1, 800)
    np.testing.assert_array_equal(audio[0, 0].numpy(), (np.arange(800) / 32768.0).astype(np.float32))
    np.testing.assert_array_equal(audio[1, 0, :300].numpy(), (np.arange(300) / 32768.0).astype(np.float32))
    assert bool((audio[1, 0, 300:] == 0).all())


def _talk(tmp_path: Path) -> Path:
    root = tmp_path / "talk"
    root.mkdir()
    for stem in ("a", "b", "c", "d", "e"):
        _wav(root / f"{stem}.wav", np.zeros(320))
        (root / f"{stem}.txt").write_text(f"say {stem}")
    return root


def test_fields_may_name_the_folders_fields_in_either_order(tmp_path: Path) -> None:
    root = _talk(tmp_path)
    assert load_dataset(root, fields="audio=sequences,text").field_names == ("audio", "text")
    swapped = load_dataset(root, fields="text,audio")
    assert swapped.field_names == ("text", "audio") and swapped.modality == "text"
    for fields in ("audio,caption", "audio=vectors,text", "audio"):
        with pytest.raises(ValueError, match=r"folder of WAV files and texts, with the fields audio=sequences and "
                                             r"text=text; `fields` .* does not name them"):
            load_dataset(root, fields=fields)


@pytest.mark.parametrize(("options", "message"), [
    ({"size": 8}, r"`size` and `mode` apply to images"),
    ({"mode": "L"}, r"`size` and `mode` apply to images"),
    ({"modality": "images"}, r"`modality` 'images' does not apply"),
    ({"stream": True}, r"`stream` applies to image folders; the pair folder '.*talk' is loaded into memory"),
])
def test_options_that_do_not_apply_are_refused(tmp_path: Path, options: dict, message: str) -> None:
    with pytest.raises(PairFolderError, match=message):
        load_dataset(_talk(tmp_path), **options)


def test_folders_without_pairs_keep_loading_as_before(tmp_path: Path) -> None:
    pics = tmp_path / "pics"
    pics.mkdir()
    for k in range(3):
        _png(pics / f"{k}.png", k)
    (pics / "README.txt").write_text("my pictures")  # a note, paired with no image
    assert load_dataset(pics, test_fraction=0.0).field_names == ("x",)
    voices = tmp_path / "voices" / "alice"
    voices.mkdir(parents=True)
    _wav(voices / "one.wav", np.zeros(320))
    (voices / "notes.txt").write_text("recorded on Monday")
    assert load_dataset(voices.parent, test_fraction=0.0).field_names == ("x",)


# --- bad pair data: one line naming the file -------------------------------------------------------------------------

def _error(root: Path, **options) -> str:
    with pytest.raises(ValueError) as caught:
        load_dataset(str(root), **options)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("load_dataset: ")
    return message


def test_a_media_file_without_its_text_is_named(tmp_path: Path) -> None:
    root = _talk(tmp_path)
    _wav(root / "lonely.wav", np.zeros(320))
    message = _error(root)
    assert re.search(r"1 unpaired file\(s\) in '.*talk': '.*lonely\.wav' has no 'lonely\.txt'", message), message


def test_a_text_without_its_media_file_is_named(tmp_path: Path) -> None:
    root = tmp_path / "pics"
    _image_pairs(root, 3)
    (root / "p01.png").unlink()
    message = _error(root)
    assert re.search(r"'.*p01\.txt' has no media file \(p01\.wav / p01\.png", message), message


def test_many_unpaired_files_name_the_first_three_and_count_the_rest(tmp_path: Path) -> None:
    root = _talk(tmp_path)
    for stem in ("v", "w", "x", "y", "z"):
        (root / f"{stem}.txt").write_text("no audio")
    message = _error(root)
    assert "5 unpaired file(s)" in message and "(and 2 more)" in message, message
    assert "v.txt" in message and "x.txt" in message and "y.txt" not in message


@pytest.mark.parametrize(("content", "message"), [
    (b" \n\t \n", r"text file '.*b\.txt' is empty \(only whitespace\)"),
    (b"", r"text file '.*b\.txt' is empty;"),
    (b"caf\xe9 au lait", r"text file '.*b\.txt' is not UTF-8 \(invalid continuation byte at byte 3\)"),
    (b"a\x00b", r"text file '.*b\.txt' holds the NUL character"),
])
def test_bad_texts_are_named(tmp_path: Path, content: bytes, message: str) -> None:
    root = _talk(tmp_path)
    (root / "b.txt").write_bytes(content)
    assert re.search(message, _error(root)), _error(root)


def test_a_byte_order_mark_is_not_part_of_the_text(tmp_path: Path) -> None:
    root = _talk(tmp_path)
    (root / "b.txt").write_bytes("\ufeffsay b\r\n".encode())
    texts = decode_texts(load_dataset(root, test_fraction=0.0).train.field("text"))
    assert texts == ["say a", "say b", "say c", "say d", "say e"]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "float"])
def test_an_undecodable_wav_file_is_named(tmp_path: Path, damage: str) -> None:
    root = _talk(tmp_path)
    bad = root / "c.wav"
    if damage == "garbage":
        bad.write_bytes(b"this is not audio at all" * 10)
    elif damage == "truncated":
        bad.write_bytes(bad.read_bytes()[:30])
    else:  # 32-bit float samples (WAVE_FORMAT_IEEE_FLOAT): the wave module reads PCM only
        data = bad.read_bytes()
        bad.write_bytes(data[:20] + (3).to_bytes(2, "little") + data[22:])
    message = _error(root)
    assert re.search(r"cannot read '.*talk/c\.wav' as an uncompressed PCM WAV file", message), message


def test_an_empty_wav_file_is_named(tmp_path: Path) -> None:
    root = _talk(tmp_path)
    _wav(root / "d.wav", np.zeros(0))
    assert re.search(r"'.*talk/d\.wav' holds no audio", _error(root))


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_an_undecodable_image_is_named(tmp_path: Path, damage: str) -> None:
    root = tmp_path / "pics"
    _image_pairs(root, 3)
    bad = root / "p02.png"
    if damage == "garbage":
        bad.write_bytes(b"not a picture" * 20)
    else:  # the header reads, the pixels do not
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (4, 6, 3), dtype=np.uint8)).save(bad)
        bad.write_bytes(bad.read_bytes()[:60])
    message = _error(root)
    assert re.search(r"cannot read image file '.*pics/p02\.png'", message), message


def test_images_and_audio_in_one_folder_are_one_error(tmp_path: Path) -> None:
    root = _talk(tmp_path)
    _png(root / "f.png", 1)
    (root / "f.txt").write_text("a picture")
    message = _error(root)
    assert re.search(r"pairs both images \(e\.g\. '.*f\.png'\) and audio \(e\.g\. '.*a\.wav'\)", message), message


def test_two_media_files_of_one_name_are_named(tmp_path: Path) -> None:
    root = tmp_path / "pics"
    _image_pairs(root, 3)
    _png(root / "p01.jpg", 5)
    assert re.search(r"'.*p01\.jpg' and '.*p01\.png' share one name", _error(root))


def test_layout_errors_are_named(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    (root / "cat").mkdir(parents=True)
    _png(root / "cat" / "1.png", 1)
    (root / "cat" / "1.txt").write_text("a cat")
    _png(root / "loose.png", 1)
    assert re.search(r"has class sub-folders and also files directly in it \(e\.g\. '.*loose\.png'\)", _error(root))
    (root / "loose.png").unlink()
    (root / "cat" / "kittens").mkdir()
    assert re.search(r"'.*cat/kittens' is a folder inside the class folder", _error(root))
    (root / "cat" / "kittens").rmdir()
    (root / "dog").mkdir()
    _png(root / "dog" / "1.png", 1)  # no texts in it at all
    assert re.search(r"'.*dog/1\.png' has no '1\.txt'", _error(root))


def test_the_cli_prints_one_line_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from contrastkit.cli import main

    root = _talk(tmp_path)
    (root / "e.txt").write_text("   ")
    code = main(["train", "--data", str(root), "--out", str(tmp_path / "run"), "--epochs", "1", "--no-progress"])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert re.match(r"contrastkit train: error: load_dataset: text file '.*talk/e\.txt' is empty", lines[0]), err
    assert not (tmp_path / "run").exists()
