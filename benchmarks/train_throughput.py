"""Training throughput per method on synthetic 32 px colour batches with a CIFAR ResNet-18.

For each method (SimCLR, MoCo v2, memory bank) one training step is split into its phases, each timed
with a device synchronisation around it: augmentation (all views, on the device), forward (encoder,
head, keys, loss), backward, optimizer step and after-step updates (momentum encoder, queue, bank). The
loss alone (forward + backward on stored embeddings) is timed separately. Views/s of the whole step is
compared with the bare backbone's forward + backward images/s measured in the same run (the issue's GPU
target: SimCLR >= 85 % of the bare ResNet-18 at batch 1,024 in bf16 + channels_last).

Usage: python benchmarks/train_throughput.py [--device auto|cpu|cuda] [--batch N] [--steps N]
       [--precision auto|fp32|bf16] [--methods simclr moco membank]
Defaults: batch 1,024 and 20 timed steps on a GPU; batch 64 and 3 steps on a CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import print_table

from contrastkit.augment import get_augment
from contrastkit.losses import nt_xent
from contrastkit.methods import build_method
from contrastkit.models import resnet18_cifar
from contrastkit.train import cpu_has_fast_bf16, resolve_device

PHASES = ("augment", "forward", "backward", "optimizer", "after_step")


class _Timer:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.totals: dict[str, list[float]] = {p: [] for p in PHASES}

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def time(self, phase: str, fn: Callable[[], object]) -> object:
        self.sync()
        start = time.perf_counter()
        result = fn()
        self.sync()
        self.totals[phase].append(time.perf_counter() - start)
        return result


def _autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def bare_backbone(device: torch.device, batch: int, steps: int, bf16: bool, channels_last: bool) -> float:
    """Images/s of ResNet-18 forward + backward + SGD step on random float input (no augmentation, no loss)."""
    model = resnet18_cifar().to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch, 3, 32, 32, device=device).contiguous(memory_format=fmt)
    timer = _Timer(device)

    def step() -> None:
        with _autocast(device, bf16):
            loss = model(x).float().square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    timer.sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    timer.sync()
    return batch * steps / (time.perf_counter() - start)


def method_step_split(name: str, device: torch.device, batch: int, steps: int, bf16: bool,
                      channels_last: bool) -> dict:
    torch.manual_seed(0)
    encoder = resnet18_cifar()
    method = build_method(name, encoder, 512, num_samples=50_000, queue_size=16_384).to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    method = method.to(memory_format=fmt)
    optimizer = torch.optim.SGD(method.parameters(), lr=0.03, momentum=0.9)
    augment = get_augment("cifar", 32).to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    images = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, device=device)
    indices = torch.arange(batch, device=device)
    timer = _Timer(device)

    def step(record: bool) -> None:
        t = timer if record else _Timer(device)
        views = t.time("augment", lambda: [augment(images, generator=generator).contiguous(memory_format=fmt)
                                           for _ in range(method.num_views)])

        def forward():
            with _autocast(device, bf16):
                return method.training_step(views, indices, generator=generator)

        out = t.time("forward", forward)
        optimizer.zero_grad(set_to_none=True)
        t.time("backward", lambda: out.loss.backward())
        t.time("optimizer", optimizer.step)
        t.time("after_step", lambda: method.after_step(out))

    for _ in range(2):
        step(record=False)
    for _ in range(steps):
        step(record=True)
    phase_s = {p: statistics.median(v) for p, v in timer.totals.items()}
    step_s = sum(phase_s.values())
    row = {"method": name, "views_per_s": batch * method.num_views / step_s, "step_ms": 1000 * step_s}
    for p in PHASES:
        row[f"{p}_pct"] = 100 * phase_s[p] / step_s
    row["loss_ms"] = 1000 * _loss_alone(device, batch, steps)
    return row


def _loss_alone(device: torch.device, batch: int, steps: int) -> float:
    z = torch.randn(2 * batch, 128, device=device)
    timer = _Timer(device)
    times = []
    for i in range(steps + 2):
        e = z.clone().requires_grad_(True)
        timer.sync()
        start = time.perf_counter()
        nt_xent(e[:batch], e[batch:], 0.5).backward()
        timer.sync()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--methods", nargs="+", default=["simclr", "moco", "membank"])
    args = parser.parse_args()
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    batch = args.batch or (1024 if gpu else 64)
    steps = args.steps or (20 if gpu else 3)
    bf16 = args.precision == "bf16" or (args.precision == "auto" and (gpu or cpu_has_fast_bf16()))
    if gpu:
        torch.backends.cudnn.benchmark = True
        print(f"device: {torch.cuda.get_device_name(device)}; torch {torch.__version__}")
    else:
        print(f"device: CPU, {torch.get_num_threads()} threads; torch {torch.__version__}")
    print(f"batch {batch}, {steps} timed steps, {'bf16 autocast + channels_last' if bf16 else 'fp32'}")
    bare = bare_backbone(device, batch, steps, bf16, channels_last=bf16)
    print(f"bare ResNet-18 forward + backward + SGD: {bare:,.0f} images/s\n")
    rows = [method_step_split(m, device, batch, steps, bf16, channels_last=bf16) for m in args.methods]
    for row in rows:
        row["vs_bare"] = f"{100 * row['views_per_s'] / bare:.0f} %"
    columns = [("method", "method"), ("views_per_s", "views/s"), ("vs_bare", "of bare"), ("step_ms", "step ms")]
    columns += [(f"{p}_pct", f"{p} %") for p in PHASES] + [("loss_ms", "loss alone ms")]
    print_table(rows, columns)


if __name__ == "__main__":
    main()
