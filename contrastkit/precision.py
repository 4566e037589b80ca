"""Float32 inside mixed precision: :func:`full_precision`, for the code that must not run in bf16 / fp16.

Under ``torch.autocast`` (the trainer runs a method's ``forward`` under bf16 autocast, see
:mod:`contrastkit.methods.base`) matrix products, linear layers and convolutions compute in the autocast dtype
whatever the dtype of their inputs, and elementwise operations keep their inputs' dtype. Casting the inputs of a
loss to float32 is therefore not enough: ``z.float().T @ z.float()`` is still a bf16 product, and a covariance,
a log-sum-exp over thousands of scores or a margin between two close distances comes out rounded to bf16's 8
significant bits (a VICReg covariance term logged as 1.140625, 2.0, 2.125).

``@full_precision`` on a function (a loss) runs it with autocast off on every device type where it is on, and
its bf16 / fp16 tensor arguments cast to float32, so its result is the float32 computation on the same (already
rounded) inputs. float32 and float64 tensors pass unchanged, as does everything else; gradients flow back through
the casts to the inputs in their own dtypes. The library's losses, measures and estimators use it; a user's
method uses it on its own loss::

    @full_precision
    def byol_loss(p: Tensor, z: Tensor) -> Tensor:
        return 2 - 2 * F.cosine_similarity(p, z, dim=1).mean()

or inline, ``loss = full_precision(my_loss)(a, b)``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

import torch
from torch import Tensor

__all__ = ["full_precision"]

P = ParamSpec("P")
R = TypeVar("R")

#: the device types torch.autocast knows; those where autocast is on are switched off
_DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu", "hpu", "xla", "mtia")
_HALF = (torch.float16, torch.bfloat16)


def _autocast_on(device_type: str) -> bool:
    """Whether autocast is on for ``device_type``. The per-device query is PyTorch >= 2.4; older releases (the
    package accepts torch >= 2.1) have one getter for the CPU and one for CUDA only."""
    available = getattr(torch.amp, "is_autocast_available", None)
    if available is not None:
        return bool(available(device_type) and torch.is_autocast_enabled(device_type))
    if device_type == "cpu":
        return bool(torch.is_autocast_cpu_enabled())
    return device_type == "cuda" and bool(torch.is_autocast_enabled())


@contextlib.contextmanager
def _autocast_off() -> Iterator[None]:
    """Autocast off, for the block, on every device type where it is on (and nothing changed elsewhere). Private:
    inputs computed before the block would keep their half dtype, which :func:`full_precision` casts."""
    with contextlib.ExitStack() as stack:
        for device_type in _DEVICE_TYPES:
            if _autocast_on(device_type):
                stack.enter_context(torch.autocast(device_type, enabled=False))
        yield


def _to_float32(value: Any) -> Any:
    """A bf16 / fp16 tensor as float32; a plain list or tuple element by element; anything else as it is."""
    if isinstance(value, Tensor):
        return value.float() if value.dtype in _HALF else value
    if type(value) in (list, tuple):
        return type(value)(_to_float32(v) for v in value)
    return value


def full_precision(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` run with autocast off and its bf16 / fp16 tensor arguments (positional or keyword, also inside a
    plain list or tuple) cast to float32; see the module docstring. A decorator, or inline:
    ``full_precision(loss_fn)(a, b)``."""
    if not callable(fn):
        raise TypeError(f"full_precision wraps a function (use it as @full_precision), got {type(fn).__name__}")

    @functools.wraps(fn)
    def in_float32(*args: P.args, **kwargs: P.kwargs) -> R:
        with _autocast_off():
            return fn(*_to_float32(args), **{key: _to_float32(value) for key, value in kwargs.items()})

    return in_float32
