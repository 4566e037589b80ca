"""Training throughput per method on synthetic 32 px colour batches with a CIFAR ResNet-18.

For each method (SimCLR, MoCo v2, memory bank) one training step is split into its phases, each timed
with a device synchronisation around it: augmentation (all views, on the device), forward (encoder,
head, keys, loss), backward, optimizer step and after-step updates (momentum encoder, queue, bank).
NT-Xent alone (forward + backward on stored embeddings, 2N = twice the batch) is timed once, separately.

Every timing is a median over the timed steps: the step time is the median of the per-step totals, each
phase's share is its median over the sum of the phase medians, and the bare backbone is timed per step
the same way, in three parts: forward + backward, forward alone under ``no_grad`` (what a momentum key
costs) and one SGD step.

What is counted: "samples/s" is the batch size over the step time -- one training sample per image of the
batch, whatever the method does with it. The methods differ in the encoder passes a sample costs: SimCLR
runs two views with backward; MoCo v2 one query view with backward plus one key view through the momentum
encoder, forward only (under ``no_grad``); the memory bank one view with backward. The column "passes"
gives them as "backward + forward-only"; "backbone ms" is what the bare backbone needs for those passes
plus one SGD step (times measured in this run), and "of step" is that time's share of the method's step --
the share the backbone itself explains, the rest being augmentation, head, loss, the head's optimizer
update and bookkeeping. (The GPU target, SimCLR at >= 85 % of the bare ResNet-18 at batch 1,024 in bf16 +
channels_last, is SimCLR's "of step" up to one SGD step.)

Usage: python benchmarks/train_throughput.py [--device auto|cpu|cuda] [--batch N] [--steps N]
       [--precision auto|fp32|bf16] [--methods simclr moco membank]
Defaults: batch 1,024, 2 warm-up and 20 timed steps on a GPU; batch 32, 1 warm-up and 3 timed steps on a CPU
(about a minute and a half on the project's 2-core machine).
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
from contrastkit.methods import ContrastiveMethod, build_method
from contrastkit.models import resnet18_cifar
from contrastkit.train import cpu_has_fast_bf16, resolve_device

PHASES = ("augment", "forward", "backward", "optimizer", "after_step")


class _Timer:
    def __init__(self, device: torch.device, phases: tuple[str, ...] = PHASES) -> None:
        self.device = device
        self.totals: dict[str, list[float]] = {p: [] for p in phases}

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


def bare_backbone(device: torch.device, batch: int, steps: int, warm_up: int, bf16: bool,
                  channels_last: bool) -> dict[str, float]:
    """Median seconds of the bare ResNet-18 on random float input, each part timed alone: ``"train"`` forward +
    backward, ``"forward_only"`` forward under ``no_grad`` in training mode (a momentum key encoder's pass) and
    ``"optimizer"`` one SGD step (once per training step, however many passes it makes)."""
    model = resnet18_cifar().to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch, 3, 32, 32, device=device).contiguous(memory_format=fmt)
    timer = _Timer(device, ("train", "forward_only", "optimizer"))

    def forward_backward() -> None:
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, bf16):
            loss = model(x).float().square().mean()
        loss.backward()

    @torch.no_grad()
    def forward_only() -> None:
        with _autocast(device, bf16):
            model(x)

    for phase, fn in (("train", forward_backward), ("forward_only", forward_only), ("optimizer", optimizer.step)):
        for _ in range(warm_up):
            fn()
        for _ in range(steps):
            timer.time(phase, fn)
    return {phase: statistics.median(times) for phase, times in timer.totals.items()}


def encoder_passes(method: ContrastiveMethod) -> tuple[int, int]:
    """(passes with backward, forward-only passes) of the encoder per sample in one ``training_step``."""
    if method.num_views == 1:  # memory bank: one view, the positive is stored
        return 1, 0
    two_directions = method.symmetric and method.loss_name != "nt_xent"
    if method.key_net is None:  # shared keys: every key is a pass with gradient
        return (4 if two_directions else 2), 0
    return (2, 2) if two_directions else (1, 1)


def method_step_split(name: str, device: torch.device, batch: int, steps: int, warm_up: int, bf16: bool,
                      channels_last: bool) -> dict:
    torch.manual_seed(0)
    encoder = resnet18_cifar()
    # each method gets only its own settings: a queue for MoCo, a bank of 50,000 rows for the memory bank
    extra = {"moco": {"queue_size": 16_384}, "membank": {"num_samples": 50_000}}.get(name, {})
    method = build_method(name, encoder, 512, **extra).to(device)
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

    for _ in range(warm_up):
        step(record=False)
    for _ in range(steps):
        step(record=True)
    step_s = statistics.median(sum(parts) for parts in zip(*timer.totals.values(), strict=True))
    phase_s = {p: statistics.median(v) for p, v in timer.totals.items()}
    phase_sum = sum(phase_s.values())
    with_backward, forward_only = encoder_passes(method)
    row = {"method": name, "samples_per_s": batch / step_s, "step_ms": 1000 * step_s,
           "passes": f"{with_backward} + {forward_only}", "with_backward": with_backward,
           "forward_only": forward_only}
    for p in PHASES:
        row[f"{p}_pct"] = 100 * phase_s[p] / phase_sum
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
    batch = args.batch or (1024 if gpu else 32)
    steps = args.steps or (20 if gpu else 3)
    warm_up = 2 if gpu else 1
    bf16 = args.precision == "bf16" or (args.precision == "auto" and (gpu or cpu_has_fast_bf16()))
    if gpu:
        torch.backends.cudnn.benchmark = True
        print(f"device: {torch.cuda.get_device_name(device)}; torch {torch.__version__}")
    else:
        print(f"device: CPU, {torch.get_num_threads()} threads; torch {torch.__version__}")
    precision = "bf16 autocast + channels_last" if bf16 else "fp32"
    print(f"batch {batch}, {warm_up} warm-up and {steps} timed steps (medians), {precision}")
    bare = bare_backbone(device, batch, steps, warm_up, bf16, channels_last=bf16)
    print(f"bare ResNet-18 at batch {batch}: forward + backward {1000 * bare['train']:.1f} ms "
          f"({batch / bare['train']:,.0f} images/s); forward only (no_grad) {1000 * bare['forward_only']:.1f} ms "
          f"({batch / bare['forward_only']:,.0f} images/s); SGD step {1000 * bare['optimizer']:.1f} ms\n")
    rows = [method_step_split(m, device, batch, steps, warm_up, bf16, channels_last=bf16) for m in args.methods]
    for row in rows:
        backbone_s = (row["with_backward"] * bare["train"] + row["forward_only"] * bare["forward_only"]
                      + bare["optimizer"])
        row["backbone_ms"] = 1000 * backbone_s
        row["of_step"] = f"{100 * backbone_s / (row['step_ms'] / 1000):.0f} %"
    columns = [("method", "method"), ("samples_per_s", "samples/s"), ("step_ms", "step ms"),
               ("passes", "passes"), ("backbone_ms", "backbone ms"), ("of_step", "of step")]
    columns += [(f"{p}_pct", f"{p} %") for p in PHASES]
    print_table(rows, columns)
    print("\npasses: encoder passes per sample, with backward + forward only (a momentum key); backbone ms: the "
          "bare\nbackbone's time for those passes and one SGD step at this batch; of step: its share of the "
          "method's median step.")
    print(f"NT-Xent alone at 2N = {2 * batch:,} (forward + backward, d = 128): "
          f"{1000 * _loss_alone(device, batch, steps):.2f} ms")


if __name__ == "__main__":
    main()
