"""Under 2 gloo processes a budget's plan is made from the slowest process's seconds, so both processes make the
same plan at the same step and stop together at its end. Each process gets a simulated clock (rank 0: 0.125 s a
step, rank 1: 0.25 s); the expected plan is the slower one's, worked out by hand in tests/test_budget.py."""

from __future__ import annotations

import gc
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from contrastkit.config import TrainConfig
from tests.test_train_distributed import _init, _rows, _spawn, _TwoViews, _vector_data


def _worker(r: int, init_file: str, out: str) -> None:
    from contrastkit.methods.contrastive import ContrastiveMethod
    from contrastkit.negatives import InBatchNegatives
    from contrastkit.train import Trainer

    _init(r, init_file)
    try:
        torch.manual_seed(0)
        encoder = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 8))
        method = ContrastiveMethod(encoder, nn.Linear(8, 5), InBatchNegatives(), loss="nt_xent", temperature=0.5)
        config = TrainConfig(method="simclr", data="vectors", out=str(Path(out) / "run"), batch_size=16, epochs=30,
                             optimizer="sgd", lr=0.5, weight_decay=0.0, warmup_epochs=1.5, precision="fp32",
                             device="cpu", progress=False, log_every=1, num_threads=1, max_minutes=0.2)
        trainer = Trainer(method, _vector_data(), config, augment=_TwoViews())  # 4 steps an epoch: 120 in all
        clock = {"now": 0.0}
        original = trainer.train_step

        def timed(*args):
            logs = original(*args)
            clock["now"] += 0.125 * (r + 1)  # rank 1 is twice as slow
            return logs

        trainer.train_step = timed
        trainer.clock = lambda: clock["now"]
        summary = trainer.fit()
        torch.save({"summary": summary}, Path(out) / f"rank{r}.pt")
        trainer = None  # DDP goes before its process group
        gc.collect()
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_every_process_uses_the_slowest_processs_plan(tmp_path) -> None:
    """Rank 1 measures 4 steps/s over steps 5-25 with 12 s of budget: 47 steps; rank 0 alone would plan 93."""
    first, second = (result["summary"] for result in _spawn(_worker, tmp_path))
    assert first["schedule_plan"] == second["schedule_plan"]
    assert (first["schedule_plan"]["total_steps"], first["schedule_plan"]["steps_per_s"]) == (47, 4.0)
    for summary in (first, second):
        assert summary["steps"] == 47 and summary["final_lr"] == 0.0
        assert summary["stop_reason"] == "the schedule planned for max_minutes=0.2 is done"
    rows = _rows(tmp_path / "run")
    assert rows[-1][0] == 47 and float(rows[-1][2]) == 0.0
