"""The training device: ``auto`` / ``cpu`` / ``cuda[:N]`` / ``mps`` checked with a clear error, and whether this
CPU has native bf16 (where bf16 autocast + channels_last pays off; ``benchmarks/precision_bench.py``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch

from contrastkit.settings import SettingsError

__all__ = ["cpu_has_fast_bf16", "resolve_device", "torch_threads"]


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has native bf16 matrix instructions (AVX512-BF16 or AMX), where bf16 autocast with
    channels_last beats fp32 for the small CNN (``benchmarks/precision_bench.py`` measures it)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; a clear error otherwise."""
    accepted = "auto, cpu, cuda, cuda:N (N < the number of GPUs) or mps"
    if not isinstance(name, str) or not name.strip():
        raise SettingsError(f"`device` must be one of {accepted}; got {name!r}")
    text = name.strip()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise SettingsError(f"`device` must be one of {accepted}; got {name!r}") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SettingsError(f"device {name!r} requested but CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SettingsError(f"device {name!r}: this machine has {torch.cuda.device_count()} GPU(s)")
        return device
    if device.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise SettingsError(f"device {name!r} requested but MPS is not available on this machine")
        return device
    raise SettingsError(f"`device` must be one of {accepted}; {name!r} cannot train a model")


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op CPU threads set to ``threads`` for the block and restored after it (None: unchanged);
    torch's setting is process-wide, so it never outlives the block."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
