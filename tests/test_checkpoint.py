"""Checkpoints: loading never runs code (a crafted pickle is refused by eval and --resume and its payload never
runs), old formats and incomplete files get clear errors, and killed saves leave no stale temporaries."""

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from contrastkit.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)


class _Payload:
    """Unpickling this runs ``open(marker, "w")``: what a crafted checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


def _malicious(path: Path, marker: Path, legacy: bool) -> Path:
    payload = {"format_version": FORMAT_VERSION, "config": {}, "method": _Payload(marker)}
    if legacy:  # a plain pickle file, not torch's zip container
        path.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        torch.save(payload, path)
    return path


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "contrastkit", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("legacy", [False, True])
def test_a_crafted_pickle_is_refused_and_never_runs(tmp_path, legacy):
    marker = tmp_path / "payload-ran"
    path = _malicious(tmp_path / "checkpoint.pt", marker, legacy)
    with pytest.raises(CheckpointError, match=r"refusing to load .*checkpoint\.pt: it is not a checkpoint of "
                                              r"tensors and plain values .*Nothing in it was run"):
        load_checkpoint(path)
    assert not marker.exists()
    # the payload is real: an unsafe load (what contrastkit never does) runs it
    subprocess.run([sys.executable, "-c", f"import torch; torch.load({str(path)!r}, weights_only=False)"],
                   capture_output=True, timeout=120)
    assert marker.exists()


def test_eval_and_resume_refuse_a_crafted_checkpoint(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    marker = tmp_path / "payload-ran"
    _malicious(run / "checkpoint.pt", marker, legacy=False)
    for args in (("eval", str(run)), ("train", "--out", str(run), "--resume"), ("plot", str(run))):
        done = _cli(*args, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert "refusing to load" in done.stderr and "Nothing in it was run" in done.stderr
        assert "Traceback" not in done.stderr and "weights_only" not in done.stderr  # no advice to load unsafely
        assert not marker.exists()
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt"]  # the refused resume wrote nothing


def test_old_format_missing_keys_and_garbage_get_clear_messages(tmp_path):
    old = save_checkpoint(tmp_path / "old.pt", {"method": {}, "config": {}})
    data = torch.load(old, weights_only=True)
    torch.save({**data, "format_version": 1}, old)
    with pytest.raises(CheckpointError, match=r"written in checkpoint format 1; this contrastkit reads format 2"):
        load_checkpoint(old)
    partial = save_checkpoint(tmp_path / "partial.pt", {"method": {}, "config": {}})
    lacks = r"is incomplete: it lacks \['optimizer', 'scheduler', 'rng', 'progress'\]"
    with pytest.raises(CheckpointError, match=lacks):
        load_checkpoint(partial)
    (tmp_path / "garbage.pt").write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(CheckpointError, match=r"garbage\.pt"):
        load_checkpoint(tmp_path / "garbage.pt")
    whole = (tmp_path / "partial.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*cut\.pt"):
        load_checkpoint(tmp_path / "cut.pt")
    torch.save([1, 2, 3], tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a contrastkit checkpoint"):
        load_checkpoint(tmp_path / "plain.pt", required=())  # a list, not a dict with a format version


def test_plain_values_round_trip_under_the_safe_loader(tmp_path):
    import random

    state = {"rng": {"python": random.getstate(), "torch": torch.get_rng_state()}, "config": {"lr": 0.1, "x": None},
             "progress": {"step": 3}, "method": {"w": torch.ones(2)}, "optimizer": {}, "scheduler": {}}
    loaded = load_checkpoint(save_checkpoint(tmp_path / "c.pt", state))
    assert loaded["config"] == state["config"] and torch.equal(loaded["method"]["w"], torch.ones(2))


def test_stale_temporaries_are_removed_and_only_those(tmp_path):
    (tmp_path / ".checkpoint.pt.abc123.tmp").write_bytes(b"x" * 100)
    (tmp_path / ".checkpoint.pt.def456.tmp").write_bytes(b"")
    keep = [tmp_path / "checkpoint.pt", tmp_path / ".other.tmp", tmp_path / "notes.txt"]
    for path in keep:
        path.write_bytes(b"keep")
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == [".checkpoint.pt.abc123.tmp", ".checkpoint.pt.def456.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in keep)
