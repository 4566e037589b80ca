"""How much memory a setting implies, against how much this machine has: refuse before allocating.

A setting or a file can imply far more memory than a machine has (``--image-size 4096`` on 1,797 images is
56 GiB; an ``.npz`` of compressed zeros declares GiBs in a few MB; an MI batch of 10**7 pairs needs
10**7 x 10**7 score matrices). Allocating first and failing later is slow at best: the process swaps, stops
answering Ctrl-C, or the kernel's OOM killer ends it (or a neighbour) without a word. The callers estimate the
bytes a setting implies from shapes alone (array headers, N x C x H x W, the batch size) and call
:func:`check_fits` before they allocate; it raises :class:`NotEnoughMemoryError`, a one-line ``ValueError``
that names the setting or file, the estimate and the memory available.

*Available* is the least of what the kernel says a new allocation can get without swapping (``MemAvailable``
of ``/proc/meminfo``; ``os.sysconf`` free pages where that file is missing) and what the process's cgroup
(v2 ``memory.max``, or v1 ``memory.limit_in_bytes``) still allows, counting its inactive file cache as
reclaimable. Where neither can be read, nothing is refused.

Margin: an estimate above :data:`MEMORY_FRACTION` (90 %) of the available memory is refused. The estimates
count the large arrays a step holds, not every temporary or the interpreter around them, so a setting just
under the line can still run short; a setting over it would fail anyway, after minutes of swapping.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["MEMORY_FRACTION", "NotEnoughMemoryError", "available_memory", "check_fits", "format_bytes"]

#: an estimate above this share of the available memory is refused
MEMORY_FRACTION = 0.9

_UNITS = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
#: cgroup "no limit" values: v2 writes "max"; v1 writes a page-rounded 2**63 - 1 (or more)
_NO_LIMIT = 2**60


class NotEnoughMemoryError(ValueError):
    """What a setting or file implies does not fit this machine's memory (raised before allocating anything).

    ``subject`` names the setting or file (``"load_dataset: `size` 4096 x 4096"``), ``what`` says what would
    take the memory, ``needed`` and ``available`` are bytes, ``hint`` says what to change; ``setting`` is the
    name of the library argument the estimate grows with (``"size"``), so a caller that knows the user's own
    name for it can say so with :meth:`with_subject`.
    """

    def __init__(self, subject: str, what: str, needed: int, available: int, hint: str = "",
                 setting: str | None = None) -> None:
        self.subject, self.what, self.hint, self.setting = subject, what, hint, setting
        self.needed, self.available = int(needed), int(available)
        limit = f"contrastkit uses at most {MEMORY_FRACTION:.0%} of it"
        super().__init__(f"{subject}: {what} would take {format_bytes(self.needed)}; this machine has "
                         f"{format_bytes(self.available)} available ({limit}){'; ' + hint if hint else ''}")

    def with_subject(self, subject: str, hint: str | None = None) -> NotEnoughMemoryError:
        """The same estimate under another name (e.g. the config's ``image_size`` for ``load_dataset``'s ``size``)."""
        return NotEnoughMemoryError(subject, self.what, self.needed, self.available,
                                    self.hint if hint is None else hint, self.setting)


def format_bytes(n: int | float) -> str:
    """``28.1 GiB``: binary units, one decimal (whole bytes below 1 KiB)."""
    value, unit = float(n), 0
    while abs(value) >= 1024 and unit < len(_UNITS) - 1:
        value, unit = value / 1024, unit + 1
    return f"{int(value):,} bytes" if unit == 0 else f"{value:,.1f} {_UNITS[unit]}"


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _stat_value(path: Path, key: str) -> int:
    """A value of a cgroup ``memory.stat`` file (0 when absent)."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
    except (OSError, UnicodeDecodeError):
        return 0  # no such file (cgroup v1 without memory.stat): nothing reclaimable counted
    return 0


def _meminfo_available(meminfo: Path) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                parts = line.split()
                return int(parts[1]) * 1024 if len(parts) >= 2 and parts[1].isdigit() else None
    except (OSError, UnicodeDecodeError):
        return None
    return None


def _sysconf_available() -> int | None:
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_available(root: Path) -> int | None:
    """What the cgroup mounted at ``root`` still allows: limit - usage + inactive file cache (None: no limit)."""
    v2_limit = root / "memory.max"
    if v2_limit.exists():
        limit, usage = _read_int(v2_limit), _read_int(root / "memory.current")
        cache = _stat_value(root / "memory.stat", "inactive_file")
    else:
        v1 = root / "memory"
        limit, usage = _read_int(v1 / "memory.limit_in_bytes"), _read_int(v1 / "memory.usage_in_bytes")
        cache = _stat_value(v1 / "memory.stat", "total_inactive_file")
    if limit is None or limit >= _NO_LIMIT or usage is None:
        return None
    return max(0, limit - usage + cache)


def available_memory(meminfo: str | Path = "/proc/meminfo", cgroup_root: str | Path = "/sys/fs/cgroup") -> int | None:
    """Bytes a new allocation of this process can get: the least of the kernel's ``MemAvailable`` and what the
    cgroup's limit leaves (see the module docstring); None where neither can be read."""
    system = _meminfo_available(Path(meminfo))
    if system is None:
        system = _sysconf_available()
    group = _cgroup_available(Path(cgroup_root))
    known = [v for v in (system, group) if v is not None]
    return min(known) if known else None


def check_fits(needed: int, subject: str, what: str, *, hint: str = "", setting: str | None = None,
               available: int | None = None) -> None:
    """Raise :class:`NotEnoughMemoryError` when ``needed`` bytes exceed :data:`MEMORY_FRACTION` of the available
    memory (``available``; default :func:`available_memory`; unknown memory refuses nothing)."""
    if available is None:
        available = available_memory()
    if available is not None and needed > MEMORY_FRACTION * available:
        raise NotEnoughMemoryError(subject, what, needed, available, hint, setting)
