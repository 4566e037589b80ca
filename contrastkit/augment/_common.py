"""Shared pieces of the augmentation ops: input conversion, parameter drawing, argument checks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from contrastkit._checks import check_tensor, checks_enabled

GRAY_WEIGHTS = (0.299, 0.587, 0.114)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

# ---------------------------------------------------------------------------------------------------------
# input conversion and small helpers
# ---------------------------------------------------------------------------------------------------------


def _float_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; uint8, float16, bfloat16 and float32 are computed in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check_batch(x: object, where: str) -> Tensor:
    """A (B, C, H, W) uint8 or floating batch with C in {1, 3}; floats must lie in [0, 1] (when checks are on)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{where}: `x` must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{where}: `x` must be a (B, C, H, W) batch, got shape {tuple(x.shape)}")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"{where}: `x` must have 1 or 3 channels (dim 1), got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x
    if not x.is_floating_point():
        raise TypeError(f"{where}: `x` must be uint8 (0..255) or floating (0..1), got dtype {x.dtype}")
    # one synchronising reduction when checks are on; NaN fails the comparison too
    if checks_enabled("values") and x.numel() and not bool(((x >= 0) & (x <= 1)).all()):
        check_tensor(x, "x", where)                                         # names NaN / Inf first
        lo, hi = float(x.min()), float(x.max())
        raise ValueError(f"{where}: floating `x` must hold values in [0, 1], got [{lo:.4g}, {hi:.4g}] "
                         "(pass uint8 0..255 images as uint8, or divide by 255)")
    return x


def _as_float(x: Tensor) -> Tensor:
    """uint8 -> float32 / 255; floating -> its compute dtype (float64 stays, half precision -> float32)."""
    if x.dtype == torch.uint8:
        return x.to(torch.float32).div_(255.0)
    return x.to(_float_dtype(x.dtype))


def to_float(batch: Tensor, device: torch.device | str | None = None) -> Tensor:
    """Move a uint8 (B, C, H, W) batch to ``device`` *then* scale it to float32 in [0, 1] there.

    Moving the uint8 tensor first sends 4x fewer bytes to an accelerator. Floating input is moved and
    returned in its compute dtype (float64 stays, half precision becomes float32).
    """
    x = _check_batch(batch, "to_float")
    if device is not None:
        x = x.to(device, non_blocking=True)
    return _as_float(x)


def _draw_device(generator: torch.Generator | None, device: torch.device | str | None) -> torch.device:
    """Random numbers come from the generator's device, or the target device when there is no generator."""
    if generator is not None:
        return generator.device
    return torch.device(device) if device is not None else torch.device("cpu")


def _uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator | None,
             device: torch.device | str | None) -> Tensor:
    u = torch.rand(shape, generator=generator, device=_draw_device(generator, device))
    return (low + (high - low) * u).to(device or u.device)


def _bernoulli(n: int, p: float, generator: torch.Generator | None,
               device: torch.device | str | None) -> Tensor:
    u = torch.rand((n,), generator=generator, device=_draw_device(generator, device))
    return (u < p).to(device or u.device)


def _check_probability(p: float, name: str, where: str) -> float:
    v = float(p)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{where}: `{name}` must be a probability in [0, 1], got {p!r}")
    return v


def _check_range(value: Sequence[float], name: str, where: str, low: float, high: float) -> tuple[float, float]:
    if len(value) != 2:
        raise ValueError(f"{where}: `{name}` must be a (min, max) pair, got {value!r}")
    a, b = float(value[0]), float(value[1])
    if not (low <= a <= b <= high):
        raise ValueError(f"{where}: `{name}` must satisfy {low} <= min <= max <= {high}, got {value!r}")
    return a, b


def _check_batch_size(params_b: int, x: Tensor, where: str) -> None:
    if params_b != x.shape[0]:
        raise ValueError(f"{where}: parameters were drawn for a batch of {params_b}, "
                         f"`x` has batch size {x.shape[0]}")


def _per_sample(v: Tensor, x: Tensor) -> Tensor:
    """(B,) -> (B, 1, 1, 1) in x's dtype and device, to broadcast over (B, C, H, W)."""
    return v.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
