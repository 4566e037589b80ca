"""Throughput of the batched SimCLR view presets against a per-image loop (the "loader worker" way).

For each preset and batch size this prints images/s of
  * batched: one ``aug(x_uint8)`` call on the whole (B, C, H, W) uint8 batch (parameters drawn per sample);
  * per-image: the same ops and the same preset applied to one (1, C, H, W) image at a time in a Python
    loop, as a data-loader worker would (parameters drawn per image);
and their ratio. A per-op breakdown of the batched call and, as a yardstick for "cost per training step",
the forward + backward time of a small CNN on one view at the same batch size follow.

Usage: python benchmarks/augment_bench.py [--batches 256 1024] [--threads N] [--min-time 1.0]
Numbers depend on the machine; never assert on them in tests.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import nn

from contrastkit.augment import ViewAugment, get_augment, to_float

PRESETS = (("mnist", 1, 28), ("cifar", 3, 32))


def timed(fn: Callable[[], object], min_time: float, min_reps: int = 3) -> float:
    """Best (minimum) seconds per call of ``fn`` over repetitions lasting at least ``min_time`` in total
    (the minimum is the least disturbed by other processes on a shared machine, as in ``timeit``)."""
    fn()                                                                  # warm-up
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def per_image_loop(aug: ViewAugment, x: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
    return [aug(x[i:i + 1], generator=generator) for i in range(x.shape[0])]


def op_breakdown(aug: ViewAugment, x: torch.Tensor, generator: torch.Generator,
                 min_time: float) -> dict[str, float]:
    """Seconds per batch of sampling and of each op alone (on the output of the previous ones)."""
    params = aug.sample_params(x.shape, generator)
    out = {"sample params": timed(lambda: aug.sample_params(x.shape, generator), min_time),
           "uint8 -> float": timed(lambda: to_float(x), min_time)}
    cur = to_float(x)
    for name, op, p in (("crop+flip+rot", aug.crop, params.crop), ("colour jitter", aug.jitter, params.jitter),
                        ("grayscale", aug.grayscale, params.grayscale), ("blur", aug.blur, params.blur)):
        if op is None:
            continue
        inp = cur
        out[name] = timed(lambda op=op, inp=inp, p=p: op.apply(inp, p), min_time)
        cur = op.apply(inp, p)
    return out


def small_cnn(channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(128, 128))


def train_step_time(channels: int, size: int, batch: int, min_time: float) -> float:
    model = small_cnn(channels)
    x = torch.rand(batch, channels, size, size)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        model(x).square().mean().backward()

    return timed(step, min_time)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds of repetitions per measurement")
    parser.add_argument("--no-breakdown", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU\n")
    print(f"{'preset':<8}{'batch':>7}{'batched img/s':>16}{'per-image img/s':>18}{'ratio':>9}"
          f"{'CNN step ms':>13}{'aug/step':>10}")
    breakdowns = []
    for name, channels, size in PRESETS:
        aug = get_augment(name, size)
        for batch in args.batches:
            g = torch.Generator().manual_seed(0)
            x = torch.randint(0, 256, (batch, channels, size, size), dtype=torch.uint8, generator=g)
            t_batch = timed(lambda aug=aug, x=x, g=g: aug(x, generator=g), args.min_time)
            t_loop = timed(lambda aug=aug, x=x, g=g: per_image_loop(aug, x, g), args.min_time, min_reps=1)
            t_step = train_step_time(channels, size, batch, args.min_time)
            print(f"{name:<8}{batch:>7}{batch / t_batch:>16,.0f}{batch / t_loop:>18,.0f}"
                  f"{t_loop / t_batch:>8.1f}x{1e3 * t_step:>13.1f}{100 * t_batch / t_step:>9.1f}%")
            if not args.no_breakdown:
                breakdowns.append((name, batch, op_breakdown(aug, x, g, args.min_time / 4)))
    print("\n'aug/step': one batched view as a share of a small CNN's forward+backward on one view\n"
          "(a SimCLR step makes 2 views and runs the encoder on both, so the share per step is about the same).")
    for name, batch, parts in breakdowns:
        total = sum(parts.values())
        detail = ", ".join(f"{k} {1e3 * v:.2f} ms ({100 * v / total:.0f}%)" for k, v in parts.items())
        print(f"\n{name} batch {batch}: {detail}")


if __name__ == "__main__":
    main()
