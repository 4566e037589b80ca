"""Image folders streamed from disk: the same pixels, labels and split as in memory; loader order from the samplers
(resume, rank slices); the automatic switch; fingerprints; a streamed run trains, resumes and evaluates exactly
like the in-memory run."""

from __future__ import annotations

import os
import pickle
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from contrastkit.config import TrainConfig
from contrastkit.data import load_dataset
from contrastkit.data.fingerprint import data_fingerprint, describe_change
from contrastkit.data.folder import ImageFileChangedError, scan_image_folder
from contrastkit.data.samplers import PKSampler, RankSlice, ShuffleSampler
from contrastkit.data.stream import (
    STREAM_MEMORY_FRACTION,
    ImageFiles,
    StreamLoader,
    default_workers,
    iterate_inputs,
    should_stream,
)
from tests.helpers import assert_same_state


def _folder(root: Path, classes: int = 3, per_class: int = 12, size: tuple[int, int] = (10, 12),
            gray_every: int = 3) -> Path:
    """Class folders of random PNGs; every ``gray_every``-th image is gray (the majority stays RGB)."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            rgb = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(rgb[..., 0] if i % gray_every == 0 else rgb).save(root / f"class{c}" / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return _folder(tmp_path_factory.mktemp("stream") / "images")


@pytest.mark.parametrize("size", [None, 8])
def test_streamed_pixels_labels_and_split_equal_the_in_memory_ones(folder, size) -> None:
    memory = load_dataset(folder, size=size, stream=False)
    streamed = load_dataset(folder, size=size, stream=True, workers=0)
    assert streamed.streamed and not memory.streamed
    assert isinstance(streamed.train, ImageFiles)
    assert streamed.input_shape == memory.input_shape and streamed.class_names == memory.class_names
    assert np.array_equal(streamed.train_indices, memory.train_indices)
    for s_part, m_part in ((streamed.train, memory.train), (streamed.test, memory.test)):
        assert torch.equal(s_part.labels, m_part.labels)
        assert torch.equal(torch.stack([s_part[i][0] for i in range(len(s_part))]), m_part.x)


def test_an_explicit_mode_and_classes_selection_stream_too(folder) -> None:
    memory = load_dataset(folder, mode="L", classes="class0,class2", stream=False)
    streamed = load_dataset(folder, mode="L", classes="class0,class2", stream=True)
    assert streamed.input_shape == (1, 10, 12) and streamed.num_classes == 2
    assert torch.equal(streamed.train.labels, memory.train.labels)
    assert torch.equal(torch.cat(list(iterate_inputs(streamed.train, 7, workers=0))), memory.train.x)


def test_scan_reads_headers_only_and_names_files_of_another_size(tmp_path) -> None:
    root = _folder(tmp_path / "f", classes=2, per_class=3)
    paths, labels, names, mode, hw, _ = scan_image_folder(root)
    assert len(paths) == 6 and names == ("class0", "class1") and mode == "RGB" and hw == (10, 12)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1]
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(root / "class1" / "odd.png")
    with pytest.raises(ValueError, match=r"images differ in size.*odd\.png.*pass `size`"):
        load_dataset(root, stream=True)
    (root / "class1" / "odd.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"cannot read image file .*odd\.png"):
        load_dataset(root, stream=True, size=4)


def test_a_file_that_breaks_after_the_scan_is_named_when_decoded(tmp_path) -> None:
    root = _folder(tmp_path / "f", classes=2, per_class=3)
    data = load_dataset(root, stream=True, test_fraction=0.0)
    Path(data.train.path(0)).write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError) as caught:
        data.train.decode(0)
    assert str(caught.value).startswith(f"image file '{data.train.path(0)}' changed since the folder was scanned "
                                        f"and no longer decodes: cannot identify image file; ")


def test_a_file_broken_from_the_start_is_not_called_changed(tmp_path) -> None:
    """The scan reads headers only: pixels that never decoded are the folder loader's "cannot read" error."""
    root = _folder(tmp_path / "f", classes=1, per_class=2)
    whole = (root / "class0" / "001.png").read_bytes()
    (root / "class0" / "001.png").write_bytes(whole[:60])  # header intact, pixel data cut
    files = load_dataset(root, stream=True, test_fraction=0.0).train
    assert files.decode(0).shape == (3, 10, 12)  # the intact file decodes
    with pytest.raises(ValueError, match=r"^ImageFiles: cannot read image file '.*001\.png': ") as caught:
        files.decode(1)
    assert not isinstance(caught.value, ImageFileChangedError)
    with pytest.raises(ValueError, match=r"^load_dataset: cannot read image file '.*001\.png': "):
        load_dataset(root, stream=False)


def test_stream_applies_to_image_folders_only_and_checks_its_arguments(folder) -> None:
    with pytest.raises(ValueError, match="`stream` applies to image folders"):
        load_dataset("digits", stream=True)
    assert not load_dataset("digits", stream=None).streamed  # automatic: built-in sets stay in memory
    with pytest.raises(ValueError, match="`stream` must be True, False or None"):
        load_dataset(folder, stream="yes")
    with pytest.raises(ValueError, match="`workers` must be an int >= 0"):
        load_dataset(folder, stream=True, workers=-1)


def test_the_automatic_switch_follows_the_decoded_size() -> None:
    memory = 8 * 2**30
    assert not should_stream(int(STREAM_MEMORY_FRACTION * memory), memory)
    assert should_stream(int(STREAM_MEMORY_FRACTION * memory) + 1, memory)
    assert not should_stream(10**15, 0)  # unknown memory: never automatically
    assert 1 <= default_workers() <= 4 and default_workers(10**6) == 1


def test_a_small_folder_is_loaded_into_memory_automatically(folder) -> None:
    assert not load_dataset(folder).streamed


def test_the_file_list_is_one_bytes_array_and_pickles_small(folder) -> None:
    files = load_dataset(folder, stream=True).train
    assert files.names.dtype.kind == "S" and files.decoded_bytes == len(files) * 3 * 10 * 12
    assert len(pickle.dumps(files)) < 4000  # what a worker process is sent: names and labels, no pixels
    with pytest.raises(ValueError, match=r"streamed from .* no in-memory array.*stream=False"):
        _ = files.x


@pytest.mark.parametrize("workers", [0, 2])
def test_the_loader_gives_the_samplers_batches_in_order_and_resumes_mid_epoch(folder, workers) -> None:
    files = load_dataset(folder, stream=True, test_fraction=0.0).train  # 36 files
    sampler = ShuffleSampler(len(files), 8, seed=5)
    loader = StreamLoader(files, sampler, workers=workers)
    for epoch in (0, 1):
        got = list(loader.batches(epoch))
        expected = list(sampler.batches(epoch))
        assert len(got) == len(expected) == 4
        for (index, images), want in zip(got, expected, strict=True):
            assert torch.equal(index, want) and images.dtype == torch.uint8 and images.shape == (8, 3, 10, 12)
            assert torch.equal(images, torch.stack([files[i][0] for i in want.tolist()]))
    resumed = [index for index, _ in loader.batches(1, start_batch=2)]
    assert all(torch.equal(a, b) for a, b in zip(resumed, list(sampler.batches(1))[2:], strict=True))
    first = next(loader.batches(0))  # an epoch left early, then another one: the workers carry on
    assert torch.equal(first[0], next(iter(sampler.batches(0))))
    assert len(list(loader.batches(0))) == 4


def test_each_rank_decodes_its_own_slice_of_the_global_batch(folder) -> None:
    files = load_dataset(folder, stream=True, test_fraction=0.0).train
    sampler = PKSampler(files.labels, 12, samples_per_class=4, seed=1)
    slices = [list(StreamLoader(files, RankSlice(sampler, r, 2, 12), workers=0).batches(0)) for r in range(2)]
    for b, whole in enumerate(sampler.batches(0)):
        assert torch.equal(torch.cat([slices[0][b][0], slices[1][b][0]]), whole)


def test_fingerprints_see_added_files_and_compare_sizes_across_kinds(tmp_path) -> None:
    root = _folder(tmp_path / "f", classes=2, per_class=4)
    streamed = data_fingerprint(load_dataset(root, stream=True))
    memory = data_fingerprint(load_dataset(root, stream=False))
    assert streamed["kind"] == "files" and describe_change(streamed, memory) is None
    assert describe_change(streamed, data_fingerprint(load_dataset(root, stream=True))) is None
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(root / "class1" / "new.png")
    assert "train images" in describe_change(streamed, data_fingerprint(load_dataset(root, stream=True)))


def _config(folder: Path, out: Path, stream: bool, **changes) -> TrainConfig:
    values = dict(method="simclr", data=str(folder), image_size=8, stream=stream, epochs=2, batch_size=8,
                  out=str(out), progress=False, workers=1, encoder="small_cnn", seed=3)
    values.update(changes)
    return TrainConfig(**values)


def test_a_streamed_run_trains_resumes_and_evaluates_like_the_in_memory_run(folder, tmp_path) -> None:
    from contrastkit.train import Trainer

    memory = Trainer.from_config(_config(folder, tmp_path / "memory", False, workers=None))  # workers: streamed only
    memory.fit()
    first = Trainer.from_config(_config(folder, tmp_path / "streamed", True))
    assert first.data.streamed and first.stream_workers == 1
    first.fit(max_steps=5)  # stops mid-epoch 1 (3 steps per epoch)
    resumed = Trainer.from_config(_config(folder, tmp_path / "streamed", True))
    summary = resumed.fit(resume=True)
    assert summary["steps"] == 6
    assert_same_state(memory.method, resumed.method)
    got, want = resumed.evaluate(), memory.evaluate()
    assert got["linear_acc"] == want["linear_acc"] and got["knn_acc"] == want["knn_acc"]
    assert any("raw-pixel baseline skipped" in note for note in got["notes"])
    with pytest.raises(ValueError, match="streamed from"):
        _ = resumed.images


def test_drlim_needs_the_images_in_memory(folder, tmp_path) -> None:
    from contrastkit.train import Trainer

    with pytest.raises(ValueError, match=r"drlim: .*in memory.*--no-stream"):
        Trainer.from_config(_config(folder, tmp_path / "drlim", True, method="drlim", encoder=None))


# ---------------------------------------------------------------- files that change while a streamed run reads them
def _header(path: Path) -> str:
    with Image.open(path) as image:
        return f"{image.width}x{image.height} {image.mode}"


def _replace_by_another_size_and_mode(path: Path) -> str:
    was = _header(path)
    other = np.zeros((16, 16), np.uint8) if was.endswith("RGB") else np.zeros((16, 16, 3), np.uint8)
    Image.fromarray(other).save(path)
    return f"changed since the folder was scanned: {_header(path)}, was {was}"


def _delete(path: Path) -> str:
    path.unlink()
    return "vanished since the folder was scanned"


def _corrupt(path: Path) -> str:
    path.write_bytes(path.read_bytes()[:40])  # the PNG signature and header survive, the pixels do not
    return "changed since the folder was scanned and no longer decodes: "


def _touch(path: Path) -> str:
    """The same bytes with another modification time (an rsync, a re-export of the same image)."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    return f"changed since the folder was scanned: modified at {_local_time(stat.st_mtime_ns + 10**9)}, was " \
           f"{_local_time(stat.st_mtime_ns)}"


def _local_time(ns: int) -> str:
    return (datetime.fromtimestamp(ns // 10**9) + timedelta(microseconds=ns % 10**9 // 1000)).isoformat(" ")


CHANGES = {"replaced": _replace_by_another_size_and_mode, "deleted": _delete, "corrupted": _corrupt,
           "touched": _touch}


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("change", list(CHANGES))
def test_a_file_changed_between_steps_stops_the_run_in_one_line_and_keeps_the_checkpoint(tmp_path, workers,
                                                                                         change) -> None:
    from contrastkit.train import Trainer

    root = _folder(tmp_path / "images", classes=2, per_class=6)
    out = tmp_path / "run"
    trainer = Trainer.from_config(_config(root, out, True, workers=workers, epochs=3, batch_size=4))
    trainer.fit(max_steps=trainer.steps_per_epoch)  # one whole epoch, then a checkpoint
    saved = (out / "checkpoint.pt").read_bytes()
    target = Path(trainer.data.train.path(1))
    expected = CHANGES[change](target)
    with pytest.raises(ValueError) as caught:
        trainer.fit(resume=True)  # the same scan of the folder: every file of the next epoch is decoded again
    message = str(caught.value)
    assert message.startswith(f"image file '{target}' {expected}"), message
    assert "\n" not in message and "Traceback" not in message and "worker" not in message
    assert (out / "checkpoint.pt").read_bytes() == saved  # no checkpoint of a step that never happened


def test_the_in_memory_path_refuses_the_same_replaced_folder(tmp_path) -> None:
    """What the streamed run refuses mid-run is what loading the changed folder refuses from the start."""
    root = _folder(tmp_path / "images", classes=2, per_class=3)
    _replace_by_another_size_and_mode(root / "class1" / "001.png")
    with pytest.raises(ValueError, match=r"images differ in size: .*000\.png' is 12x10 but .*001\.png' is 16x16"):
        load_dataset(root, stream=False)


def test_evaluation_batches_name_a_vanished_file_in_one_line_too(tmp_path) -> None:
    files = load_dataset(_folder(tmp_path / "images", classes=2, per_class=3), stream=True, test_fraction=0.0).train
    Path(files.path(4)).unlink()
    with pytest.raises(ValueError) as caught:
        list(iterate_inputs(files, 2, workers=2))
    assert str(caught.value).startswith(f"image file '{files.path(4)}' vanished since the folder was scanned")
    assert "\n" not in str(caught.value)


def test_the_cli_stops_a_run_whose_file_changed_mid_epoch_with_status_2_and_one_line(tmp_path, monkeypatch,
                                                                                        capsys) -> None:
    from contrastkit.cli import main
    from contrastkit.train import Trainer

    root = _folder(tmp_path / "images", classes=2, per_class=6)
    out = tmp_path / "run"
    first_checkpoint: list[bytes] = []
    changed: list[str] = []
    save = Trainer.save

    def save_then_replace_a_file(self, path=None):  # after the first epoch's checkpoint, mid-run
        written = save(self, path)
        if not first_checkpoint:
            first_checkpoint.append(written.read_bytes())
            target = Path(self.data.train.path(0))
            changed.append(f"image file '{target}' {_replace_by_another_size_and_mode(target)}")
        return written

    monkeypatch.setattr(Trainer, "save", save_then_replace_a_file)
    status = main(["train", "--data", str(root), "--stream", "--workers", "2", "--method", "simclr",
                   "--encoder", "small_cnn", "--image-size", "8", "--epochs", "3", "--batch-size", "4",
                   "--out", str(out), "--no-progress", "--seed", "3"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith(f"contrastkit train: error: {changed[0]}"), err
    assert (out / "checkpoint.pt").read_bytes() == first_checkpoint[0]
