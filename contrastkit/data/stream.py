"""Image folders that stay on disk: files decoded on demand in ``DataLoader`` worker processes.

The in-memory path (:func:`contrastkit.data.folder.load_image_folder`) decodes every image once and keeps the
whole set as one uint8 array, which is fastest while it fits. :class:`ImageFiles` keeps only the file names
(one fixed-width bytes array, so forked workers do not copy it page by page through reference counts), the
labels and the decoded form every file takes (mode ``"L"`` / ``"RGB"`` and (H, W)); memory is then
O(batch x workers) for the pixels instead of O(dataset).

Decoding follows the folder loader's rules exactly (:mod:`contrastkit.data.folder`: mode conversion, 16-bit
scaling, bilinear antialiased resize), so a streamed sample is bit-identical to the same sample loaded in
memory, and a run trains to the same parameters either way.

That holds only while the files stay as they were scanned: the in-memory path holds the pixels of the scan, a
streamed run reads the files again every epoch. Each file is therefore checked against what the scan recorded
(:data:`~contrastkit.data.folder.FILE_RECORD`: size in bytes, modification time, header width x height and mode;
one ``fstat`` of the opened file, nothing more is read) before its pixels are used. A file that vanished, has
another size or mode, no longer decodes, or was rewritten (other size in bytes or modification time) stops the
loader with one line naming the file and what changed (:class:`~contrastkit.data.folder.ImageFileChangedError`,
a ``ValueError``). A worker process hands the error back as a small value that the training process raises
(not as the worker's traceback); the trainer writes no checkpoint after it, so the last one stays.

* :func:`~contrastkit.data.folder.scan_image_folder` lists a folder and reads only the image *headers* to fix
  the mode (the majority) and check the sizes, a few tens of microseconds a file; the in-memory path starts the
  same way and then decodes every file (:func:`~contrastkit.data.folder.decode_files`).
* :class:`ImageFiles` -- a dataset of files: ``files[i]`` is ``(uint8 (C, H, W), label)``; ``len``, ``labels``,
  ``subset``; it answers the same questions as :class:`~contrastkit.data.containers.ArrayDataset` (modality,
  channels, image size, labels), but has no ``x``.
* :class:`StreamLoader` -- batches whose indices come from a :class:`~contrastkit.data.samplers.Sampler`, a pure
  function of (seed, epoch, batch), so a resumed epoch continues with exactly the batches it would have had
  and each process of a ``torchrun`` job decodes only its own slice. It wraps a ``torch.utils.data.DataLoader``
  with ``workers`` persistent worker processes, ``prefetch`` batches in flight per worker and pinned memory
  when CUDA is there. Each batch is ``(index int64 (B,), images uint8 (B, C, H, W))``; augmentation happens on
  the training device as for in-memory data.
* :func:`iterate_inputs` -- the batches of a tensor or of an :class:`ImageFiles`, in order (evaluation).
* :func:`should_stream` -- the automatic choice: stream when the decoded images would take more than
  :data:`STREAM_MEMORY_FRACTION` of this machine's physical memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from contrastkit.data.containers import ArrayDataset
from contrastkit.data.folder import FILE_RECORD, ImageFileChangedError, decode_file, decode_scanned, record_files
from contrastkit.data.samplers import Sampler

__all__ = [
    "STREAM_MEMORY_FRACTION",
    "ImageFiles",
    "StreamLoader",
    "default_workers",
    "iterate_inputs",
    "physical_memory",
    "should_stream",
]

#: ``stream=None`` (automatic) streams a folder whose decoded images would exceed this share of physical memory
STREAM_MEMORY_FRACTION = 0.125


def physical_memory() -> int:
    """This machine's physical memory in bytes (0 where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def should_stream(decoded_bytes: int, memory_bytes: int | None = None) -> bool:
    """True when ``decoded_bytes`` of uint8 images exceed :data:`STREAM_MEMORY_FRACTION` of ``memory_bytes``
    (default: :func:`physical_memory`; unknown memory never streams automatically)."""
    memory = physical_memory() if memory_bytes is None else int(memory_bytes)
    return memory > 0 and decoded_bytes > STREAM_MEMORY_FRACTION * memory


def default_workers(processes_on_this_machine: int = 1) -> int:
    """Decoding workers per training process when none are asked for: the cores this process may use divided
    by the training processes on the machine, at least 1 and at most 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(4, cores // max(1, processes_on_this_machine)))


@dataclass(frozen=True, eq=False)
class ImageFiles:
    """Image files decoded on demand (see the module docstring); ``files[i] -> (uint8 (C, H, W), label)``."""

    root: str  # absolute, so the files are found from any working directory
    names: np.ndarray  # (N,) fixed-width bytes: each file's path relative to ``root`` (os.fsencode)
    labels: Tensor  # (N,) int64, -1 = no label
    mode: str  # "L" or "RGB"
    size: tuple[int, int]  # (H, W) of every decoded image
    workers: int | None = None  # decoding worker processes of the loaders built from it (None: default_workers())
    records: np.ndarray | None = None  # (N,) FILE_RECORD of the scan: each file is checked against it before use
    #                                    (None: not checked; a file of another size is then resized like the others)

    def __post_init__(self) -> None:
        where = "ImageFiles"
        if self.mode not in ("L", "RGB"):
            raise ValueError(f"{where}: `mode` must be 'L' or 'RGB', got {self.mode!r}")
        if not isinstance(self.names, np.ndarray) or self.names.dtype.kind != "S" or self.names.ndim != 1:
            raise ValueError(f"{where}: `names` must be a 1-D numpy bytes array")
        if not isinstance(self.labels, Tensor) or self.labels.dtype != torch.int64 \
                or self.labels.shape != (len(self.names),):
            raise ValueError(f"{where}: `labels` must be an int64 tensor of shape ({len(self.names)},)")
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"{where}: `size` must be (H, W) with positive sides, got {self.size!r}")
        if self.workers is not None and (isinstance(self.workers, bool) or not isinstance(self.workers, int)
                                         or self.workers < 0):
            raise ValueError(f"{where}: `workers` must be an int >= 0 or None, got {self.workers!r}")
        if self.records is not None and (not isinstance(self.records, np.ndarray) or self.records.dtype != FILE_RECORD
                                         or self.records.shape != (len(self.names),)):
            raise ValueError(f"{where}: `records` must be None or a FILE_RECORD array of shape ({len(self.names)},)")

    @classmethod
    def from_paths(cls, root: Path, paths: list[Path], labels: np.ndarray, mode: str, size: tuple[int, int],
                   workers: int | None = None, records: np.ndarray | None = None) -> ImageFiles:
        """The files ``paths`` under ``root``; ``records``: their scan (:func:`~contrastkit.data.folder.
        scan_image_folder`), else the files are recorded now (one header read each)."""
        names = np.asarray([os.fsencode(p.relative_to(root)) for p in paths], dtype=np.bytes_)
        labels_t = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))
        records = record_files(paths) if records is None else records
        return cls(str(Path(root).resolve()), names, labels_t, mode, (int(size[0]), int(size[1])), workers, records)

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        kind = "labelled" if self.has_labels else "unlabelled"
        return f"ImageFiles(n={len(self)}, images {self.sample_shape} from '{self.root}', {kind})"

    def path(self, index: int) -> str:
        return os.path.join(self.root, os.fsdecode(self.names[index]))

    def decode(self, index: int, where: str = "ImageFiles") -> np.ndarray:
        """File ``index`` as uint8 (C, H, W), checked against its scan record first (module docstring)."""
        if self.records is None:
            return decode_file(self.path(index), self.mode, self.size, where)
        return decode_scanned(self.path(index), self.records[index], self.mode, self.size, where)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return torch.from_numpy(self.decode(int(index))), int(self.labels[index])

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        """A whole batch in one call (the DataLoader's batched fetch): (index int64 (B,), uint8 (B, C, H, W))."""
        out = np.empty((len(indices), *self.sample_shape), dtype=np.uint8)
        for row, index in enumerate(indices):
            out[row] = self.decode(int(index))
        return torch.as_tensor(indices, dtype=torch.int64), torch.from_numpy(out)

    def load(self, where: str = "ImageFiles") -> ArrayDataset:
        """Every file decoded into memory: an :class:`ArrayDataset` of uint8 (N, C, H, W) with these labels."""
        images = np.empty((len(self), *self.sample_shape), dtype=np.uint8)  # each file straight into its row
        for row in range(len(self)):
            images[row] = self.decode(row, where)
        return ArrayDataset(torch.from_numpy(images), self.labels)

    def subset(self, keep: Tensor | np.ndarray) -> ImageFiles:
        """The files at positions ``keep`` (int indices or a bool mask), in that order."""
        keep = np.asarray(keep.cpu() if isinstance(keep, Tensor) else keep)
        return ImageFiles(self.root, self.names[keep], self.labels[torch.from_numpy(keep)], self.mode, self.size,
                          self.workers, None if self.records is None else self.records[keep])

    def with_labels(self, labels: Tensor) -> ImageFiles:
        return ImageFiles(self.root, self.names, labels, self.mode, self.size, self.workers, self.records)

    # the questions an ArrayDataset answers
    modality = "images"
    frame_labels = None
    frame_hop = None
    x_field = "x"  # one field: the images
    field_names = ("x",)

    def field_inputs(self, name: str) -> ImageFiles:
        """The files themselves for field ``x`` (image files have no other field)."""
        if name != "x":
            raise ValueError(f"these image files have no field {name!r}; their one field is 'x'")
        return self

    def field_modality(self, name: str) -> str:
        self.field_inputs(name)
        return "images"

    @property
    def channels(self) -> int:
        return 1 if self.mode == "L" else 3

    @property
    def image_size(self) -> tuple[int, int]:
        return self.size

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return (self.channels, *self.size)

    @property
    def has_labels(self) -> bool:
        return len(self) > 0 and int(self.labels[0]) != -1

    @property
    def inputs(self) -> ImageFiles:
        """What evaluation embeds: the files themselves (see :func:`iterate_inputs`)."""
        return self

    @property
    def decoded_bytes(self) -> int:
        return len(self) * int(np.prod(self.sample_shape))

    @property
    def x(self) -> Tensor:
        raise ValueError(f"these {len(self)} images are streamed from '{self.root}' and have no in-memory array; "
                         f"this part of contrastkit needs the images in memory: load the data with stream=False "
                         f"(--no-stream)")

    def fingerprint_into(self, digest: Any) -> None:
        """Feed the file list, each file's size in bytes, the labels, the mode and the size into ``digest``."""
        digest.update(repr((self.mode, self.size, len(self))).encode())
        for name in self.names:
            digest.update(name + b"\0" + str(os.stat(os.path.join(self.root, os.fsdecode(name))).st_size).encode())
        digest.update(memoryview(np.ascontiguousarray(self.labels.numpy())).cast("B"))


class _EpochBatches(torch.utils.data.Sampler):
    """The DataLoader's batch sampler: one epoch of a contrastkit :class:`Sampler` from a start batch; the
    loader's persistent workers stay while :meth:`set_epoch` moves it on."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler, self.epoch, self.start = sampler, 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start = int(epoch), int(start_batch)

    def __iter__(self) -> Iterator[list[int]]:
        for index in self.sampler.batches(self.epoch, start_batch=self.start):
            yield index.tolist()

    def __len__(self) -> int:
        return self.sampler.steps_per_epoch - self.start


def _as_is(batch: Any) -> Any:
    return batch  # ImageFiles.__getitems__ already returns the collated batch


@dataclass(frozen=True)
class _Unreadable:
    """What the loader hands back in place of a batch it could not decode: the error's one-line message (and
    whether it is a change since the scan). The training process raises it again: a ``DataLoader`` would
    otherwise wrap an error raised in a worker process into a message that holds the worker's whole traceback."""

    message: str
    changed: bool

    def error(self) -> ValueError:
        return ImageFileChangedError(self.message) if self.changed else ValueError(self.message)


class _Decoding(torch.utils.data.Dataset):
    """``files`` as the loader's dataset: a batch that fails to decode comes back as an :class:`_Unreadable`."""

    def __init__(self, files: ImageFiles) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.files[index]

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor] | _Unreadable:
        try:
            return self.files.__getitems__(indices)
        except ValueError as exc:  # every decoding error of a file is one (folder.py)
            return _Unreadable(str(exc), isinstance(exc, ImageFileChangedError))


def _raising(batches: Iterator[Any]) -> Iterator[Any]:
    """The loader's batches; an :class:`_Unreadable` one is raised here, in the process that asked for it."""
    for batch in batches:
        if isinstance(batch, _Unreadable):
            raise batch.error()
        yield batch


def _loader_options(workers: int, prefetch: int, pin_memory: bool, persistent: bool) -> dict[str, Any]:
    options: dict[str, Any] = {"num_workers": workers, "collate_fn": _as_is,
                               "pin_memory": bool(pin_memory) and torch.cuda.is_available()}
    if workers > 0:
        options.update(prefetch_factor=prefetch, persistent_workers=persistent)
    return options


class StreamLoader:
    """Batches ``(index (B,), uint8 (B, C, H, W))`` of ``files`` in the order of ``sampler`` (module docstring).

    ``workers`` decoding processes (0: decode in this process; None: the files' own setting, else
    :func:`default_workers`), ``prefetch`` batches ahead per worker, pinned memory if ``pin_memory`` and CUDA.
    """

    def __init__(self, files: ImageFiles, sampler: Sampler, *, workers: int | None = None, prefetch: int = 2,
                 pin_memory: bool = True, processes_on_this_machine: int = 1) -> None:
        if workers is None:
            workers = files.workers if files.workers is not None else default_workers(processes_on_this_machine)
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
            raise ValueError(f"StreamLoader: `prefetch` must be an int >= 1, got {prefetch!r}")
        self.workers = int(workers)
        self.batch_sampler = _EpochBatches(sampler)
        self.loader = torch.utils.data.DataLoader(_Decoding(files), batch_sampler=self.batch_sampler,
                                                  **_loader_options(self.workers, prefetch, pin_memory, True))

    def batches(self, epoch: int, start_batch: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """The batches of ``epoch`` from ``start_batch`` on; a file that cannot be decoded raises its one-line
        ``ValueError`` here (:class:`~contrastkit.data.folder.ImageFileChangedError` for a change since the scan)."""
        self.batch_sampler.set_epoch(epoch, start_batch)
        return _raising(iter(self.loader))


class _InOrder(torch.utils.data.Sampler):
    def __init__(self, n: int, batch_size: int) -> None:
        self.n, self.batch_size = n, batch_size

    def __iter__(self) -> Iterator[list[int]]:
        for start in range(0, self.n, self.batch_size):
            yield list(range(start, min(self.n, start + self.batch_size)))

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)


def iterate_inputs(inputs: Tensor | ImageFiles, batch_size: int = 512, workers: int | None = None
                   ) -> Iterator[Tensor]:
    """Consecutive batches of stored inputs (B, ...) in order: slices of a tensor, or decoded files (uint8)."""
    if isinstance(inputs, Tensor):
        for start in range(0, inputs.shape[0], batch_size):
            yield inputs[start:start + batch_size]
        return
    if workers is None:
        workers = inputs.workers if inputs.workers is not None else default_workers()
    workers = min(workers, -(-len(inputs) // batch_size))  # no idle workers for a short set
    loader = torch.utils.data.DataLoader(_Decoding(inputs), batch_sampler=_InOrder(len(inputs), batch_size),
                                         **_loader_options(workers, 2, False, False))
    for _, images in _raising(iter(loader)):
        yield images
