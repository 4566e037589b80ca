"""The output folder of a training run: what it holds, and the checks made before anything is written to it.

A run folder holds ``checkpoint.pt`` (and ``checkpoint_step*.pt`` copies when asked to keep them),
``config.yaml`` (the resolved settings, readable), ``train_log.csv``, ``tensorboard/``, and what ``eval`` /
``plot`` write: ``metrics.json`` and PNG plots. Rules:

* a folder that already holds a run is never reused silently: a new run there needs ``overwrite`` (which
  removes exactly those files, nothing else) or ``resume``;
* ``resume`` needs ``checkpoint.pt``: a folder with ``config.yaml`` / ``train_log.csv`` and no checkpoint (a
  run stopped before its first one) is refused, not restarted over its log; an empty or new folder starts a
  run (:func:`check_resumable`);
* ``config.yaml`` and ``checkpoint.pt`` must agree on every setting a resume may not change
  (:func:`read_saved_config`);
* one training at a time: :mod:`contrastkit.runlock` (``run.lock``, never removed by ``overwrite``);
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

__all__ = ["CHECKPOINT_NAME", "CONFIG_NAME", "LOG_NAME", "check_config_yaml", "check_output_folder",
           "check_resumable", "clear_run", "holds_run", "prepare_run_folder", "read_saved_config",
           "write_text_atomic"]

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


def check_resumable(out: Path) -> None:
    """Refuse to resume a folder that holds part of a run but no checkpoint (a ``FileNotFoundError`` that says
    what is there and what is missing); an empty or missing folder passes (a resume there starts the run)."""
    if (out / CHECKPOINT_NAME).exists() or not holds_run(out):
        return
    present = " and ".join(n for n in (CONFIG_NAME, LOG_NAME) if (out / n).exists())
    raise FileNotFoundError(f"cannot resume {out}: it has {present} but no {CHECKPOINT_NAME} -- the run stopped "
                            f"before its first checkpoint, so there is nothing to continue; start it over with "
                            f"--overwrite (fit(overwrite=True))")


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
    if resume:
        check_resumable(out)
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


def _read_config_yaml(out: Path) -> dict[str, Any]:
    path = out / CONFIG_NAME
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"{path} is not a readable YAML file of settings ({first})") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path} does not hold a mapping of settings")
    return values


def check_config_yaml(out: Path, checkpoint_config: dict[str, Any]) -> None:
    """Refuse (``ValueError`` naming both values) when ``out/config.yaml`` and the checkpoint's settings
    (``checkpoint_config``) disagree on a setting that a resume may not change. ``config.yaml`` is rewritten at
    the start of every session, so the resumable ones (:data:`~contrastkit.config.RESUMABLE_CHANGES`) may differ;
    a setting only one of them has (written by another version) is no contradiction. No ``config.yaml``: fine."""
    from contrastkit.config import RESUMABLE_CHANGES

    if not (out / CONFIG_NAME).exists():
        return
    written = _read_config_yaml(out)
    differ = [k for k in checkpoint_config if k in written and k not in RESUMABLE_CHANGES
              and written[k] != checkpoint_config[k]]
    if differ:
        shown = "; ".join(f"{k}: {written[k]!r} in {CONFIG_NAME}, {checkpoint_config[k]!r} in {CHECKPOINT_NAME}"
                          for k in differ)
        raise ValueError(f"cannot resume {out}: {CONFIG_NAME} and {CHECKPOINT_NAME} disagree ({shown}); the "
                         f"checkpoint holds what was trained -- restore {CONFIG_NAME} to its settings, or start a "
                         f"new run with --overwrite")


def read_saved_config(out: Path) -> dict[str, Any] | None:
    """The settings a run folder was started with: from its checkpoint if any (after checking that
    ``config.yaml`` agrees with it: :func:`check_config_yaml`), else its ``config.yaml``; ``None`` when the folder
    holds no run."""
    from contrastkit.checkpoint import load_checkpoint

    if (out / CHECKPOINT_NAME).exists():
        saved = dict(load_checkpoint(out / CHECKPOINT_NAME)["config"])
        check_config_yaml(out, saved)
        return saved
    if (out / CONFIG_NAME).exists():
        return _read_config_yaml(out)
    return None
