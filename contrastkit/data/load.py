"""One entry point for every dataset: :func:`load_dataset`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from contrastkit.data.arrays import channels_for_mode, convert_channels, parse_size, resize_images
from contrastkit.data.assemble import contiguous_labels, presplit_arrays, split_arrays, split_files
from contrastkit.data.builtin import (
    BUILTIN_AUGMENTS,
    BUILTIN_DATASETS,
    INSTALLED_DATASETS,
    DatasetNotFoundError,
    Presplit,
)
from contrastkit.data.containers import DatasetSplits
from contrastkit.data.fields import parse_fields
from contrastkit.data.folder import scan_image_folder
from contrastkit.data.idx import IDX_FILE_NAMES, holds_idx_files, read_idx_folder
from contrastkit.data.modality import check_modality
from contrastkit.data.npfiles import ArraySource, load_npy, load_npz
from contrastkit.data.pairfolder import holds_pairs, load_pair_folder
from contrastkit.data.select import select_classes
from contrastkit.data.split import check_seed
from contrastkit.data.stream import ImageFiles, should_stream
from contrastkit.data.toyspeech import toy_speech
from contrastkit.memory import check_fits, format_bytes


def _speech(seed: int) -> DatasetSplits:
    from contrastkit.data.speech import build_speech  # eSpeak synthesis: loaded only when asked for

    return build_speech(seed=seed)


def _speech_text(seed: int) -> DatasetSplits:
    from contrastkit.data.speech import build_speech_text

    return build_speech_text(seed=seed)


def _spoken_digits(seed: int) -> DatasetSplits:
    from contrastkit.data.speech import build_spoken_digits

    return build_spoken_digits(seed=seed)


#: built-in sequence datasets, generated (and split) from a seed: name -> builder(seed)
SEQUENCE_DATASETS: dict[str, Callable[[int], DatasetSplits]] = {
    "toyspeech": toy_speech, "speech": _speech, "speech-text": _speech_text, "spoken-digits": _spoken_digits}
#: a paired built-in dataset -> the labelled one whose test split (same seed) evaluates its runs zero-shot: a run
#: trained on speech-text embeds each class name of spoken-digits ("zero" .. "nine") with its text tower
ZERO_SHOT_COMPANIONS: dict[str, str] = {"speech-text": "spoken-digits"}
#: the built-in data sets with named fields (field -> modality, the default field first); the others hold one, x
BUILTIN_FIELDS: dict[str, dict[str, str]] = {"speech-text": {"audio": "sequences", "text": "text"},
                                             "spoken-digits": {"audio": "sequences", "text": "text"}}


def _holds_wav_files(path: Path) -> bool:
    """A folder of speakers' WAV files: ``root/<speaker>/*.wav``."""
    return any(p.suffix.lower() == ".wav" for sub in path.iterdir() if sub.is_dir() for p in sub.iterdir())


def _shape_arrays(images: np.ndarray, channels: int | None, size: tuple[int, int] | None) -> np.ndarray:
    if channels is not None:
        images = convert_channels(images, channels)
    return resize_images(images, size) if size is not None else images


def _check_shape_memory(parts: list[np.ndarray], channels: int | None, size: tuple[int, int] | None,
                        name: str, where: str, split: bool) -> None:
    """Refuse a ``size`` / ``mode`` whose converted images would not fit in memory, before converting.

    ``parts``: the uint8 (N, C, H, W) arrays that :func:`_shape_arrays` will convert (one set, or train and test).
    Peak: the channel-converted copy (when the channels change) beside the resized one, or, when ``split`` (a
    train / test split is still to be made, copying every image), the resized images twice."""
    if channels is None and size is None:
        return
    n = sum(len(p) for p in parts)
    c_in, h_in, w_in = parts[0].shape[1:]
    c = channels or c_in
    h, w = size or (h_in, w_in)
    shaped = n * c * h * w
    converted = n * c * h_in * w_in if c != c_in and (h, w) != (h_in, w_in) else 0
    needed = max(converted + shaped, 2 * shaped if split else shaped)
    twice = ", held twice while the train / test split is made" if split and needed == 2 * shaped else ""
    subject, setting = (f"{where}: `size` {h} x {w}", "size") if size is not None else (f"{where}: `mode`", "mode")
    check_fits(needed, subject, f"the {n:,} images of {name!r} as uint8 {c} x {h} x {w} "
                                f"({format_bytes(shaped)}{twice})",
               hint=f"choose a smaller `{setting}`" if setting == "size" else "", setting=setting)


def load_dataset(name_or_path: str | Path, *, size: int | tuple[int, int] | None = None,
                 test_fraction: float = 0.2, seed: int = 0, mode: str | None = None,
                 modality: str = "auto", classes: str | Sequence[str] | None = None,
                 stream: bool | None = None, workers: int | None = None,
                 fields: str | Sequence[str] | Mapping[str, str] | None = None) -> DatasetSplits:
    """Load a built-in dataset by name, or an image folder / IDX folder / ``.npy`` / ``.npz`` file by path.

    Args:
        name_or_path: ``"mnist5k"``, ``"digits"`` or ``"fashion-mnist"`` (its official 60,000 / 10,000 split, read
            from the system package ``dataset-fashion-mnist`` or ``$CONTRASTKIT_DATA/fashion-mnist``; see
            :mod:`contrastkit.data.builtin`), the sequence
            sets ``"speech"`` (eSpeak NG utterances, :mod:`contrastkit.data.speech`) and ``"toyspeech"``
            (:mod:`contrastkit.data.toyspeech`), the paired sets ``"speech-text"`` (fields ``audio`` and
            ``text``) and ``"spoken-digits"`` (:mod:`contrastkit.data.speech.pairs`), built from ``seed``; a
            folder of WAV files with one sub-folder
            per speaker;
            anything else, and any ``Path`` object, is a path to a folder
            (:mod:`contrastkit.data.folder`), a folder of IDX files with their own split
            (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
            ``t10k-labels-idx1-ubyte``: MNIST, Fashion-MNIST, KMNIST, EMNIST; :mod:`contrastkit.data.idx`), or an
            ``.npy`` / ``.npz`` file
            (:mod:`contrastkit.data.npfiles`). A str equal to a built-in name (any case) means the
            built-in set; write ``"./digits"`` for a folder of that name.
        size: resize every image to (H, W) (an int means square). For a folder whose images
            differ in size this is required.
        test_fraction: share of each class put in the test split, in [0, 1). Unused when the data brings its
            own split: an ``.npz`` file with ``x_train`` / ``x_test``, an IDX folder, ``fashion-mnist``.
        seed: the *split* seed (not a training seed: pass the same value to keep the same
            split). The defaults give the canonical splits: mnist5k 4,000 / 1,000 (100 test
            per class) and digits 1,438 / 359.
        mode: ``"L"`` (1 channel) or ``"RGB"`` (3 channels) to force the channel count; by
            default a folder uses its majority and arrays keep theirs.
        modality: what an array file holds: ``"auto"`` (images, or vectors for a table; see
            :mod:`contrastkit.data.modality`), ``"images"``, ``"vectors"`` or ``"sequences"``.
            Built-in sets and folders are images.
        classes: keep only these classes, by name (``"4,9"`` or ``["4", "9"]``), after the split, renumbered
            ``0 .. C'-1`` in the data's class order (:mod:`contrastkit.data.select`).
        stream: for an image folder: True keeps the images on disk and decodes them on demand
            (:class:`~contrastkit.data.stream.ImageFiles`: memory O(batch x workers), same pixels and the same
            split as in memory); False decodes the whole folder into memory (faster while it fits); None (the
            default) streams when the decoded images would take more than
            :data:`~contrastkit.data.stream.STREAM_MEMORY_FRACTION` of this machine's memory. Other sources
            are always in memory (True is an error for them).
        workers: decoding worker processes for streamed files (None: one per core, at most 4; 0: decode in the
            calling process).
        fields: the named fields of each sample in an ``.npz`` (:mod:`contrastkit.data.fields`): None reads the
            one field ``x``; ``"image,caption"`` reads ``image`` / ``caption`` (or ``image_train``,
            ``image_test``, ...), the first being the default field; ``"x=images,caption=text"`` gives each its
            modality. A key of the file that no field takes is an error naming it. ``size`` and ``mode`` apply
            to every image field; ``modality`` to the default field.
            A folder of pairs (``name.png`` / ``name.wav`` beside ``name.txt``; :mod:`contrastkit.data.pairfolder`)
            has the fields ``image`` or ``audio``, then ``text``; ``fields`` may name them (the default first).

    Returns:
        :class:`DatasetSplits` with uint8 (N, C, H, W) images and int64 labels ``0 .. C-1`` (-1 and
        ``num_classes == 0`` when the data carries no labels). Built-in sets and folders number
        their classes ``0 .. C-1`` themselves (folders: sub-folder names in sorted order). Labels
        from an ``.npy`` / ``.npz`` file or an IDX folder may be any non-negative integers: they are renumbered
        ``0 .. C-1`` in ascending order over both splits, and ``class_names`` holds the original
        ids as strings (labels ``{3, 10**9}`` -> classes 0, 1 named ``"3"``, ``"1000000000"``).

    Raises:
        DatasetNotFoundError: neither a built-in name nor an existing path; or (its subclass
            :class:`~contrastkit.data.builtin.DataNotInstalledError`) ``fashion-mnist`` whose files are in none of
            the folders looked in (the message says how to install them).
        ValueError: anything wrong with the arguments or the data, in one line that names the file
            (and the key of an ``.npz``): unreadable or non-numpy files, pickles and object arrays
            (never unpickled), images that are not uint8 / integers in [0, 255] / floats in [0, 1],
            labels that are not integer class ids >= 0 (or all -1: -1 means "no label"); for an IDX file, a
            header that does not match the file, a corrupt gzip stream, missing or duplicate files in the folder,
            label counts that differ from the image counts.
        contrastkit.memory.NotEnoughMemoryError: (a ValueError) the data, at ``size`` / ``mode``, would not fit
            in this machine's memory; checked from array headers and image counts before anything large is
            allocated, and named in the message (the file, ``size``, or ``stream`` for a folder).
        TypeError: ``name_or_path`` is neither a str nor a Path.
    """
    where = "load_dataset"
    if stream not in (None, True, False):
        raise ValueError(f"{where}: `stream` must be True, False or None (automatic), got {stream!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise ValueError(f"{where}: `workers` must be an int >= 0 or None, got {workers!r}")
    if classes is not None:
        whole = load_dataset(name_or_path, size=size, test_fraction=test_fraction, seed=seed, mode=mode,
                             modality=modality, stream=stream, workers=workers, fields=fields)
        return select_classes(whole, classes, where)
    check_modality(modality, where)
    field_modalities = parse_fields(fields, modality, where)
    size_hw = parse_size(size, where)
    channels = channels_for_mode(mode, where)
    seed = check_seed(seed, where)
    if not isinstance(test_fraction, int | float) or not 0.0 <= float(test_fraction) < 1.0:
        raise ValueError(f"{where}: `test_fraction` must be in [0, 1), got {test_fraction!r}")
    if not isinstance(name_or_path, str | Path):
        raise TypeError(f"{where}: `name_or_path` must be a str or Path, got {type(name_or_path).__name__}")

    key = str(name_or_path)
    path = Path(key).expanduser()
    named = isinstance(name_or_path, str) and key.lower() in (*SEQUENCE_DATASETS, *BUILTIN_DATASETS)
    is_idx_folder = not named and holds_idx_files(path)  # train-images-idx3-ubyte ...: its own split, no sub-folders
    if not named and not is_idx_folder and holds_pairs(path):  # name.png / name.wav beside name.txt (data.pairfolder)
        return load_pair_folder(path, test_fraction=test_fraction, seed=seed, size=size_hw, mode=mode,
                                modality=modality, fields=fields, stream=stream, where=where)
    is_folder = not named and not is_idx_folder and path.is_dir() and not _holds_wav_files(path)
    is_array_file = not is_folder and path.suffix.lower() in (".npy", ".npz") and path.is_file()
    if fields is not None and list(field_modalities) != ["x"] and not is_array_file:
        raise ValueError(f"{where}: `fields` names the fields of an .npy / .npz file; {key!r} holds one input (x)")
    if stream and not is_folder:
        raise ValueError(f"{where}: `stream` applies to image folders; {key!r} is loaded into memory (leave "
                         f"`stream` unset)")
    if isinstance(name_or_path, str) and key.lower() in SEQUENCE_DATASETS:
        if modality not in ("auto", "sequences") or size_hw is not None or channels is not None:
            raise ValueError(f"{where}: {key!r} holds sequences; `modality`, `size` and `mode` do not apply")
        return SEQUENCE_DATASETS[key.lower()](seed)
    if isinstance(name_or_path, str) and key.lower() in BUILTIN_DATASETS:
        if modality not in ("auto", "images"):
            raise ValueError(f"{where}: {key!r} holds images; `modality` {modality!r} applies to array files")
        loaded = BUILTIN_DATASETS[key.lower()]()
        if isinstance(loaded, Presplit):  # the set's own split (fashion-mnist): `test_fraction` and `seed` unused
            splits = _presplit_images(key.lower(), loaded, channels, size_hw, where)
            return dataclasses.replace(splits, augment=BUILTIN_AUGMENTS.get(key.lower()))
        images, labels, class_names = loaded
        _check_shape_memory([images], channels, size_hw, key.lower(), where, split=True)
        return split_arrays(key.lower(), _shape_arrays(images, channels, size_hw), labels,
                            test_fraction=test_fraction, seed=seed, class_names=class_names, where=where)

    builtin_names = ", ".join(sorted(name for name in [*BUILTIN_DATASETS, *SEQUENCE_DATASETS]
                                     if name not in INSTALLED_DATASETS))
    if INSTALLED_DATASETS:
        builtin_names += f"; from a system package: {', '.join(INSTALLED_DATASETS)}"
    if not path.exists():
        raise DatasetNotFoundError(f"{where}: {key!r} is neither a built-in dataset ({builtin_names}) nor an "
                                   f"existing path (an image folder, a folder of IDX files ({IDX_FILE_NAMES[0]}, "
                                   f"...), a folder of pairs (name.png / name.wav + name.txt), a folder of speakers' "
                                   f"WAV files, .npy or .npz file)")
    if is_idx_folder:
        if modality not in ("auto", "images"):
            raise ValueError(f"{where}: {key!r} is a folder of IDX images; `modality` {modality!r} applies to array "
                             f"files")
        idx = read_idx_folder(path, where)
        (train_labels, test_labels), ids = contiguous_labels(idx.train_labels, idx.test_labels)
        return _presplit_images(path.name, Presplit(idx.train_images, train_labels, idx.test_images, test_labels, ids),
                                channels, size_hw, where)
    if path.is_dir() and _holds_wav_files(path):
        if modality not in ("auto", "sequences") or size_hw is not None or channels is not None:
            raise ValueError(f"{where}: {key!r} is a folder of WAV files (sequences); `modality`, `size` and "
                             f"`mode` do not apply")
        from contrastkit.data.speech import load_wav_folder

        return load_wav_folder(path, test_fraction=test_fraction, seed=seed)
    if modality not in ("auto", "images") and path.is_dir():
        raise ValueError(f"{where}: {key!r} is a folder of images; `modality` {modality!r} applies to array files")
    if path.is_dir():
        paths, labels, class_names, mode, hw, records = scan_image_folder(path, mode=mode, size=size_hw, where=where)
        files = ImageFiles.from_paths(path, paths, labels, mode, hw, workers, records)
        splits = split_files(path.name, files, test_fraction=test_fraction, seed=seed, class_names=class_names,
                             where=where)
        if stream or (stream is None and should_stream(files.decoded_bytes)):
            return splits
        h, w = files.size
        check_fits(files.decoded_bytes, f"{where}: '{path}'", f"decoding its {len(files):,} images into memory "
                   f"({files.mode} {h} x {w})", hint="stream them from disk instead (`stream=True`)", setting="stream")
        # in memory: each split decoded straight into its own array (the peak is the decoded set, once)
        return dataclasses.replace(splits, train=splits.train.load(where), test=splits.test.load(where))
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise ValueError(f"{where}: cannot load '{path}': expected a folder of images, of IDX files or of speakers' "
                         f"WAV files, an .npy or an .npz file, or a built-in name ({builtin_names})")
    source = load_npy(path, where, modality, field_modalities) if suffix == ".npy" \
        else load_npz(path, where, modality, field_modalities)
    return _array_splits(source, path, size_hw, channels, test_fraction, seed, where)


def _presplit_images(name: str, loaded: Presplit, channels: int | None, size_hw: tuple[int, int] | None,
                     where: str) -> DatasetSplits:
    """Images that came split (a built-in set such as fashion-mnist, an IDX folder), shaped to ``size`` / ``mode``,
    their split kept (``train_indices`` / ``test_indices`` None)."""
    _check_shape_memory([loaded.train_images, loaded.test_images], channels, size_hw, name, where, split=False)
    return presplit_arrays(name, _shape_arrays(loaded.train_images, channels, size_hw), loaded.train_labels,
                           _shape_arrays(loaded.test_images, channels, size_hw), loaded.test_labels, where,
                           class_names=loaded.class_names)


def _array_splits(source: ArraySource, path: Path, size_hw: tuple[int, int] | None, channels: int | None,
                  test_fraction: float, seed: int, where: str) -> DatasetSplits:
    """The fields of an array file, their images shaped to ``size`` / ``mode``, split (or kept as split)."""
    image_fields = [name for name, a in source.fields.items() if a.dtype == np.uint8 and a.ndim == 4]
    if not image_fields and (size_hw is not None or channels is not None):
        kind = "vectors" if source.inputs.ndim == 2 and source.inputs.dtype == np.float32 else \
            "text" if source.inputs.ndim == 2 else "sequences"
        raise ValueError(f"{where}: `size` and `mode` apply to images; '{path}' holds {kind}")
    presplit = source.test_fields is not None and source.test_labels is not None
    for name in image_fields:
        _check_shape_memory([source.fields[name]] + ([source.test_fields[name]] if presplit else []),
                            channels, size_hw, path.name, where, split=not presplit)

    def shaped(fields: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {name: _shape_arrays(a, channels, size_hw) if name in image_fields else a for name, a in fields.items()}

    if source.test_fields is None or source.test_labels is None:
        return split_arrays(path.name, shaped(source.fields), source.labels, test_fraction=test_fraction, seed=seed,
                            class_names=source.class_names, where=where)
    return presplit_arrays(path.name, shaped(source.fields), source.labels, shaped(source.test_fields),
                           source.test_labels, where, class_names=source.class_names)
