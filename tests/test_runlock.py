"""One training at a time in a run folder: a second one is refused naming the holder, a stale lock is taken over,
and the lock is released on every way out of fit()."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from contrastkit.config import TrainConfig
from contrastkit.runfolder import clear_run
from contrastkit.runlock import LOCK_NAME, RunFolderBusyError, RunLock, check_not_held
from contrastkit.train import Trainer
from tests.helpers import start_training

#: a holder process: takes the lock of argv[1], says so, then keeps it until its stdin closes (or it is killed)
HOLDER = ("import sys; from contrastkit.runlock import RunLock; lock = RunLock.acquire(sys.argv[1]); "
          "print('held', flush=True); sys.stdin.read(); lock.release()")


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("lock") / "tiny.npz"
    np.savez(path, x=rng.integers(0, 255, (40, 8, 8)).astype(np.uint8), y=np.repeat(np.arange(4), 10))
    return path


def _trainer(data: Path, out: Path, **kw) -> Trainer:
    return Trainer.from_config(TrainConfig(method="simclr", data=str(data), out=str(out), epochs=1, batch_size=16,
                                           progress=False, seed=1, **kw))


def _start_holder(folder: Path, tag: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), tag], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    assert proc.stdout.readline().strip() == "held"
    return proc


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_a_second_fit_is_refused_naming_the_holder_and_works_once_it_ends(tiny_npz, tmp_path):
    out = tmp_path / "run"
    _trainer(tiny_npz, out).fit()
    holder = _start_holder(out, "holder-tag-1")
    try:
        before = _files(out)
        with pytest.raises(RunFolderBusyError) as refused:
            _trainer(tiny_npz, out).fit(overwrite=True)
        message = str(refused.value)
        assert f"{out} is in use by another training (pid {holder.pid} on host {socket.gethostname()} since " in message
        assert "holder-tag-1" in message and "\n" not in message  # its command line, in one line
        assert _files(out) == before  # nothing cleared or written: the holder's run is intact
        with pytest.raises(RunFolderBusyError, match=f"pid {holder.pid}"):
            _trainer(tiny_npz, out).fit(resume=True)
        with pytest.raises(RunFolderBusyError, match=f"pid {holder.pid}"):
            check_not_held(out)  # the command line's early check says the same
    finally:
        holder.stdin.close()  # the holder releases and ends
        holder.wait(timeout=60)
    assert not (out / LOCK_NAME).exists()  # a clean release removes the file
    assert _trainer(tiny_npz, out).fit(overwrite=True)["steps"] == 2


def test_a_lock_left_by_a_killed_process_is_taken_over(tiny_npz, tmp_path, capsys):
    out = tmp_path / "run"
    holder = _start_holder(out, "holder-tag-2")
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == holder.pid  # the file stays, its flock is gone
    check_not_held(out)  # stale: nothing to say
    assert _trainer(tiny_npz, out).fit()["steps"] == 2
    assert f"took over {out / LOCK_NAME}: the training that held it ended without releasing it (pid {holder.pid}" \
        in capsys.readouterr().out
    assert not (out / LOCK_NAME).exists()


def test_a_stale_lock_file_without_a_lock_is_taken_over(tiny_npz, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"pid": 999999, "host": "elsewhere", "started": "then", "command": "x"}))
    lock = RunLock.acquire(out)
    try:
        assert lock.notes == [f"took over {out / LOCK_NAME}: the training that held it ended without releasing it "
                              f"(pid 999999 on host elsewhere since then, command: x)"]
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()  # now names this process
    finally:
        lock.release()
    (out / LOCK_NAME).write_bytes(b"\x00garbage")  # unreadable text: still just a file without a lock
    assert _trainer(tiny_npz, out).fit()["steps"] == 2


def test_a_lock_held_in_this_process_excludes_too_and_overwrite_never_removes_it(tiny_npz, tmp_path):
    out = tmp_path / "run"
    _trainer(tiny_npz, out).fit()
    lock = RunLock.acquire(out)  # another open file description: flock excludes it like another process
    try:
        with pytest.raises(RunFolderBusyError, match=f"pid {os.getpid()} on host "):
            _trainer(tiny_npz, out).fit(overwrite=True)
        assert (out / "checkpoint.pt").exists()
        assert LOCK_NAME not in [p.name for p in clear_run(out)] and (out / LOCK_NAME).exists()
    finally:
        lock.release()


def test_fit_releases_the_lock_on_errors_and_ctrl_c(tiny_npz, tmp_path, monkeypatch):
    out = tmp_path / "run"
    _trainer(tiny_npz, out).fit()
    with pytest.raises(FileExistsError, match="already holds a run"):
        _trainer(tiny_npz, out).fit()
    assert not (out / LOCK_NAME).exists()

    trainer = _trainer(tiny_npz, out)

    def interrupted(*args, **kwargs):
        assert (out / LOCK_NAME).exists()  # held while training
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(overwrite=True)
    assert not (out / LOCK_NAME).exists()
    RunLock.acquire(out).release()  # free


def test_the_command_line_refuses_a_second_training_in_the_same_folder(tiny_npz, tmp_path):
    """The issue's case: `train --out D --overwrite` while another training writes to D. The second command fails at
    once naming the first; the first trains on and keeps its run."""
    out = tmp_path / "run"
    log = out / "train_log.csv"
    first = start_training(["--data", str(tiny_npz), "--batch-size", "8", "--epochs", "500", "--log-every", "1",
                            "--no-progress"], tmp_path, out, log_lines=3)
    second = subprocess.run([sys.executable, "-m", "contrastkit", "train", "--data", str(tiny_npz), "--out", str(out),
                             "--batch-size", "8", "--epochs", "1", "--no-progress", "--overwrite"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    still_running = first.poll() is None
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=120)
    assert still_running
    assert second.returncode == 2 and second.stdout == ""
    assert second.stderr.startswith(f"contrastkit train: error: {out} is in use by another training "
                                    f"(pid {first.pid} on host ") and second.stderr.count("\n") == 1
    assert "--epochs 500" in second.stderr  # the holder's command
    assert first.returncode == 130, stderr  # the first stopped on Ctrl-C with its checkpoint, as usual
    steps = [int(line.split(",")[0]) for line in log.read_text().splitlines()[1:]]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 3  # its log alone, never restarted
    assert not (out / LOCK_NAME).exists()
