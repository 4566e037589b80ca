"""A user's folder of pairs: each image or WAV file beside a ``.txt`` of the same name, loaded as two named fields.

Layouts (the image folder's, :mod:`contrastkit.data.folder`, one level deep at most):

* unlabelled -- the pairs directly in ``root``: ``root/cat_01.png`` + ``root/cat_01.txt``; every label is -1;
* labelled -- one sub-folder per class holding its pairs, ``root/<class>/name.wav`` + ``root/<class>/name.txt``;
  classes are the sub-folder names in sorted order, numbered 0, 1, ... (their names can serve zero-shot evaluation).

A folder is a pair folder when it (or one of its sub-folders) holds at least one such pair
(:func:`holds_pairs`); :func:`contrastkit.data.load_dataset` then loads it here instead of as an image or WAV folder.
From then on every media file needs its ``.txt`` and every ``.txt`` its media file. Media are images (the image
folder's extensions: ``.png .jpg .jpeg .bmp .gif .tif .tiff .webp``) or ``.wav`` files, one kind per folder
(extensions in any case); hidden entries (``.name``) and files of other extensions are ignored. Samples are in
sorted order (class folder, then file name).

Fields, the media first (the default field):

* ``image``: uint8 (N, C, H, W), decoded like an image folder (:func:`~contrastkit.data.folder.decode_file`): the
  majority's mode (gray / RGB) unless ``mode`` is given; every image of the first one's size unless ``size`` is
  given, which resizes them all;
* ``audio``: float32 (N, 1, T) at 16 kHz, read by :func:`~contrastkit.data.speech.wavfolder.read_wav` (PCM WAV,
  mono mix, resampled from any rate); every file padded with zeros at the end to the longest file rounded up to whole
  10 ms frames (160 samples), so no transcript loses its words; ``clip_seconds`` (of :func:`load_pair_folder`)
  instead sets one length (rounded to whole 10 ms frames): longer files keep their beginning;
* ``text``: the ``.txt`` file's UTF-8 text (a byte-order mark is allowed), surrounding whitespace stripped, as uint8
  (N, L) bytes (:mod:`contrastkit.data.text`; :func:`~contrastkit.data.text.decode_texts` gives the strings back).

The train / test split is the one of every other source (:func:`contrastkit.data.split.stratified_split` over the
classes, or over all pairs when unlabelled; ``test_fraction``, ``seed``). Everything is loaded into memory; the
memory the decoded data would take is checked from the file headers first (:mod:`contrastkit.memory`).

Bad data is one :class:`PairFolderError` (a ValueError) naming the file: a media file without its ``.txt`` or a
``.txt`` without its media file (the first few of them named, and how many), two media files for one ``.txt``,
images and audio in one folder, an empty (whitespace-only) text, a text that is not UTF-8 or holds the NUL
character, an undecodable image or WAV file.
"""

from __future__ import annotations

import math
import os
import wave
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from contrastkit.data.arrays import channels_for_mode
from contrastkit.data.assemble import split_arrays
from contrastkit.data.containers import DatasetSplits
from contrastkit.data.fields import parse_fields
from contrastkit.data.folder import IMAGE_EXTENSIONS, decode_file, is_gray
from contrastkit.data.split import check_seed
from contrastkit.data.text import encode_texts
from contrastkit.memory import check_fits, format_bytes

__all__ = ["AUDIO_EXTENSIONS", "TEXT_EXTENSION", "PairFolderError", "holds_pairs", "load_pair_folder"]

TEXT_EXTENSION = ".txt"
AUDIO_EXTENSIONS = frozenset({".wav"})
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | AUDIO_EXTENSIONS
#: unpaired files named in the error (then how many more)
_NAMED = 3
#: what Pillow raises on a file it cannot read
_IMAGE_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


class PairFolderError(ValueError):
    """A pair folder's data is wrong (the one-line message names the file and says what is accepted)."""


class _Kind(NamedTuple):
    field: str  # the media field's name
    modality: str  # its modality
    what: str  # how messages call the media files


_IMAGES = _Kind("image", "images", "images")
_AUDIO = _Kind("audio", "sequences", "WAV files")


class PairList(NamedTuple):
    """The pairs of a folder in sorted order, before anything is decoded."""

    media: list[Path]
    texts: list[Path]  # texts[i] belongs to media[i]
    labels: np.ndarray  # (N,) int64, all -1 when unlabelled
    class_names: tuple[str, ...]
    kind: _Kind


def _entries(folder: Path) -> tuple[list[Path], list[Path]]:
    """The visible files and the visible sub-folders of ``folder``, each in sorted order (``os.scandir``: no ``stat``
    per entry on most file systems, so asking :func:`holds_pairs` of a large image folder stays cheap)."""
    with os.scandir(folder) as scan:
        entries = sorted((e for e in scan if not e.name.startswith(".")), key=lambda e: e.name)
        files = [folder / e.name for e in entries if e.is_file()]
        folders = [folder / e.name for e in entries if e.is_dir()]
    return files, folders


def _files(folder: Path) -> list[Path]:
    return _entries(folder)[0]


def _is_media(path: Path) -> bool:
    return path.suffix.lower() in MEDIA_EXTENSIONS


def _is_text(path: Path) -> bool:
    return path.suffix.lower() == TEXT_EXTENSION


def _has_pair(folder: Path) -> bool:
    files = _files(folder)
    texts = {p.stem for p in files if _is_text(p)}
    return any(p.stem in texts for p in files if _is_media(p))


def holds_pairs(root: Path) -> bool:
    """True when ``root`` or one of its visible sub-folders holds a media file beside a ``.txt`` of the same name."""
    root = Path(root)
    if not root.is_dir():
        return False
    return _has_pair(root) or any(_has_pair(sub) for sub in _entries(root)[1])


def _partner_names(stem: str) -> str:
    return f"{stem}.wav / {stem}.png / {stem}.jpg / ..."


def _pair_up(folder: Path, where: str) -> tuple[list[Path], list[Path], list[str]]:
    """The media and text files of ``folder`` paired by name, and a description of each unpaired file."""
    media: dict[str, Path] = {}
    texts: dict[str, Path] = {}
    for path in _files(folder):
        if _is_media(path):
            if path.stem in media:
                raise PairFolderError(f"{where}: '{media[path.stem]}' and '{path}' share one name; a pair is one "
                                      f"image or WAV file and one .txt of the same name: rename or remove one")
            media[path.stem] = path
        elif _is_text(path):
            texts[path.stem] = path
    unpaired = [f"'{path}' has no '{path.stem}{TEXT_EXTENSION}'" for stem, path in media.items() if stem not in texts]
    unpaired += [f"'{path}' has no media file ({_partner_names(stem)})" for stem, path in texts.items()
                 if stem not in media]
    stems = sorted(set(media) & set(texts))
    return [media[s] for s in stems], [texts[s] for s in stems], unpaired


def list_pair_folder(root: Path, where: str = "load_dataset") -> PairList:
    """Pair the files of ``root`` (module docstring); a :class:`PairFolderError` naming the files otherwise."""
    root = Path(root)
    files, class_dirs = _entries(root)
    loose = [e for e in files if _is_media(e) or _is_text(e)]
    if class_dirs and loose:
        raise PairFolderError(f"{where}: folder '{root}' has class sub-folders and also files directly in it (e.g. "
                              f"'{loose[0]}'); move those into a class folder, or keep all pairs directly in the "
                              f"folder (unlabelled)")
    media: list[Path] = []
    texts: list[Path] = []
    labels: list[int] = []
    unpaired: list[str] = []
    for label, folder in enumerate(class_dirs or [root]):
        deeper = _entries(folder)[1]
        if class_dirs and deeper:
            raise PairFolderError(f"{where}: '{deeper[0]}' is a folder inside the class folder '{folder}'; a pair "
                                  f"folder holds its pairs directly in it or in one level of class sub-folders")
        found, found_texts, missing = _pair_up(folder, where)
        if class_dirs and not found and not missing:
            raise PairFolderError(f"{where}: class folder '{folder}' holds no pairs (name.png / name.wav beside "
                                  f"name.txt)")
        media += found
        texts += found_texts
        labels += [label if class_dirs else -1] * len(found)
        unpaired += missing
    audio = [p for p in media if p.suffix.lower() in AUDIO_EXTENSIONS]
    images = [p for p in media if p.suffix.lower() not in AUDIO_EXTENSIONS]
    if audio and images:
        raise PairFolderError(f"{where}: folder '{root}' pairs both images (e.g. '{images[0]}') and audio (e.g. "
                              f"'{audio[0]}') with texts; a pair folder holds one kind: put them in two folders")
    if unpaired:
        more = f" (and {len(unpaired) - _NAMED} more)" if len(unpaired) > _NAMED else ""
        raise PairFolderError(f"{where}: {len(unpaired)} unpaired file(s) in '{root}': "
                              f"{'; '.join(unpaired[:_NAMED])}{more}; every image or WAV file needs a .txt of the "
                              f"same name beside it, and every .txt its image or WAV file")
    if not media:
        raise PairFolderError(f"{where}: folder '{root}' holds no pairs (name.png / name.wav beside name.txt)")
    return PairList(media, texts, np.asarray(labels, dtype=np.int64), tuple(d.name for d in class_dirs),
                    _AUDIO if audio else _IMAGES)


def read_text(path: Path, where: str = "load_dataset") -> str:
    """The UTF-8 text of ``path`` (a byte-order mark allowed), surrounding whitespace stripped; never empty."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise PairFolderError(f"{where}: cannot read text file '{path}': {err.strerror or err}") from err
    try:
        text = data.decode("utf-8-sig").strip()
    except UnicodeDecodeError as err:
        raise PairFolderError(f"{where}: text file '{path}' is not UTF-8 ({err.reason} at byte {err.start}); save "
                              f"it as UTF-8") from None
    if not text:
        raise PairFolderError(f"{where}: text file '{path}' is empty{' (only whitespace)' if data else ''}; every "
                              f"pair needs a text of at least one character")
    if "\0" in text:
        raise PairFolderError(f"{where}: text file '{path}' holds the NUL character; texts may not contain it")
    return text


def _image_header(path: Path, where: str) -> tuple[tuple[int, int], bool]:
    """(W, H) and whether it is gray, from the header of one image file (its pixels are not decoded)."""
    try:
        with Image.open(path) as image:
            return (image.width, image.height), is_gray(image)
    except _IMAGE_READ_ERRORS as err:
        reason = "cannot identify image file" if isinstance(err, UnidentifiedImageError) else str(err)
        raise PairFolderError(f"{where}: cannot read image file '{path}': {reason}") from err


def _load_images(paths: list[Path], root: Path, mode: str | None, size: tuple[int, int] | None,
                 where: str) -> np.ndarray:
    """uint8 (N, C, H, W): the majority's mode unless ``mode``; the first image's size unless ``size``."""
    gray = 0
    first: tuple[int, int] | None = None  # (W, H)
    for path in paths:
        image_size, file_gray = _image_header(path, where)
        gray += file_gray
        if first is None:
            first = image_size
        elif size is None and image_size != first:
            raise PairFolderError(f"{where}: images differ in size: '{paths[0]}' is {first[0]}x{first[1]} but "
                                  f"'{path}' is {image_size[0]}x{image_size[1]} (width x height); pass `size` to "
                                  f"resize every image to one size")
    assert first is not None  # list_pair_folder refuses a folder without pairs
    mode = mode or ("L" if gray > len(paths) - gray else "RGB")
    hw = size if size is not None else (first[1], first[0])
    c = 1 if mode == "L" else 3
    check_fits(len(paths) * c * hw[0] * hw[1] * 2, f"{where}: '{root}'",
               f"decoding its {len(paths):,} images as uint8 {c} x {hw[0]} x {hw[1]} (held twice while the train / "
               f"test split is made)", hint="choose a smaller `size`", setting="size")
    images = np.empty((len(paths), c, *hw), dtype=np.uint8)  # (N, C, H, W)
    for row, path in enumerate(paths):
        images[row] = decode_file(path, mode, hw, where)
    return images


def _frames_at_16k(path: Path, rate_16k: int, where: str) -> int:
    """Samples of ``path`` once resampled to 16 kHz (as ``resample_poly`` gives them), from its header."""
    try:
        with wave.open(str(path), "rb") as f:
            frames, rate = f.getnframes(), f.getframerate()
    except (wave.Error, EOFError, OSError) as err:
        raise PairFolderError(f"{where}: cannot read '{path}' as an uncompressed PCM WAV file: {err}") from err
    if rate <= 0:
        raise PairFolderError(f"{where}: '{path}' declares a sample rate of {rate} Hz")
    g = math.gcd(rate_16k, rate)
    return -(-frames * (rate_16k // g) // (rate // g))


def _load_audio(paths: list[Path], root: Path, clip_seconds: float | None, where: str) -> np.ndarray:
    """float32 (N, 1, T) at 16 kHz, zero-padded to the longest file (whole 10 ms frames) or to ``clip_seconds``."""
    from contrastkit.data.speech.wavfolder import HOP, SAMPLE_RATE, _to_16k, read_wav  # scipy: only when asked for

    if clip_seconds is not None:
        length = round(float(clip_seconds) * 100) * HOP
        why = f"clip_seconds {clip_seconds}"
    else:
        lengths = [_frames_at_16k(p, SAMPLE_RATE, where) for p in paths]
        longest = int(np.argmax(lengths))
        length = max(-(-lengths[longest] // HOP) * HOP, HOP)
        why = f"the longest, '{paths[longest]}'"
    check_fits(len(paths) * length * 4 * 2, f"{where}: '{root}'",
               f"its {len(paths):,} WAV files as float32 1 x {length:,} at 16 kHz ({why}; "
               f"{format_bytes(len(paths) * length * 4)}, held twice while the train / test split is made)",
               hint="shorten or remove the longest files, or load them with load_pair_folder(..., clip_seconds=...)")
    audio = np.zeros((len(paths), 1, length), dtype=np.float32)  # (N, 1, T)
    for row, path in enumerate(paths):
        try:
            samples, rate = read_wav(path)
        except ValueError as err:
            raise PairFolderError(f"{where}: {str(err).removeprefix('load_wav_folder: ')}") from err
        samples = _to_16k(samples, rate)
        n = min(length, len(samples))
        audio[row, 0, :n] = samples[:n]
    return audio


def _field_order(fields: str | Sequence[str] | Mapping[str, str] | None, modality: str, kind: _Kind, root: Path,
                 where: str) -> list[str]:
    """The two field names in the order asked for (the default field first): the media first unless ``fields``
    names them the other way round; ``fields`` must name exactly this folder's fields."""
    if modality not in ("auto", kind.modality):
        raise PairFolderError(f"{where}: '{root}' is a folder of {kind.what} and texts: its default field holds "
                              f"{kind.modality}; `modality` {modality!r} does not apply")
    natural = [kind.field, "text"]
    if fields is None:
        return natural
    asked = parse_fields(fields, modality, where)
    expected = {kind.field: kind.modality, "text": "text"}
    if set(asked) != set(natural) or any(asked[name] not in ("auto", expected[name]) for name in asked):
        raise PairFolderError(f"{where}: '{root}' is a folder of {kind.what} and texts, with the fields "
                              f"{kind.field}={kind.modality} and text=text; `fields` {fields!r} does not name them "
                              f"(leave `fields` unset, or give '{kind.field},text' or 'text,{kind.field}')")
    return list(asked)


def load_pair_folder(root: Path, *, test_fraction: float = 0.2, seed: int = 0, size: tuple[int, int] | None = None,
                     mode: str | None = None, modality: str = "auto",
                     fields: str | Sequence[str] | Mapping[str, str] | None = None, stream: bool | None = None,
                     clip_seconds: float | None = None, where: str = "load_dataset") -> DatasetSplits:
    """The pairs of ``root`` as two fields (``image`` or ``audio``, then ``text``), split (see the module docstring).

    ``size`` / ``mode`` apply to images, ``clip_seconds`` to audio; ``fields`` (optional) names the two fields, the
    default one first; ``stream=True`` is refused (pairs are loaded into memory)."""
    root = Path(root).expanduser()
    seed = check_seed(seed, where)
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, int | float) \
            or not 0.0 <= float(test_fraction) < 1.0:
        raise ValueError(f"{where}: `test_fraction` must be in [0, 1), got {test_fraction!r}")
    channels_for_mode(mode, where)
    if not root.is_dir():
        raise PairFolderError(f"{where}: '{root}' is not a folder")
    pairs = list_pair_folder(root, where)
    kind = pairs.kind
    order = _field_order(fields, modality, kind, root, where)
    if stream:
        raise PairFolderError(f"{where}: `stream` applies to image folders; the pair folder '{root}' is loaded into "
                              f"memory (leave `stream` unset)")
    if kind is _AUDIO and (size is not None or mode is not None):
        raise PairFolderError(f"{where}: '{root}' is a folder of WAV files and texts; `size` and `mode` apply to "
                              f"images")
    if kind is _IMAGES and clip_seconds is not None:
        raise PairFolderError(f"{where}: '{root}' is a folder of images and texts; `clip_seconds` applies to audio")
    if clip_seconds is not None and (isinstance(clip_seconds, bool) or not isinstance(clip_seconds, int | float)
                                     or not clip_seconds >= 0.01):
        raise ValueError(f"{where}: `clip_seconds` must be None or a number >= 0.01, got {clip_seconds!r}")
    texts = [read_text(p, where) for p in pairs.texts]
    text_bytes = encode_texts(texts, f"the texts of '{root}'", where).numpy()  # (N, L) uint8
    media = _load_images(pairs.media, root, mode, size, where) if kind is _IMAGES \
        else _load_audio(pairs.media, root, clip_seconds, where)
    by_name = {kind.field: media, "text": text_bytes}
    return split_arrays(root.name, {name: by_name[name] for name in order}, pairs.labels,
                        test_fraction=float(test_fraction), seed=seed, class_names=pairs.class_names, where=where)
