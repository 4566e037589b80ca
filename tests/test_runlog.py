"""The training log: a resume keeps every earlier row (also when the method's logged columns changed), drops cut
lines and rows after the checkpoint, and a file that is not a training log is named; every key a step logs is a
column (fixed by the first logged row); the plots read the log through the same reader."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from contrastkit.runlog import COLUMNS, LogColumnsError, LogFileError, RunLog, read_log, step_row

HEADER = "step,epoch,loss,lr,images_per_s,elapsed_s,temperature"


def _row(step: int, **extra: float) -> dict:
    return {"step": step, "epoch": 0, "loss": 1.5, "lr": 0.25, "images_per_s": 100.0, "elapsed_s": 2.0,
            "temperature": None, **extra}


def _session(out: Path, start: int, steps: range, **values: float) -> None:
    log = RunLog(out, total_steps=10, start_step=start, progress=False)
    for step in steps:
        log.log(_row(step, **values))
    log.close()


def test_a_resume_whose_method_logs_other_columns_keeps_every_row(tmp_path):
    _session(tmp_path, 0, range(1, 4), acc_a=0.5)
    _session(tmp_path, 3, range(4, 5), acc_b=0.75)  # the plugin lost acc_a and gained acc_b
    assert (tmp_path / "train_log.csv").read_text().splitlines() == [
        f"{HEADER},acc_a,acc_b",
        "1,0,1.5,0.25,100.0,2.0,,0.5,",
        "2,0,1.5,0.25,100.0,2.0,,0.5,",
        "3,0,1.5,0.25,100.0,2.0,,0.5,",
        "4,0,1.5,0.25,100.0,2.0,,,0.75",
    ]
    _session(tmp_path, 2, range(3, 4))  # a resume from step 2 with no extra column: rows after 2 go, columns stay
    assert (tmp_path / "train_log.csv").read_text().splitlines() == [
        f"{HEADER},acc_a,acc_b",
        "1,0,1.5,0.25,100.0,2.0,,0.5,",
        "2,0,1.5,0.25,100.0,2.0,,0.5,",
        "3,0,1.5,0.25,100.0,2.0,,,",
    ]


def test_cut_lines_are_left_out(tmp_path):
    path = tmp_path / "train_log.csv"
    path.write_text(f"{HEADER}\r\n1,0,1.5,0.25,100.0,2.0,\r\n2,0,1.5\r\n3,0,1.5,0.25,100.0,2.0,0.")
    columns, rows = read_log(path)  # row 2 lacks fields; row 3 lacks its newline (its last number may be cut)
    assert columns == tuple(HEADER.split(",")) and [r["step"] for r in rows] == ["1"]
    path.write_text("step,epo")  # a header cut before its end: nothing was logged
    assert read_log(path) == ((), [])
    _session(tmp_path, 0, range(1, 2))
    assert path.read_text().splitlines() == [HEADER, "1,0,1.5,0.25,100.0,2.0,"]


@pytest.mark.parametrize("content, problem", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "it is not UTF-8 text (a binary file?)"),
    (b"step,loss\n1,\x002\n", "it is not UTF-8 text (a binary file?)"),  # NUL: not text either
    (b"step,loss\n1," + b"9" * 200_000 + b"\n", "line 2: field larger than field limit (131072)"),
    (b"name,size\nfoo,3\n", "its first line 'name,size' does not name the columns 'step' and 'loss'"),
], ids=["binary", "nul", "huge-field", "foreign-csv"])
def test_a_file_that_is_not_a_training_log_is_named(tmp_path, content, problem):
    path = tmp_path / "train_log.csv"
    path.write_bytes(content)
    with pytest.raises(LogFileError) as refused:
        RunLog(tmp_path, total_steps=10, start_step=3, progress=False)
    assert str(refused.value) == (f"{path} is not a training log of contrastkit: {problem}; move it away to resume "
                                  f"without the earlier rows, or start over with --overwrite")
    assert path.read_bytes() == content  # left as it was


def test_every_key_of_the_first_row_is_a_column_without_a_declaration(tmp_path):
    log = RunLog(tmp_path, total_steps=10, progress=False)
    log.log(_row(1, inv=0.5, var=2.0))  # the method's own scalars, after the trainer's columns, in their order
    log.log(_row(2, inv=0.25))  # a key missing later: an empty cell
    log.close()
    assert (tmp_path / "train_log.csv").read_text().splitlines() == [
        f"{HEADER},inv,var",
        "1,0,1.5,0.25,100.0,2.0,,0.5,2.0",
        "2,0,1.5,0.25,100.0,2.0,,0.25,",
    ]


def test_a_key_the_first_row_did_not_have_is_an_error_naming_it_and_the_step(tmp_path):
    for enabled in (True, False):  # every process checks, not only the one that writes
        log = RunLog(tmp_path / str(enabled), total_steps=10, progress=False, enabled=enabled)
        log.log(_row(1, inv=0.5))
        with pytest.raises(LogColumnsError) as refused:
            log.log(_row(2, inv=0.5, var=1.0))
        log.close()
        assert str(refused.value) == ("step 2: the method logged 'var', which the first logged step (1) did not; the "
                                      "columns of train_log.csv are fixed by the first logged step, so log every key "
                                      "from the first step on")


def test_a_row_is_the_trainers_columns_then_the_methods_logs(tmp_path):
    logs = {"acc_k2": torch.tensor(0.5), "loss": torch.tensor(1.25), "temperature": torch.tensor(0.125),
            "acc_k1": torch.tensor(0.75)}
    row = step_row(3, 1, 0.5, 200.0, 7.5, logs)
    assert row == {"step": 3, "epoch": 1, "loss": 1.25, "lr": 0.5, "images_per_s": 200.0, "elapsed_s": 7.5,
                   "temperature": 0.125, "acc_k2": 0.5, "acc_k1": 0.75}
    assert list(row) == [*COLUMNS, "acc_k2", "acc_k1"]
    assert step_row(1, 0, 0.5, 1.0, 1.0, {"loss": torch.tensor(2.0)})["temperature"] is None
    with pytest.raises(LogColumnsError, match=r"^step 4: the method's logs use \['lr'\], a name of the trainer's "):
        step_row(4, 0, 0.5, 1.0, 1.0, {"loss": torch.tensor(1.0), "lr": torch.tensor(0.1)})


def test_the_plots_read_the_log_through_the_same_reader(tmp_path):
    from contrastkit.evaluate.plots import read_training_log

    path = tmp_path / "train_log.csv"
    path.write_text(f"{HEADER},inv\n1,0,1.5,0.25,100.0,2.0,,0.5\n2,0,1.4")  # the last line was cut by a kill
    assert read_training_log(path) == read_log(path)[1] == [
        {"step": "1", "epoch": "0", "loss": "1.5", "lr": "0.25", "images_per_s": "100.0", "elapsed_s": "2.0",
         "temperature": "", "inv": "0.5"}]
    path.write_bytes(b"step,loss\n1,\x002\n")
    with pytest.raises(ValueError, match=r"^plot: .* is not a text CSV: line 2 holds a NUL byte \(a binary file\?\)"):
        read_training_log(path, "plot")
