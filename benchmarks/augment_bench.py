"""Throughput of the batched SimCLR view presets against per-image pipelines (the "loader worker" way).

For each preset and batch size this prints images/s of
  * batched: one ``aug(x_uint8)`` call on the whole (B, C, H, W) uint8 batch (parameters drawn per sample),
    using torch's threads;
  * PIL per-image: the baseline a user would otherwise run -- a torchvision-style per-image pipeline on PIL
    images with the same ops and ranges (random resized crop with PIL's box resize, flip, rotation for the
    mnist preset, brightness / contrast / saturation with ``PIL.ImageEnhance``, hue through an HSV shift,
    random grayscale, then to a float tensor), one image at a time in one thread, from the uint8 array
    (``Image.fromarray`` per image, as torchvision's CIFAR / MNIST datasets do). torchvision itself is not
    used (it has no CPU build beside this torch), so this is a stand-in written with the same PIL calls;
  * own per-image: this library's batched ops called on one (1, C, H, W) image at a time in a Python loop
    (it shows the per-call overhead of the batched code; it is not what anyone would run);
and the ratio of the batched rate to the PIL rate. A data loader with W workers runs up to W PIL pipelines
at once, on W cores. A per-op breakdown of the batched call and, as a yardstick for "cost per training
step", the forward + backward time of a small CNN on one view at the same batch size follow.

Usage: python benchmarks/augment_bench.py [--batches 256 1024] [--threads N] [--min-time 1.0]
Numbers depend on the machine; never assert on them in tests.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image, ImageEnhance
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


class PILView:
    """One view of one PIL image with the ops and ranges of a :class:`ViewAugment` preset (no blur: neither
    benchmarked preset has one), written as torchvision's PIL transforms do it; ``rng`` is Python's."""

    def __init__(self, aug: ViewAugment, rng: random.Random) -> None:
        if aug.crop is None or aug.blur is not None:
            raise ValueError("PILView: needs a crop and no blur (the mnist and cifar presets)")
        self.crop, self.jitter, self.grayscale, self.rng = aug.crop, aug.jitter, aug.grayscale, rng

    def _box(self, width: int, height: int) -> tuple[int, int, int, int]:
        area = width * height
        log_lo, log_hi = math.log(self.crop.ratio[0]), math.log(self.crop.ratio[1])
        for _ in range(10):
            target = area * self.rng.uniform(*self.crop.scale)
            aspect = math.exp(self.rng.uniform(log_lo, log_hi))
            w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                left, top = self.rng.randint(0, width - w), self.rng.randint(0, height - h)
                return left, top, left + w, top + h
        return 0, 0, width, height

    def _color(self, img: Image.Image) -> Image.Image:
        jitter = self.jitter
        ops = []
        if jitter.brightness != (1.0, 1.0):
            ops.append(lambda im: ImageEnhance.Brightness(im).enhance(self.rng.uniform(*jitter.brightness)))
        if jitter.contrast != (1.0, 1.0):
            ops.append(lambda im: ImageEnhance.Contrast(im).enhance(self.rng.uniform(*jitter.contrast)))
        if jitter.saturation != (1.0, 1.0) and img.mode == "RGB":
            ops.append(lambda im: ImageEnhance.Color(im).enhance(self.rng.uniform(*jitter.saturation)))
        if jitter.hue != (0.0, 0.0) and img.mode == "RGB":
            ops.append(lambda im: _shift_hue(im, self.rng.uniform(*jitter.hue)))
        self.rng.shuffle(ops)
        for op in ops:
            img = op(img)
        return img

    def __call__(self, img: Image.Image) -> torch.Tensor:
        size = self.crop.size or img.size
        img = img.resize((size[1], size[0]), Image.BILINEAR, box=self._box(*img.size))
        if self.rng.random() < self.crop.flip_p:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        if self.crop.degrees:
            img = img.rotate(self.rng.uniform(-self.crop.degrees, self.crop.degrees), Image.BILINEAR)
        if self.jitter is not None and self.rng.random() < self.jitter.p:
            img = self._color(img)
        if self.grayscale is not None and img.mode == "RGB" and self.rng.random() < self.grayscale.p:
            img = img.convert("L").convert("RGB")
        array = np.asarray(img, dtype=np.float32) / 255.0
        return torch.from_numpy(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))


def _shift_hue(img: Image.Image, shift: float) -> Image.Image:
    """torchvision's ``adjust_hue`` for PIL: rotate the H channel of HSV by ``shift`` turns."""
    h, s, v = img.convert("HSV").split()
    h_array = np.asarray(h, dtype=np.uint8)
    with np.errstate(over="ignore"):
        h_array = h_array + np.uint8(round(shift * 255) % 256)
    return Image.merge("HSV", (Image.fromarray(h_array, "L"), s, v)).convert("RGB")


def pil_pipeline(view: PILView, x: np.ndarray) -> list[torch.Tensor]:
    """A loader worker's loop: uint8 (B, H, W[, C]) array -> one PIL image and one view per sample."""
    return [view(Image.fromarray(x[i])) for i in range(x.shape[0])]


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
    print(f"{'preset':<8}{'batch':>7}{'batched img/s':>15}{'PIL per-image':>15}{'batched/PIL':>13}"
          f"{'own per-image':>15}{'CNN step ms':>13}{'aug/step':>10}")
    breakdowns = []
    for name, channels, size in PRESETS:
        aug = get_augment(name, size)
        view = PILView(aug, random.Random(0))
        for batch in args.batches:
            g = torch.Generator().manual_seed(0)
            x = torch.randint(0, 256, (batch, channels, size, size), dtype=torch.uint8, generator=g)
            x_hwc = np.ascontiguousarray(x[:, 0].numpy() if channels == 1 else x.permute(0, 2, 3, 1).numpy())
            t_batch = timed(lambda aug=aug, x=x, g=g: aug(x, generator=g), args.min_time)
            t_pil = timed(lambda view=view, x_hwc=x_hwc: pil_pipeline(view, x_hwc), args.min_time, min_reps=1)
            t_loop = timed(lambda aug=aug, x=x, g=g: per_image_loop(aug, x, g), args.min_time, min_reps=1)
            t_step = train_step_time(channels, size, batch, args.min_time)
            print(f"{name:<8}{batch:>7}{batch / t_batch:>15,.0f}{batch / t_pil:>15,.0f}{t_pil / t_batch:>12.1f}x"
                  f"{batch / t_loop:>15,.0f}{1e3 * t_step:>13.1f}{100 * t_batch / t_step:>9.1f}%")
            if not args.no_breakdown:
                breakdowns.append((name, batch, op_breakdown(aug, x, g, args.min_time / 4)))
    print(f"\nbatched: {torch.get_num_threads()} torch thread(s); PIL per-image: one thread "
          "(a loader worker).\n'aug/step': one batched view as a share of a small CNN's forward+backward on one "
          "view\n(a SimCLR step makes 2 views and runs the encoder on both, so the share per step is about the same).")
    for name, batch, parts in breakdowns:
        total = sum(parts.values())
        detail = ", ".join(f"{k} {1e3 * v:.2f} ms ({100 * v / total:.0f}%)" for k, v in parts.items())
        print(f"\n{name} batch {batch}: {detail}")


if __name__ == "__main__":
    main()
