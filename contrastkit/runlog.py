"""Training logs: a CSV file (always), TensorBoard (when installed), and a tqdm progress bar."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from contrastkit.runfolder import write_text_atomic

__all__ = ["RunLog"]

COLUMNS = ("step", "epoch", "loss", "lr", "images_per_s", "elapsed_s", "temperature")


class RunLog:
    """Appends rows to ``DIR/train_log.csv`` (resumed runs keep appending, rows after the resume point
    are dropped first), mirrors them to TensorBoard under ``DIR/tensorboard`` if ``tensorboard`` is
    installed, and drives a progress bar showing loss and images/s. ``extra_columns`` are a method's own
    scalars (its ``log_keys``, e.g. CPC's prediction accuracy per step ahead), after the fixed columns."""

    def __init__(self, out_dir: Path, total_steps: int, start_step: int = 0, progress: bool = True,
                 enabled: bool = True, extra_columns: tuple[str, ...] = ()) -> None:
        self.enabled = enabled
        self.columns = COLUMNS + tuple(c for c in extra_columns if c not in COLUMNS)
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
        process killed while writing may have left a partial last line."""
        if not self.path.exists():
            return
        rows = []
        with self.path.open(newline="") as f:
            for row in csv.DictReader(f):
                if None in row.values() or None in row or len(row) != len(self.columns):
                    continue  # a cut line: missing or extra fields
                try:
                    keep = int(row["step"]) <= step and math.isfinite(float(row["loss"]))
                except ValueError:  # a number cut in the middle
                    keep = False
                if keep:
                    rows.append(row)
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
            for key in ("loss", "lr", "images_per_s", "temperature", *self.columns[len(COLUMNS):]):
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
