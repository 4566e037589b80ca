"""The trainer on 2 gloo processes (spawned by the test, as in tests/test_distributed.py): a SimCLR run on the
global batch ends with the single-process parameters; MoCo queues and memory banks stay identical on every
process; a 2-process checkpoint resumes exactly on 2 processes and runs on 1; ``torchrun ... -m contrastkit
train`` writes one run folder; a process that dies makes the other stop with an error instead of hanging."""

from __future__ import annotations

import csv
import datetime
import gc
import os
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from contrastkit.checkpoint import load_checkpoint
from contrastkit.config import TrainConfig
from contrastkit.data.containers import ArrayDataset, DatasetSplits
from contrastkit.data.samplers import PKSampler, RankSlice, ShuffleSampler
from contrastkit.distributed import init_from_environment
from contrastkit.settings import SettingsError

WORLD = 2
D = 6  # input features of the vector data


def _init(r: int, init_file: str, timeout_s: float = 120.0) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=r, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=timeout_s))


def _spawn(worker, tmp_path: Path, *args) -> list[dict]:
    mp.spawn(worker, args=(str(tmp_path / "init"), str(tmp_path), *args), nprocs=WORLD, join=True)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


def _rows(out: Path) -> list[tuple[int, str, str]]:
    """(step, loss, lr) of each logged row (the timing columns differ between runs)."""
    with (out / "train_log.csv").open(newline="") as f:
        return [(int(row["step"]), row["loss"], row["lr"]) for row in csv.DictReader(f)]


# ---------------------------------------------------------------- (a) SimCLR on the global batch
class _TwoViews(nn.Module):
    """A deterministic augmentation (no random numbers): the first call of a step gives ``x``, the second
    ``0.8 x + 0.1``. The per-process generators then cannot make the runs differ, so parameters can be compared."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        self.calls += 1
        return x.float() if self.calls % 2 else 0.8 * x.float() + 0.1


def _vector_data() -> DatasetSplits:
    """With a (small) test split: a bare train set's empty test split trips the data fingerprint."""
    g = torch.Generator().manual_seed(3)
    x, labels = torch.randn(72, D, generator=g), torch.randint(0, 4, (72,), generator=g)
    return DatasetSplits("vectors", ArrayDataset(x[:64], labels[:64]), ArrayDataset(x[64:], labels[64:]), 4)


def _simclr_trainer(out: Path, batch_size: int = 16):
    from contrastkit.methods.contrastive import ContrastiveMethod
    from contrastkit.negatives import InBatchNegatives
    from contrastkit.train import Trainer

    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(D, 16), nn.Tanh(), nn.Linear(16, 8))  # no BatchNorm (per-process stats)
    method = ContrastiveMethod(encoder, nn.Linear(8, 5), InBatchNegatives(), loss="nt_xent", temperature=0.5)
    config = TrainConfig(method="simclr", data="vectors", out=str(out), batch_size=batch_size, epochs=2,
                         optimizer="sgd", lr=0.5, weight_decay=0.0, warmup_epochs=0.0, precision="fp32",
                         device="cpu", progress=False, log_every=1, num_threads=1)
    return Trainer(method, _vector_data(), config, augment=_TwoViews())


def _simclr_worker(r: int, init_file: str, out: str) -> None:
    _init(r, init_file)
    try:
        try:
            _simclr_trainer(Path(out) / "odd", batch_size=15)
        except SettingsError as exc:
            refused = str(exc)
        trainer = _simclr_trainer(Path(out) / "run")
        trainer.fit(max_steps=5)
        try:  # the folder holds a run now: rank 0 refuses, and tells the other process why
            _simclr_trainer(Path(out) / "run").fit(max_steps=6)
        except (FileExistsError, ConnectionError) as exc:
            reused = f"{type(exc).__name__}: {exc}"
        torch.save({"params": trainer.method.state_dict(), "refused": refused, "reused": reused},
                   Path(out) / f"rank{r}.pt")
        trainer = None  # DDP goes before its process group (gloo may abort at teardown otherwise)
        gc.collect()  # and any trainer a caught error's traceback still held (a reference cycle)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_two_processes_end_with_the_single_process_parameters(tmp_path) -> None:
    """5 steps over an epoch boundary (4 steps per epoch): the same global batches, the same steps."""
    results = _spawn(_simclr_worker, tmp_path)
    single = _simclr_trainer(tmp_path / "single")
    single.fit(max_steps=5)
    initial = single.initial_state
    assert results[0]["reused"].startswith("FileExistsError:")
    assert results[1]["reused"].startswith("DistributedError: rank 0 could not prepare the output folder: "
                                           "FileExistsError:")
    for res in results:
        assert "multiple of the 2 processes" in res["refused"]
        for name, value in single.method.state_dict().items():
            assert torch.allclose(res["params"][name], value, rtol=1e-5, atol=1e-6), name
            assert not torch.allclose(value, initial[name], atol=1e-4), name  # the steps moved every parameter
    two, one = _rows(tmp_path / "run"), _rows(tmp_path / "single")
    assert [r[0] for r in two] == [r[0] for r in one] == [1, 2, 3, 4, 5]  # each step logged once, by rank 0
    for (_, loss2, lr2), (_, loss1, lr1) in zip(two, one, strict=True):
        assert float(loss2) == pytest.approx(float(loss1), rel=1e-5)  # the logged loss is the global batch's
        assert lr2 == lr1


# ---------------------------------------------------------------- (a') the same with images streamed from disk
class _ImageViews(nn.Module):
    """Deterministic views of uint8 images (as _TwoViews): x / 255, then 0.8 x / 255 + 0.1."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        self.calls += 1
        return x.float() / 255 if self.calls % 2 else 0.8 * x.float() / 255 + 0.1


def _image_folder(root: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(4)
    for c in range(2):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
        for i in range(20):
            Image.fromarray(rng.integers(0, 256, (6, 6), dtype=np.uint8)).save(root / f"c{c}" / f"{i}.png")
    return root


def _streamed_trainer(folder: Path, out: Path, stream: bool):
    from contrastkit.data import load_dataset
    from contrastkit.methods.contrastive import ContrastiveMethod
    from contrastkit.negatives import InBatchNegatives
    from contrastkit.train import Trainer

    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(36, 16), nn.Tanh(), nn.Linear(16, 8))
    method = ContrastiveMethod(encoder, nn.Linear(8, 5), InBatchNegatives(), loss="nt_xent", temperature=0.5)
    config = TrainConfig(method="simclr", data=str(folder), out=str(out), batch_size=8, epochs=2, optimizer="sgd",
                         lr=0.5, weight_decay=0.0, warmup_epochs=0.0, precision="fp32", device="cpu",
                         progress=False, num_threads=1, workers=1 if stream else None)  # workers: streamed only
    return Trainer(method, load_dataset(folder, stream=stream), config, augment=_ImageViews())


def _streamed_worker(r: int, init_file: str, out: str) -> None:
    _init(r, init_file)
    try:
        trainer = _streamed_trainer(Path(out) / "images", Path(out) / "run", stream=True)
        trainer.fit()
        torch.save({"params": trainer.method.state_dict(), "streamed": trainer.data.streamed},
                   Path(out) / f"rank{r}.pt")
        trainer = None
        gc.collect()  # and any trainer a caught error's traceback still held (a reference cycle)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_two_processes_streaming_from_disk_end_with_the_in_memory_parameters(tmp_path) -> None:
    """Each process decodes its own half of every global batch (workers per process); 8 steps over 2 epochs."""
    _image_folder(tmp_path / "images")
    results = _spawn(_streamed_worker, tmp_path)
    single = _streamed_trainer(tmp_path / "images", tmp_path / "single", stream=False)
    single.fit()
    assert single.step == 8 and all(res["streamed"] for res in results)
    for res in results:  # float32 sums in another order over 8 steps at lr 0.5: agreement to ~1e-5
        for name, value in single.method.state_dict().items():
            assert torch.allclose(res["params"][name], value, rtol=1e-4, atol=1e-5), name
            assert not torch.allclose(value, single.initial_state[name], atol=1e-3), name  # the steps moved it


# ---------------------------------------------------------------- (b) queues and banks stay identical
def _digits_config(method: str, out: Path, **options) -> TrainConfig:
    return TrainConfig(method=method, data="digits", out=str(out), batch_size=32, epochs=1,
                       device="cpu", precision="fp32", progress=False, log_every=1, num_threads=1,
                       method_options=options)


def _bn_statistic(name: str) -> bool:
    """BatchNorm running statistics: each process's own (of its share of the batch); only training-mode batch
    statistics enter the steps, so parameters, queues and banks agree regardless."""
    return name.endswith(("running_mean", "running_var", "num_batches_tracked"))


def _state_worker(r: int, init_file: str, out: str) -> None:
    from contrastkit.train import Trainer

    _init(r, init_file)
    try:
        states = {}
        for name, method, options in (("moco", "moco", {"queue_size": 80}), ("membank", "membank", {}),
                                      ("moco_shuffle", "moco", {"queue_size": 80, "batchnorm": "shuffle"})):
            trainer = Trainer.from_config(_digits_config(method, Path(out) / name, **options))
            trainer.fit(max_steps=4)
            states[name] = trainer.method.state_dict()
        torch.save(states, Path(out) / f"rank{r}.pt")
        trainer = None  # DDP goes before its process group
        gc.collect()  # and any trainer a caught error's traceback still held (a reference cycle)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_queues_and_banks_are_identical_on_every_process(tmp_path) -> None:
    """4 steps of 32 keys into an 80-key queue (it wraps around); the bank rows of all 128 samples updated."""
    first, second = _spawn(_state_worker, tmp_path)
    queue = first["moco"]
    assert int(queue["negatives.filled"]) == 80 and int(queue["negatives.pointer"]) == 128 % 80
    assert (queue["negatives.ids"] >= 0).all()
    for method in ("moco", "membank", "moco_shuffle"):
        compared = [name for name in first[method] if not _bn_statistic(name)]
        assert any(name.startswith("negatives.") for name in compared)
        for name in compared:
            assert torch.equal(second[method][name], first[method][name]), (method, name)


def _shuffle_bn_worker(r: int, init_file: str, out: str) -> None:
    from contrastkit.distributed import encode_shuffled
    from contrastkit.methods.contrastive import ContrastiveMethod
    from contrastkit.negatives import InBatchNegatives
    from contrastkit.process_group import processes

    _init(r, init_file)
    try:
        torch.manual_seed(0)  # the same network on both processes
        net = nn.Sequential(nn.Linear(D, 6), nn.BatchNorm1d(6)).train()
        x = torch.randn(4, D, generator=torch.Generator().manual_seed(10 + r))
        keys = encode_shuffled(x, net, torch.Generator().manual_seed(7))  # rank 0's generator draws the order
        sync = ContrastiveMethod(nn.Sequential(nn.Linear(D, 6), nn.BatchNorm1d(6)), nn.Identity(),
                                 InBatchNegatives(), loss="nt_xent", batchnorm="sync")
        try:
            sync.training_step([x, x], torch.arange(4), group=processes(r, 2, torch.device("cpu")))  # as trained
            refused = ""
        except ValueError as exc:
            refused = str(exc)
        torch.save({"x": x, "keys": keys, "refused": refused,
                    "is_sync": isinstance(sync.encoder[1], nn.SyncBatchNorm)}, Path(out) / f"rank{r}.pt")
    finally:
        dist.destroy_process_group()


def test_shuffled_batchnorm_encodes_each_key_among_a_random_share_of_the_global_batch(tmp_path) -> None:
    """MoCo's shuffling BN: rank 0's permutation of the 8 gathered rows, 4 per process, unshuffled afterwards."""
    results = _spawn(_shuffle_bn_worker, tmp_path)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(D, 6), nn.BatchNorm1d(6)).train()
    everything = torch.cat([res["x"] for res in results])  # (8, D)
    order = torch.randperm(8, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        shuffled = torch.cat([net(everything[order[:4]]), net(everything[order[4:]])])
        expected = shuffled[torch.argsort(order)]
        local = net(results[0]["x"])  # what the process's own batch would give
    assert torch.allclose(torch.cat([res["keys"] for res in results]), expected, atol=1e-6)
    assert not torch.allclose(results[0]["keys"], local, atol=1e-3)
    for res in results:  # SyncBatchNorm is GPU-only in PyTorch: a clear error on CPU processes
        assert res["is_sync"] and "SyncBatchNorm, which PyTorch runs on GPUs only" in res["refused"]


# ---------------------------------------------------------------- (c) resume on 2 and on 1 process
def _resume_worker(r: int, init_file: str, out: str) -> None:
    from contrastkit.train import Trainer

    _init(r, init_file)
    try:
        whole = Trainer.from_config(_digits_config("moco", Path(out) / "whole", queue_size=64))
        whole.fit(max_steps=6)
        Trainer.from_config(_digits_config("moco", Path(out) / "halves", queue_size=64)).fit(max_steps=3)
        resumed = Trainer.from_config(_digits_config("moco", Path(out) / "halves", queue_size=64))
        resumed.fit(resume=True, max_steps=6)
        from_one = Trainer.from_config(_digits_config("moco", Path(out) / "from_one", queue_size=64))
        from_one.fit(resume=True, max_steps=5)  # a checkpoint of 1 process, written by the test before
        torch.save({"whole": whole.method.state_dict(), "resumed": resumed.method.state_dict()},
                   Path(out) / f"rank{r}.pt")
        whole = resumed = from_one = None  # DDP goes before its process group
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_a_two_process_checkpoint_resumes_exactly_on_two_and_runs_on_one(tmp_path) -> None:
    """...and a 1-process checkpoint runs on 2 (rank 1 reseeds its generator)."""
    from contrastkit.train import Trainer

    Trainer.from_config(_digits_config("moco", tmp_path / "from_one", queue_size=64)).fit(max_steps=3)
    results = _spawn(_resume_worker, tmp_path)
    assert [r[0] for r in _rows(tmp_path / "from_one")] == [1, 2, 3, 4, 5]
    assert len(load_checkpoint(tmp_path / "from_one" / "checkpoint.pt")["rank_rng"]) == WORLD
    for r, res in enumerate(results):
        for name, value in res["whole"].items():
            if r == 0 or not _bn_statistic(name):  # rank 1 resumed with rank 0's BatchNorm statistics
                assert torch.equal(res["resumed"][name], value), (r, name)
    assert _rows(tmp_path / "halves") == _rows(tmp_path / "whole")
    assert [r[0] for r in _rows(tmp_path / "whole")] == [1, 2, 3, 4, 5, 6]
    ckpt = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")  # weights_only, as always
    assert len(ckpt["rank_rng"]) == WORLD
    assert not torch.equal(ckpt["rank_rng"][0]["generator"], ckpt["rank_rng"][1]["generator"])
    assert torch.equal(ckpt["rng"]["generator"], ckpt["rank_rng"][0]["generator"])

    one = tmp_path / "one"
    shutil.copytree(tmp_path / "halves", one)
    trainer = Trainer.from_config(_digits_config("moco", one, queue_size=64))
    summary = trainer.fit(resume=True, max_steps=8)
    assert summary["steps"] == 8 and trainer.step == 8
    assert [r[0] for r in _rows(one)] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert "rank_rng" not in load_checkpoint(one / "checkpoint.pt")  # a 1-process checkpoint keeps its format


# ---------------------------------------------------------------- (d) torchrun
@pytest.mark.slow
@pytest.mark.parametrize("method", ["simclr", "moco"])
def test_torchrun_writes_one_run_folder(tmp_path, method) -> None:
    """SimCLR started by torchrun itself, MoCo by ``contrastkit train --devices 2`` (which starts torchrun)."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    train = ["train", "--method", method, "--data", "digits", "--epochs", "1", "--batch-size", "64", "--out", str(out),
             "--set", "progress=false", "--dist-timeout", "120"]
    launch = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "contrastkit", *train] \
        if method == "simclr" else ["-m", "contrastkit", *train, "--devices", "2"]
    done = subprocess.run([sys.executable, *launch], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.yaml", "train_log.csv"]
    steps = [r[0] for r in _rows(out)]
    assert steps == [10, 20, 22]  # 1438 // 64 = 22 steps, log_every 10, each row once
    assert done.stdout.count(f"training {method} on digits") == 1  # only rank 0 prints
    assert "x 2 processes" in done.stdout
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["progress"]["step"] == 22 and len(ckpt["rank_rng"]) == 2


# ---------------------------------------------------------------- (e) a process that dies
def _dying_worker(r: int, init_file: str, out: str) -> None:
    """Rank 1 leaves abruptly (os._exit) after 2 steps; rank 0 must raise, not wait forever."""

    _init(r, init_file, timeout_s=20.0)
    trainer = _simclr_trainer(Path(out) / "run")
    if r == 1:
        step = trainer.train_step

        def dying_step(index: torch.Tensor) -> dict:
            if trainer.step == 2:
                os._exit(3)
            return step(index)

        trainer.train_step = dying_step
    try:
        trainer.fit(max_steps=1000, overwrite=True)
        message = "finished"
    except Exception as exc:  # what the test checks
        message = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    Path(out, f"rank{r}.txt").write_text(message)
    os._exit(0)  # no destroy_process_group: its peer is gone


def test_a_dead_process_makes_the_other_stop_with_an_error(tmp_path) -> None:
    context = mp.get_context("spawn")
    workers = [context.Process(target=_dying_worker, args=(r, str(tmp_path / "init"), str(tmp_path)))
               for r in range(WORLD)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)  # a guard against a hang in the code under test, not a timing check
    alive = [w for w in workers if w.is_alive()]
    for w in alive:
        w.kill()
    assert not alive, "a process still waited for its dead peer"
    assert workers[1].exitcode == 3
    message = (tmp_path / "rank0.txt").read_text()
    assert message.startswith("DistributedError: process 0 of 2: a collective operation failed"), message


# ---------------------------------------------------------------- no processes needed
def test_rank_slices_make_up_the_global_batch() -> None:
    shuffle = ShuffleSampler(100, 12, seed=5)
    slices = [list(RankSlice(shuffle, r, 3, 12).batches(1, start_batch=2)) for r in range(3)]
    for b, batch in enumerate(shuffle.batches(1, start_batch=2)):
        assert torch.equal(torch.cat([s[b] for s in slices]), batch)
    labels = torch.arange(80) % 8
    pk = PKSampler(labels, 16, 4, seed=1)  # P = 4 classes x K = 4: two whole classes per rank
    for r in range(2):
        for index in RankSlice(pk, r, 2, 16).batches(0):
            assert sorted(torch.bincount(labels[index], minlength=8).tolist())[-2:] == [4, 4]
    with pytest.raises(ValueError, match="not a multiple"):
        RankSlice(shuffle, 0, 5, 12)


def test_devices_hands_the_other_arguments_to_torchrun(monkeypatch) -> None:
    from contrastkit.cli import main, torchrun_command

    command = torchrun_command(["train", "--devices", "4", "--data", "digits", "--devices=4", "--epochs", "1"], 4)
    assert command == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4", "-m",
                       "contrastkit", "train", "--data", "digits", "--epochs", "1"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["train", "--devices", "2", "--data", "digits"]) == 2  # under torchrun already: an error


def test_no_group_without_torchrun(monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_from_environment("cpu") is False
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert init_from_environment("cpu") is False
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="MASTER_ADDR is not set"):
        init_from_environment("cpu")
