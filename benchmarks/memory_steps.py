"""Memory and disk use of a long CPU training run: the resident set stays flat, the run folder stays bounded.

For each method (SimCLR, MoCo v2, memory bank) a fresh process trains ``--steps`` optimizer steps (default
1,000) with ``Trainer.from_config(TrainConfig(...)).fit(max_steps=...)`` on the built-in ``digits`` (1,438
training images, 8 x 8 px), as ``contrastkit train`` would: CSV log, a checkpoint every epoch (and every
``--checkpoint-every`` steps if given). The resident set size (VmRSS from ``/proc/self/status``) is sampled
every ``--every`` steps (default 50) from a wrapped ``Trainer.train_step``. The table gives the RSS after
warm-up (``--warm-up``, default step 100), at the last step, its growth in per cent, and the largest sample
after warm-up. A run that kept something per step alive (log rows, queue copies, loss graphs) grows here.

Disk: "written" is what the process passed to ``write()`` while training (``wchar`` of ``/proc/self/io``:
checkpoints, log, config -- a superset of the folder's writes, nothing else is written then), "saves" the
number of checkpoint writes, and "folder" the run folder's size and files at the end: one checkpoint,
config.yaml and train_log.csv (plus ``checkpoint_step*.pt`` copies only with ``--keep-checkpoints``).

Usage: python benchmarks/memory_steps.py [--steps N] [--every N] [--warm-up N] [--batch N]
       [--methods simclr moco membank] [--checkpoint-every N] [--keep-checkpoints N] [--threads N] [--samples]
Linux only (reads /proc). Numbers depend on the machine; never assert on timings in tests.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import in_child, print_table

METHODS = ("simclr", "moco", "membank")


def rss_mib() -> float:
    """This process's resident set size in MiB (VmRSS of /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmRSS in /proc/self/status")


def bytes_written() -> int | None:
    """Bytes this process has passed to write() so far (wchar of /proc/self/io); None where unreadable."""
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _child(case: dict[str, Any]) -> dict[str, Any]:
    import torch

    from contrastkit.config import TrainConfig
    from contrastkit.data import load_dataset
    from contrastkit.train import Trainer

    steps, every, batch = case["steps"], case["every"], case["batch"]

    class SampledTrainer(Trainer):
        """The trainer, with the RSS sampled every ``every`` steps and checkpoint writes counted."""

        samples: dict[int, float]
        saves: int

        def train_step(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
            logs = super().train_step(index)
            if self.step % every == 0:
                self.samples[self.step] = rss_mib()
            return logs

        def save(self, path: Path | None = None) -> Path:
            self.saves += 1
            return super().save(path)

    n_train = len(load_dataset(case["data"]).train)
    epochs = math.ceil(steps / (n_train // batch))
    options = {"queue_size": case["queue_size"]} if case["method"] == "moco" else {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        config = TrainConfig(method=case["method"], data=case["data"], out=str(out), epochs=epochs,
                             batch_size=batch, progress=False, seed=0, num_threads=case["threads"],
                             checkpoint_every=case["checkpoint_every"], keep_checkpoints=case["keep_checkpoints"],
                             method_options=options)
        trainer = SampledTrainer.from_config(config)
        trainer.samples, trainer.saves = {}, 0
        written = bytes_written()
        start = time.perf_counter()
        summary = trainer.fit(max_steps=steps)
        seconds = time.perf_counter() - start
        after = bytes_written()
        files = sorted(p.name for p in out.iterdir())
        folder = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    warm, last = trainer.samples[case["warm_up"]], trainer.samples[max(trainer.samples)]
    later = [v for s, v in trainer.samples.items() if s >= case["warm_up"]]
    return {"steps_done": summary["steps"], "epochs": epochs, "seconds": seconds, "rss_warm": warm, "rss_last": last,
            "growth": 100 * (last - warm) / warm, "rss_max": max(later), "saves": trainer.saves,
            "written": None if written is None or after is None else after - written, "folder": folder,
            "files": " ".join(files), "samples": {str(k): round(v, 1) for k, v in trainer.samples.items()}}


def _mib(value: int | None) -> str | None:
    return None if value is None else f"{value / 2**20:.1f}"


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(_child(json.loads(sys.argv[2]))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--every", type=int, default=50, help="steps between RSS samples")
    parser.add_argument("--warm-up", type=int, default=100, help="the step whose RSS is the baseline")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--data", default="digits")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--queue-size", type=int, default=4096, help="MoCo queue length")
    parser.add_argument("--checkpoint-every", type=int, default=0)
    parser.add_argument("--keep-checkpoints", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: memory, not speed, is measured, and a busy machine's "
                             "cores are not oversubscribed)")
    parser.add_argument("--samples", action="store_true", help="also print every RSS sample")
    args = parser.parse_args()
    if args.warm_up % args.every or args.steps % args.every or not 0 < args.warm_up < args.steps:
        parser.error("--warm-up and --steps must be multiples of --every, with 0 < warm-up < steps")
    rows = []
    for method in args.methods:
        case = {"method": method, "data": args.data, "steps": args.steps, "every": args.every,
                "warm_up": args.warm_up, "batch": args.batch, "queue_size": args.queue_size,
                "checkpoint_every": args.checkpoint_every, "keep_checkpoints": args.keep_checkpoints,
                "threads": args.threads}
        r = in_child(Path(__file__), case)
        if "growth" in r:
            r["growth"] = f"{r['growth']:+.2f} %"
            r["written"], r["folder"] = _mib(r["written"]), _mib(r["folder"])
        rows.append(r)
        if args.samples and "samples" in r:
            print(method, r["samples"])
    print(f"{args.steps} CPU training steps per method on {args.data} (batch {args.batch}), each in a fresh process; "
          f"RSS in MiB")
    columns = [("method", "method"), ("steps_done", "steps"), ("seconds", "train s"),
               ("rss_warm", f"RSS @ {args.warm_up}"), ("rss_last", f"RSS @ {args.steps}"), ("growth", "growth"),
               ("rss_max", "max RSS"), ("saves", "saves"), ("written", "written MiB"), ("folder", "folder MiB"),
               ("files", "files in the run folder"), ("error", "error")]
    print_table(rows, columns)


if __name__ == "__main__":
    main()
