"""Input validation shared by every public function: clear errors that say what was wrong and where.

Some checks cost one device synchronisation each (they read a value back from the device). They come in
named groups, on by default, that can be switched off by name -- never more than what is named:

* ``"values"`` -- NaN/Inf in float inputs of losses and measures, and the [0, 1] range of float images
  given to the augmentations;
* ``"index_range"`` -- sample ids given to a memory bank lie in ``[0, rows)``;
* ``"temperature"`` -- a tensor (learnable) temperature is > 0.

:func:`checks_disabled` (a context manager) and :func:`set_checks` take the group names; with no names they
apply to every group. Shape and dtype checks never synchronise and are always on. The trainer switches the
three groups off inside a step on an accelerator (the loss is checked for NaN / Inf once per step instead).

Scope: the switch is a :class:`contextvars.ContextVar`, not a process-wide flag. ``checks_disabled`` holds for the
code inside its block on this thread (or asyncio task) only; another thread -- an evaluation, a data loader, a
second trainer -- keeps its checks while a training step runs without them. ``set_checks`` changes the current
context until changed again (a new thread starts with every group on).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

import torch
from torch import Tensor

CHECKS = ("values", "index_range", "temperature")
#: the groups switched off in the current context (thread / task): empty by default
_DISABLED: ContextVar[frozenset[str]] = ContextVar("contrastkit_checks_disabled", default=frozenset())


def _names(names: tuple[str, ...], where: str) -> tuple[str, ...]:
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ValueError(f"{where}: unknown check group(s) {unknown}; groups: {list(CHECKS)}")
    return names or CHECKS


def set_checks(enabled: bool, *names: str) -> None:
    """Turn the named (synchronising) check groups on or off in the current context (thread / task) until changed
    again; no names: every group."""
    chosen = frozenset(_names(names, "set_checks"))
    disabled = _DISABLED.get()
    _DISABLED.set(disabled - chosen if enabled else disabled | chosen)


def checks_enabled(name: str = "values") -> bool:
    return name not in _DISABLED.get()


@contextlib.contextmanager
def checks_disabled(*names: str) -> Iterator[None]:
    """Skip the named check groups inside the block (no names: every group), in this context only; shape checks
    stay. What was disabled before the block is restored after it, also after an error."""
    chosen = frozenset(_names(names, "checks_disabled"))
    token = _DISABLED.set(_DISABLED.get() | chosen)
    try:
        yield
    finally:
        _DISABLED.reset(token)


def check_tensor(x: object, name: str, where: str, ndim: int | None = None) -> Tensor:
    """Check that ``x`` is a floating tensor (of ``ndim`` dims if given) with only finite values."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{where}: `{name}` must be a torch.Tensor, got {type(x).__name__}")
    if ndim is not None and x.dim() != ndim:
        raise ValueError(f"{where}: `{name}` must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{where}: `{name}` must be a floating-point tensor, got dtype {x.dtype}")
    if checks_enabled("values") and x.numel() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{where}: `{name}` holds {bad} NaN/Inf value(s); the loss would be NaN")
    return x


def check_labels(labels: object, n: int, where: str, name: str = "labels") -> Tensor:
    """Check that ``labels`` is an integer (or bool) vector of length ``n``."""
    if not isinstance(labels, Tensor):
        raise TypeError(f"{where}: `{name}` must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dim() != 1 or labels.shape[0] != n:
        raise ValueError(f"{where}: `{name}` must have shape ({n},) to match the embeddings, "
                         f"got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"{where}: `{name}` must be integer class ids, got dtype {labels.dtype}")
    return labels


def check_same_shape(a: Tensor, b: Tensor, names: tuple[str, str], where: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{where}: `{names[0]}` and `{names[1]}` must have the same shape, "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}")


def check_positive(value: float, name: str, where: str, allow_zero: bool = False) -> float:
    v = float(value)
    if not (v > 0 or (allow_zero and v == 0)) or v != v:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{where}: `{name}` must be {bound}, got {value!r}")
    return v


def compute_dtype(*tensors: Tensor) -> torch.dtype:
    """The dtype to reduce in: float64 stays float64, everything else (bf16, fp16, fp32) is float32."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def upcast(x: Tensor, dtype: torch.dtype) -> Tensor:
    return x if x.dtype == dtype else x.to(dtype)


def zero_loss(*tensors: Tensor) -> Tensor:
    """A finite scalar zero that is still connected to the graph of ``tensors`` (backward gives zeros)."""
    total = None
    for t in tensors:
        if isinstance(t, Tensor) and t.requires_grad:
            term = t.sum() * 0.0
            total = term if total is None else total + term
    if total is None:
        t0 = tensors[0]
        return torch.zeros((), dtype=compute_dtype(t0), device=t0.device)
    return total.to(compute_dtype(*tensors))
