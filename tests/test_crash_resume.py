"""Exact resume after a real crash: a CPU run started through the CLI in a subprocess is killed with SIGKILL at
random moments (after a logged step, while a checkpoint is being written, before the first checkpoint exists),
continued with ``contrastkit train --out DIR --resume`` until it completes (a run killed before its first
checkpoint has nothing to continue: ``--resume`` is refused, saying so, and the run starts over with
``--overwrite``), and then must equal an uninterrupted run with the same seed bit for bit: every tensor of the
method (weights, momentum encoder, MoCo queue, memory bank), the optimizer, scheduler and RNG states, and the
logged (step, loss) rows -- steps 1..total exactly once, in order, with no stale temporary (nor the lock file of
a killed process) left in the folder.

The in-process resume tests (``tests/test_train.py``) stop a run politely; this guards the path a real crash
takes: a partial CSV line, rows logged after the last checkpoint, a half-written ``.checkpoint.pt.*.tmp``, a
folder with ``config.yaml`` and no checkpoint yet (refused), the lock file of a killed session (taken over), and
the settings read back from the run folder.

Kill points are drawn by a seeded RNG per method; what actually happened (the step seen in the log at the kill,
the checkpoint step it resumed from, whether a half-written temporary was left) is printed (``pytest -s``).
"""

from __future__ import annotations

import csv
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from contrastkit.checkpoint import load_checkpoint
from tests.helpers import write_quadrant_npz

BATCH = 16
EPOCHS = 4
TRAIN_IMAGES = 96  # 120 images, of which the loader holds out 24 for testing
TOTAL_STEPS = EPOCHS * (TRAIN_IMAGES // BATCH)  # 24
CHECKPOINT_EVERY = 4  # checkpoints at steps 4, 6 (epoch end), 8, 12, 16, 18, 20, 24
LAUNCH_TIMEOUT_S = 180.0
TMP_GLOB = ".checkpoint.pt.*.tmp"
METHOD_FLAGS = {"simclr": [], "moco": ["--set", "queue_size=32"], "membank": []}
#: a state dict key that must be among those compared, so the queue / bank is really checked
NEGATIVES_KEY = {"simclr": None, "moco": "negatives.keys", "membank": "negatives.bank"}


@dataclass
class Kill:
    """One crash of a scenario and what it hit."""

    kind: str  # "before-first-checkpoint", "after-step" or "mid-save"
    target: int  # the logged step that armed the kill (0: config.yaml written, nothing logged yet)
    killed: bool  # False when the process finished before the kill point came
    logged: int = 0  # the last step in the CSV right after the kill
    checkpoint: int | None = None  # the step of DIR/checkpoint.pt right after the kill (None: no checkpoint)
    temporary_left: bool = False  # a half-written checkpoint temporary remained: the kill landed mid-save

    def __str__(self) -> str:
        if not self.killed:
            return f"{self.kind}@{self.target}: process finished first"
        saved = "no checkpoint" if self.checkpoint is None else f"checkpoint {self.checkpoint}"
        return (f"{self.kind}@{self.target}: log at {self.logged}, {saved}"
                f"{', half-written temporary left' if self.temporary_left else ''}")


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 grey 8x8 images in 4 classes (a bright quadrant per class) with noise: a run is a few seconds."""
    return write_quadrant_npz(tmp_path_factory.mktemp("crash"), per_class=30)


def _launch(out: Path, args: list[str]) -> subprocess.Popen:
    """``python -m contrastkit train --out OUT ARGS`` in the background; output goes to OUT.launchN.txt."""
    index = len(list(out.parent.glob(f"{out.name}.launch*.txt")))
    log = (out.parent / f"{out.name}.launch{index}.txt").open("w")
    try:
        return subprocess.Popen([sys.executable, "-m", "contrastkit", "train", "--out", str(out), *args],
                                stdout=log, stderr=subprocess.STDOUT, cwd=out.parent)
    finally:
        log.close()  # the child holds its own copy


def _fresh_args(method: str, data: Path) -> list[str]:
    """The flags of a new run; every run forces one torch thread (bit-identity needs the same count)."""
    return ["--method", method, "--data", str(data), "--epochs", str(EPOCHS), "--batch-size", str(BATCH),
            "--log-every", "1", "--checkpoint-every", str(CHECKPOINT_EVERY), "--seed", "11", "--no-progress",
            "--num-threads", "1", *METHOD_FLAGS[method]]


RESUME_ARGS = ["--resume"]  # nothing else: the run's saved settings (num_threads=1 included) are used


def _restart_without_checkpoint(out: Path, method: str, data: Path) -> subprocess.Popen:
    """A run killed before its first checkpoint: ``--resume`` is refused (naming the missing checkpoint, leaving the
    folder as it was), and the run is started over with ``--overwrite``."""
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "run.lock"}
    refused = subprocess.run([sys.executable, "-m", "contrastkit", "train", "--out", str(out), *RESUME_ARGS],
                             capture_output=True, text=True, cwd=out.parent, timeout=LAUNCH_TIMEOUT_S)
    assert refused.returncode == 2 and "but no checkpoint.pt -- the run stopped before its first checkpoint" in \
        refused.stderr, refused.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != "run.lock"} == before
    return _launch(out, [*_fresh_args(method, data), "--overwrite"])


def _finish(proc: subprocess.Popen, out: Path) -> None:
    try:
        code = proc.wait(timeout=LAUNCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    transcript = "\n".join(p.read_text() for p in sorted(out.parent.glob(f"{out.name}.launch*.txt")))
    assert code == 0, f"training exited with {code}:\n{transcript[-3000:]}"


def _last_logged_step(out: Path) -> int:
    """The step of the last complete line of OUT/train_log.csv (0 when there is none)."""
    try:
        text = (out / "train_log.csv").read_bytes()
    except FileNotFoundError:
        return 0
    lines = text.split(b"\n")[:-1]  # the part after the last newline may be cut
    for line in reversed(lines):
        head = line.split(b",", 1)[0]
        if head.isdigit():
            return int(head)
    return 0


def _temporaries(out: Path) -> list[Path]:
    return sorted(out.glob(TMP_GLOB))


def _wait_for(proc: subprocess.Popen, ready: Callable[[], bool], pause: float = 0.002) -> bool:
    """Poll every ``pause`` seconds until ``ready()`` (True) or the process exits (False); ``pause=0`` polls
    without sleeping, to catch a checkpoint temporary that lives for a few milliseconds."""
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    while proc.poll() is None:
        if ready():
            return True
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise TimeoutError("the training process neither reached the kill point nor finished")
        if pause:
            time.sleep(pause)
    return False


def _crash(proc: subprocess.Popen, out: Path, kind: str, target: int) -> Kill:
    """Wait for the kill point ``kind`` at logged step ``target`` (see :class:`Kill`), SIGKILL, record it."""
    if target == 0:
        armed = _wait_for(proc, lambda: (out / "config.yaml").exists())
    else:
        armed = _wait_for(proc, lambda: _last_logged_step(out) >= target)
    if armed and kind == "mid-save":
        # then the instant a checkpoint temporary appears: the target step is new (beyond anything an earlier
        # session logged), so this session has started and removed any stale temporary already
        armed = _wait_for(proc, lambda: bool(_temporaries(out)), pause=0)
    if armed:
        proc.send_signal(signal.SIGKILL)
    kill = Kill(kind, target, killed=proc.wait() == -signal.SIGKILL)
    if kill.killed:
        kill.logged = _last_logged_step(out)
        if (out / "checkpoint.pt").exists():
            kill.checkpoint = int(load_checkpoint(out / "checkpoint.pt")["progress"]["step"])
        kill.temporary_left = bool(_temporaries(out))
    return kill


def _crash_until_done(method: str, data: Path, out: Path, seed: int, later_kills: int,
                      mid_save_tries: int = 4) -> list[Kill]:
    """Start a run, kill it at seeded random points, resume after each kill, and let the last session finish.

    The first kill comes before the first checkpoint exists (right after config.yaml is written, or after a
    logged step well below ``CHECKPOINT_EVERY``); the ``later_kills`` alternate between "after a logged step"
    and "while a checkpoint is being written" (which comes first is drawn), each at a step beyond anything
    logged so far. A mid-save attempt whose kill lands after the save finished is retried, up to
    ``mid_save_tries`` attempts in all."""
    rng = random.Random(f"{method}-{seed}")
    kills: list[Kill] = []
    proc = _launch(out, _fresh_args(method, data))
    kinds = ["after-step", "mid-save"]
    rng.shuffle(kinds)
    plan = ["before-first-checkpoint"] + [kinds[i % 2] for i in range(later_kills)]
    mid_save_attempts = 0
    while plan:
        kind = plan.pop(0)
        seen = max([k.logged for k in kills] + [0])
        if kind == "before-first-checkpoint":
            target = rng.randrange(0, CHECKPOINT_EVERY - 1)  # 0: as soon as config.yaml is written
        else:
            if seen + 1 > TOTAL_STEPS - 2:
                break
            target = rng.randint(seen + 1, min(seen + 8, TOTAL_STEPS - 2))
        kill = _crash(proc, out, kind, target)
        kills.append(kill)
        print(f"  {method}: {kill}")
        if not kill.killed:
            break
        if kind == "mid-save":
            mid_save_attempts += 1
            if not kill.temporary_left and mid_save_attempts < mid_save_tries:
                plan.insert(0, "mid-save")
        resumable = kill.checkpoint is not None
        proc = _launch(out, RESUME_ARGS) if resumable else _restart_without_checkpoint(out, method, data)
    _finish(proc, out)
    return kills


def _log_rows(out: Path) -> list[tuple[int, float]]:
    with (out / "train_log.csv").open(newline="") as f:
        return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f)]


def _assert_same(a: Any, b: Any, where: str) -> None:
    """Recursive bit-for-bit equality of checkpoint contents (tensors with torch.equal and the same dtype)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        if not torch.equal(a, b):
            gap = (a.double() - b.double()).abs().max().item() if a.is_floating_point() else "-"
            pytest.fail(f"{where} differs (largest absolute difference {gap})")
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for key in a:
            _assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _assert_identical_runs(method: str, crashed: Path, straight: Path) -> None:
    """The crashed-and-resumed run ends where the uninterrupted one does, bit for bit."""
    got, want = load_checkpoint(crashed / "checkpoint.pt"), load_checkpoint(straight / "checkpoint.pt")
    assert got["progress"]["step"] == want["progress"]["step"] == TOTAL_STEPS
    if NEGATIVES_KEY[method]:
        assert NEGATIVES_KEY[method] in want["method"]
    for part in ("method", "optimizer", "scheduler", "data"):
        _assert_same(got[part], want[part], part)
    # the RNG states too, but Python's `random`: nothing in training draws from it and nothing seeds it, so it
    # differs between any two processes (the checkpoint merely carries it along)
    _assert_same({k: v for k, v in got["rng"].items() if k != "python"},
                 {k: v for k, v in want["rng"].items() if k != "python"}, "rng")
    rows = _log_rows(crashed)
    assert [s for s, _ in rows] == list(range(1, TOTAL_STEPS + 1))  # every step once, in order
    assert rows == _log_rows(straight)
    assert not [p.name for p in crashed.iterdir() if p.name.endswith(".tmp")]  # no temporary left behind
    assert not (crashed / "run.lock").exists()  # the killed sessions' lock was taken over, then released


@pytest.fixture(scope="module")
def straight_runs(tiny_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The uninterrupted reference run of each method (the same command, never killed), run side by side."""
    root = tmp_path_factory.mktemp("straight")
    procs = {m: _launch(root / m, _fresh_args(m, tiny_npz)) for m in METHOD_FLAGS}
    for method, proc in procs.items():
        _finish(proc, root / method)
    return {m: root / m for m in METHOD_FLAGS}


def _check_crashes(method: str, seed: int, later_kills: int, tiny_npz: Path, tmp_path: Path,
                   straight: dict[str, Path]) -> None:
    out = tmp_path / "crashed"
    print(f"\n{method}, kill seed {seed}:")
    kills = _crash_until_done(method, tiny_npz, out, seed, later_kills)
    _assert_identical_runs(method, out, straight[method])
    landed = [k for k in kills if k.killed]
    assert len(landed) >= 2, [str(k) for k in kills]
    first = kills[0]
    assert first.killed and first.checkpoint is None, f"the first kill came too late: {first}"
    assert any(k.temporary_left for k in kills if k.kind == "mid-save"), \
        f"no kill landed while a checkpoint was being written: {[str(k) for k in kills]}"


@pytest.mark.parametrize("method", list(METHOD_FLAGS))
def test_killed_and_resumed_run_equals_uninterrupted_run(method: str, tiny_npz: Path, tmp_path: Path,
                                                         straight_runs: dict[str, Path]) -> None:
    """SIGKILL before the first checkpoint, after a logged step and mid-save, then --resume: bit-identical."""
    _check_crashes(method, 0, 2, tiny_npz, tmp_path, straight_runs)


@pytest.mark.slow
def test_more_kill_points_moco(tiny_npz: Path, tmp_path: Path, straight_runs: dict[str, Path]) -> None:
    """The same for MoCo (the most state: momentum encoder, queue with ids, shuffled split-BN keys) at other
    seeded kill points, four crashes after the first instead of two (one method only: each resume is a new
    process that imports torch, a few seconds on a 2-core machine)."""
    _check_crashes("moco", 1, 4, tiny_npz, tmp_path, straight_runs)


def test_kill_while_a_resume_rewrites_the_log_keeps_its_rows(tiny_npz: Path, tmp_path: Path,
                                                             straight_runs: dict[str, Path]) -> None:
    """A resume rewrites train_log.csv without the rows logged after its checkpoint; a SIGKILL during that
    rewrite must leave the rows it keeps intact (rewritten in place, the file was emptied), and the temporary
    of the rewrite is removed by the next start."""
    out = tmp_path / "run"
    shutil.copytree(straight_runs["simclr"], out)  # a finished run: its checkpoint is at the last step
    log = out / "train_log.csv"
    header, *rows = log.read_bytes().splitlines(keepends=True)
    long_log = header + b"".join(rows) * 2500  # a long run's log (60,000 rows), every row kept by a resume
    log.write_bytes(long_log)
    size = log.stat().st_size
    proc = _launch(out, RESUME_ARGS)
    rewriting = _wait_for(proc, lambda: log.stat().st_size != size or bool(list(out.glob(".train_log.csv.*.tmp"))),
                          pause=0.0002)
    if rewriting:
        proc.send_signal(signal.SIGKILL)
    killed = proc.wait() == -signal.SIGKILL
    print(f"\nkilled during the log rewrite: {killed}")
    assert log.read_bytes() == long_log
    _finish(_launch(out, RESUME_ARGS), out)
    assert log.read_bytes() == long_log
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
