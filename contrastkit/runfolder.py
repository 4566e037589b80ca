"""The output folder of a training run: what it holds, and the checks made before anything is written to it.

A run folder holds ``checkpoint.pt`` (and ``checkpoint_step*.pt`` copies when asked to keep them),
``config.yaml`` (the resolved settings, readable), ``train_log.csv``, ``tensorboard/``, and what ``eval`` /
``plot`` write: ``metrics.json`` and PNG plots. Rules:

* a folder that already holds a run is never reused silently: a new run there needs ``overwrite`` (which
  removes exactly those files, nothing else) or ``resume``;
* ``out`` must be a folder we can write to: a file, a path under a file or a read-only folder is refused
  with a clear error before training starts;
* temporaries left by a process killed while saving a checkpoint are removed when the next run starts.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from contrastkit.checkpoint import remove_stale_temporaries, write_atomic

__all__ = ["CHECKPOINT_NAME", "CONFIG_NAME", "LOG_NAME", "check_output_folder", "clear_run", "holds_run",
           "prepare_run_folder", "read_saved_config", "write_text_atomic"]

CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.yaml"
LOG_NAME = "train_log.csv"
_RUN_FILES = (CHECKPOINT_NAME, CONFIG_NAME, LOG_NAME, "metrics.json", "embedding_tsne.png", "training_curves.png")
_RUN_PATTERNS = ("checkpoint_step*.pt",)
_RUN_DIRS = ("tensorboard",)


def check_output_folder(out: str | Path) -> Path:
    """``out`` as a Path, after checking it is (or can become) a writable folder; creates nothing."""
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"output folder {str(path)!r} is a file; give a folder path with --out")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"output folder {str(path)!r} lies under {str(parent)!r}, which is a file")
            break
    return path


def holds_run(out: Path) -> bool:
    """Whether ``out`` already holds (part of) a training run."""
    return any((out / name).exists() for name in (CHECKPOINT_NAME, CONFIG_NAME, LOG_NAME))


def clear_run(out: Path) -> list[Path]:
    """Remove the files a run writes (and only those) from ``out``; returns what was removed."""
    removed = [out / name for name in _RUN_FILES if (out / name).is_file()]
    for pattern in _RUN_PATTERNS:
        removed += [p for p in out.glob(pattern) if p.is_file()]
    for path in removed:
        path.unlink()
    for name in _RUN_DIRS:
        if (out / name).is_dir():
            shutil.rmtree(out / name)
            removed.append(out / name)
    return removed


def prepare_run_folder(out: Path, *, resume: bool, overwrite: bool) -> list[str]:
    """Create ``out`` for a run and apply the reuse rules (module docstring); returns messages to show."""
    out = check_output_folder(out)
    if resume and overwrite:
        raise ValueError("--resume continues the run in the output folder and --overwrite deletes it; pick one")
    notes = []
    if holds_run(out) and not resume:
        if not overwrite:
            present = ", ".join(n for n in (CHECKPOINT_NAME, CONFIG_NAME, LOG_NAME) if (out / n).exists())
            raise FileExistsError(f"{str(out)!r} already holds a run ({present}); "
                                  f"continue it with --resume, replace it with --overwrite, or choose another --out")
        removed = clear_run(out)
        notes.append(f"--overwrite: removed {len(removed)} file(s) of the earlier run in {out}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", suffix=".tmp", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise PermissionError(f"cannot write to the output folder {str(out)!r}: {exc.strerror or exc}") from None
    names = (CHECKPOINT_NAME, CONFIG_NAME, LOG_NAME, "checkpoint_step*.pt", "write-test")
    stale = [p for name in names for p in remove_stale_temporaries(out, name)]
    if stale:
        notes.append(f"removed {len(stale)} unfinished temporary file(s) left by an interrupted save")
    return notes


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`~contrastkit.checkpoint.write_atomic`)."""
    write_atomic(path, lambda f: f.write(text.encode()))


def read_saved_config(out: Path) -> dict[str, Any] | None:
    """The settings a run folder was started with: from its checkpoint if any, else its ``config.yaml``;
    ``None`` when the folder holds no run."""
    from contrastkit.checkpoint import load_checkpoint

    if (out / CHECKPOINT_NAME).exists():
        return dict(load_checkpoint(out / CHECKPOINT_NAME)["config"])
    if (out / CONFIG_NAME).exists():
        values = yaml.safe_load((out / CONFIG_NAME).read_text())
        if not isinstance(values, dict):
            raise ValueError(f"{out / CONFIG_NAME} does not hold a mapping of settings")
        return values
    return None
