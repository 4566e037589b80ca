"""The processes of a run: one process is a trivial object that never calls torch.distributed; two gloo processes
spawned by the test share rank 0's outcome, agree on flags, average and max their values and gather rows."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from contrastkit.distributed import DistributedError
from contrastkit.process_group import OneProcess, ProcessGroup, processes

WORLD = 2


def test_one_process_is_the_identity_and_never_calls_torch_distributed(monkeypatch) -> None:
    def forbidden(*args, **kwargs):
        raise AssertionError("one process must not call torch.distributed")

    for name in ("all_reduce", "all_gather", "broadcast_object_list", "get_backend", "get_rank", "get_world_size",
                 "all_gather_object", "is_initialized"):
        monkeypatch.setattr(dist, name, forbidden)
    group = processes(0, 1, torch.device("cpu"))
    assert isinstance(group, OneProcess) and (group.rank, group.world) == (0, 1)
    x = torch.arange(6.0).reshape(3, 2)
    assert group.gather(x) is x
    assert group.on_rank0(lambda: 42, "answer") == 42
    flags = torch.tensor([True, False])
    assert group.any_process(flags) is flags
    logs = {"loss": torch.tensor(1.5), "acc": torch.tensor(0.25)}
    assert group.mean(logs) is logs
    assert group.max(3.5) == 3.5
    assert group.failure(RuntimeError("Connection closed by peer"), 7) is None
    with pytest.raises(KeyError):  # rank 0's error is raised as it is
        group.on_rank0(lambda: {}["missing"], "look up")


def test_a_process_group_is_built_without_a_collective_and_checks_its_rank() -> None:
    group = ProcessGroup(1, 2, torch.device("cpu"))  # no process group is initialised here: nothing is called
    assert (group.rank, group.world) == (1, 2)
    assert isinstance(processes(1, 2, torch.device("cpu")), ProcessGroup)
    for rank, world in ((0, 1), (2, 2), (-1, 3)):
        with pytest.raises(ValueError, match=f"got rank {rank} of {world}"):
            ProcessGroup(rank, world, torch.device("cpu"))


def test_a_failed_collective_is_named_with_the_process_and_the_step() -> None:
    group = ProcessGroup(1, 2, torch.device("cpu"))
    failure = group.failure(RuntimeError("[gloo] Connection closed by peer\ndetails"), 12)
    assert isinstance(failure, DistributedError)
    assert str(failure) == ("process 1 of 2: a collective operation failed at step 12 ([gloo] Connection closed by "
                            "peer); another process stopped (see its error) or did not answer within the timeout")
    assert group.failure(RuntimeError("mat1 and mat2 shapes cannot be multiplied"), 12) is None


def _worker(r: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=r, world_size=WORLD)
    try:
        group = processes(dist.get_rank(), dist.get_world_size(), torch.device("cpu"))
        results: dict = {"type": type(group).__name__}
        results["shared"] = group.on_rank0(lambda: f"made by rank {r}", "make a value")
        try:
            group.on_rank0(lambda: int("x"), "parse a number")
        except (ValueError, DistributedError) as exc:
            results["error"] = (type(exc).__name__, str(exc))
        results["any"] = group.any_process(torch.tensor([r == 1, False, True])).tolist()
        results["mean"] = {k: float(v) for k, v in group.mean({"loss": torch.tensor(float(r + 1)),
                                                               "acc": torch.tensor(0.5 * r)}).items()}
        results["max"] = group.max(10.0 * (r + 1))
        results["gather"] = group.gather(torch.full((2, 3), float(r), requires_grad=True))
        torch.save(results, Path(out) / f"rank{r}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_share_agree_average_and_gather(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    for r, got in enumerate(ranks):
        assert got["type"] == "ProcessGroup"
        assert got["shared"] == "made by rank 0"  # rank 0 alone ran it; the others got its result
        assert got["any"] == [1, 0, 1]  # rank 1's flag holds for both
        assert got["mean"] == {"loss": 1.5, "acc": 0.25}  # (1 + 2) / 2, (0 + 0.5) / 2
        assert got["max"] == 20.0
        gathered = got["gather"]
        assert torch.equal(gathered, torch.tensor([[0.0] * 3] * 2 + [[1.0] * 3] * 2)) and not gathered.requires_grad
        message = "invalid literal for int() with base 10: 'x'"
        assert got["error"] == (("ValueError", message) if r == 0 else
                                ("DistributedError", f"rank 0 could not parse a number: ValueError: {message}"))
