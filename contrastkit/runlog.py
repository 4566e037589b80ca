"""Training logs: a CSV file (always), TensorBoard (when installed), and a tqdm progress bar; and the one reader
of ``train_log.csv`` (for a resume and for the plots)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from contrastkit.runfolder import write_text_atomic

__all__ = ["COLUMNS", "LogFileError", "RunLog", "read_log"]

COLUMNS = ("step", "epoch", "loss", "lr", "images_per_s", "elapsed_s", "temperature")

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


class RunLog:
    """Appends rows to ``DIR/train_log.csv`` (resumed runs keep appending, rows after the resume point
    are dropped first), mirrors them to TensorBoard under ``DIR/tensorboard`` if ``tensorboard`` is
    installed, and drives a progress bar showing loss and images/s. ``extra_columns`` are a method's own
    scalars (its ``log_keys``, e.g. CPC's prediction accuracy per step ahead), after the fixed columns.

    A resume whose method logs other scalars than the earlier sessions (a plugin that gained or lost one) keeps
    every earlier row: the file's columns become the union -- its own, in their order, then the new ones -- and
    a cell whose value was not logged in that session is empty."""

    def __init__(self, out_dir: Path, total_steps: int, start_step: int = 0, progress: bool = True,
                 enabled: bool = True, extra_columns: tuple[str, ...] = ()) -> None:
        self.enabled = enabled
        self.columns = COLUMNS + tuple(c for c in extra_columns if c not in COLUMNS)
        self.extra_columns = self.columns[len(COLUMNS):]
        self.path = out_dir / "train_log.csv"
        self.bar = tqdm(total=total_steps, initial=start_step, disable=not (progress and enabled),
                        dynamic_ncols=True, unit="step")
        self.writer = None
        if not enabled:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        self._truncate_after(start_step)
        new = not self.path.exists()
        self.file = self.path.open("a", newline="")
        self.csv = csv.DictWriter(self.file, fieldnames=self.columns, extrasaction="ignore")
        if new:
            self.csv.writeheader()
        try:
            from torch.utils.tensorboard import SummaryWriter  # needs the optional `tensorboard` package
        except (ImportError, ModuleNotFoundError):
            self.writer = None
        else:
            self.writer = SummaryWriter(str(out_dir / "tensorboard"), purge_step=start_step or None)

    def _truncate_after(self, step: int) -> None:
        """Keep only complete rows up to ``step``: a resume replays the steps after its checkpoint, and a
        process killed while writing may have left a partial last line. The columns become the union of the
        file's and this session's (class docstring)."""
        if not self.path.exists():
            return
        columns, rows = read_log(self.path)
        self.columns = tuple(dict.fromkeys((*columns, *self.columns)))
        rows = [row for row in rows if _within(row, step)]
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=self.columns)
        writer.writeheader()
        writer.writerows(rows)
        # through a temporary and os.replace: a process killed while rewriting must not lose the kept rows
        write_text_atomic(self.path, text.getvalue())

    def log(self, row: dict[str, Any], steps_done: int) -> None:
        self.bar.update(steps_done)
        self.bar.set_postfix(loss=f"{row['loss']:.4f}", img_s=f"{row['images_per_s']:.0f}", epoch=row["epoch"])
        if not self.enabled:
            return
        self.csv.writerow(row)
        self.file.flush()
        if self.writer is not None:
            for key in ("loss", "lr", "images_per_s", "temperature", *self.extra_columns):
                if row.get(key) is not None:
                    self.writer.add_scalar(f"train/{key}", row[key], row["step"])

    def write(self, message: str) -> None:
        self.bar.write(message)

    def close(self) -> None:
        self.bar.close()
        if self.enabled:
            self.file.close()
            if self.writer is not None:
                self.writer.close()
