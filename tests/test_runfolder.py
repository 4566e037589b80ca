"""Run folders: never reused silently, --overwrite removes exactly a run's files, and a bad --out is refused."""

import os
from pathlib import Path

import pytest

from contrastkit.runfolder import check_output_folder, clear_run, holds_run, prepare_run_folder, read_saved_config


def _fake_run(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in ("checkpoint.pt", "config.yaml", "train_log.csv", "metrics.json", "embedding_tsne.png",
                 "training_curves.png", "checkpoint_step00000010.pt", ".checkpoint.pt.x1.tmp"):
        (out / name).write_text("x")
    (out / "tensorboard").mkdir()
    (out / "tensorboard" / "events").write_text("x")
    (out / "my_notes.txt").write_text("the user's own file")


def test_a_folder_holding_a_run_is_refused_without_resume_or_overwrite(tmp_path):
    out = tmp_path / "run"
    _fake_run(out)
    with pytest.raises(FileExistsError, match=r"already holds a run \(checkpoint.pt, config.yaml, train_log.csv\); "
                                              r"continue it with --resume, replace it with --overwrite"):
        prepare_run_folder(out, resume=False, overwrite=False)
    assert (out / "checkpoint.pt").exists() and (out / "metrics.json").exists()  # nothing touched
    with pytest.raises(ValueError, match="pick one"):
        prepare_run_folder(out, resume=True, overwrite=True)


def test_overwrite_removes_exactly_the_run_files(tmp_path):
    out = tmp_path / "run"
    _fake_run(out)
    notes = prepare_run_folder(out, resume=False, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["my_notes.txt"]
    assert any("--overwrite: removed" in n for n in notes)
    assert not holds_run(out) and clear_run(out) == []


def test_resume_keeps_the_run_and_removes_stale_temporaries(tmp_path):
    out = tmp_path / "run"
    _fake_run(out)
    notes = prepare_run_folder(out, resume=True, overwrite=False)
    assert not (out / ".checkpoint.pt.x1.tmp").exists() and (out / "checkpoint.pt").exists()
    assert any("interrupted save" in n for n in notes)


def test_bad_output_paths_are_refused_before_anything_is_written(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        check_output_folder(a_file)
    with pytest.raises(NotADirectoryError, match=r"lies under .*a_file.*which is a file"):
        check_output_folder(a_file / "sub" / "run")
    fresh = tmp_path / "new" / "run"
    assert check_output_folder(fresh) == fresh and not fresh.exists()  # checking creates nothing


def test_an_unwritable_output_folder_is_refused(tmp_path):
    if os.geteuid() == 0:  # root writes anywhere on a normal file system; /sys refuses even root
        target = Path("/sys/contrastkit-test-run")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        target = locked / "run"
    with pytest.raises(PermissionError, match="cannot write to the output folder"):
        prepare_run_folder(target, resume=False, overwrite=False)


def test_saved_config_comes_from_the_checkpoint_else_config_yaml(tmp_path):
    assert read_saved_config(tmp_path) is None
    (tmp_path / "config.yaml").write_text("method: moco\nepochs: 3\n")
    assert read_saved_config(tmp_path) == {"method": "moco", "epochs": 3}
    (tmp_path / "config.yaml").write_text("- not a mapping\n")
    with pytest.raises(ValueError, match="does not hold a mapping"):
        read_saved_config(tmp_path)
