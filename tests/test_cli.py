"""The command line end to end on tiny data, in a subprocess: train, resume, eval, plot, errors."""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.helpers import start_training


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "contrastkit", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory) -> Path:
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 30)
    images = rng.integers(0, 50, size=(90, 8, 8))
    for i, y in enumerate(labels):
        images[i, :, 2 * int(y):2 * int(y) + 3] += 200
    path = tmp_path_factory.mktemp("cli") / "tiny.npz"
    np.savez(path, x=images.astype(np.uint8), y=labels)
    return path


def test_train_eval_plot_end_to_end(tiny_npz, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("method: moco\nbatch_size: 16\nepochs: 5\nmethod_options:\n  queue_size: 32\n")
    out = tmp_path / "run"
    done = _cli("train", "--config", str(config), "--data", str(tiny_npz), "--epochs", "2", "--out", str(out),
                "--no-progress", "--set", "symmetric=true", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    saved = (out / "config.yaml").read_text()
    assert "epochs: 2" in saved and "symmetric: true" in saved and "queue_size: 32" in saved  # flags beat YAML
    resumed = _cli("train", "--config", str(config), "--data", str(tiny_npz), "--epochs", "2", "--out", str(out),
                   "--no-progress", "--set", "symmetric=true", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout[resumed.stdout.index("{"):])["steps"] == 2 * (72 // 16)
    evaluated = _cli("eval", str(out), cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    # the numbers are those of the checkpoint's encoder under the documented protocol, recomputed here
    from contrastkit.checkpoint import load_checkpoint
    from contrastkit.config import TrainConfig
    from contrastkit.evaluate import evaluate_features, extract_features, pixel_features
    from contrastkit.train import build_run

    ckpt = load_checkpoint(out / "checkpoint.pt")
    run = build_run(TrainConfig.from_dict(ckpt["config"]))
    run.method.load_state_dict(ckpt["method"])
    train, test = run.data.train, run.data.test
    expected = evaluate_features(extract_features(run.method.encoder, train.images),
                                 train.labels, extract_features(run.method.encoder, test.images), test.labels)
    assert (metrics["linear_acc"], metrics["knn_acc"]) == (expected["linear_accuracy"], expected["knn_accuracy"])
    raw = evaluate_features(pixel_features(train.images), train.labels, pixel_features(test.images), test.labels)
    assert metrics["results"]["raw_pixels"]["knn_accuracy"] == raw["knn_accuracy"] == 1.0  # striped classes
    assert {"trained", "random_init", "raw_pixels"} <= set(metrics["results"])
    assert "raw pixels" in evaluated.stdout and "linear probe" in evaluated.stdout
    assert (out / "embedding_tsne.png").stat().st_size > 1000
    plotted = _cli("plot", str(out), cwd=tmp_path)
    assert plotted.returncode == 0 and "training_curves.png" in plotted.stdout


def test_help_and_errors(tmp_path):
    for command in ("train", "eval", "plot", "demo"):
        shown = _cli(command, "--help", cwd=tmp_path)
        assert shown.returncode == 0 and "usage" in shown.stdout
    missing = _cli("train", "--data", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "x"), cwd=tmp_path)
    assert missing.returncode == 2 and "nope.npz" in missing.stderr and "mnist5k" in missing.stderr
    no_run = _cli("eval", str(tmp_path / "empty"), cwd=tmp_path)
    assert no_run.returncode == 2 and "no checkpoint" in no_run.stderr
    bad_method = _cli("train", "--method", "byol", "--out", str(tmp_path / "y"), cwd=tmp_path)
    assert bad_method.returncode == 2 and "unknown method" in bad_method.stderr


# --- bad input: one clear line, exit 2, nothing written (in-process: the errors come before any training) --------

def _main(capsys, *args: str) -> tuple[int, str, str]:
    from contrastkit.cli import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> Path:
    """Array files a user might bring by mistake."""
    root = tmp_path_factory.mktemp("bad")
    x = np.zeros((40, 8, 8), dtype=np.uint8)
    np.savez(root / "strings.npz", x=np.full((40, 8, 8), "a"))
    np.savez(root / "bools.npz", x=np.zeros((40, 8, 8), dtype=bool))
    np.savez(root / "complex.npz", x=np.zeros((40, 8, 8), dtype=complex))
    np.savez(root / "string_labels.npz", x=x, y=np.array(["cat", "dog"] * 20))
    (root / "random.npy").write_bytes(np.random.default_rng(0).bytes(3000))
    (root / "a_file").write_text("x")
    for name, text in {"epochs_float": "epochs: 1.7\n", "epochs_word": "epochs: one\n", "epochs_bool": "epochs: true\n",
                       "progress_no": "progress: 'no'\n", "temperature_abc": "method_options:\n  temperature: abc\n",
                       "warmup_negative": "warmup_epochs: -3\n", "max_minutes_zero": "max_minutes: 0\n",
                       "checkpoint_negative": "checkpoint_every: -1\n", "threads_zero": "num_threads: 0\n",
                       "log_every_zero": "log_every: 0\n", "options_list": "method_options: [1, 2]\n",
                       "top_level_method_setting": "temperature: 0.3\n", "seed_negative": "seed: -5\n"}.items():
        (root / f"{name}.yaml").write_text(text)
    return root


BAD_TRAIN_ARGS = {
    "yaml epochs 1.7": (["--config", "{bad}/epochs_float.yaml"], r"epochs_float.yaml: `epochs` must be an integer"),
    "yaml epochs 'one'": (["--config", "{bad}/epochs_word.yaml"], r"`epochs` must be an integer >= 1 .*'one'"),
    "yaml epochs true": (["--config", "{bad}/epochs_bool.yaml"], r"`epochs` must be an integer >= 1 .*True"),
    "yaml progress 'no'": (["--config", "{bad}/progress_no.yaml"], r"`progress` must be true or false, got 'no'"),
    "yaml temperature abc": (["--config", "{bad}/temperature_abc.yaml"],
                             r"temperature_abc.yaml \(method_options\): `temperature` must be a number"),
    "yaml warmup -3": (["--config", "{bad}/warmup_negative.yaml"], r"`warmup_epochs` must be a number >= 0"),
    "yaml max_minutes 0": (["--config", "{bad}/max_minutes_zero.yaml"], r"`max_minutes` must be a number > 0"),
    "yaml checkpoint_every -1": (["--config", "{bad}/checkpoint_negative.yaml"], r"`checkpoint_every` must be"),
    "yaml num_threads 0": (["--config", "{bad}/threads_zero.yaml"], r"`num_threads` must be an integer >= 1"),
    "yaml log_every 0": (["--config", "{bad}/log_every_zero.yaml"], r"`log_every` must be an integer >= 1, got 0"),
    "yaml method_options list": (["--config", "{bad}/options_list.yaml"], r"`method_options` must be a mapping"),
    "yaml misplaced method setting": (["--config", "{bad}/top_level_method_setting.yaml"],
                                      r"\['temperature'\] are method settings; put them under `method_options:`"),
    "yaml seed -5": (["--config", "{bad}/seed_negative.yaml"], r"`seed` must be an integer >= 0"),
    "--set queue_size=1e3 without a queue": (["--set", "queue_size=1e3"], r"`queue_size` is a setting of a queue"),
    "--set queue_size=big": (["--method", "moco", "--set", "queue_size=big"], r"`queue_size` must be an integer"),
    "--set queue_size=100.5": (["--method", "moco", "--set", "queue_size=100.5"], r"not a whole number"),
    "--set symmetric=maybe": (["--method", "moco", "--set", "symmetric=maybe"], r"`symmetric` must be true or false"),
    "--set unknown": (["--set", "colour=red"], r"unknown setting 'colour'"),
    "--set without =": (["--set", "symmetric"], r"--set expects KEY=VALUE"),
    "--num-threads -1": (["--num-threads", "-1"], r"--num-threads: `num_threads` must be an integer >= 1"),
    "--device nonsense": (["--device", "nonsense"], r"`device` must be one of auto, cpu, cuda"),
    "--device meta": (["--device", "meta"], r"'meta' cannot train a model"),
    "--device mps": (["--device", "mps"], r"MPS is not available|must be one of"),
    "--device ''": (["--device", ""], r"`device` must be one of"),
    "--batch-size 1": (["--batch-size", "1"], r"`batch_size` must be an integer >= 2"),
    "batch larger than the data": (["--batch-size", "500"], r"`batch_size` 500 is larger than the 72 training samples"),
    "--temperature 1e-30": (["--temperature", "1e-30"], r"`temperature` must be a number >= 0.01 and <= 10"),
    "--num-negatives 100000": (["--method", "membank", "--num-negatives", "100000"],
                               r"num_negatives=100000 is more than the memory bank's 72 rows"),
    "loss nt_xent with a queue": (["--method", "moco", "--loss", "nt_xent"], r"loss='nt_xent' contrasts the 2N"),
    "symmetric NT-Xent": (["--symmetric"], r"NT-Xent already uses both views"),
    "split_bn without momentum keys": (["--split-bn", "4"], r"split_bn=4 shuffles the keys of a momentum"),
    "split_bn not dividing the batch": (["--method", "moco", "--split-bn", "3"], r"`split_bn` 3 needs a batch size"),
    "warmup longer than the run": (["--warmup-epochs", "5", "--epochs", "2"], r"must not exceed `epochs`"),
    "--out is a file": (["--out", "{bad}/a_file"], r"output folder .*a_file' is a file"),
    "--out under a file": (["--out", "{bad}/a_file/run"], r"lies under .*a_file', which is a file"),
    "--out unwritable": (["--out", "/sys/contrastkit-test-run"], r"cannot write to the output folder"),
    "string images": (["--data", "{bad}/strings.npz"], r"holds strings"),
    "bool images": (["--data", "{bad}/bools.npz"], r"holds booleans"),
    "complex images": (["--data", "{bad}/complex.npz"], r"holds complex numbers"),
    "string labels": (["--data", "{bad}/string_labels.npz"], r"must be integer class ids, got strings"),
    "random bytes .npy": (["--data", "{bad}/random.npy"], r"is not a valid \.npy/\.npz file"),
    "missing data": (["--data", "{bad}/nope.npz"], r"neither a built-in dataset"),
    "unknown method": (["--method", "byol"], r"unknown method 'byol'"),
    "crop longer than the sequences": (["--method", "cpc", "--data", "toyspeech", "--crop", "20480"],
                                       r"`crop` 20480 is longer than the 10240-step sequences of 'toyspeech'"),
    "cpc on images": (["--method", "cpc"], r"encoder 'cpc' is for sequences"),
    "cpc negatives from a queue": (["--method", "cpc", "--data", "toyspeech", "--negatives-from", "queue"],
                                   r"`negatives_from` must be one of 'same_sequence', 'batch'"),
}


@pytest.mark.parametrize("case", sorted(BAD_TRAIN_ARGS))
def test_bad_training_input_gives_one_clear_line_and_writes_nothing(case, bad_files, tiny_npz, tmp_path, capsys,
                                                                  monkeypatch):
    if case == "--out unwritable" and os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        BAD_TRAIN_ARGS[case] = (["--out", str(locked / "run")], BAD_TRAIN_ARGS[case][1])
    args, message = BAD_TRAIN_ARGS[case]
    args = [a.format(bad=bad_files) for a in args]
    monkeypatch.chdir(tmp_path)
    defaults = {"--data": str(tiny_npz), "--out": str(tmp_path / "run"), "--batch-size": "16", "--epochs": "1"}
    extra = [item for flag, value in defaults.items() if flag not in args for item in (flag, value)]
    extra.append("--no-progress")
    if "--config" in args:  # the YAML file's own value is the one under test: no flag may override it
        extra = [item for flag, value in defaults.items() if flag in ("--data", "--out") for item in (flag, value)]
    code, out, err = _main(capsys, "train", *args, *extra)
    assert code == 2, (case, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("contrastkit train: error: "), err
    assert re.search(message, lines[0]), (message, lines[0])
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "runs").exists()  # nothing written


def test_numbers_written_as_text_are_read_as_numbers(tiny_npz, tmp_path, capsys):
    config = tmp_path / "q.yaml"
    config.write_text("epochs: '1'\nbatch_size: 16\nmethod: moco\nmethod_options:\n  queue_size: 1e3\n")
    code, _, err = _main(capsys, "train", "--config", str(config), "--data", str(tiny_npz), "--out",
                         str(tmp_path / "run"), "--no-progress")
    assert code == 0, err
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["epochs"] == 1 and saved["method_options"]["queue_size"] == 1000


# --- run folders: never reused silently; resume takes the run's settings ------------------------------------------

def test_reusing_a_run_folder_is_refused_and_the_earlier_run_kept(tiny_npz, tmp_path, capsys):
    out = str(tmp_path / "run")
    first = ["--data", str(tiny_npz), "--out", out, "--batch-size", "16", "--epochs", "1", "--no-progress"]
    assert _main(capsys, "train", "--method", "moco", "--set", "queue_size=32", *first)[0] == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    code, _, err = _main(capsys, "train", "--method", "simclr", *first)
    assert code == 2 and "already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == before
    code, _, err = _main(capsys, "train", "--method", "simclr", *first, "--overwrite")
    assert code == 0, err
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["method"] == "simclr"


def test_a_refused_resume_leaves_config_yaml_untouched(tiny_npz, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--data", str(tiny_npz), "--out", str(out), "--batch-size", "16", "--epochs", "1", "--no-progress"]
    assert _main(capsys, "train", *args)[0] == 0
    saved = (out / "config.yaml").read_bytes()
    code, _, err = _main(capsys, "train", *args, "--resume", "--lr", "0.5")
    assert code == 2 and "settings differ from the run's (lr: 0.002 in the run, 0.5 now)" in err
    assert (out / "config.yaml").read_bytes() == saved


def test_resume_takes_the_runs_own_settings_and_may_extend_it(tiny_npz, tmp_path, capsys):
    out = tmp_path / "run"
    assert _main(capsys, "train", "--method", "moco", "--data", str(tiny_npz), "--out", str(out), "--batch-size",
                 "16", "--epochs", "1", "--lr", "0.01", "--set", "queue_size=24", "--log-every", "1",
                 "--no-progress")[0] == 0
    code, stdout, err = _main(capsys, "train", "--out", str(out), "--resume", "--epochs", "2")  # the README's form
    assert code == 0, err
    assert json.loads(stdout[stdout.index("{"):])["steps"] == 2 * (72 // 16)
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert (saved["method"], saved["lr"], saved["method_options"]["queue_size"], saved["epochs"]) == \
        ("moco", 0.01, 24, 2)
    steps = [int(r["step"]) for r in csv.DictReader((out / "train_log.csv").open())]
    assert steps == list(range(1, 9))  # no duplicated or missing step


def test_config_without_out_writes_to_runs_of_its_method(tiny_npz, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "moco.yaml"
    config.write_text(f"method: moco\ndata: {tiny_npz}\nbatch_size: 16\nepochs: 1\nprogress: false\n")
    assert _main(capsys, "train", "--config", str(config))[0] == 0
    assert (tmp_path / "runs" / "moco" / "checkpoint.pt").exists() and not (tmp_path / "runs" / "simclr").exists()


def test_data_that_changed_is_named_on_resume_and_flagged_by_eval(tmp_path, capsys):
    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    np.savez(data, x=rng.integers(0, 255, (60, 8, 8)).astype(np.uint8), y=np.repeat(np.arange(3), 20))
    out = tmp_path / "run"
    assert _main(capsys, "train", "--method", "membank", "--data", str(data), "--out", str(out), "--batch-size", "16",
                 "--epochs", "1", "--no-progress")[0] == 0
    np.savez(data, x=rng.integers(0, 255, (90, 8, 8)).astype(np.uint8), y=np.repeat(np.arange(3), 30))  # it grew
    code, _, err = _main(capsys, "train", "--out", str(out), "--resume", "--epochs", "2")
    assert code == 2 and "the data differs from the data this run was trained on (train images 48 then, 72 now" in err
    code, stdout, err = _main(capsys, "eval", str(out), "--no-plots", "--no-baselines")
    assert code == 0 and "warning: the data differs" in err and "membank" in stdout


def test_eval_works_from_another_folder_and_finds_moved_data(tiny_npz, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tiny_npz.parent)
    out = tmp_path / "run"
    assert _main(capsys, "train", "--data", tiny_npz.name, "--out", str(out), "--batch-size", "16", "--epochs", "1",
                 "--no-progress")[0] == 0  # a relative path, stored absolute
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert _main(capsys, "eval", str(out), "--no-plots", "--no-baselines")[0] == 0
    moved = tmp_path / "moved.npz"
    shutil.copy(tiny_npz, moved)
    saved = yaml.safe_load((out / "config.yaml").read_text())
    (out / "config.yaml").write_text(yaml.safe_dump({**saved, "data": "gone.npz"}))  # readable record only
    code, _, err = _main(capsys, "eval", str(out), "--no-plots", "--no-baselines", "--data", str(moved))
    assert code == 0 and "warning" not in err  # same fingerprint: the same data


def test_eval_of_tiny_and_single_class_runs_scores_what_it_can(tmp_path, capsys):
    rng = np.random.default_rng(0)
    ten, single = tmp_path / "ten.npz", tmp_path / "single.npz"
    x = rng.integers(0, 255, (10, 8, 8)).astype(np.uint8)
    np.savez(ten, x=x, y=np.repeat([0, 1], 5))
    np.savez(single, x=x, y=np.zeros(10, dtype=int))
    for data in (ten, single):
        out = tmp_path / data.stem
        assert _main(capsys, "train", "--data", str(data), "--out", str(out), "--batch-size", "4", "--epochs", "1",
                     "--no-progress")[0] == 0
        code, stdout, err = _main(capsys, "eval", str(out))
        assert code == 0, err
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["results"]["trained"]["knn_k"] == 8 and "kNN (k=8)" in stdout
        assert any("k = 8 instead of the default 20" in note for note in metrics["notes"])
    assert metrics["linear_acc"] is None and metrics["knn_acc"] == 1.0  # one class: kNN only, probe skipped
    assert any("linear probe skipped" in note for note in metrics["notes"])
    code, _, err = _main(capsys, "eval", str(tmp_path / "ten"), "--knn-k", "50")
    assert code == 2 and "`knn_k` = 50 is more than the 8 samples" in err


def test_eval_prints_the_table_before_failing_to_write(tiny_npz, tmp_path, capsys):
    out = tmp_path / "run"
    assert _main(capsys, "train", "--data", str(tiny_npz), "--out", str(out), "--batch-size", "16", "--epochs", "1",
                 "--no-progress")[0] == 0
    (out / "metrics.json").mkdir()  # unwritable as a file, for root too
    code, stdout, err = _main(capsys, "eval", str(out), "--no-plots", "--no-baselines")
    assert code == 1
    assert "linear probe" in stdout and "simclr (small_cnn)" in stdout  # the numbers were shown
    assert "could not write" in err and "metrics.json" in err and "Traceback" not in err


# --- Ctrl-C: checkpoint at the step reached, a quiet exit, and a resume that finishes ----------------------------

def test_ctrl_c_saves_a_checkpoint_and_exits_quietly(tiny_npz, tmp_path):
    out = tmp_path / "run"
    log = out / "train_log.csv"
    proc = start_training(["--data", str(tiny_npz), "--batch-size", "16", "--epochs", "500", "--log-every", "1",
                           "--no-progress"], tmp_path, out, log_lines=7)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert "interrupted (SIGINT)" in stdout and "--resume" in stdout
    from contrastkit.checkpoint import load_checkpoint

    step = load_checkpoint(out / "checkpoint.pt")["progress"]["step"]
    assert step >= 6 and json.loads(stdout[stdout.index("{"):])["steps"] == step
    shrunk = _cli("train", "--out", str(out), "--resume", "--epochs", "1", cwd=tmp_path)
    assert shrunk.returncode == 2 and "beyond this run's 4 steps" in shrunk.stderr
    epochs = step // 4 + 1  # 4 steps per epoch: finish the epoch after the interrupted step
    resumed = _cli("train", "--out", str(out), "--resume", "--epochs", str(epochs), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    steps = [int(r["step"]) for r in csv.DictReader(log.open())]
    assert steps == list(range(1, 4 * epochs + 1))


def test_resume_with_no_run_in_the_folder_is_refused(tmp_path, capsys):
    code, _, err = _main(capsys, "train", "--out", str(tmp_path / "empty"), "--resume")
    assert code == 2 and "holds no run to continue" in err
    assert not (tmp_path / "empty").exists()


# --- --resume: a checkpoint is needed, config.yaml must agree with it, the log must be a log ------------------------

def _one_epoch_run(capsys, data: Path, out: Path) -> None:
    assert _main(capsys, "train", "--data", str(data), "--out", str(out), "--batch-size", "16", "--epochs", "1",
                 "--log-every", "1", "--no-progress")[0] == 0


def test_resume_without_a_checkpoint_is_refused_and_keeps_the_log(tiny_npz, tmp_path, capsys):
    out = tmp_path / "run"
    _one_epoch_run(capsys, tiny_npz, out)
    (out / "checkpoint.pt").unlink()  # stopped before its first checkpoint
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, stdout, err = _main(capsys, "train", "--out", str(out), "--resume")
    assert code == 2 and stdout == ""
    assert err == (f"contrastkit train: error: cannot resume {out}: it has config.yaml and train_log.csv but no "
                   f"checkpoint.pt -- the run stopped before its first checkpoint, so there is nothing to continue; "
                   f"start it over with --overwrite (fit(overwrite=True))\n")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_resume_refuses_a_config_yaml_naming_another_method_than_the_checkpoint(tiny_npz, tmp_path, capsys):
    out = tmp_path / "run"
    _one_epoch_run(capsys, tiny_npz, out)
    saved = yaml.safe_load((out / "config.yaml").read_text())
    (out / "config.yaml").write_text(yaml.safe_dump({**saved, "method": "moco"}))
    edited = (out / "config.yaml").read_bytes()
    code, _, err = _main(capsys, "train", "--out", str(out), "--resume", "--epochs", "2")
    assert code == 2 and err.count("\n") == 1
    assert (f"cannot resume {out}: config.yaml and checkpoint.pt disagree (method: 'moco' in config.yaml, 'simclr' "
            f"in checkpoint.pt)") in err
    assert (out / "config.yaml").read_bytes() == edited  # not rewritten to the checkpoint's method


def test_resume_of_a_binary_train_log_names_the_file(tiny_npz, tmp_path, capsys):
    out = tmp_path / "run"
    _one_epoch_run(capsys, tiny_npz, out)
    (out / "train_log.csv").write_bytes(bytes(range(256)) * 4)
    checkpoint = (out / "checkpoint.pt").read_bytes()
    code, _, err = _main(capsys, "train", "--out", str(out), "--resume", "--epochs", "2")
    assert code == 2 and err == (f"contrastkit train: error: {out / 'train_log.csv'} is not a training log of "
                                 f"contrastkit: it is not UTF-8 text (a binary file?); move it away to resume "
                                 f"without the earlier rows, or start over with --overwrite\n")
    assert (out / "checkpoint.pt").read_bytes() == checkpoint


def test_the_help_and_the_readme_list_every_setting_a_resume_may_change():
    """The list in `train --help` and the README's "Run folders" must follow config.RESUMABLE_CHANGES."""
    import contrastkit.cli
    from contrastkit.config import RESUMABLE_CHANGES

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    run_folders = readme[readme.index("**Run folders.**"):readme.index("## Many processes")]
    for name in set(RESUMABLE_CHANGES) - {"out"}:
        assert re.search(rf"\b{name}\b", contrastkit.cli.__doc__), name
        assert f"`{name}`" in run_folders, name
