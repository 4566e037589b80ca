"""``contrastkit train --devices N``: what the settings alone decide about N processes is checked once, in this
process, in one line, before torchrun starts (before: each of the N processes printed the error, then torchrun
its 50-line report); the trainer checks the same rules with the same words (contrastkit.processes). The processes
torchrun starts do not put the current folder first on their sys.path."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import contrastkit
from contrastkit import train as train_module
from contrastkit.cli import main
from contrastkit.config import TrainConfig
from contrastkit.data.containers import ArrayDataset, DatasetSplits
from contrastkit.processes import check_gpus, check_processes
from contrastkit.settings import SettingsError


@pytest.fixture
def vectors(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "vec.npz"
    np.savez(path, x=rng.normal(size=(96, 6)).astype(np.float32), labels=np.arange(96) % 3)
    return path


@pytest.fixture
def no_torchrun(monkeypatch) -> list:
    """subprocess.Popen replaced: a call is recorded (command, environment) instead of starting torchrun; the
    stand-in process ends at once with status 0."""
    calls = []

    class Finished:
        def wait(self) -> int:
            return 0

    def popen(command, env=None, **kwargs):
        calls.append((command, env))
        return Finished()

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(subprocess, "Popen", popen)
    return calls


CASES = {
    "batch_not_divisible": (["--batch-size", "7"],
                            "`batch_size` 7 is the global batch and must be a multiple of the 2 processes (each takes "
                            "batch_size / 2); use e.g. 6"),
    "sync_batchnorm_on_cpus": (["--method", "moco", "--batchnorm", "sync", "--batch-size", "32"],
                               "`batchnorm` 'sync' uses torch.nn.SyncBatchNorm, which PyTorch runs on GPUs only, and "
                               "these 2 processes would compute on the CPU: use batchnorm: shuffle (momentum keys) or "
                               "local"),
    "split_bn_groups_per_process": (["--method", "moco", "--batch-size", "16"],  # MoCo: 8 split-BN groups
                                    "`split_bn` 8 needs each process's share of the batch (16 / 2 = 8) to be a "
                                    "multiple of it with at least two samples per group"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_devices_refuses_what_the_settings_decide_in_one_line_before_torchrun(case, vectors, tmp_path, capsys,
                                                                              no_torchrun) -> None:
    extra, message = CASES[case]
    out = tmp_path / "run"
    code = main(["train", "--devices", "2", "--data", str(vectors), "--device", "cpu", "--out", str(out), *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert no_torchrun == []
    assert [line for line in err.splitlines() if line.strip()] == [f"contrastkit train: error: {message}"]
    assert not out.exists()


def test_devices_starts_torchrun_when_the_settings_fit(vectors, tmp_path, capsys, no_torchrun) -> None:
    from contrastkit.cli import torchrun_environment

    argv = ["train", "--devices", "2", "--data", str(vectors), "--device", "cpu", "--batch-size", "32", "--method",
            "moco", "--batchnorm", "shuffle", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    [(command, env)] = no_torchrun
    assert command[-len(argv) + 2:] == ["train", *argv[3:]] and "--nproc_per_node=2" in command
    assert env == torchrun_environment()


def test_check_processes_by_hand() -> None:
    check_processes(1, 7)  # one process: any batch
    check_processes(2, 32, split_bn=8)  # 16 per process = 8 groups of 2
    check_processes(2, 32, batchnorm="sync", device_type="cuda")
    check_processes(1, 32, batchnorm="sync", device_type="cpu")  # one process: SyncBatchNorm is BatchNorm
    check_processes(2, 8, batchnorm="shuffle")
    refused = [((3, 32), {}, "`batch_size` 32 is the global batch and must be a multiple of the 3 processes "
                                  "(each takes batch_size / 3); use e.g. 30"),
               ((4, 32), {"split_bn": 8}, "`split_bn` 8 needs each process's share of the batch (32 / 4 = 8) to be "
                                          "a multiple of it with at least two samples per group"),
               ((2, 20), {"split_bn": 4}, "`split_bn` 4 needs each process's share of the batch (20 / 2 = 10)"),
               ((2, 32), {"batchnorm": "sync", "device_type": "cpu"}, "`batchnorm` 'sync' uses torch.nn.SyncBatchNorm"),
               ((1, 32), {"batchnorm": "shuffle"}, "`batchnorm` 'shuffle' shuffles the momentum keys across processes "
                                                   "and needs two or more")]
    for args, kwargs, words in refused:
        with pytest.raises(SettingsError) as caught:
            check_processes(*args, **kwargs)
        assert str(caught.value).startswith(words), str(caught.value)
    check_gpus(2, 2)
    with pytest.raises(SettingsError, match=r"^--devices 4 starts 4 processes, one per GPU, but this machine has 1 "
                                            r"GPU\(s\): use --devices 1 or fewer, or --device cpu$"):
        check_gpus(4, 1)


def test_the_trainer_refuses_sync_batchnorm_on_cpu_processes_when_it_is_built(monkeypatch, tmp_path) -> None:
    """The trainer calls the same check: under 2 processes a CPU run with SyncBatchNorm is refused when the trainer
    is built (before: at the first training step, inside the process group)."""
    from contrastkit.methods.contrastive import ContrastiveMethod
    from contrastkit.negatives import InBatchNegatives

    monkeypatch.setattr(train_module, "world_size", lambda: 2)
    method = ContrastiveMethod(nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8)), nn.Linear(8, 4),
                               InBatchNegatives(), loss="nt_xent", batchnorm="sync")
    x = torch.randn(40, 6)
    labels = torch.arange(40) % 2
    data = DatasetSplits("vectors", ArrayDataset(x[:32], labels[:32]), ArrayDataset(x[32:], labels[32:]), 2)
    config = TrainConfig(method="simclr", data="vectors", out=str(tmp_path / "run"), batch_size=16, epochs=1,
                         device="cpu", progress=False)
    with pytest.raises(SettingsError, match=r"^`batchnorm` 'sync' uses torch.nn.SyncBatchNorm, which PyTorch runs on "
                                            r"GPUs only, and these 2 processes would compute on the CPU"):
        train_module.Trainer(method, data, config)


def test_torchrun_processes_do_not_put_the_current_folder_first(monkeypatch, tmp_path) -> None:
    from contrastkit.cli import torchrun_environment

    monkeypatch.delenv("PYTHONSAFEPATH", raising=False)
    monkeypatch.chdir(tmp_path)
    assert torchrun_environment()["PYTHONSAFEPATH"] == "1"
    monkeypatch.chdir(Path(contrastkit.__file__).resolve().parents[1])  # a checkout run from its own folder
    assert "PYTHONSAFEPATH" not in torchrun_environment()
