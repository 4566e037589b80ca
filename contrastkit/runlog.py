"""The training log: ``train_log.csv`` (always), TensorBoard (when installed) and a tqdm progress bar, and the one
reader of ``train_log.csv`` (for a resume and for the plots).

A logged row holds the trainer's columns (:data:`COLUMNS`: step, epoch, loss, lr, images/s, elapsed seconds,
temperature) and then every other key the method's step put in ``StepOutput.logs``, in the order the method
gives them -- no declaration needed (:func:`step_row`). The first row a session logs fixes its columns: a later
step with a key the first did not have is an error naming the key and the step (:class:`LogColumnsError`); a key
missing later leaves its cell empty.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from contrastkit.runfolder import LOG_NAME, write_text_atomic

__all__ = ["COLUMNS", "LogColumnsError", "LogFileError", "RunLog", "Throughput", "read_log", "step_row"]

#: the trainer's columns, first in every log; ``loss`` and ``temperature`` come from the method's logs
COLUMNS = ("step", "epoch", "loss", "lr", "images_per_s", "elapsed_s", "temperature")
#: the columns only the trainer writes: a method's logs may not use these names
TRAINER_COLUMNS = ("step", "epoch", "lr", "images_per_s", "elapsed_s")

_NOT_OURS = "is not a training log of contrastkit"
_WAY_OUT = "move it away to resume without the earlier rows, or start over with --overwrite"


class LogFileError(ValueError):
    """A ``train_log.csv`` that is not a training log written by contrastkit: not UTF-8 text (``kind`` "text"),
    not CSV ("csv") or without the required columns ("columns"). ``line`` is the line (from 1) where it shows,
    ``detail`` what was found there (e.g. "bytes that are not UTF-8 (0xff; a binary file?)", the csv module's
    error, the first line). The message is the one a resume shows; a plot words the same facts its own way
    (:func:`contrastkit.evaluate.plots.read_training_log`)."""

    def __init__(self, path: Path, kind: str, line: int, detail: str) -> None:
        problem = {"text": "it is not UTF-8 text (a binary file?)", "csv": f"line {line}: {detail}",
                   "columns": f"its first line {detail!r} does not name the columns 'step' and 'loss'"}[kind]
        super().__init__(f"{path} {_NOT_OURS}: {problem}; {_WAY_OUT}")
        self.path, self.kind, self.line, self.detail = path, kind, line, detail


class LogColumnsError(ValueError):
    """A step's logs that do not fit the log's columns (a key the first logged step did not have, or a key that
    names a column of the trainer)."""


def _not_text(path: Path, data: bytes, start: int, what: str) -> LogFileError:
    return LogFileError(path, "text", data.count(b"\n", 0, start) + 1, what)


def read_log(path: Path, required: tuple[str, ...] = ("step", "loss")) -> tuple[tuple[str, ...], list[dict[str, str]]]:
    """The columns of the log at ``path`` and its complete rows (a process killed while writing may have left a
    cut last line, without its newline or with fields missing: it is left out). An empty file, or one with no
    complete line, has no columns and no rows.

    Raises :class:`LogFileError` naming the file and the line when it is not UTF-8 text (or holds a NUL byte),
    not CSV, or lacks a ``required`` column."""
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")  # the rows are rewritten byte for byte: no newline translation
    except UnicodeDecodeError as exc:
        byte = data[exc.start]
        raise _not_text(path, data, exc.start, f"bytes that are not UTF-8 (0x{byte:02x}; a binary file?)") from None
    if "\x00" in text:
        raise _not_text(path, data, data.index(b"\x00"), "a NUL byte (a binary file?)") from None
    text = text[:text.rfind("\n") + 1]  # a last line without its newline was cut by a kill while writing
    if not text:
        return (), []  # nothing, or a header cut before its end: no row was written
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        columns = tuple(reader.fieldnames or ())
        if any(name not in columns for name in required):
            raise LogFileError(path, "columns", 1, text.splitlines()[0][:80])
        rows = [row for row in reader if None not in row.values() and None not in row]  # cut: missing / extra
    except csv.Error as exc:  # e.g. a field longer than the csv module's limit (line_num: the lines read before)
        raise LogFileError(path, "csv", reader.line_num + 1, str(exc)) from None
    return columns, rows


def _within(row: dict[str, str], step: int) -> bool:
    """Whether a row read back is a whole row of a step up to ``step`` (not a number cut in the middle)."""
    try:
        return int(row["step"]) <= step and math.isfinite(float(row["loss"]))
    except ValueError:
        return False


def step_row(step: int, epoch: int, lr: float, images_per_s: float, elapsed_s: float,
             logs: Mapping[str, Any]) -> dict[str, Any]:
    """One row of the log: the trainer's columns, then the method's ``logs`` (scalars; ``loss`` required,
    ``temperature`` optional, every other key in its order). A key of ``logs`` that names one of the trainer's
    columns is refused (:class:`LogColumnsError`): it would overwrite the trainer's value or be lost."""
    taken = [key for key in logs if key in TRAINER_COLUMNS]
    if taken:
        raise LogColumnsError(f"step {step}: the method's logs use {taken}, a name of the trainer's own columns "
                              f"{list(TRAINER_COLUMNS)}; rename that key in StepOutput.logs")
    row: dict[str, Any] = {"step": step, "epoch": epoch, "loss": float(logs["loss"]), "lr": lr,
                           "images_per_s": images_per_s, "elapsed_s": elapsed_s,
                           "temperature": float(logs["temperature"]) if "temperature" in logs else None}
    row.update({key: float(value) for key, value in logs.items() if key not in row})
    return row


class Throughput:
    """Images per second since the last logged row (the window restarts at every :meth:`rate`); ``start``: the
    time it starts at, on the clock that :meth:`rate` is given (default: ``time.perf_counter()`` now)."""

    def __init__(self, start: float | None = None) -> None:
        self.start, self.images = time.perf_counter() if start is None else start, 0

    def add(self, images: int) -> None:
        self.images += images

    def rate(self, now: float) -> float:
        rate = self.images / max(now - self.start, 1e-9)
        self.start, self.images = now, 0
        return rate


class RunLog:
    """Appends rows to ``DIR/train_log.csv`` (resumed runs keep appending, rows after the resume point
    are dropped first), mirrors them to TensorBoard under ``DIR/tensorboard`` if ``tensorboard`` is
    installed, and drives a progress bar showing loss and images/s. ``enabled=False`` (a process other than rank
    0) writes nothing but checks the rows the same way.

    The first row this session logs fixes its columns (module docstring). A resume whose method logs other scalars
    than the earlier sessions (a plugin that gained or lost one) keeps every earlier row: the file's columns become
    the union -- its own, in their order, then the new ones -- and a cell whose value was not logged in that
    session is empty."""

    def __init__(self, out_dir: Path, total_steps: int, start_step: int = 0, progress: bool = True,
                 enabled: bool = True) -> None:
        self.enabled, self.out_dir = enabled, out_dir
        self.path = out_dir / LOG_NAME
        self.columns: tuple[str, ...] = ()  # this session's, fixed by its first row
        self.first_step: int | None = None
        self.last_step = start_step
        self.bar = tqdm(total=total_steps, initial=start_step, disable=not (progress and enabled),
                        dynamic_ncols=True, unit="step")
        self.writer = None
        self.file = None
        self.file_columns = COLUMNS
        if not enabled:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        file_columns, rows = read_log(self.path) if self.path.exists() else ((), [])
        self.file_columns = file_columns or COLUMNS
        # keep only complete rows up to start_step: a resume replays the steps after its checkpoint, and a process
        # killed while writing may have left a partial last line
        self._rewrite([row for row in rows if _within(row, start_step)])
        try:
            from torch.utils.tensorboard import SummaryWriter  # needs the optional `tensorboard` package
        except (ImportError, ModuleNotFoundError):
            self.writer = None
        else:
            self.writer = SummaryWriter(str(out_dir / "tensorboard"), purge_step=start_step or None)

    def _rewrite(self, rows: list[dict[str, str]]) -> None:
        """Write the file anew with ``rows`` under ``self.file_columns``, through a temporary and os.replace (a
        process killed while rewriting must not lose the kept rows), and open it for appending."""
        if self.file is not None:
            self.file.close()
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=self.file_columns)
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(self.path, text.getvalue())
        self.file = self.path.open("a", newline="")
        self.csv = csv.DictWriter(self.file, fieldnames=self.file_columns, restval="")

    def _fix_columns(self, row: dict[str, Any]) -> None:
        """Take the first row's columns as this session's; widen the file's header when they are new to it."""
        self.columns = COLUMNS + tuple(key for key in row if key not in COLUMNS)
        self.first_step = row["step"]
        new = tuple(c for c in self.columns if c not in self.file_columns)
        if self.enabled and new:
            self.file_columns += new
            self._rewrite(read_log(self.path)[1])

    def log(self, row: dict[str, Any]) -> None:
        """Append ``row`` (:func:`step_row`): the step's columns must be among the first logged row's."""
        if not self.columns:
            self._fix_columns(row)
        unknown = [key for key in row if key not in self.columns]
        if unknown:
            raise LogColumnsError(f"step {row['step']}: the method logged {unknown[0]!r}, which the first logged step "
                                  f"({self.first_step}) did not; the columns of {LOG_NAME} are fixed by the first "
                                  f"logged step, so log every key from the first step on")
        self.bar.update(row["step"] - self.last_step)
        self.last_step = row["step"]
        self.bar.set_postfix(loss=f"{row['loss']:.4f}", img_s=f"{row['images_per_s']:.0f}", epoch=row["epoch"])
        if not self.enabled:
            return
        self.csv.writerow(row)
        self.file.flush()
        if self.writer is not None:
            for key in self.columns:
                if key not in ("step", "epoch", "elapsed_s") and row.get(key) is not None:
                    self.writer.add_scalar(f"train/{key}", row[key], row["step"])

    def write(self, message: str) -> None:
        self.bar.write(message)

    def set_total(self, total_steps: int) -> None:
        """The run's last step changed (a schedule planned for the budget): the progress bar ends there."""
        self.bar.total = total_steps
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()
        if self.enabled:
            if self.file is not None:
                self.file.close()
            if self.writer is not None:
                self.writer.close()
