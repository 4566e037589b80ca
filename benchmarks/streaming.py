"""Image folders in memory against streamed from disk: peak memory and loader throughput.

A folder of ``--images`` generated PNGs (default 50,000 of 64 x 64 RGB in 10 class folders, smooth random
patterns, made once and kept under ``--folder``) is loaded the two ways contrastkit offers
(:func:`contrastkit.data.load_dataset` with ``stream=False`` / ``stream=True``), then one epoch of the training
split is read in batches of ``--batch`` in a seeded shuffled order, as a trainer reads it:

* ``in memory`` -- the whole folder decoded once into one uint8 array, batches by index;
* ``streamed, W workers`` -- :class:`contrastkit.data.stream.StreamLoader` decoding in W worker processes
  (0: in the reading process itself).

Each case runs in a fresh interpreter. Columns: load seconds (listing, header scan, and for the in-memory path
the decoding of every file), epoch seconds and images/s of the epoch, images/s per worker, the reading process's
peak resident set (``ru_maxrss``) and the peak of the memory of the process and its workers together, sampled
every 20 ms as the sum of their proportional set sizes (``Pss`` of ``/proc/PID/smaps_rollup``: a page shared by
k processes counts 1/k in each, so the libraries every worker maps count once). The streamed path's memory is
O(batch x workers), the in-memory path's O(dataset).

With ``--train-steps N`` a second table times N SimCLR steps (small CNN, batch ``--batch``) on the same folder,
in memory and streamed with 1 and 2 workers: whether decoding keeps up with training on this machine.

Usage: python benchmarks/streaming.py [--images 50000] [--size 64] [--batch 256] [--workers 0 1 2]
       [--train-steps 0] [--folder DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import ROOT, in_child, print_table

sys.path.insert(0, str(ROOT))


def _write_class(args: tuple[str, int, int, int, int]) -> None:
    from PIL import Image

    folder, label, first, count, size = args
    rng = np.random.default_rng([label, first])
    out = Path(folder) / f"class{label}"
    out.mkdir(parents=True, exist_ok=True)
    for i in range(first, first + count):
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)  # a smooth pattern: 8 x 8 noise, upsampled
        image = Image.fromarray(small).resize((size, size), Image.BILINEAR)
        image.save(out / f"{i:06d}.png")


def make_folder(folder: Path, images: int, size: int, classes: int = 10) -> Path:
    """``images`` PNGs of ``size`` x ``size`` RGB in ``classes`` class folders (kept between runs)."""
    stamp = folder / ".complete"
    if stamp.exists() and stamp.read_text() == f"{images} {size}":
        return folder
    per_class = images // classes
    jobs = [(str(folder), c, start, min(1000, per_class - start), size)
            for c in range(classes) for start in range(0, per_class, 1000)]
    started = time.perf_counter()
    with Pool(max(1, min(4, os.cpu_count() or 1))) as pool:
        pool.map(_write_class, jobs)
    stamp.write_text(f"{images} {size}")
    print(f"generated {per_class * classes:,} images in {folder} in {time.perf_counter() - started:.0f} s",
          file=sys.stderr)
    return folder


def _pss_bytes(pid: int) -> int:
    """Proportional set size: resident pages, each shared page divided among the processes that share it."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


class TreePeak:
    """Samples the proportional set size of this process plus its children every ``period`` seconds (shared pages
    counted once in the sum); ``peak`` in bytes."""

    def __init__(self, period: float = 0.02) -> None:
        self.period, self.peak, self._stop = period, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            self.peak = max(self.peak, _pss_bytes(me) + sum(_pss_bytes(c) for c in _children(me)))
            self._stop.wait(self.period)

    def __enter__(self) -> TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_case(case: dict) -> dict:
    import torch

    from contrastkit.data import load_dataset
    from contrastkit.data.batches import take_batch
    from contrastkit.data.samplers import ShuffleSampler
    from contrastkit.data.stream import StreamLoader

    torch.set_num_threads(1)
    with TreePeak() as tree:
        start = time.perf_counter()
        data = load_dataset(case["folder"], stream=case["workers"] is not None, workers=case["workers"])
        loaded = time.perf_counter()
        train = data.train
        sampler = ShuffleSampler(len(train), case["batch"], seed=0)
        seen, checksum = 0, 0
        if case["workers"] is None:
            images = train.x
            for index in sampler.batches(0):
                batch = take_batch(images, index)
                seen, checksum = seen + len(batch), checksum + int(batch[:, 0, 0, 0].sum())
        else:
            for _, batch in StreamLoader(train, sampler, workers=case["workers"], pin_memory=False).batches(0):
                seen, checksum = seen + len(batch), checksum + int(batch[:, 0, 0, 0].sum())
        done = time.perf_counter()
    epoch_s = done - loaded
    workers = case["workers"] or 1
    return {"load_s": loaded - start, "epoch_s": epoch_s, "images_per_s": seen / epoch_s,
            "per_worker": seen / epoch_s / workers if case["workers"] is not None else None,
            "rss_mib": _max_rss_mib(), "tree_mib": tree.peak / 2**20, "images": seen, "checksum": checksum}


def train_case(case: dict) -> dict:
    import tempfile

    from contrastkit.config import TrainConfig
    from contrastkit.train import Trainer

    with tempfile.TemporaryDirectory() as out, TreePeak() as tree:
        config = TrainConfig(method="simclr", data=case["folder"], stream=case["workers"] is not None,
                             workers=case["workers"], batch_size=case["batch"], epochs=1, out=out, progress=False,
                             encoder="small_cnn", seed=0)
        start = time.perf_counter()
        trainer = Trainer.from_config(config)
        built = time.perf_counter()
        summary = trainer.fit(max_steps=case["steps"])
    return {"build_s": built - start, "images_per_s": summary["images_per_s"], "steps": summary["steps"],
            "rss_mib": _max_rss_mib(), "tree_mib": tree.peak / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-steps", type=int, default=0)
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        case = json.loads(args.child)
        print(json.dumps(train_case(case) if case.get("steps") else read_case(case)))
        return
    folder = args.folder or Path(os.environ.get("TMPDIR", "/tmp")) / f"contrastkit_stream_{args.images}_{args.size}"
    make_folder(folder, args.images, args.size)
    decoded = args.images * 3 * args.size * args.size / 2**20
    print(f"{args.images:,} PNGs of {args.size} x {args.size} RGB in {folder} ({decoded:,.0f} MiB decoded); "
          f"one epoch of the {round(0.8 * args.images):,}-image train split in batches of {args.batch}; "
          f"{os.cpu_count()} CPUs\n")
    rows = []
    for workers in (None, *args.workers):
        result = in_child(Path(__file__), {"folder": str(folder), "workers": workers, "batch": args.batch})
        result["case"] = "in memory" if workers is None else f"streamed, {workers} workers"
        rows.append(result)
        if "error" in result:
            print(f"{result['case']}: {result['error']}", file=sys.stderr)
    print_table(rows, [("case", "case"), ("load_s", "load s"), ("epoch_s", "epoch s"),
                       ("images_per_s", "images/s"), ("per_worker", "per worker"), ("rss_mib", "peak RSS MiB"),
                       ("tree_mib", "with workers MiB")])
    memory = next((r for r in rows if r["case"] == "in memory" and "rss_mib" in r), None)
    for row in rows[1:]:
        if memory is not None and "rss_mib" in row:
            print(f"{row['case']}: peak RSS {row['rss_mib'] / memory['rss_mib']:.2f}x the in-memory path's "
                  f"(with workers {row['tree_mib'] / memory['tree_mib']:.2f}x); reads "
                  f"{row['images_per_s'] / memory['images_per_s']:.3f}x as fast")
    if args.train_steps:
        print(f"\nSimCLR, small CNN, batch {args.batch}, {args.train_steps} steps:")
        train_rows = []
        for workers in (None, 1, 2):
            result = in_child(Path(__file__), {"folder": str(folder), "workers": workers, "batch": args.batch,
                                               "steps": args.train_steps})
            result["case"] = "in memory" if workers is None else f"streamed, {workers} workers"
            train_rows.append(result)
            if "error" in result:
                print(f"{result['case']}: {result['error']}", file=sys.stderr)
        print_table(train_rows, [("case", "case"), ("build_s", "build s"), ("images_per_s", "train images/s"),
                                 ("rss_mib", "peak RSS MiB"), ("tree_mib", "with workers MiB")])


if __name__ == "__main__":
    main()
