"""torch.distributed pieces on the CPU with gloo, 2 processes spawned by the test: the gathered NT-Xent and in-batch
InfoNCE equal the single-process loss on the concatenated batch, and their gradients (after DDP's averaging) equal
the single-process gradients, float64, for the direct and the memory-efficient kernels and SupCon labels; a
DDP-wrapped encoder ends a few SGD steps with the single-process parameters; so does a DDP-wrapped SimCLR method;
shape mismatches are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from contrastkit.distributed import (
    all_gather_no_grad,
    all_gather_with_grad,
    gathered_in_batch_info_nce,
    gathered_nt_xent,
    rank,
    threads_per_process,
    world_size,
)
from contrastkit.losses import info_nce, nt_xent

WORLD = 2
N, D = 5, 7  # pairs per process, embedding size

CASES = {
    "direct": dict(),
    "memory_efficient": dict(memory_efficient=True, block_size=3),
    "supcon": dict(labels=True),
    "dot": dict(score="dot"),
    "info_nce": dict(info_nce=True),
    "info_nce_memory_efficient": dict(info_nce=True, memory_efficient=True, block_size=2),
}


def _global_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(WORLD * N, D, generator=g, dtype=torch.float64)
    z2 = torch.randn(WORLD * N, D, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 3, (WORLD * N,), generator=g)
    return z1, z2, labels


def _loss_kwargs(case: str, labels: torch.Tensor) -> dict:
    kw = dict(CASES[case])
    kw.pop("info_nce", None)
    if kw.pop("labels", False):
        kw["labels"] = labels
    return kw


def _losses(case: str):
    """(the gathered loss, the single-process loss) of a case."""
    return (gathered_in_batch_info_nce, info_nce) if CASES[case].get("info_nce") else (gathered_nt_xent, nt_xent)


def _init(r: int, init_file: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=r, world_size=WORLD)


def _loss_worker(r: int, init_file: str, out: str) -> None:
    _init(r, init_file)
    try:
        z1, z2, labels = _global_batch()
        rows = slice(r * N, (r + 1) * N)
        results = {}
        for case in CASES:
            a = z1[rows].clone().requires_grad_(True)
            b = z2[rows].clone().requires_grad_(True)
            kw = _loss_kwargs(case, labels[rows])
            loss = _losses(case)[0](a, b, 0.3, **kw)
            loss.backward()
            results[case] = (loss.detach(), a.grad, b.grad)
        gathered = all_gather_no_grad(torch.arange(3) + 10 * rank())
        results["facts"] = (rank(), world_size(), gathered)
        torch.save(results, Path(out) / f"rank{r}.pt")
    finally:
        dist.destroy_process_group()


def _finish() -> None:
    """Every process done with its collectives, then leave the group (a process tearing gloo down while its
    peer still talks to it can abort)."""
    dist.barrier()
    dist.destroy_process_group()


def _spawn(worker, tmp_path: Path, *args) -> list[dict]:
    init_file = str(tmp_path / "init")
    mp.spawn(worker, args=(init_file, str(tmp_path), *args), nprocs=WORLD, join=True)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


@pytest.fixture(scope="module")
def loss_results(tmp_path_factory) -> list[dict]:
    return _spawn(_loss_worker, tmp_path_factory.mktemp("dist"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_gathered_nt_xent_equals_the_global_batch(loss_results, case) -> None:
    z1, z2, labels = _global_batch()
    a, b = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    kw = _loss_kwargs(case, labels)
    single = info_nce(a, b, None, 0.3, **kw) if CASES[case].get("info_nce") else nt_xent(a, b, 0.3, **kw)
    single.backward()
    mean_of_ranks = sum(res[case][0] for res in loss_results) / WORLD  # what DDP's averaging optimises
    assert torch.allclose(mean_of_ranks, single.detach(), rtol=1e-6, atol=0)
    for r, res in enumerate(loss_results):
        rows = slice(r * N, (r + 1) * N)
        _, grad_a, grad_b = res[case]
        assert torch.allclose(grad_a / WORLD, a.grad[rows], rtol=1e-6, atol=1e-12), (case, r)
        assert torch.allclose(grad_b / WORLD, b.grad[rows], rtol=1e-6, atol=1e-12), (case, r)


def test_process_facts_and_plain_gather(loss_results) -> None:
    for r, res in enumerate(loss_results):
        got_rank, got_world, gathered = res["facts"]
        assert (got_rank, got_world) == (r, WORLD)
        assert gathered.tolist() == [0, 1, 2, 10, 11, 12]


class _Encoder(nn.Module):
    """No BatchNorm: per-process statistics would differ from the global batch's."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(D, 16), nn.Tanh(), nn.Linear(16, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _steps(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], loss_fn) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for x1, x2 in batches:
        opt.zero_grad()
        loss_fn(model(x1), model(x2)).backward()
        opt.step()


def _batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(WORLD * N, D, generator=g, dtype=torch.float64),
             torch.randn(WORLD * N, D, generator=g, dtype=torch.float64)) for _ in range(3)]


def _ddp_worker(r: int, init_file: str, out: str) -> None:
    _init(r, init_file)
    try:
        torch.manual_seed(0)
        model = DistributedDataParallel(_Encoder().double())
        rows = slice(r * N, (r + 1) * N)
        _steps(model, [(x1[rows], x2[rows]) for x1, x2 in _batches()], lambda a, b: gathered_nt_xent(a, b, 0.5))
        torch.save(model.module.state_dict(), Path(out) / f"rank{r}.pt")
        del model  # DDP's reducer before its process group
        _finish()
    except BaseException:
        dist.destroy_process_group()
        raise


def test_ddp_steps_end_with_the_single_process_parameters(tmp_path) -> None:
    states = _spawn(_ddp_worker, tmp_path)
    torch.manual_seed(0)
    single = _Encoder().double()
    _steps(single, _batches(), lambda a, b: nt_xent(a, b, 0.5))
    for state in states:
        for name, value in single.state_dict().items():
            assert torch.allclose(state[name], value, rtol=1e-6, atol=1e-10), name


def _simclr(loss: str) -> nn.Module:
    from contrastkit.methods.contrastive import ContrastiveMethod
    from contrastkit.negatives import InBatchNegatives

    torch.manual_seed(0)
    return ContrastiveMethod(_Encoder(), nn.Linear(8, 6), InBatchNegatives(), loss=loss, temperature=0.5).double()


def _method_steps(method: nn.Module, wrapped: nn.Module, rows: slice) -> None:
    from contrastkit.distributed import rank, world_size
    from contrastkit.methods.base import Batch
    from contrastkit.process_group import processes

    group = processes(rank(), world_size(), torch.device("cpu"))  # what the trainer hands the method
    opt = torch.optim.SGD(method.parameters(), lr=0.5)
    for x1, x2 in _batches():
        opt.zero_grad()
        out = wrapped(Batch(views=[x1[rows], x2[rows]], indices=torch.arange(x1.shape[0])[rows]), group)
        out.loss.backward()
        opt.step()
        method.after_step(out, group)


def _method_worker(r: int, init_file: str, out: str, loss: str) -> None:
    _init(r, init_file)
    try:
        method = _simclr(loss)
        wrapped = DistributedDataParallel(method)
        _method_steps(method, wrapped, slice(r * N, (r + 1) * N))
        torch.save(method.state_dict(), Path(out) / f"rank{r}.pt")
        del wrapped  # DDP's reducer before its process group
        _finish()
    except BaseException:
        dist.destroy_process_group()
        raise


@pytest.mark.parametrize("loss", ["nt_xent", "info_nce"])
def test_a_ddp_simclr_method_matches_one_process_on_the_global_batch(tmp_path, loss) -> None:
    """The method computes its loss in float32 (``embed`` casts), so the tolerance is float32's, not float64's."""
    states = _spawn(_method_worker, tmp_path, loss)
    single = _simclr(loss)
    _method_steps(single, single, slice(None))
    initial = _simclr(loss).state_dict()
    for state in states:
        for name, value in single.state_dict().items():
            assert torch.allclose(state[name], value, rtol=1e-5, atol=1e-6), (name, (state[name] - value).abs().max())
            assert not torch.allclose(value, initial[name], atol=1e-4), name  # the steps moved every parameter


def _mismatch_worker(r: int, init_file: str, out: str) -> None:
    _init(r, init_file)
    try:
        try:
            all_gather_with_grad(torch.zeros(3 + r, 2))
        except ValueError as exc:
            Path(out, f"rank{r}.txt").write_text(str(exc))
    finally:
        dist.destroy_process_group()


def test_different_batch_sizes_are_refused(tmp_path) -> None:
    init_file = str(tmp_path / "init")
    mp.spawn(_mismatch_worker, args=(init_file, str(tmp_path)), nprocs=WORLD, join=True)
    for r in range(WORLD):
        assert "every process needs the same batch size" in (tmp_path / f"rank{r}.txt").read_text()


def test_outside_a_process_group_everything_is_single_process() -> None:
    x = torch.randn(4, 3)
    assert all_gather_with_grad(x) is x and all_gather_no_grad(x) is x
    assert (rank(), world_size()) == (0, 1)
    z1, z2 = torch.randn(4, 3), torch.randn(4, 3)
    assert torch.equal(gathered_nt_xent(z1, z2, 0.5), nt_xent(z1, z2, 0.5))


def test_threads_are_shared_among_local_processes() -> None:
    assert threads_per_process(2, cores=16) == 8
    assert threads_per_process(3, cores=2) == 1
    assert threads_per_process(1) >= 1
    with pytest.raises(ValueError, match="local_processes"):
        threads_per_process(0)
