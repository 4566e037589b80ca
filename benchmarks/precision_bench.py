"""bf16 autocast + channels_last against fp32 for the trainer's SimCLR step on this CPU.

The library turns on bf16 autocast and channels_last by default on CPUs with native bf16 (AVX512-BF16 /
AMX; ``contrastkit.train.cpu_has_fast_bf16``) because they measured faster there. This benchmark measures
that claim: each case builds a :class:`contrastkit.train.Trainer` for SimCLR on the built-in mnist5k data
(28 px, one channel) and times ``Trainer.train_step`` -- augmentation of both views, encoder + head,
NT-Xent, backward, optimizer and scheduler step, exactly what ``fit`` runs per step -- as the median over
the timed steps after warm-up steps. Four settings (fp32, fp32 + channels_last, bf16, bf16 + channels_last)
separate the two switches. All settings of one encoder live in one process and take their timed steps in
turn (round robin), so a change in the load of a shared machine hits them alike; still, compare ratios
within one run.

Usage: python benchmarks/precision_bench.py [--encoders small_cnn resnet18] [--steps N] [--threads N]
Default: small_cnn at batch 256 (3 warm-up, 10 timed steps per setting), under a minute on the project's 2-core
machine. ``--encoders small_cnn resnet18`` adds ResNet-18 at batch 32 (1 warm-up, 3 timed steps): about four
more minutes there (9 to 13 s a step).
Numbers depend on the machine; never assert on them in tests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import in_child, print_table

SETTINGS = (("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True))
DEFAULTS = {"small_cnn": (256, 3, 10), "resnet18": (32, 1, 3)}  # encoder: (batch, warm-up steps, timed steps)


def _child(case: dict) -> dict:
    import torch

    from contrastkit.config import TrainConfig
    from contrastkit.train import Trainer

    if case.get("threads"):
        torch.set_num_threads(case["threads"])
    batch = case["batch"]
    with tempfile.TemporaryDirectory() as out:
        trainers = [Trainer.from_config(TrainConfig(method="simclr", data="mnist5k", encoder=case["encoder"],
                                                    batch_size=batch, epochs=1, precision=precision,
                                                    channels_last=channels_last, out=out, progress=False))
                    for precision, channels_last in SETTINGS]
        n = len(trainers[0].images)
        times: list[list[float]] = [[] for _ in SETTINGS]
        for i in range(case["warm_up"] + case["steps"]):
            index = torch.arange(i * batch, (i + 1) * batch) % n
            for trainer, spent in zip(trainers, times, strict=True):  # round robin: one step of each in turn
                start = time.perf_counter()
                trainer.train_step(index)
                if i >= case["warm_up"]:
                    spent.append(time.perf_counter() - start)
    return {"seconds": [statistics.median(spent) for spent in times], "threads": torch.get_num_threads()}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(_child(json.loads(sys.argv[2]))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoders", nargs="+", default=["small_cnn"], choices=list(DEFAULTS))
    parser.add_argument("--steps", type=int, default=None, help="timed steps per case (default per encoder)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    from contrastkit.train import cpu_has_fast_bf16

    print(f"CPU with native bf16: {cpu_has_fast_bf16()}; SimCLR Trainer.train_step on mnist5k (2 views per sample)")
    rows = []
    for encoder in args.encoders:
        batch, warm_up, steps = DEFAULTS[encoder]
        case = {"encoder": encoder, "batch": batch, "warm_up": warm_up, "steps": args.steps or steps,
                "threads": args.threads}
        result = in_child(Path(__file__), case)
        for k, (precision, channels_last) in enumerate(SETTINGS):
            row = {"encoder": encoder, "batch": batch, "steps": case["steps"], "threads": result.get("threads"),
                   "setting": precision + (" + channels_last" if channels_last else ""), "error": result.get("error")}
            if "seconds" in result:
                seconds = result["seconds"][k]
                row.update(step_ms=1000 * seconds, images_per_s=2 * batch / seconds,
                           speed_up=f"{result['seconds'][0] / seconds:.2f}x")
            rows.append(row)
    columns = [("encoder", "encoder"), ("batch", "batch"), ("steps", "timed"), ("setting", "setting"),
               ("threads", "threads"),
               ("step_ms", "step ms (median)"), ("images_per_s", "views/s"), ("speed_up", "vs fp32"),
               ("error", "error")]
    print_table(rows, columns)
    print("\nviews/s: augmented 28 px images through encoder + backward per second (2 per sample); vs fp32: "
          "the fp32 step\ntime of the same encoder over this setting's (> 1 is faster).")


if __name__ == "__main__":
    main()
