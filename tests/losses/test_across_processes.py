"""CLIP and SigLIP over several processes (gloo, 2 and 3 processes spawned by the test, one spawn per world size):
the mean of the processes' losses equals the one-process clip_loss / siglip_loss of the global batch, and the
gradients w.r.t. a, b, the logit scale, the SigLIP scale and bias, after DDP's averaging over processes, equal the
one-process gradients (float64); a ring hop moves rows forward and gradients back; a two-tower model in
DistributedDataParallel ends a few SGD steps with the one-process parameters; uneven or bad inputs stop every
process with one line. One process is exactly the one-process loss."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from contrastkit.losses import (
    LogitScale,
    SigmoidScaleBias,
    clip_loss,
    clip_loss_across,
    siglip_loss,
    siglip_loss_ring,
)
from contrastkit.process_group import ONE_PROCESS, ProcessGroup

WORLDS = (2, 3)
N, D = 3, 5  # pairs per process, embedding size
IN_A, IN_B = 6, 4  # the toy towers' input sizes
T_CLIP = 1.1  # log logit scale (below the clamp at log 100)
T_SIGLIP, BIAS = 1.3, -0.8

CASES = {
    "clip": dict(),
    "clip_memory_efficient": dict(memory_efficient=True, block_size=2),
    "siglip": dict(),
    "siglip_chunks": dict(chunk_size=2),  # two chunks in every hop
}
KINDS = ("clip", "siglip")


def _global_batch(world: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(world * N, D, generator=g, dtype=torch.float64),
            torch.randn(world * N, D, generator=g, dtype=torch.float64))


def _inputs(case: str, a: torch.Tensor, b: torch.Tensor) -> list[torch.Tensor]:
    """Fresh leaves with gradients: a, b, then the logit scale (CLIP) or t and bias (SigLIP)."""
    scalars = [T_CLIP] if case.startswith("clip") else [T_SIGLIP, BIAS]
    return [x.clone().requires_grad_(True) for x in (a, b)] + [
        torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in scalars]


def _loss(case: str, inputs: list[torch.Tensor], group=None) -> torch.Tensor:
    """The many-process loss of a case on ``group``, or the one-process loss of the global batch (``group=None``)."""
    options = CASES.get(case, {})
    if case.startswith("clip"):
        a, b, t = inputs
        return clip_loss(a, b, t, **options) if group is None else clip_loss_across(a, b, t, group, **options)
    a, b, t, bias = inputs
    return (siglip_loss(a, b, t, bias, **options) if group is None
            else siglip_loss_ring(a, b, t, bias, group, **options))


class _TwoTower(nn.Module):
    """Two linear towers and the loss's learnable scalars, returned by the forward (so DDP sees them used)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.tower_a, self.tower_b = nn.Linear(IN_A, D), nn.Linear(IN_B, D)
        self.scalars = LogitScale() if kind == "clip" else SigmoidScaleBias()
        self.double()

    def forward(self, xa: torch.Tensor, xb: torch.Tensor) -> list[torch.Tensor]:
        scalars = self.scalars()
        return [self.tower_a(xa), self.tower_b(xb), *(scalars if isinstance(scalars, tuple) else (scalars,))]


def _steps(kind: str, model: nn.Module, world: int, rows: slice, group=None) -> None:
    """Three SGD steps on rows ``rows`` of three global batches of ``world * N`` pairs; ``group=None``: the
    one-process loss."""
    g = torch.Generator().manual_seed(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(3):
        xa = torch.randn(world * N, IN_A, generator=g, dtype=torch.float64)
        xb = torch.randn(world * N, IN_B, generator=g, dtype=torch.float64)
        opt.zero_grad()
        _loss(kind, model(xa[rows], xb[rows]), group).backward()
        opt.step()


def _messages(make_inputs, group) -> dict[str, str]:
    """The error each loss raises on this process for the inputs ``make_inputs(kind)`` gives."""
    out = {}
    for kind in KINDS:
        try:
            _loss(kind, make_inputs(kind), group)
            out[kind] = "no error"
        except (TypeError, ValueError) as exc:
            out[kind] = f"{type(exc).__name__}: {exc}"
    return out


def _worker(r: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=r, world_size=world)
    try:
        group = ProcessGroup(r, world, torch.device("cpu"))
        rows = slice(r * N, (r + 1) * N)
        a, b = _global_batch(world)
        results: dict = {}
        for case in CASES:
            inputs = _inputs(case, a[rows], b[rows])
            loss = _loss(case, inputs, group)
            loss.backward()
            results[case] = [loss.detach()] + [x.grad for x in inputs]

        x = torch.tensor([float(r), 10.0 + r], dtype=torch.float64, requires_grad=True)
        received = group.ring_pass(x)
        (received * (r + 1)).sum().backward()
        results["ring"] = (received.detach(), x.grad)

        for kind in KINDS:
            model = _TwoTower(kind)
            _steps(kind, DistributedDataParallel(model), world, rows, group)
            results[f"ddp_{kind}"] = model.state_dict()

        results["uneven"] = _messages(lambda kind: _inputs(kind, a[:N + r], b[:N + r]), group)
        bad = a[rows].clone()
        bad[0, 0] = float("nan") if r == 1 else bad[0, 0]
        results["nan_on_1"] = _messages(lambda kind: _inputs(kind, bad, b[rows]), group)
        results["float32_on_0"] = _messages(
            lambda kind: [x.float() if r == 0 else x for x in _inputs(kind, a[rows], b[rows])], group)
        torch.save(results, Path(out) / f"rank{r}.pt")
        dist.barrier()  # every process done with its collectives before the group goes
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module", params=WORLDS, ids=lambda w: f"{w}_processes")
def spawned(request, tmp_path_factory) -> tuple[int, list[dict]]:
    """(W, every process's results) of one spawn of W gloo processes."""
    world, tmp = request.param, tmp_path_factory.mktemp(f"across{request.param}")
    mp.spawn(_worker, args=(world, str(tmp / "init"), str(tmp)), nprocs=world, join=True)
    return world, [torch.load(tmp / f"rank{r}.pt", weights_only=True) for r in range(world)]


@pytest.mark.parametrize("case", sorted(CASES))
def test_losses_and_gradients_equal_the_global_batch(spawned, case) -> None:
    world, results = spawned
    inputs = _inputs(case, *_global_batch(world))
    single = _loss(case, inputs)
    single.backward()
    mean_loss = sum(res[case][0] for res in results) / world  # what DDP's averaging optimises
    assert torch.allclose(mean_loss, single.detach(), rtol=1e-12, atol=0), (case, mean_loss, single)
    for r, res in enumerate(results):
        rows = slice(r * N, (r + 1) * N)
        grad_a, grad_b = res[case][1], res[case][2]
        assert torch.allclose(grad_a / world, inputs[0].grad[rows], rtol=1e-10, atol=1e-14), (case, r)
        assert torch.allclose(grad_b / world, inputs[1].grad[rows], rtol=1e-10, atol=1e-14), (case, r)
    for k, leaf in enumerate(inputs[2:], start=3):  # the logit scale; SigLIP's t and bias
        mean_grad = sum(res[case][k] for res in results) / world
        assert torch.allclose(mean_grad, leaf.grad, rtol=1e-10, atol=1e-14), (case, k, mean_grad, leaf.grad)
        assert leaf.grad.abs() > 1e-3  # a gradient that matters, not two zeros


def test_a_ring_hop_moves_rows_forward_and_gradients_back(spawned) -> None:
    world, results = spawned
    for r, res in enumerate(results):
        received, grad = res["ring"]
        previous, following = (r - 1) % world, (r + 1) % world
        assert received.tolist() == [float(previous), 10.0 + previous]
        # process r's rows went to r + 1, which weighted them by its (rank + 1): that gradient came back
        assert grad.tolist() == [following + 1.0] * 2


@pytest.mark.parametrize("kind", KINDS)
def test_ddp_steps_end_with_the_one_process_parameters(spawned, kind) -> None:
    world, results = spawned
    single = _TwoTower(kind)
    initial = {name: value.clone() for name, value in single.state_dict().items()}
    _steps(kind, single, world, slice(None))
    for r, res in enumerate(results):
        for name, value in single.state_dict().items():
            got = res[f"ddp_{kind}"][name]
            assert torch.allclose(got, value, rtol=1e-10, atol=1e-13), (kind, r, name, (got - value).abs().max())
    for name, value in single.state_dict().items():
        assert not torch.allclose(value, initial[name], atol=1e-4), name  # the steps moved every parameter


def test_batch_sizes_that_differ_between_processes_stop_every_process(spawned) -> None:
    world, results = spawned
    shapes = [(N + r, D) for r in range(world)]
    for res in results:
        for kind, where in (("clip", "clip_loss_across"), ("siglip", "siglip_loss_ring")):
            assert res["uneven"][kind] == (
                f"ValueError: {where}: the processes hold batches of different shapes (n, D) = {shapes} (rank "
                f"order); every process needs the same number of pairs n = B_local and the same D (a global batch "
                f"that splits evenly)")


def test_a_bad_input_on_one_process_stops_every_process_in_one_line(spawned) -> None:
    world, results = spawned
    for r, res in enumerate(results):
        for kind, where in (("clip", "clip_loss_across"), ("siglip", "siglip_loss_ring")):
            message = res["nan_on_1"][kind]
            if r == 1:  # its own error, as the one-process loss words it
                assert message == f"ValueError: {where}: `a` holds 1 NaN/Inf value(s); the loss would be NaN"
            else:
                assert message == (f"ValueError: {where}: process(es) [1] of {world} refused their input (see their "
                                   f"error); process {r} stops with them")


def test_dtypes_that_differ_between_processes_stop_every_process(spawned) -> None:
    world, results = spawned
    names = ["torch.float32"] + ["torch.float64"] * (world - 1)
    for res in results:
        for kind, where in (("clip", "clip_loss_across"), ("siglip", "siglip_loss_ring")):
            assert res["float32_on_0"][kind] == (f"TypeError: {where}: the processes hold different dtypes {names} "
                                                 f"(rank order); use one dtype on every process")


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_process_is_exactly_the_one_process_loss(case) -> None:
    a, b = _global_batch(2, seed=3)
    expected_inputs, got_inputs = _inputs(case, a, b), _inputs(case, a, b)
    expected, got = _loss(case, expected_inputs), _loss(case, got_inputs, ONE_PROCESS)
    expected.backward()
    got.backward()
    assert torch.equal(got, expected)
    for x, y in zip(got_inputs, expected_inputs, strict=True):
        assert torch.equal(x.grad, y.grad)


def test_one_process_exchanges_are_the_identity() -> None:
    x = torch.randn(4, 3)
    assert ONE_PROCESS.gather_with_grad(x) is x and ONE_PROCESS.ring_pass(x) is x


def test_the_ring_never_holds_the_scores_of_more_than_one_chunk(monkeypatch) -> None:
    """Every chunk of every hop is checkpointed: a spy on the chunk kernel sees only (chunk, n) blocks, each computed
    once in the forward and once again in the backward, on a one-process stand-in whose ring hop hands back the
    same block (W = 3 hops of a 3-row block in chunks of 2)."""
    import contrastkit.losses.siglip as siglip_module

    class Ring3:
        rank, world = 0, 3

        def gather(self, x):
            return torch.cat([x] * self.world)

        def ring_pass(self, x, check_shapes=True):
            return x * 1.0

    shapes = []
    original = siglip_module._chunk_loss

    def spy(a_chunk, b, *args):
        shapes.append((tuple(a_chunk.shape), tuple(b.shape)))
        return original(a_chunk, b, *args)

    monkeypatch.setattr(siglip_module, "_chunk_loss", spy)
    a, b = (x.requires_grad_(True) for x in _global_batch(1, seed=4))  # (3, D) each
    loss = siglip_loss_ring(a, b, 0.5, -1.0, Ring3(), chunk_size=2)
    assert shapes == [((2, D), (N, D)), ((1, D), (N, D))] * 3  # the forward: 3 hops x 2 chunks
    loss.backward()
    assert sorted(shapes[6:]) == sorted(shapes[:6])  # the backward recomputed each chunk (in its own order)


def test_bad_groups_and_inputs_are_one_line_errors() -> None:
    a, b = _global_batch(1)
    with pytest.raises(TypeError, match=r"clip_loss_across: `group` must be the run's processes .* got int"):
        clip_loss_across(a, b, 1.0, 2)
    with pytest.raises(TypeError, match=r"siglip_loss_ring: `group` must be the run's processes .* got NoneType "
                                        r"without rank, world, gather, ring_pass$"):
        siglip_loss_ring(a, b, 1.0, 0.0, None)
    with pytest.raises(ValueError, match=r"clip_loss: `a` and `b` must have the same shape"):
        clip_loss_across(a, b[:2], 1.0, ONE_PROCESS)
    with pytest.raises(ValueError, match=r"siglip_loss: `t` = 1000 gives the scale exp\(t\) = inf"):
        siglip_loss_ring(a, b, 1000.0, 0.0, ONE_PROCESS)
    assert math.isfinite(float(siglip_loss_ring(a, b, 1.0, 0.0, ONE_PROCESS)))
