"""Checkpoints that hold every piece of training state, written atomically, read without running code.

A checkpoint is one ``torch.save`` dictionary of tensors and plain values (numbers, strings, lists, dicts):

* ``method`` -- the whole method's ``state_dict``: encoder, head, momentum copy, the MoCo queue
  (keys, ids, pointer) or the memory bank, BatchNorm statistics, a learned temperature;
* ``optimizer`` / ``scheduler`` -- their ``state_dict``;
* ``rng`` -- the trainer's augmentation/sampling generator, PyTorch's global CPU (and CUDA) generators
  and Python's ``random``;
* ``progress`` -- the global step (the next batch follows from it), seconds of training;
* ``config`` -- the resolved training configuration, so ``eval`` / ``resume`` rebuild the same model;
* ``data`` -- a fingerprint of the training data (name, sizes, SHA-256 of the arrays), so a resume or an
  evaluation notices data that changed since.

**Loading never runs code**: files are read with ``torch.load(weights_only=True)``, which refuses any pickled
object other than tensors and plain containers; such a file (damaged, foreign or crafted) is reported and
nothing in it is executed. Files of an older format get a clear message.

Writes go to a temporary file ``.NAME.*.tmp`` in the same folder, are flushed to disk and moved into place
with ``os.replace``: a crash while saving leaves the previous checkpoint intact, and the next run in that
folder removes the stale temporary (:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

__all__ = ["FORMAT_VERSION", "CheckpointError", "capture_rng", "load_checkpoint", "remove_stale_temporaries",
           "restore_rng", "save_checkpoint", "write_atomic"]

FORMAT_VERSION = 2
REQUIRED_KEYS = ("method", "optimizer", "scheduler", "rng", "progress", "config")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: unreadable, unsafe, of another format, or incomplete."""


def capture_rng(generator: torch.Generator | None) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def restore_rng(state: dict[str, Any], generator: torch.Generator | None) -> None:
    torch.set_rng_state(state["torch"])
    python = state["python"]  # (version, tuple of 625 ints, gauss_next); lists after a round trip are fine
    random.setstate((python[0], tuple(python[1]), python[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write a file through ``write(f)`` into a temporary in the same folder, flush it to disk, then move it
    into place with ``os.replace``: readers see the old file or the new one, never a half-written one. The
    file gets the mode of the one it replaces (0644 for a new one), not ``mkstemp``'s private 0600."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Atomically write ``payload`` (plus the format version) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, lambda f: torch.save({"format_version": FORMAT_VERSION, **payload}, f))


def remove_stale_temporaries(folder: str | Path, name: str = "checkpoint.pt") -> list[Path]:
    """Delete ``.NAME.*.tmp`` files left in ``folder`` by a process killed while saving; returns them.
    ``name`` may be a glob pattern (``checkpoint_step*.pt``)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.glob(f".{name}.*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    required: tuple[str, ...] = REQUIRED_KEYS) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, safely (see the module docstring).

    Raises ``FileNotFoundError`` if it is missing and :class:`CheckpointError` (a ``ValueError``) if it is
    unreadable, holds anything but tensors and plain values, is of another format or lacks ``required`` keys.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's note on the pickle protocol is not for our users
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:  # torch's safe unpickler met something else than tensors / plain data
        lines = [line.strip() for line in str(exc).splitlines()]
        detail = next((line for line in lines if "GLOBAL" in line or line.lower().startswith("unsupported")), "")
        raise CheckpointError(
            f"refusing to load {path}: it is not a checkpoint of tensors and plain values"
            f"{' (the safe loader stopped at: ' + detail.rstrip('.') + ')' if detail else ''}. contrastkit "
            f"checkpoints are; this file is damaged, foreign, or crafted to run code. Nothing in it was run.") from None
    except Exception as exc:  # truncated, empty, or not a torch file at all
        raise CheckpointError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise CheckpointError(f"{path} is not a contrastkit checkpoint (no format version)")
    version = payload["format_version"]
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path} was written in checkpoint format {version!r}; this contrastkit reads format "
                              f"{FORMAT_VERSION}. Retrain the run, or evaluate it with the contrastkit version that "
                              f"wrote it")
    missing = [k for k in required if k not in payload]
    if missing:
        raise CheckpointError(f"{path} is incomplete: it lacks {missing} (a contrastkit checkpoint holds "
                              f"{list(REQUIRED_KEYS)})")
    return payload
